//! Logout token validation (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6).

use serde_json::Value;

use crate::oidc::discovery::Jwk;
use crate::oidc::id_token::{IdTokenError, verify_signature};
use crate::ports::{Signatures, UnixTime};

/// The back-channel logout event (§2.4).
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What a valid logout token says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Logout {
    pub(crate) sid: Option<String>,
    pub(crate) sub: Option<String>,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    pub(crate) jti: String,
}

/// What a logout token must say.
pub(crate) struct Expected<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
}

/// §2.6: steps 2–6 (signature, `iss`, `aud`, `iat`, `exp`, `sub` or `sid`, `events`, no `nonce`);
/// step 7 (`jti` replay) needs the store and is the caller's.
pub(crate) async fn verify(
    token: &str,
    alg: &str,
    key: &Jwk,
    expected: &Expected<'_>,
    now: UnixTime,
    signatures: &dyn Signatures,
) -> Result<Logout, IdTokenError> {
    let claims = verify_signature(token, alg, key, now, signatures).await?;
    // 3. `iss`, `aud`, `iat` and `exp` as for ID tokens (the time window was checked with the
    //    signature).
    if claims.issuer.as_deref() != Some(expected.issuer) {
        return Err(IdTokenError::Claim("iss"));
    }
    if !claims.audiences.iter().any(|a| a == expected.client_id) {
        return Err(IdTokenError::Claim("aud"));
    }
    let iat = claims.issued_at.ok_or(IdTokenError::Claim("iat"))?;
    let exp = claims.expires_at.ok_or(IdTokenError::Claim("exp"))?;
    // 4. A `sub`, a `sid`, or both.
    let sid = claims.custom.get("sid").and_then(Value::as_str).map(str::to_owned);
    let sub = claims.subject.clone();
    if sid.is_none() && sub.is_none() {
        return Err(IdTokenError::Claim("sub"));
    }
    // 5. `events` holds the back-channel logout member, an object.
    if !claims
        .custom
        .get("events")
        .and_then(|e| e.get(EVENT))
        .is_some_and(Value::is_object)
    {
        return Err(IdTokenError::Claim("events"));
    }
    // 6. No `nonce`: it would let an ID token pass as a logout token.
    if claims.nonce.is_some() {
        return Err(IdTokenError::Claim("nonce"));
    }
    let jti = claims
        .jwt_id
        .filter(|j| !j.is_empty())
        .ok_or(IdTokenError::Claim("jti"))?;
    Ok(Logout {
        sid,
        sub,
        iat,
        exp,
        jti,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jwt_simple::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::oidc::discovery::Jwks;

    const NOW: u64 = 1_800_000_000;

    fn pair() -> ES256KeyPair {
        ES256KeyPair::from_bytes(&[3u8; 32]).unwrap()
    }

    fn jwk(pair: &ES256KeyPair) -> Jwk {
        let point = pair.public_key().public_key().to_bytes_uncompressed();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let set = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}]});
        Jwks::parse(set.to_string().as_bytes()).unwrap().keys.remove(0)
    }

    fn sign(edit: impl FnOnce(&mut JWTClaims<Map<String, Value>>)) -> String {
        let mut custom = Map::new();
        custom.insert("sid".into(), json!("s-1"));
        custom.insert("events".into(), json!({EVENT: {}}));
        let mut claims = JWTClaims {
            issued_at: Some(UnixTimeStamp::from_secs(NOW)),
            expires_at: Some(UnixTimeStamp::from_secs(NOW + 120)),
            invalid_before: None,
            issuer: Some("https://idp.example".into()),
            subject: Some("alice".into()),
            audiences: Some(Audiences::AsString("bff".into())),
            jwt_id: Some("j-1".into()),
            nonce: None,
            custom,
        };
        edit(&mut claims);
        pair().sign(claims).unwrap()
    }

    fn check(token: &str) -> Result<Logout, IdTokenError> {
        let expected = Expected {
            issuer: "https://idp.example",
            client_id: "bff",
        };
        futures::executor::block_on(verify(
            token,
            "ES256",
            &jwk(&pair()),
            &expected,
            UnixTime(NOW + 1),
            &crate::RustCrypto,
        ))
    }

    #[test]
    fn valid() {
        let logout = check(&sign(|_| {})).unwrap();
        assert_eq!(
            logout,
            Logout {
                sid: Some("s-1".into()),
                sub: Some("alice".into()),
                iat: NOW,
                exp: NOW + 120,
                jti: "j-1".into()
            }
        );
    }

    #[test]
    fn refusals() {
        let cases: Vec<(&str, String, IdTokenError)> = vec![
            (
                "aud",
                sign(|c| c.audiences = Some(Audiences::AsString("other".into()))),
                IdTokenError::Claim("aud"),
            ),
            (
                "iss",
                sign(|c| c.issuer = Some("https://evil.example".into())),
                IdTokenError::Claim("iss"),
            ),
            (
                "nonce",
                sign(|c| c.nonce = Some("n".into())),
                IdTokenError::Claim("nonce"),
            ),
            (
                "no events",
                sign(|c| {
                    c.custom.remove("events");
                }),
                IdTokenError::Claim("events"),
            ),
            (
                "wrong event",
                sign(|c| {
                    c.custom.insert("events".into(), json!({"x": {}}));
                }),
                IdTokenError::Claim("events"),
            ),
            (
                "no sub or sid",
                sign(|c| {
                    c.subject = None;
                    c.custom.remove("sid");
                }),
                IdTokenError::Claim("sub"),
            ),
            ("no iat", sign(|c| c.issued_at = None), IdTokenError::Claim("iat")),
            ("no exp", sign(|c| c.expires_at = None), IdTokenError::Claim("exp")),
            ("no jti", sign(|c| c.jwt_id = None), IdTokenError::Claim("jti")),
            (
                "expired",
                sign(|c| c.expires_at = Some(UnixTimeStamp::from_secs(NOW - 3600))),
                IdTokenError::Signature,
            ),
        ];
        for (name, token, error) in cases {
            assert_eq!(check(&token).unwrap_err(), error, "{name}");
        }
    }

    #[test]
    fn another_key_is_a_bad_signature() {
        let other = ES256KeyPair::from_bytes(&[4u8; 32]).unwrap();
        let forged = other
            .sign(JWTClaims::<NoCustomClaims> {
                issued_at: None,
                expires_at: None,
                invalid_before: None,
                issuer: None,
                subject: None,
                audiences: None,
                jwt_id: None,
                nonce: None,
                custom: NoCustomClaims {},
            })
            .unwrap();
        assert_eq!(check(&forged).unwrap_err(), IdTokenError::Signature, "bad signature");
    }
}
