//! Where sessions live (cookie or store), and the shared records around them: the revocation
//! entries that end sessions (logout, back-channel logout) and seen logout-token ids.
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
use crate::cookie::SetCookie;
use crate::ports::{HttpClient, KvError, KvStore, Level, UnixTime};
use crate::seal;
use crate::session::{self, SESSION_COOKIE, SaveError, Session};

const SESSION_RECORD: &str = "session:";
const REVOKED: &str = "revoked:";

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
    /// Ended by a logout or back-channel logout; its cookies should be cleared.
    Revoked,
}

/// How a sealed record is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Always,
    /// Only when the key holds nothing (a claim).
    IfAbsent,
    /// Only when the key still holds something (a session record a logout may have deleted).
    IfPresent,
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

/// Seals and writes a record valid until `expires`; `false` when a conditional write found the
/// key in the wrong state.
pub(crate) async fn put_sealed<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    key: &str,
    payload: &[u8],
    expires: UnixTime,
    write: Write,
) -> Result<bool, Unavailable> {
    let sealed =
        seal::seal(&ctx.config.keys[0], key, payload, expires, ctx.deps.random).map_err(|_| Unavailable::Failed)?;
    let ttl = ctx.now.until(expires).max(1);
    let value = sealed.into_bytes();
    let written = match write {
        Write::Always => store.put(key, value, ttl).await.map(|()| true),
        Write::IfAbsent => store.put_if_absent(key, value, ttl).await,
        Write::IfPresent => store.put_if_present(key, value, ttl).await,
    };
    written.map_err(|e| failed(ctx, &e))
}

/// Finds the request's session, and checks it against the revocation entries when the
/// deployment has a store (in both modes: on Workers KV a refresh that loaded a record before a
/// logout deleted it can write it back, and the entry still ends it).
pub(crate) async fn load<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Lookup, Unavailable> {
    let config = ctx.config;
    let loaded = match config.session_store {
        SessionStore::Cookie => match session::load(&ctx.cookies, config, ctx.now) {
            Some(session) => Loaded { session, id: None },
            None => return Ok(Lookup::Missing),
        },
        SessionStore::Kv => {
            let store = required(ctx)?;
            let Some(id) = ctx
                .cookies
                .get(SESSION_COOKIE)
                .and_then(|value| seal::unseal(&config.keys, SESSION_COOKIE, value, ctx.now).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
            else {
                return Ok(Lookup::Missing);
            };
            let record = get_sealed(ctx, store, &record_key(&id)).await?;
            match record.and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok()) {
                Some(session) if session.iss == config.issuer && ctx.now.0 < session.expires => {
                    Loaded { session, id: Some(id) }
                }
                _ => return Ok(Lookup::Missing),
            }
        }
    };
    if revoked(ctx, &loaded).await? {
        if let (Some(id), Some(store)) = (&loaded.id, ctx.deps.store) {
            let _ = store.delete(&record_key(id)).await;
        }
        return Ok(Lookup::Revoked);
    }
    Ok(Lookup::Found(Box::new(loaded)))
}

/// A revocation entry: sessions created at or before `iat` are ended (CONTRACT §2.7).
#[derive(Serialize, Deserialize)]
struct Revocation {
    iat: u64,
}

/// What a revocation entry can name: the user, the provider's session, or this backend's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject<'a> {
    Sub(&'a str),
    Sid(&'a str),
    Session(&'a str),
}

impl Subject<'_> {
    fn key(self) -> String {
        let (kind, value) = match self {
            Self::Sub(v) => ("sub", v),
            Self::Sid(v) => ("sid", v),
            Self::Session(v) => ("session", v),
        };
        format!("{REVOKED}{kind}:{}", URL_SAFE_NO_PAD.encode(value.as_bytes()))
    }
}

/// The entries that can end `loaded`.
fn subjects(loaded: &Loaded) -> impl Iterator<Item = Subject<'_>> {
    let session = &loaded.session;
    [
        Some(Subject::Sub(session.sub.as_str())),
        session.sid.as_deref().map(Subject::Sid),
        session_id(loaded).map(Subject::Session),
    ]
    .into_iter()
    .flatten()
}

/// This backend's id of the session: the KV record's, else the one sealed in the cookie.
fn session_id(loaded: &Loaded) -> Option<&str> {
    loaded
        .id
        .as_deref()
        .or(Some(loaded.session.id.as_str()).filter(|id| !id.is_empty()))
}

/// Whether a logout or back-channel logout ended this session.
async fn revoked<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: &Loaded) -> Result<bool, Unavailable> {
    let Some(store) = ctx.deps.store else {
        return Ok(false);
    };
    for subject in subjects(loaded) {
        if let Some(iat) = revoked_at(ctx, store, subject).await?
            && loaded.session.created <= iat
        {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn revoked_at<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    subject: Subject<'_>,
) -> Result<Option<u64>, Unavailable> {
    let entry = get_sealed(ctx, store, &subject.key()).await?;
    Ok(entry
        .and_then(|bytes| serde_json::from_slice::<Revocation>(&bytes).ok())
        .map(|r| r.iat))
}

/// Records that sessions of `subject` created at or before `iat` are ended. An entry already
/// there with a later `iat` is kept: an older logout token never shortens a newer one's reach.
async fn revoke<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    subject: Subject<'_>,
    iat: u64,
) -> Result<(), Unavailable> {
    if revoked_at(ctx, store, subject).await?.is_some_and(|newer| newer >= iat) {
        return Ok(());
    }
    let payload = serde_json::to_vec(&Revocation { iat }).unwrap_or_default();
    // A session created at or before `iat` ends at the latest `session_max_age` after it.
    let expires = UnixTime(iat).plus(ctx.config.session_max_age).max(ctx.now.plus(1));
    put_sealed(ctx, store, &subject.key(), &payload, expires, Write::Always).await?;
    Ok(())
}

fn record_key(id: &str) -> String {
    format!("{SESSION_RECORD}{id}")
}

/// Writes a changed session: a new cookie in cookie mode, the record in KV mode. The record is
/// replaced only while it exists, so a refresh racing a logout cannot bring the session back
/// (exactly on DynamoDB; on Workers KV the revocation entry of the logout ends it anyway).
pub(crate) async fn save<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: &mut Loaded) -> Result<Vec<SetCookie>, SaveError> {
    match (&loaded.id, ctx.config.session_store) {
        (Some(id), SessionStore::Kv) => {
            let store = required(ctx).map_err(|_| SaveError::Store)?;
            let payload = serde_json::to_vec(&loaded.session).unwrap_or_default();
            let expires = UnixTime(loaded.session.expires);
            let written = put_sealed(ctx, store, &record_key(id), &payload, expires, Write::IfPresent)
                .await
                .map_err(|_| SaveError::Store)?;
            if written { Ok(Vec::new()) } else { Err(SaveError::Gone) }
        }
        _ => session::save(&mut loaded.session, ctx.config, ctx.deps.random, ctx.now),
    }
}

/// Stores a new session (the callback) under a fresh random id (128 bits): the cookie itself, or
/// a record under that id with the cookie holding only the sealed id.
pub(crate) async fn create<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    mut session: Session,
) -> Result<Vec<SetCookie>, SaveError> {
    let config = ctx.config;
    let mut raw = [0u8; 16];
    ctx.deps.random.fill(&mut raw).map_err(SaveError::Random)?;
    session.id = URL_SAFE_NO_PAD.encode(raw);
    if config.session_store == SessionStore::Cookie {
        return session::save(&mut session, config, ctx.deps.random, ctx.now);
    }
    let store = required(ctx).map_err(|_| SaveError::Store)?;
    let expires = UnixTime(session.expires);
    let payload = serde_json::to_vec(&session).unwrap_or_default();
    put_sealed(ctx, store, &record_key(&session.id), &payload, expires, Write::Always)
        .await
        .map_err(|_| SaveError::Store)?;
    let sealed = seal::seal(
        &config.keys[0],
        SESSION_COOKIE,
        session.id.as_bytes(),
        expires,
        ctx.deps.random,
    )
    .map_err(SaveError::Random)?;
    let mut cookies = session::clear(config);
    cookies.retain(|c| c.name() != SESSION_COOKIE);
    cookies.insert(
        0,
        SetCookie::new(SESSION_COOKIE, sealed, config.same_site, ctx.now.until(expires)),
    );
    Ok(cookies)
}

/// Ends a session: its cookies are cleared and, with a store, its record deleted (KV mode) and a
/// revocation entry written, so neither a copied cookie nor a record written back by a racing
/// refresh brings it back. A store failure is logged; the cookies are cleared regardless.
pub(crate) async fn end<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: Option<&Loaded>) -> Vec<SetCookie> {
    if let (Some(loaded), Some(store)) = (loaded, ctx.deps.store) {
        if let Some(id) = session_id(loaded)
            && let Err(unavailable) = revoke(ctx, store, Subject::Session(id), ctx.now.0).await
        {
            ctx.deps.log.line(
                Level::Warn,
                &format!("logout without a revocation entry: {unavailable:?}"),
            );
        }
        if let Some(id) = &loaded.id
            && let Err(error) = store.delete(&record_key(id)).await
        {
            ctx.deps.log.line(Level::Warn, &error.to_string());
        }
    }
    session::clear(ctx.config)
}

/// Back-channel logout (CONTRACT §2.7): ends every session of `sid` (or, without one, of `sub`)
/// created at or before `iat`, through a revocation entry every request checks. In KV mode the
/// records are deleted when next seen, and expire with their sessions otherwise.
pub(crate) async fn end_all<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    sid: Option<&str>,
    sub: Option<&str>,
    iat: u64,
) -> Result<(), Unavailable> {
    // With a `sid`, only that session ends; `sub` alone ends all of the user's sessions.
    let subject = match (sid, sub) {
        (Some(sid), _) => Subject::Sid(sid),
        (None, Some(sub)) => Subject::Sub(sub),
        (None, None) => return Ok(()),
    };
    revoke(ctx, store, subject, iat).await
}
