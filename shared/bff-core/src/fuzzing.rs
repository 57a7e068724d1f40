//! The crate-private parsers, forwarded for the fuzz targets in `fuzz/` (as rustls's `internal`
//! module does). Not an API: nothing here is stable, and nothing here decides anything.

use http::HeaderMap;
use serde_json::Value;

use crate::cookie::Cookies;
use crate::oidc::discovery::{self, Jwks};
use crate::oidc::token::{self, UpstreamError};
use crate::oidc::{dpop, id_token, logout_token};
use crate::ports::{SecureRandom, UnixTime};
use crate::session::Session;
use crate::{ConfigError, RustCrypto, seal, session_cookie};

/// A parsed configuration, for the parsers that read one.
pub struct Config(crate::config::Config);

impl Config {
    /// See [`crate::Backend::from_lookup`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        crate::config::Config::from_lookup(lookup).map(Self)
    }
}

/// The value of cookie `name` in the `Cookie` fields of `headers`, when it is there exactly once.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    Cookies::parse(headers).get(name).map(str::to_owned)
}

/// The sealed session value the `Cookie` fields carry (one cookie, or the chunks joined).
pub fn sealed_session(config: &Config, headers: &HeaderMap) -> Option<String> {
    session_cookie::sealed_value(&Cookies::parse(headers), &config.0)
}

/// The session the `Cookie` fields carry, as JSON.
pub fn load_session(config: &Config, headers: &HeaderMap, now: UnixTime) -> Option<Value> {
    let session = session_cookie::load(&Cookies::parse(headers), &config.0, now)?;
    serde_json::to_value(&session).ok()
}

/// Seals the session `json` into `Set-Cookie` values within the budget; also answers the session
/// as saved (cached tokens may be dropped to fit). `None` when `json` is no session.
pub fn save_session(
    config: &Config,
    json: &[u8],
    random: &dyn SecureRandom,
    now: UnixTime,
) -> Option<Result<(Vec<String>, Value), String>> {
    let mut session: Session = serde_json::from_slice(json).ok()?;
    Some(
        session_cookie::save(&mut session, &config.0, random, now)
            .map(|cookies| {
                let rendered = cookies.iter().map(crate::cookie::SetCookie::render).collect();
                (rendered, serde_json::to_value(&session).unwrap_or_default())
            })
            .map_err(|e| format!("{e:?}")),
    )
}

/// Seals `payload` under the first key for cookie (or record) `name`.
pub fn seal(config: &Config, name: &str, payload: &[u8], expires: UnixTime, random: &dyn SecureRandom) -> String {
    seal::seal(&config.0.keys[0], name, payload, expires, random).unwrap_or_default()
}

/// Opens a sealed value; the error says why not.
pub fn unseal(config: &Config, name: &str, value: &str, now: UnixTime) -> Result<Vec<u8>, String> {
    seal::unseal(&config.0.keys, name, value, now).map_err(|e| format!("{e:?}"))
}

/// What came out of a provider's answer.
#[derive(Debug)]
pub enum Upstream {
    /// Try again later.
    Unavailable,
    /// Neither a success nor an OAuth error.
    Malformed,
    /// An RFC 6749 §5.2 error, as it would be passed on.
    OAuth {
        /// `error`.
        error: String,
        /// `error_description`, cleaned.
        description: Option<String>,
    },
}

impl From<UpstreamError> for Upstream {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::Unavailable => Self::Unavailable,
            UpstreamError::Malformed => Self::Malformed,
            UpstreamError::OAuth { error, description } => Self::OAuth { error, description },
        }
    }
}

/// A token response's fields the backend keeps.
#[derive(Debug)]
pub struct Tokens {
    /// `access_token`.
    pub access_token: String,
    /// `token_type`.
    pub token_type: String,
    /// `expires_in`, read leniently.
    pub expires_in: Option<u64>,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
    /// `id_token`.
    pub id_token: Option<String>,
}

/// Parses a token endpoint answer to a request that carried a DPoP proof (which admits both
/// token types).
pub fn token_response(response: &http::Response<Vec<u8>>) -> Result<Tokens, Upstream> {
    token::parse_token_response(response, true)
        .map(|t| Tokens {
            access_token: t.access_token,
            token_type: t.token_type,
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            id_token: t.id_token,
        })
        .map_err(Upstream::from)
}

/// Parses issuer metadata: its issuer and every endpoint it names, or why it was refused.
pub fn metadata(config: &Config, body: &[u8]) -> Result<Vec<String>, String> {
    let m = discovery::parse_metadata(body, &config.0).map_err(|e| format!("{e:?}"))?;
    let optional = [m.userinfo_endpoint, m.revocation_endpoint, m.end_session_endpoint];
    let named = [m.issuer, m.authorization_endpoint, m.token_endpoint, m.jwks_uri];
    Ok(named.into_iter().chain(optional.into_iter().flatten()).collect())
}

/// A parsed JWK Set.
pub struct Keys(Jwks);

impl Keys {
    /// Parses a JWK Set (`None`: not one).
    pub fn parse(body: &[u8]) -> Option<Self> {
        Jwks::parse(body).map(Self)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.0.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.0.keys.is_empty()
    }

    /// The `kid`s of the keys that could verify a token with header `kid` and `alg`.
    pub fn candidates(&self, kid: Option<&str>, alg: &str) -> Vec<Option<String>> {
        self.0.candidates(kid, alg).map(|k| k.kid.clone()).collect()
    }

    /// Verifies an ID token with the first candidate key (`alg` from its header, which must be in
    /// `allowed`); the claims as the session would keep them.
    pub fn verify_id_token(
        &self,
        token: &str,
        allowed: &[&str],
        expected: (&str, &str, Option<&str>),
        now: UnixTime,
    ) -> Result<Value, String> {
        let (issuer, client_id, nonce) = expected;
        let (alg, key) = self.key_for(token, allowed)?;
        let expected = id_token::Expected {
            issuer,
            client_id,
            nonce,
        };
        let claims =
            ready(id_token::verify(token, &alg, &key, &expected, now, &RustCrypto))?.map_err(|e| format!("{e:?}"))?;
        Ok(serde_json::json!({
            "sub": claims.sub, "sid": claims.sid, "auth_time": claims.auth_time,
            "nonce": claims.nonce, "other": claims.other,
        }))
    }

    /// Verifies a logout token like the back-channel endpoint (the `jti` replay check aside).
    pub fn verify_logout_token(
        &self,
        token: &str,
        allowed: &[&str],
        expected: (&str, &str),
        now: UnixTime,
    ) -> Result<Value, String> {
        let (alg, key) = self.key_for(token, allowed)?;
        let expected = logout_token::Expected {
            issuer: expected.0,
            client_id: expected.1,
        };
        let logout = ready(logout_token::verify(token, &alg, &key, &expected, now, &RustCrypto))?
            .map_err(|e| format!("{e:?}"))?;
        Ok(serde_json::json!({
            "sid": logout.sid, "sub": logout.sub, "iat": logout.iat, "exp": logout.exp, "jti": logout.jti,
        }))
    }

    fn key_for(&self, token: &str, allowed: &[&str]) -> Result<(String, discovery::Jwk), String> {
        let header = id_token::header(token).map_err(|e| format!("{e:?}"))?;
        if !allowed.contains(&header.alg.as_str()) {
            return Err("Algorithm".into());
        }
        let key = (self.0.candidates(header.kid.as_deref(), &header.alg).next().cloned()).ok_or("no key")?;
        Ok((header.alg, key))
    }
}

/// A claim of a JWT read without verification, as the backend reads an access token's `exp`.
pub fn unverified_claim(token: &str, name: &str) -> Option<Value> {
    id_token::unverified_claim(token, name)
}

/// Checks a DPoP proof for forwarding to `htu` with `jkt` pinned: `Err` names the refusal.
pub fn dpop_proof(raw: &str, jkt: &str, htu: &str, now: UnixTime) -> Result<bool, String> {
    let expected = dpop::Expected { jkt, htu, now };
    ready(dpop::verify(raw, &expected, &RustCrypto))?
        .map(|proof| proof.has_nonce)
        .map_err(|e| e.description().to_owned())
}

/// The output of a future that is ready at once, as every future of [`RustCrypto`] is: the fuzz
/// targets stay synchronous, without an executor.
fn ready<T>(future: impl Future<Output = T>) -> Result<T, String> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut context) {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err("pending".into()),
    }
}
