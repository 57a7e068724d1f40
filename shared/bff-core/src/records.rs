//! Sealed records in the deployment's store (Workers KV or DynamoDB): reading and writing them,
//! the revocation entries that end sessions (logout, back-channel logout), and the refresh
//! rotations shared across instances.
//!
//! Every record is sealed with the cookie key ring, its key as associated data and its expiry
//! inside, so the store is trusted with neither secrecy nor expiry (Workers KV and DynamoDB's
//! TTL both delete late). Workers KV is eventually consistent and allows one write per second
//! per key: records are written only when they change, never on a plain read.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ctx::Ctx;
use crate::error::Unavailable;
use crate::ports::{HttpClient, KvError, KvStore, Level, UnixTime};
use crate::rotation::{MEMORY_SECS, POLL, Rotation};
use crate::seal;

const REVOKED: &str = "revoked:";

/// How a sealed record is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Always,
    /// Only when the key holds nothing (a claim).
    IfAbsent,
    /// Only when the key still holds something (a session record a logout may have deleted).
    IfPresent,
}

pub(crate) fn failed<H, K>(ctx: &Ctx<'_, H, K>, error: &KvError) -> Unavailable {
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

/// A revocation entry: sessions created at or before `iat` are ended (http-api.md: backchannel-logout).
#[derive(Serialize, Deserialize)]
struct Revocation {
    iat: u64,
}

/// Whether a logout token with `jti` was processed before (Back-Channel Logout 1.0 §2.6 step 7).
pub(crate) async fn logout_token_seen<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    jti: &str,
) -> Result<bool, Unavailable> {
    Ok(get_sealed(ctx, store, &jti_key(ctx, jti)).await?.is_some())
}

/// Remembers a processed logout token until a while after it expires.
pub(crate) async fn remember_logout_token<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    jti: &str,
    exp: UnixTime,
) -> Result<(), Unavailable> {
    let expires = UnixTime(exp.0.max(ctx.now.0).saturating_add(120));
    put_sealed(ctx, store, &jti_key(ctx, jti), b"seen", expires, Write::Always).await?;
    Ok(())
}

fn jti_key<H, K>(ctx: &Ctx<'_, H, K>, jti: &str) -> String {
    let digest = Sha256::digest(format!("{}|{jti}", ctx.config.issuer).as_bytes());
    format!("jti:{}", URL_SAFE_NO_PAD.encode(digest))
}

/// What a revocation entry can name: the user, the provider's session, or this backend's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject<'a> {
    Sub(&'a str),
    Sid(&'a str),
    Session(&'a str),
}

impl Subject<'_> {
    pub(crate) fn key(self) -> String {
        let (kind, value) = match self {
            Self::Sub(v) => ("sub", v),
            Self::Sid(v) => ("sid", v),
            Self::Session(v) => ("session", v),
        };
        format!("{REVOKED}{kind}:{}", URL_SAFE_NO_PAD.encode(value.as_bytes()))
    }
}

/// The `iat` of the revocation entry under `key` (a [`Subject::key`]), if there is one.
pub(crate) async fn revoked_at<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    key: &str,
) -> Result<Option<u64>, Unavailable> {
    let entry = get_sealed(ctx, store, key).await?;
    Ok(entry
        .and_then(|bytes| serde_json::from_slice::<Revocation>(&bytes).ok())
        .map(|r| r.iat))
}

/// Records that sessions of `subject` created at or before `iat` are ended. An entry already
/// there with a later `iat` is kept: an older logout token never shortens a newer one's reach.
pub(crate) async fn revoke<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    store: &K,
    subject: Subject<'_>,
    iat: u64,
) -> Result<(), Unavailable> {
    let key = subject.key();
    if revoked_at(ctx, store, &key).await?.is_some_and(|newer| newer >= iat) {
        return Ok(());
    }
    ctx.absent_revocations.forget(&key);
    let payload = serde_json::to_vec(&Revocation { iat }).unwrap_or_default();
    // A session created at or before `iat` ends at the latest `session_max_age` after it.
    let expires = UnixTime(iat).plus(ctx.config.session_max_age).max(ctx.now.plus(1));
    put_sealed(ctx, store, &key, &payload, expires, Write::Always).await?;
    // Again: a read of this instance that raced the write may have remembered the key as absent.
    ctx.absent_revocations.forget(&key);
    Ok(())
}

/// Across isolates and containers (http-api.md: bff-token): before presenting a refresh
/// token, look for a rotation another instance stored under its hash, and claim the refresh with
/// a conditional write (exactly one winner on DynamoDB and in a session's Durable Object; best
/// effort on Workers KV, which has no compare-and-swap). A loser waits for the winner's result up
/// to the HTTP timeout, then refreshes itself (the winner may have failed). `session` is the
/// session's id, which names its coordinator where the platform has them.
pub(crate) async fn shared_claim<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    session: &str,
    refresh_token: &str,
) -> Option<Rotation> {
    let deployment = ctx.deps.store?;
    let coordinator = coordinator(deployment, session);
    let store = coordinator.as_ref().unwrap_or(deployment);
    let (done_key, claim_key) = shared_keys(refresh_token);
    let find = async || {
        get_sealed(ctx, store, &done_key)
            .await
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Rotation>(&bytes).ok())
    };
    if let Some(rotation) = find().await {
        return Some(rotation);
    }
    let expires = ctx.now.plus(MEMORY_SECS);
    if put_sealed(ctx, store, &claim_key, b"refreshing", expires, Write::IfAbsent)
        .await
        .unwrap_or(true)
    {
        return None;
    }
    let deadline = ctx.deps.clock.now().0 + ctx.config.http_timeout.as_secs() + 2;
    while ctx.deps.clock.now().0 <= deadline {
        ctx.deps.http.pause(POLL * 10).await;
        if let Some(rotation) = find().await {
            return Some(rotation);
        }
        // Released without a rotation (failed, or the provider does not rotate): our turn.
        if matches!(store.get(&claim_key).await, Ok(None)) {
            return None;
        }
    }
    None
}

/// Stores a rotation for the other instances, sealed, for 30 s.
pub(crate) async fn publish<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    session: &str,
    refresh_token: &str,
    rotation: &Rotation,
) {
    let Some(deployment) = ctx.deps.store else { return };
    let coordinator = coordinator(deployment, session);
    let store = coordinator.as_ref().unwrap_or(deployment);
    let (done_key, _) = shared_keys(refresh_token);
    let payload = serde_json::to_vec(rotation).unwrap_or_default();
    let expires = UnixTime(ctx.deps.clock.now().0 + MEMORY_SECS);
    let _ = put_sealed(ctx, store, &done_key, &payload, expires, Write::Always).await;
}

/// Gives up a claim after a failed refresh, or one that did not rotate, so other instances need
/// not wait it out.
pub(crate) async fn release<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>, session: &str, refresh_token: &str) {
    if let Some(deployment) = ctx.deps.store {
        let coordinator = coordinator(deployment, session);
        let store = coordinator.as_ref().unwrap_or(deployment);
        let _ = store.delete(&shared_keys(refresh_token).1).await;
    }
}

/// The coordinator of session `id` ([`KvStore::coordinator`]), named by a hash: in KV mode the id
/// is also the key of the session's record. Sessions sealed before they had ids have none.
fn coordinator<K: KvStore>(store: &K, id: &str) -> Option<K> {
    if id.is_empty() {
        return None;
    }
    let name = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("coordinator|{id}").as_bytes()));
    store.coordinator(&name)
}

fn shared_keys(refresh_token: &str) -> (String, String) {
    let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(refresh_token.as_bytes()));
    (format!("rotation:{hash}"), format!("rotating:{hash}"))
}
