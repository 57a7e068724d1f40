//! Compact JWS parsing (RFC 7515 §7.1) and the JWT claims and time checks every token shares
//! (RFC 7519 §4.1). Pure: the signature itself is checked through the [`Signatures`] port, so
//! this is everything about a token that is not arithmetic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::keys::{Algorithm, PublicKey};
use crate::ports::{Signatures, UnixTime};

/// The longest token taken: far beyond any real ID or logout token, and a bound on the work an
/// unauthenticated sender can cause.
pub(crate) const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat` (OpenID Connect Core §3.1.3.7 allows "a small
/// leeway").
pub(crate) const LEEWAY_SECS: u64 = 60;

/// Why a token was refused before its claims were looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JwsError {
    /// Not three base64url parts with a JSON-object header that names an `alg`.
    Malformed,
    /// The header has a `crit` member: RFC 7515 §4.1.11 forbids ignoring an extension we do not
    /// understand, and we understand none.
    Critical,
    /// The signature does not verify, or the payload is not a JSON object of JWT claims.
    Signature,
    /// `exp`, `nbf` or `iat` puts the token outside its validity window at this time.
    Time,
}

/// A compact JWS, split and decoded, its signature not yet checked.
pub(crate) struct Jws<'a> {
    /// The header's `alg`.
    pub(crate) alg: String,
    /// The header's `kid`, if any.
    pub(crate) kid: Option<String>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: what was signed (RFC 7515 §5.2 step 8).
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Splits and decodes `token` (RFC 7515 §5.2 steps 1–7).
pub(crate) fn parse(token: &str) -> Result<Jws<'_>, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JwsError::Malformed);
    let header: Map<String, Value> = serde_json::from_slice(&decode(header_part)?).map_err(|_| JwsError::Malformed)?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(JwsError::Malformed),
    };
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwsError::Malformed),
    };
    if header.contains_key("crit") {
        return Err(JwsError::Critical);
    }
    // RFC 7519 §5.1 and RFC 8725 §3.11: a JWT is untyped, "JWT", or an explicit type such as
    // "logout+jwt" (Back-Channel Logout 1.0 §2.4); anything else is some other kind of JWS.
    match header.get("typ") {
        None | Some(Value::Null) => {}
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") || is_jwt_subtype(typ) => {}
        Some(_) => return Err(JwsError::Malformed),
    }
    Ok(Jws {
        alg,
        kid,
        signing_input: &token[..header_part.len() + 1 + payload_part.len()],
        payload: decode(payload_part)?,
        signature: decode(signature_part)?,
    })
}

/// `…+jwt`, in any case.
fn is_jwt_subtype(typ: &str) -> bool {
    typ.len() > 4
        && typ
            .get(typ.len() - 4..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+jwt"))
}

impl Jws<'_> {
    /// Checks the signature with `key` through the port and only then reads the claims, which
    /// must be a JSON object with well-typed registered claims (RFC 7519 §4.1).
    pub(crate) async fn verify(
        self,
        alg: Algorithm,
        key: &PublicKey,
        signatures: &dyn Signatures,
    ) -> Result<Claims, JwsError> {
        // RFC 8725 §3.1: the algorithm is the one the key was chosen for, never the token's say.
        // The key's fit and the signature's length are checked here too, so no implementation of
        // the port can be handed a mismatched key or, say, a DER-encoded ECDSA signature.
        if self.alg != alg.name()
            || !key.fits(alg)
            || self.signature.len() != key.signature_len()
            || !signatures
                .verify(alg, key, self.signing_input.as_bytes(), &self.signature)
                .await
        {
            return Err(JwsError::Signature);
        }
        let payload = serde_json::from_slice(&self.payload).map_err(|_| JwsError::Signature)?;
        Claims::from_payload(payload).ok_or(JwsError::Signature)
    }
}

/// A token's claims: the registered ones typed, every other in `custom`.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    pub(crate) issuer: Option<String>,
    pub(crate) subject: Option<String>,
    /// `aud`, one string or an array of them (RFC 7519 §4.1.3).
    pub(crate) audiences: Vec<String>,
    pub(crate) expires_at: Option<u64>,
    pub(crate) not_before: Option<u64>,
    pub(crate) issued_at: Option<u64>,
    pub(crate) jwt_id: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) custom: Map<String, Value>,
}

impl Claims {
    /// The claims of a payload; `None` when a registered claim has the wrong type. A `null`
    /// claim counts as absent.
    fn from_payload(mut custom: Map<String, Value>) -> Option<Self> {
        let mut take = |name: &str| custom.remove(name).filter(|value| !value.is_null());
        let string = |value: Option<Value>| match value {
            None => Some(None),
            Some(Value::String(text)) => Some(Some(text)),
            Some(_) => None,
        };
        // RFC 7519 §2 NumericDate: seconds, possibly fractional; a fraction is dropped.
        let date = |value: Option<Value>| match value {
            None => Some(None),
            Some(Value::Number(number)) => match (number.as_u64(), number.as_f64()) {
                (Some(secs), _) => Some(Some(secs)),
                (None, Some(secs)) if secs.is_finite() && secs >= 0.0 && secs < u64::MAX as f64 => {
                    Some(Some(secs as u64))
                }
                _ => None,
            },
            Some(_) => None,
        };
        let audiences = match take("aud") {
            None => Vec::new(),
            Some(Value::String(audience)) => vec![audience],
            Some(Value::Array(list)) => {
                // The same audience twice is still one audience (OpenID Connect Core §3.1.3.7
                // step 4 asks for `azp` only with several).
                let mut seen = std::collections::HashSet::with_capacity(list.len());
                let mut audiences: Vec<String> = Vec::with_capacity(list.len());
                for audience in list {
                    let Value::String(audience) = audience else { return None };
                    if seen.insert(audience.clone()) {
                        audiences.push(audience);
                    }
                }
                audiences
            }
            Some(_) => return None,
        };
        Some(Self {
            issuer: string(take("iss"))?,
            subject: string(take("sub"))?,
            audiences,
            expires_at: date(take("exp"))?,
            not_before: date(take("nbf"))?,
            issued_at: date(take("iat"))?,
            jwt_id: string(take("jti"))?,
            nonce: string(take("nonce"))?,
            custom,
        })
    }

    /// RFC 7519 §4.1.4–4.1.6 at `now`, each with [`LEEWAY_SECS`]: not issued in the future, not
    /// before `nbf`, not after `exp`. Absent claims pass here; the callers require what their
    /// specification does.
    pub(crate) fn check_time(&self, now: UnixTime) -> Result<(), JwsError> {
        let latest = now.0.saturating_add(LEEWAY_SECS);
        if self.issued_at.is_some_and(|iat| iat > latest) || self.not_before.is_some_and(|nbf| nbf > latest) {
            return Err(JwsError::Time);
        }
        // A clock within the leeway of the epoch is broken: fail closed rather than let every
        // `exp` pass.
        if self
            .expires_at
            .is_some_and(|exp| now.0.checked_sub(LEEWAY_SECS).is_none_or(|earliest| earliest > exp))
        {
            return Err(JwsError::Time);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "jws_tests.rs"]
mod tests;
