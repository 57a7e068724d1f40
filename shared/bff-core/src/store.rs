//! Where sessions live (cookie or store), and the shared records around them: the session
//! index and revocation list for back-channel logout, and seen logout-token ids.
//!
//! Every record is sealed with the cookie key ring, its key as associated data and its expiry
//! inside, so the store is trusted with neither secrecy nor expiry (Workers KV and DynamoDB's
//! TTL both delete late). Workers KV is eventually consistent and allows one write per second
//! per key: records are written only when they change, never on a plain read.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Ctx;
use crate::config::SessionStore;
use crate::cookie::{self, SetCookie};
use crate::ports::{HttpClient, KvError, KvStore, Level, UnixTime};
use crate::seal;
use crate::session::{self, SESSION_COOKIE, SaveError, Session};

const SESSION_RECORD: &str = "session:";
const REVOKED: &str = "revoked:";
const INDEX: &str = "index:";

/// A session and, in KV mode, its id.
pub(crate) struct Loaded {
    pub(crate) session: Session,
    pub(crate) id: Option<String>,
}

/// What the request's cookies lead to.
pub(crate) enum Lookup {
    Found(Box<Loaded>),
    /// None, unreadable, expired, or deleted: no session.
    Missing,
    /// Ended by a back-channel logout; its cookies should be cleared.
    Revoked,
}

/// The store failed (try again later), or KV mode has none (a deployment error).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    Failed,
    NotConfigured,
}

impl Unavailable {
    /// The answer of a JSON endpoint: 500 for a deployment without its store, 503 otherwise.
    pub(crate) fn into_api_error(self) -> crate::error::ApiError {
        match self {
            Self::Failed => crate::error::ApiError::Upstream(crate::oidc::token::UpstreamError::Unavailable),
            Self::NotConfigured => crate::error::ApiError::ServerError,
        }
    }
}

/// The deployment's store, or `Unavailable` with one log line when KV mode has none.
fn required<'a, H, K: KvStore>(ctx: &Ctx<'a, H, K>) -> Result<&'a K, Unavailable> {
    ctx.deps.store.ok_or_else(|| {
        ctx.deps.log.line(
            Level::Error,
            "BFF_SESSION_STORE=kv but no store is bound (BFF_KV or BFF_DYNAMODB_TABLE)",
        );
        Unavailable::NotConfigured
    })
}

fn failed<H, K>(ctx: &Ctx<'_, H, K>, error: &KvError) -> Unavailable {
    ctx.deps.log.line(Level::Warn, &error.to_string());
    Unavailable::Failed
}

/// Reads and opens a sealed record; one that does not open is absent.
pub(crate) async fn get_sealed<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    key: &str,
) -> Result<Option<Vec<u8>>, Unavailable> {
    let raw = store.get(key).await.map_err(|e| failed(ctx, &e))?;
    Ok(raw
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| seal::unseal(&ctx.config.keys, key, &text, ctx.now).ok()))
}

/// Seals and writes a record valid until `expires`.
pub(crate) async fn put_sealed<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    key: &str,
    payload: &[u8],
    expires: UnixTime,
    only_if_absent: bool,
) -> Result<bool, Unavailable> {
    let sealed =
        seal::seal(&ctx.config.keys[0], key, payload, expires, ctx.deps.random).map_err(|_| Unavailable::Failed)?;
    let ttl = ctx.now.until(expires).max(1);
    if only_if_absent {
        store
            .put_if_absent(key, sealed.into_bytes(), ttl)
            .await
            .map_err(|e| failed(ctx, &e))
    } else {
        store
            .put(key, sealed.into_bytes(), ttl)
            .await
            .map(|()| true)
            .map_err(|e| failed(ctx, &e))
    }
}

/// Finds the request's session.
pub(crate) async fn load<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Lookup, Unavailable> {
    let config = ctx.config;
    let loaded = match config.session_store {
        SessionStore::Cookie => match session::load(&ctx.cookies, config, ctx.now) {
            Some(session) => Loaded { session, id: None },
            None => return Ok(Lookup::Missing),
        },
        SessionStore::Kv => {
            let store = required(ctx)?;
            let Some(id) = cookie::find(&ctx.cookies, SESSION_COOKIE)
                .and_then(|value| seal::unseal(&config.keys, SESSION_COOKIE, value, ctx.now).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
            else {
                return Ok(Lookup::Missing);
            };
            let record = get_sealed(ctx, store, &format!("{SESSION_RECORD}{id}")).await?;
            match record.and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok()) {
                Some(session) if session.iss == config.issuer && ctx.now.0 < session.expires => {
                    Loaded { session, id: Some(id) }
                }
                _ => return Ok(Lookup::Missing),
            }
        }
    };
    if revoked(ctx, &loaded.session).await? {
        return Ok(Lookup::Revoked);
    }
    Ok(Lookup::Found(Box::new(loaded)))
}

/// A revocation entry: sessions created at or before `iat` are ended (CONTRACT §2.7).
#[derive(Serialize, Deserialize)]
struct Revocation {
    iat: u64,
}

/// Whether a back-channel logout ended this stateless session.
async fn revoked<H, K: KvStore>(ctx: &Ctx<'_, H, K>, session: &Session) -> Result<bool, Unavailable> {
    let Some(store) = ctx
        .deps
        .store
        .filter(|_| ctx.config.session_store == SessionStore::Cookie)
    else {
        return Ok(false);
    };
    let subjects = [
        Some(("sub", session.sub.as_str())),
        session.sid.as_deref().map(|sid| ("sid", sid)),
    ];
    for (kind, value) in subjects.into_iter().flatten() {
        let entry = get_sealed(ctx, store, &revocation_key(kind, value)).await?;
        if let Some(revocation) = entry.and_then(|bytes| serde_json::from_slice::<Revocation>(&bytes).ok())
            && session.created <= revocation.iat
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn revocation_key(kind: &str, value: &str) -> String {
    format!("{REVOKED}{kind}:{}", URL_SAFE_NO_PAD.encode(value.as_bytes()))
}

fn index_key(kind: &str, value: &str) -> String {
    format!("{INDEX}{kind}:{}", URL_SAFE_NO_PAD.encode(value.as_bytes()))
}

/// Writes a changed session: a new cookie in cookie mode, the record in KV mode.
pub(crate) async fn save<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: &mut Loaded) -> Result<Vec<SetCookie>, SaveError> {
    match (&loaded.id, ctx.config.session_store) {
        (Some(id), SessionStore::Kv) => {
            let store = required(ctx).map_err(|_| SaveError::Store)?;
            let payload = serde_json::to_vec(&loaded.session).unwrap_or_default();
            put_sealed(
                ctx,
                store,
                &format!("{SESSION_RECORD}{id}"),
                &payload,
                UnixTime(loaded.session.expires),
                false,
            )
            .await
            .map_err(|_| SaveError::Store)?;
            Ok(Vec::new())
        }
        _ => session::save(&mut loaded.session, ctx.config, ctx.deps.random, ctx.now),
    }
}

/// Stores a new session (the callback): the cookie itself, or a record under a fresh random id
/// (128 bits) with the cookie holding only the sealed id, plus the `sid`/`sub` index.
pub(crate) async fn create<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    mut session: Session,
) -> Result<Vec<SetCookie>, SaveError> {
    let config = ctx.config;
    if config.session_store == SessionStore::Cookie {
        return session::save(&mut session, config, ctx.deps.random, ctx.now);
    }
    let store = required(ctx).map_err(|_| SaveError::Store)?;
    let mut raw = [0u8; 16];
    ctx.deps.random.fill(&mut raw).map_err(SaveError::Random)?;
    let id = URL_SAFE_NO_PAD.encode(raw);
    let expires = UnixTime(session.expires);
    let payload = serde_json::to_vec(&session).unwrap_or_default();
    put_sealed(ctx, store, &format!("{SESSION_RECORD}{id}"), &payload, expires, false)
        .await
        .map_err(|_| SaveError::Store)?;
    let subjects = [
        Some(("sub", session.sub.as_str())),
        session.sid.as_deref().map(|sid| ("sid", sid)),
    ];
    for (kind, value) in subjects.into_iter().flatten() {
        let key = index_key(kind, value);
        let mut ids: Vec<String> = get_sealed(ctx, store, &key)
            .await
            .map_err(|_| SaveError::Store)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        ids.push(id.clone());
        let payload = serde_json::to_vec(&ids).unwrap_or_default();
        put_sealed(ctx, store, &key, &payload, ctx.now.plus(config.session_max_age), false)
            .await
            .map_err(|_| SaveError::Store)?;
    }
    let sealed = seal::seal(&config.keys[0], SESSION_COOKIE, id.as_bytes(), expires, ctx.deps.random)
        .map_err(SaveError::Random)?;
    let mut cookies = session::clear(config);
    cookies.retain(|c| c.name() != SESSION_COOKIE);
    cookies.insert(
        0,
        SetCookie::new(SESSION_COOKIE, sealed, config.same_site, ctx.now.until(expires)),
    );
    Ok(cookies)
}

/// Ends a session: its record is deleted (KV mode) and its cookies cleared.
pub(crate) async fn end<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: Option<&Loaded>) -> Vec<SetCookie> {
    if let (Some(id), Some(store)) = (loaded.and_then(|l| l.id.as_ref()), ctx.deps.store)
        && let Err(error) = store.delete(&format!("{SESSION_RECORD}{id}")).await
    {
        ctx.deps.log.line(Level::Warn, &error.to_string());
    }
    session::clear(ctx.config)
}

/// Back-channel logout (CONTRACT §2.7): deletes every session of `sid` (or `sub`) in KV mode, or
/// records the revocation for stateless cookie sessions.
pub(crate) async fn end_all<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    sid: Option<&str>,
    sub: Option<&str>,
    iat: u64,
) -> Result<(), Unavailable> {
    let config = ctx.config;
    let subjects = [sid.map(|v| ("sid", v)), sub.map(|v| ("sub", v))];
    for (kind, value) in subjects.into_iter().flatten() {
        match config.session_store {
            SessionStore::Kv => {
                let key = index_key(kind, value);
                let ids: Vec<String> = get_sealed(ctx, store, &key)
                    .await?
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or_default();
                for id in ids {
                    store
                        .delete(&format!("{SESSION_RECORD}{id}"))
                        .await
                        .map_err(|e| failed(ctx, &e))?;
                }
                store.delete(&key).await.map_err(|e| failed(ctx, &e))?;
            }
            SessionStore::Cookie => {
                let payload = serde_json::to_vec(&Revocation { iat }).unwrap_or_default();
                let key = revocation_key(kind, value);
                put_sealed(ctx, store, &key, &payload, ctx.now.plus(config.session_max_age), false).await?;
            }
        }
        // With a `sid`, only that session ends; `sub` alone ends all of the user's sessions.
        if kind == "sid" {
            break;
        }
    }
    Ok(())
}
