//! The session and login-transaction payloads, and the pure decisions about cached tokens
//! (draft-01 §4.2; http-api.md: bff-token, Cookies). Where they are kept lives in `session_cookie` and
//! `session_store`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::oidc::id_token;
use crate::oidc::token::TokenSet;
use crate::ports::UnixTime;
use crate::secret::{AccessToken, IdToken, RefreshToken};

/// A login transaction lives this long (http-api.md: Cookies).
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
    /// The RFC 7638 thumbprint of the browser's DPoP key, pinned at login (RFC 9449 §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dpop_jkt: Option<String>,
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
    /// `token_type: DPoP`: bound to the browser's key (RFC 9449 §5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) bound: bool,
}

impl CachedToken {
    /// http-api.md, bff-token: refresh before handing out when less than min(60 s, max(5 s, lifetime / 4))
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
    /// The thumbprint of the browser's DPoP key, to pin in the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dpop_jkt: Option<String>,
}

/// Cached lifetimes never pass a day, whatever `expires_in` says (http-api.md: bff-token).
const MAX_TOKEN_LIFETIME: u64 = 86_400;

impl CachedToken {
    /// A cache entry for a fresh token response (http-api.md: bff-token): `expires_in`, else a JWT's `exp`,
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
            bound: tokens.is_dpop_bound(),
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
