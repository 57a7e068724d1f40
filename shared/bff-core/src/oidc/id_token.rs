//! ID token validation (OpenID Connect Core 1.0 §3.1.3.7) with jwt-simple for the signature.
//!
//! The clock is injected: jwt-simple is given the current time (`artificial_time`), never reads
//! the system clock, and every claim jwt-simple treats as optional is checked here as required.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde_json::{Map, Value};

use crate::oidc::discovery::Jwk;
use crate::ports::UnixTime;
use crate::secret::constant_time_eq;

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 60;

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

/// The header fields that pick the verification key.
pub(crate) struct Header {
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
}

/// Reads the (unverified) header.
pub(crate) fn header(token: &str) -> Result<Header, IdTokenError> {
    let metadata = Token::decode_metadata(token).map_err(|_| IdTokenError::Malformed)?;
    Ok(Header {
        alg: metadata.algorithm().to_owned(),
        kid: metadata.key_id().map(str::to_owned),
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
pub(crate) fn verify(
    token: &str,
    alg: &str,
    key: &Jwk,
    expected: &Expected<'_>,
    now: UnixTime,
) -> Result<Claims, IdTokenError> {
    let claims = verify_signature(token, alg, key, now)?;

    // 2. `iss` MUST exactly match the issuer.
    if claims.issuer.as_deref() != Some(expected.issuer) {
        return Err(IdTokenError::Claim("iss"));
    }
    // 3. `aud` MUST contain the client_id.
    let audiences = audiences(&claims);
    if !audiences.iter().any(|a| a == expected.client_id) {
        return Err(IdTokenError::Claim("aud"));
    }
    // 4. With several audiences, `azp` must be present; when present it must be the client_id.
    //    One that is present but not a string cannot be the client_id: refused, not ignored.
    let azp = match claims.custom.get("azp") {
        None | Some(Value::Null) => None,
        Some(azp) => Some(azp.as_str().ok_or(IdTokenError::Claim("azp"))?),
    };
    if (audiences.len() > 1 && azp.is_none()) || azp.is_some_and(|azp| azp != expected.client_id) {
        return Err(IdTokenError::Claim("azp"));
    }
    // 7. The current time MUST be before `exp` (jwt-simple checked it with the leeway when present).
    claims.expires_at.ok_or(IdTokenError::Claim("exp"))?;
    // 8. `iat` is required by Core §2 and must not be in the future.
    issued_at(&claims, now)?;
    // 9. The nonce must equal the one sent; on refresh, one present must equal the original
    //    (checked by the caller), so absence is fine.
    match (expected.nonce, claims.nonce.as_deref()) {
        (Some(sent), Some(got)) if constant_time_eq(sent, got) => {}
        (Some(_), _) => return Err(IdTokenError::Claim("nonce")),
        (None, _) => {}
    }
    let sub = claims
        .subject
        .clone()
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

/// `iat`, which must be present and not in the future (beyond the leeway).
pub(crate) fn issued_at<T>(claims: &JWTClaims<T>, now: UnixTime) -> Result<u64, IdTokenError> {
    let iat = claims
        .issued_at
        .map(|t| t.as_secs())
        .ok_or(IdTokenError::Claim("iat"))?;
    if iat > now.0 + LEEWAY_SECS {
        return Err(IdTokenError::Claim("iat"));
    }
    Ok(iat)
}

/// The `aud` values, whether the token has one string or an array.
pub(crate) fn audiences<T>(claims: &JWTClaims<T>) -> Vec<String> {
    match &claims.audiences {
        Some(Audiences::AsString(a)) => vec![a.clone()],
        Some(Audiences::AsSet(set)) => set.iter().cloned().collect(),
        None => Vec::new(),
    }
}

/// Checks the signature with `key` and the time window at `now` (with leeway); jwt-simple is
/// handed the injected time and never reads the clock.
pub(crate) fn verify_signature(
    token: &str,
    alg: &str,
    key: &Jwk,
    now: UnixTime,
) -> Result<JWTClaims<Map<String, Value>>, IdTokenError> {
    let options = VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(now.0)),
        time_tolerance: Some(Duration::from_secs(LEEWAY_SECS)),
        max_token_length: Some(64 * 1024),
        ..VerificationOptions::default()
    };
    let decode = |field: &Option<String>| {
        field
            .as_deref()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .ok_or(IdTokenError::Signature)
    };
    let ec_point = || -> Result<Vec<u8>, IdTokenError> {
        let mut point = vec![0x04];
        point.extend(decode(&key.x)?);
        point.extend(decode(&key.y)?);
        Ok(point)
    };
    let options = Some(options);
    let result = match alg {
        "RS256" => RS256PublicKey::from_components(&decode(&key.n)?, &decode(&key.e)?)
            .and_then(|k| k.verify_token(token, options)),
        "RS384" => RS384PublicKey::from_components(&decode(&key.n)?, &decode(&key.e)?)
            .and_then(|k| k.verify_token(token, options)),
        "RS512" => RS512PublicKey::from_components(&decode(&key.n)?, &decode(&key.e)?)
            .and_then(|k| k.verify_token(token, options)),
        "PS256" => PS256PublicKey::from_components(&decode(&key.n)?, &decode(&key.e)?)
            .and_then(|k| k.verify_token(token, options)),
        "PS384" => PS384PublicKey::from_components(&decode(&key.n)?, &decode(&key.e)?)
            .and_then(|k| k.verify_token(token, options)),
        "PS512" => PS512PublicKey::from_components(&decode(&key.n)?, &decode(&key.e)?)
            .and_then(|k| k.verify_token(token, options)),
        "ES256" if key.crv.as_deref() == Some("P-256") => {
            ES256PublicKey::from_bytes(&ec_point()?).and_then(|k| k.verify_token(token, options))
        }
        "ES384" if key.crv.as_deref() == Some("P-384") => {
            ES384PublicKey::from_bytes(&ec_point()?).and_then(|k| k.verify_token(token, options))
        }
        "EdDSA" if key.crv.as_deref() == Some("Ed25519") => {
            Ed25519PublicKey::from_bytes(&decode(&key.x)?).and_then(|k| k.verify_token(token, options))
        }
        _ => return Err(IdTokenError::Algorithm),
    };
    result.map_err(|_| IdTokenError::Signature)
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
