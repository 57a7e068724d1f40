//! ID token validation (OpenID Connect Core 1.0 §3.1.3.7). The token is parsed and its claims
//! checked here ([`jws`]); only the signature goes through the [`Signatures`] port. The clock is
//! injected, and every claim a JWT library would treat as optional is checked as required.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::keys::{Algorithm, Curve, PublicKey};
use crate::oidc::discovery::Jwk;
use crate::oidc::jws::{self, JwsError};
use crate::ports::{Signatures, UnixTime};
use crate::secret::constant_time_eq;

#[cfg(test)]
use crate::oidc::jws::LEEWAY_SECS;

/// Why an ID token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdTokenError {
    /// Its `alg` is not on the allow-list.
    Algorithm,
    /// A required claim is missing or wrong; names the claim.
    Claim(&'static str),
    /// Not a compact JWS.
    Malformed,
    /// The signature or the time window did not verify.
    Signature,
}

impl From<JwsError> for IdTokenError {
    fn from(error: JwsError) -> Self {
        match error {
            JwsError::Malformed | JwsError::Critical => Self::Malformed,
            JwsError::Signature | JwsError::Time => Self::Signature,
        }
    }
}

/// The header fields that pick the verification key.
pub(crate) struct Header {
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
}

/// Reads the (unverified) header.
pub(crate) fn header(token: &str) -> Result<Header, IdTokenError> {
    let jws = jws::parse(token)?;
    Ok(Header {
        alg: jws.alg,
        kid: jws.kid,
    })
}

/// What the token must say.
pub(crate) struct Expected<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    /// The `nonce` sent in the authentication request; `None` on refresh (Core §12.2).
    pub(crate) nonce: Option<&'a str>,
}

/// The validated claims.
#[derive(Debug)]
pub(crate) struct Claims {
    pub(crate) sub: String,
    pub(crate) sid: Option<String>,
    pub(crate) auth_time: Option<u64>,
    pub(crate) nonce: Option<String>,
    /// Every other claim, for the sessioninfo projection.
    pub(crate) other: Map<String, Value>,
}

/// Verifies `token` with `key` and checks the claims in Core §3.1.3.7's order.
pub(crate) async fn verify(
    token: &str,
    alg: &str,
    key: &Jwk,
    expected: &Expected<'_>,
    now: UnixTime,
    signatures: &dyn Signatures,
) -> Result<Claims, IdTokenError> {
    let claims = verify_signature(token, alg, key, now, signatures).await?;

    // 2. `iss` MUST exactly match the issuer.
    if claims.issuer.as_deref() != Some(expected.issuer) {
        return Err(IdTokenError::Claim("iss"));
    }
    // 3. `aud` MUST contain the client_id.
    if !claims.audiences.iter().any(|a| a == expected.client_id) {
        return Err(IdTokenError::Claim("aud"));
    }
    // 4. With several audiences, `azp` must be present; when present it must be the client_id.
    //    One that is present but not a string cannot be the client_id: refused, not ignored.
    let azp = match claims.custom.get("azp") {
        None | Some(Value::Null) => None,
        Some(azp) => Some(azp.as_str().ok_or(IdTokenError::Claim("azp"))?),
    };
    if (claims.audiences.len() > 1 && azp.is_none()) || azp.is_some_and(|azp| azp != expected.client_id) {
        return Err(IdTokenError::Claim("azp"));
    }
    // 7. The current time MUST be before `exp` (checked with the leeway when present).
    claims.expires_at.ok_or(IdTokenError::Claim("exp"))?;
    // 8. `iat` is required by Core §2 (its future was refused with the time window).
    claims.issued_at.ok_or(IdTokenError::Claim("iat"))?;
    // 9. The nonce must equal the one sent; on refresh, one present must equal the original
    //    (checked by the caller), so absence is fine.
    match (expected.nonce, claims.nonce.as_deref()) {
        (Some(sent), Some(got)) if constant_time_eq(sent, got) => {}
        (Some(_), _) => return Err(IdTokenError::Claim("nonce")),
        (None, _) => {}
    }
    let sub = claims
        .subject
        .filter(|s| !s.is_empty())
        .ok_or(IdTokenError::Claim("sub"))?;
    let mut other = claims.custom;
    let sid = other.remove("sid").and_then(|v| v.as_str().map(str::to_owned));
    let auth_time = other.get("auth_time").and_then(Value::as_u64);
    other.remove("auth_time");
    Ok(Claims {
        sub,
        sid,
        auth_time,
        nonce: claims.nonce,
        other,
    })
}

/// Checks the signature with `key` for `alg` (the allow-listed algorithm the key was picked
/// for) and the time window at `now` with leeway (RFC 7519 §4.1.4–4.1.6).
pub(crate) async fn verify_signature(
    token: &str,
    alg: &str,
    key: &Jwk,
    now: UnixTime,
    signatures: &dyn Signatures,
) -> Result<jws::Claims, IdTokenError> {
    let (alg, key) = public_key(alg, key)?;
    let claims = jws::parse(token)?.verify(alg, &key, signatures).await?;
    claims.check_time(now)?;
    Ok(claims)
}

/// The algorithm and the key's components, when `key` is of the kind `alg` needs (RFC 7518
/// §6.2.1, §6.3.1; RFC 8037 §2). A wrong kind or curve is the algorithm's fault; undecodable or
/// out-of-policy components are a key that verifies nothing.
fn public_key(alg: &str, key: &Jwk) -> Result<(Algorithm, PublicKey), IdTokenError> {
    let algorithm = Algorithm::from_name(alg).ok_or(IdTokenError::Algorithm)?;
    let decode = |field: &Option<String>| {
        field
            .as_deref()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .ok_or(IdTokenError::Signature)
    };
    let crv = key.crv.as_deref();
    let public = match (algorithm, key.kty.as_str(), crv) {
        (Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512, "RSA", _)
        | (Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512, "RSA", _) => {
            PublicKey::rsa(&decode(&key.n)?, &decode(&key.e)?)
        }
        (Algorithm::Es256, "EC", Some("P-256")) => PublicKey::ec(Curve::P256, decode(&key.x)?, decode(&key.y)?),
        (Algorithm::Es384, "EC", Some("P-384")) => PublicKey::ec(Curve::P384, decode(&key.x)?, decode(&key.y)?),
        (Algorithm::EdDsa, "OKP", Some("Ed25519")) => PublicKey::ed25519(decode(&key.x)?),
        _ => return Err(IdTokenError::Algorithm),
    };
    Ok((algorithm, public.ok_or(IdTokenError::Signature)?))
}

/// The `exp` of a JWT, read WITHOUT verification: only to learn how long to cache an access token
/// whose response had no `expires_in` (http-api.md: bff-token). Never used for a security decision.
pub(crate) fn unverified_exp(token: &str) -> Option<u64> {
    unverified_claim(token, "exp")?.as_u64()
}

/// A claim of a JWT, read without verification: for an access token's `exp`, or for the session's
/// own ID token, which was validated at login and has been sealed since.
pub(crate) fn unverified_claim(token: &str, name: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Map<String, Value>>(&bytes).ok()?.remove(name)
}

#[cfg(test)]
#[path = "id_token_tests.rs"]
mod tests;
