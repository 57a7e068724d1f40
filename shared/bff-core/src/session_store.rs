//! Where sessions live: in the cookie itself, or in the store with the cookie holding a sealed id
//! (http-api.md: Cookies, Configuration): load, save, create and end, checked against the
//! revocation entries whenever the deployment has a store.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::join_all;

use crate::config::SessionMode;
use crate::cookie::SetCookie;
use crate::ctx::Ctx;
use crate::error::{ApiError, SaveError, Unavailable};
use crate::ports::{HttpClient, KvStore, Level, UnixTime};
use crate::records::{self, Subject, Write, get_sealed, put_sealed};
use crate::seal;
use crate::session::Session;
use crate::session_cookie::{self, SESSION_COOKIE};

const SESSION_RECORD: &str = "session:";

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

/// Finds the request's session, and checks it against the revocation entries when the
/// deployment has a store (in both modes: on Workers KV a refresh that loaded a record before a
/// logout deleted it can write it back, and the entry still ends it).
pub(crate) async fn load<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Lookup, Unavailable> {
    let config = ctx.config;
    let loaded = match config.session_store {
        SessionMode::Cookie => match session_cookie::load(&ctx.cookies, config, ctx.now) {
            Some(session) => Loaded { session, id: None },
            None => return Ok(Lookup::Missing),
        },
        SessionMode::Kv => {
            let store = required(ctx)?;
            let Some(id) = session_cookie::sealed_value(&ctx.cookies, config)
                .and_then(|value| seal::unseal(&config.keys, SESSION_COOKIE, &value, ctx.now).ok())
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

/// Logs what an operator must know about a failed save: a session over the cookie budget even
/// without cached tokens needs KV mode.
pub(crate) fn report<H, K>(ctx: &Ctx<'_, H, K>, error: &SaveError) {
    if let SaveError::TooLarge { bytes } = error {
        let budget = ctx.config.cookie_budget;
        let line =
            format!("session of {bytes} bytes exceeds BFF_COOKIE_BUDGET={budget}; use KV mode (BFF_SESSION_STORE=kv)");
        ctx.deps.log.line(Level::Error, &line);
    }
}

/// The request's session, or the JSON endpoints' answer without one: `invalid_session` (with
/// the cookies cleared when a logout ended it), or the store's failure.
pub(crate) async fn require<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Loaded, ApiError> {
    match load(ctx).await? {
        Lookup::Found(loaded) => Ok(*loaded),
        Lookup::Missing => Err(ApiError::InvalidSession),
        Lookup::Revoked => Err(ApiError::SessionEnded {
            error: Box::new(ApiError::InvalidSession),
            cookies: end(ctx, None).await,
        }),
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

/// What a logout revokes: the session's own id; for a cookie sealed before sessions had one, its
/// provider session (`sid`), the closest thing that names it.
fn logout_subject(loaded: &Loaded) -> Option<Subject<'_>> {
    session_id(loaded)
        .map(Subject::Session)
        .or(loaded.session.sid.as_deref().map(Subject::Sid))
}

/// Whether a logout or back-channel logout ended this session: the entries that could say so,
/// read at once (one round trip), except those this instance saw absent moments ago.
async fn revoked<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: &Loaded) -> Result<bool, Unavailable> {
    let Some(store) = ctx.deps.store else {
        return Ok(false);
    };
    let unknown: Vec<String> = subjects(loaded)
        .map(Subject::key)
        .filter(|key| !ctx.absent_revocations.known_absent(key, ctx.now))
        .collect();
    let reads = unknown.iter().map(|key| records::revoked_at(ctx, store, key));
    let mut revoked = false;
    for (key, entry) in unknown.iter().zip(join_all(reads).await) {
        match entry? {
            Some(iat) => revoked |= loaded.session.created <= iat,
            None => ctx.absent_revocations.absent(key, ctx.now),
        }
    }
    Ok(revoked)
}

fn record_key(id: &str) -> String {
    format!("{SESSION_RECORD}{id}")
}

/// Writes a changed session: a new cookie in cookie mode, the record in KV mode. The record is
/// replaced only while it exists, so a refresh racing a logout cannot bring the session back
/// (exactly on DynamoDB; on Workers KV the revocation entry of the logout ends it anyway).
pub(crate) async fn save<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: &mut Loaded) -> Result<Vec<SetCookie>, SaveError> {
    match (&loaded.id, ctx.config.session_store) {
        (Some(id), SessionMode::Kv) => {
            let store = required(ctx).map_err(SaveError::Store)?;
            let payload = serde_json::to_vec(&loaded.session).unwrap_or_default();
            let expires = UnixTime(loaded.session.expires);
            let written = put_sealed(ctx, store, &record_key(id), &payload, expires, Write::IfPresent)
                .await
                .map_err(SaveError::Store)?;
            if written { Ok(Vec::new()) } else { Err(SaveError::Gone) }
        }
        _ => session_cookie::save(&mut loaded.session, ctx.config, ctx.deps.random, ctx.now),
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
    if config.session_store == SessionMode::Cookie {
        return session_cookie::save(&mut session, config, ctx.deps.random, ctx.now);
    }
    let store = required(ctx).map_err(SaveError::Store)?;
    let expires = UnixTime(session.expires);
    let payload = serde_json::to_vec(&session).unwrap_or_default();
    put_sealed(ctx, store, &record_key(&session.id), &payload, expires, Write::Always)
        .await
        .map_err(SaveError::Store)?;
    let sealed = seal::seal(
        &config.keys[0],
        SESSION_COOKIE,
        session.id.as_bytes(),
        expires,
        ctx.deps.random,
    )
    .map_err(SaveError::Random)?;
    let mut cookies = session_cookie::clear(config);
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
    end_in_store(ctx, loaded).await;
    session_cookie::clear(ctx.config)
}

/// [`end`] for a KV-mode logout, which must not look done while the record lives on: when
/// neither the record's deletion nor the revocation entry reached the store, nothing is cleared
/// and the client retries.
pub(crate) async fn end_kv<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: &Loaded) -> Result<Vec<SetCookie>, Unavailable> {
    if end_in_store(ctx, Some(loaded)).await {
        Ok(session_cookie::clear(ctx.config))
    } else {
        Err(Unavailable::Failed)
    }
}

/// Deletes the KV record (what ends a KV session), then writes the revocation entry (what ends a
/// cookie session, and a KV record a racing write brought back). Whether either reached the store.
async fn end_in_store<H, K: KvStore>(ctx: &Ctx<'_, H, K>, loaded: Option<&Loaded>) -> bool {
    let (Some(loaded), Some(store)) = (loaded, ctx.deps.store) else {
        return false;
    };
    let mut ended = false;
    if let Some(id) = &loaded.id {
        match store.delete(&record_key(id)).await {
            Ok(()) => ended = true,
            Err(error) => ctx.deps.log.line(Level::Warn, &error.to_string()),
        }
    }
    if let Some(subject) = logout_subject(loaded) {
        match records::revoke(ctx, store, subject, ctx.now.0).await {
            Ok(()) => ended = true,
            Err(unavailable) => ctx.deps.log.line(
                Level::Warn,
                &format!("logout without a revocation entry: {unavailable:?}"),
            ),
        }
    }
    ended
}

/// Back-channel logout (http-api.md: backchannel-logout): ends every session of `sid` (or, without one, of `sub`)
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
    records::revoke(ctx, store, subject, iat).await
}
