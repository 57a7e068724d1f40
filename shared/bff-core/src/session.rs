//! The session and login-transaction payloads, their cookie storage, and the pure decisions
//! about cached tokens (draft-01 §4.2; CONTRACT §2.2, §3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Config, SameSite};
use crate::cookie::{Cookies, SetCookie};
use crate::oidc::id_token;
use crate::oidc::token::TokenSet;
use crate::ports::{RandomError, SecureRandom, UnixTime};
use crate::seal::{self, SealError};
use crate::secret::{AccessToken, IdToken, RefreshToken};

/// Base name of the session cookie; chunks are `<name>.0`, `<name>.1`, …
pub(crate) const SESSION_COOKIE: &str = "__Host-bff-session";
/// Prefix of the per-`state` login transaction cookies.
pub(crate) const TXN_COOKIE_PREFIX: &str = "__Host-bff-txn.";
/// Base name used as associated data for transaction cookies.
pub(crate) const TXN_COOKIE: &str = "__Host-bff-txn";
/// Longest value put in one cookie, so name, value and attributes stay under 4000 bytes.
const CHUNK: usize = 3800;
/// A login transaction lives this long (CONTRACT §3).
pub(crate) const TXN_LIFETIME: u64 = 600;

/// A logged-in user's session: everything sealed into the session cookie.
#[derive(Serialize, Deserialize)]
pub(crate) struct Session {
    /// A random id (128 bits): the KV record's key, and what a logout revokes.
    #[serde(default)]
    pub(crate) id: String,
    pub(crate) iss: String,
    pub(crate) sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) auth_time: Option<u64>,
    /// When the backend created the session.
    pub(crate) created: u64,
    /// When the session ends, whatever happens (`BFF_SESSION_MAX_AGE`).
    pub(crate) expires: u64,
    /// The claims projected for `bff-sessioninfo`.
    pub(crate) claims: Map<String, Value>,
    pub(crate) id_token: IdToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<RefreshToken>,
    /// The scope granted at login, space-separated.
    pub(crate) scope: String,
    /// The resources asked for at login (RFC 8707).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) resources: Vec<String>,
    /// Access tokens cached per (resource, scope set), most recently used last.
    #[serde(default)]
    pub(crate) tokens: Vec<CachedToken>,
    /// When a `rejected_token` last forced a refresh, whatever the cache key: one per 30 s per
    /// session, so cycling keys cannot buy unlimited refreshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_forced: Option<u64>,
}

/// One cached access token (draft-01 §4.2: cached with its expiry and scope).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CachedToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<String>,
    /// The requested scope set, normalised (sorted, deduplicated): the cache key.
    pub(crate) key: String,
    /// The scope the authorization server said the token has.
    pub(crate) scope: String,
    pub(crate) token: AccessToken,
    pub(crate) obtained: u64,
    pub(crate) expires: u64,
    /// False when neither `expires_in` nor a JWT `exp` told the lifetime (cached ≤ 60 s).
    pub(crate) expires_known: bool,
}

impl CachedToken {
    /// CONTRACT §2.2: refresh before handing out when less than min(60 s, max(5 s, lifetime / 4))
    /// remains.
    pub(crate) fn is_fresh(&self, now: UnixTime) -> bool {
        let lifetime = self.expires.saturating_sub(self.obtained);
        let margin = (lifetime / 4).clamp(5, 60);
        now.until(UnixTime(self.expires)) >= margin.max(1)
    }
}

/// A login in progress: sealed into `__Host-bff-txn.<id>` at login, read at the callback.
#[derive(Serialize, Deserialize)]
pub(crate) struct LoginTxn {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) return_to: String,
    pub(crate) created: u64,
    /// The scope requested, space-separated.
    pub(crate) scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) resources: Vec<String>,
}

/// Cached lifetimes never pass a day, whatever `expires_in` says (CONTRACT §2.2).
const MAX_TOKEN_LIFETIME: u64 = 86_400;

impl CachedToken {
    /// A cache entry for a fresh token response (CONTRACT §2.2): `expires_in`, else a JWT's `exp`,
    /// else at most 60 s; capped at a day and at `session_end`.
    pub(crate) fn from_response(
        resource: Option<String>,
        key: String,
        tokens: &TokenSet,
        now: u64,
        session_end: u64,
    ) -> Self {
        let (expires, expires_known) = match (tokens.expires_in, id_token::unverified_exp(&tokens.access_token)) {
            (Some(seconds), _) => (now.saturating_add(seconds), true),
            (None, Some(exp)) if exp > now => (exp, true),
            _ => (now + 60, false),
        };
        let scope = tokens.scope.clone().unwrap_or_else(|| key.clone());
        Self {
            resource,
            key,
            scope,
            token: AccessToken::new(tokens.access_token.clone()),
            obtained: now,
            expires: expires.min(now.saturating_add(MAX_TOKEN_LIFETIME)).min(session_end),
            expires_known,
        }
    }

    /// Whether this entry answers a request for (`key`, `resource`).
    pub(crate) fn answers(&self, key: &str, resource: Option<&str>) -> bool {
        self.key == key && self.resource.as_deref() == resource
    }
}

/// The claims `bff-sessioninfo` shows (`BFF_SESSIONINFO_CLAIMS`), taken out of `claims`.
pub(crate) fn project_claims(config: &Config, mut claims: Map<String, Value>) -> Map<String, Value> {
    let mut projected = Map::new();
    for name in &config.sessioninfo_claims {
        if let Some(value) = claims.remove(name) {
            projected.insert(name.clone(), value);
        }
    }
    projected
}

/// A normalised scope set: sorted, deduplicated, space-joined (scopes compare as sets).
pub(crate) fn scope_key(scope: &str) -> String {
    let mut parts: Vec<&str> = scope.split_whitespace().collect();
    parts.sort_unstable();
    parts.dedup();
    parts.join(" ")
}

/// Whether every scope of `wanted` is in `granted`.
pub(crate) fn scope_covered(wanted: &str, granted: &str) -> bool {
    let granted: Vec<&str> = granted.split_whitespace().collect();
    wanted.split_whitespace().all(|s| granted.contains(&s))
}

/// The transaction cookie name for `state`: a short digest, so names stay small.
pub(crate) fn txn_cookie_name(state: &str) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(state.as_bytes());
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9]);
    format!("{TXN_COOKIE_PREFIX}{id}")
}

/// Reads the session from the request's cookies: the single cookie or its chunks in order.
/// Anything that does not unseal, and any of our names sent twice, is no session.
pub(crate) fn load(cookies: &Cookies, config: &Config, now: UnixTime) -> Option<Session> {
    let sealed = if cookies.has(SESSION_COOKIE) {
        cookies.get(SESSION_COOKIE)?.to_owned()
    } else {
        let mut joined = String::new();
        for i in 0..=max_chunks(config) {
            let name = format!("{SESSION_COOKIE}.{i}");
            if !cookies.has(&name) {
                break;
            }
            joined.push_str(cookies.get(&name)?);
        }
        joined
    };
    if sealed.is_empty() {
        return None;
    }
    let bytes = seal::unseal(&config.keys, SESSION_COOKIE, &sealed, now).ok()?;
    let session: Session = serde_json::from_slice(&bytes).ok()?;
    (session.iss == config.issuer && now.0 < session.expires).then_some(session)
}

/// The session does not fit into the cookie budget even without cached access tokens.
#[derive(Debug)]
pub(crate) enum SaveError {
    Random(RandomError),
    /// The session store failed (KV mode).
    Store,
    /// The record was deleted meanwhile (a logout won the race): the session is over.
    Gone,
    TooLarge {
        bytes: usize,
    },
}

/// Seals `session` into `Set-Cookie`s within the budget, dropping the least recently used cached
/// tokens first (CONTRACT §3), and deletes every other chunk name the session might have used.
pub(crate) fn save(
    session: &mut Session,
    config: &Config,
    random: &dyn SecureRandom,
    now: UnixTime,
) -> Result<Vec<SetCookie>, SaveError> {
    loop {
        let payload = serde_json::to_vec(&*session).unwrap_or_default();
        let sealed = seal::seal(
            &config.keys[0],
            SESSION_COOKIE,
            &payload,
            UnixTime(session.expires),
            random,
        )
        .map_err(SaveError::Random)?;
        let chunks = split(&sealed);
        let size: usize = chunks.iter().map(|(name, value)| name.len() + 1 + value.len()).sum();
        if size <= config.cookie_budget {
            let max_age = now.until(UnixTime(session.expires));
            let mut cookies: Vec<SetCookie> = chunks
                .into_iter()
                .map(|(name, value)| SetCookie::new(name, value, config.same_site, max_age))
                .collect();
            let set: Vec<String> = cookies.iter().map(|c| c.name().to_owned()).collect();
            cookies.extend(
                chunk_names(config)
                    .into_iter()
                    .filter(|n| !set.contains(n))
                    .map(|n| SetCookie::delete(n, config.same_site)),
            );
            return Ok(cookies);
        }
        if session.tokens.is_empty() {
            return Err(SaveError::TooLarge { bytes: size });
        }
        // Least recently used first: the vector is kept in use order.
        session.tokens.remove(0);
    }
}

/// Deletes every session chunk name.
pub(crate) fn clear(config: &Config) -> Vec<SetCookie> {
    chunk_names(config)
        .into_iter()
        .map(|n| SetCookie::delete(n, config.same_site))
        .collect()
}

/// Deletes every transaction cookie the request carried.
pub(crate) fn clear_txns(cookies: &Cookies) -> Vec<SetCookie> {
    cookies
        .with_prefix(TXN_COOKIE_PREFIX)
        .map(|(name, _)| SetCookie::delete(name, SameSite::Lax))
        .collect()
}

fn split(sealed: &str) -> Vec<(String, String)> {
    if sealed.len() <= CHUNK {
        return vec![(SESSION_COOKIE.to_owned(), sealed.to_owned())];
    }
    // The sealed text is ASCII, so byte chunks are character chunks.
    sealed
        .as_bytes()
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, part)| {
            (
                format!("{SESSION_COOKIE}.{i}"),
                String::from_utf8_lossy(part).into_owned(),
            )
        })
        .collect()
}

/// Every name a session could use within the budget: the callback cannot see the `Strict`
/// session cookie, so it deletes them all by name rather than by what the request carried.
fn chunk_names(config: &Config) -> Vec<String> {
    std::iter::once(SESSION_COOKIE.to_owned())
        .chain((0..max_chunks(config)).map(|i| format!("{SESSION_COOKIE}.{i}")))
        .collect()
}

/// How many chunks a session within the budget can have, plus one.
fn max_chunks(config: &Config) -> usize {
    config.cookie_budget.div_ceil(CHUNK) + 1
}

/// Seals a login transaction into its own cookie.
pub(crate) fn seal_txn(txn: &LoginTxn, config: &Config, random: &dyn SecureRandom) -> Result<SetCookie, RandomError> {
    let payload = serde_json::to_vec(txn).unwrap_or_default();
    let sealed = seal::seal(
        &config.keys[0],
        TXN_COOKIE,
        &payload,
        UnixTime(txn.created + TXN_LIFETIME),
        random,
    )?;
    Ok(SetCookie::new(
        txn_cookie_name(&txn.state),
        sealed,
        SameSite::Lax,
        TXN_LIFETIME,
    ))
}

/// Opens a transaction cookie value.
pub(crate) fn open_txn(value: &str, config: &Config, now: UnixTime) -> Result<LoginTxn, SealError> {
    let bytes = seal::unseal(&config.keys, TXN_COOKIE, value, now)?;
    serde_json::from_slice(&bytes).map_err(|_| SealError::Invalid)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
