//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9).
//!
//! The assertion's `iat`, `exp` and `jti` come from the injected clock and randomness; jwt-simple
//! only computes the signature.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde_json::Value;

use crate::ports::{RandomError, SecureRandom, UnixTime};

/// An assertion is valid this long.
const LIFETIME_SECS: u64 = 60;

/// The client's private signing key.
pub(crate) enum SigningKey {
    Es256(Box<ES256KeyPair>),
    Rs256(Box<RS256KeyPair>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Es256(_) => f.write_str("SigningKey(ES256, [redacted])"),
            Self::Rs256(_) => f.write_str("SigningKey(RS256, [redacted])"),
        }
    }
}

/// Reads a PEM (PKCS#8, PKCS#1 RSA or SEC1 EC) or JWK (RSA or EC P-256) private key.
pub(crate) fn parse_private_key(text: &str) -> Result<SigningKey, &'static str> {
    let text = text.trim();
    if text.starts_with('{') {
        return parse_jwk(text);
    }
    // Literal "\n" sequences appear when a PEM is pasted into a single-line variable.
    let pem = text.replace("\\n", "\n");
    if let Ok(key) = RS256KeyPair::from_pem(&pem) {
        return Ok(SigningKey::Rs256(Box::new(key)));
    }
    if let Ok(key) = ES256KeyPair::from_pem(&pem) {
        return Ok(SigningKey::Es256(Box::new(key)));
    }
    Err("must be an RSA or P-256 private key as PEM or JWK")
}

fn parse_jwk(text: &str) -> Result<SigningKey, &'static str> {
    const BAD: &str = "must be an RSA or P-256 private key as PEM or JWK";
    let jwk: Value = serde_json::from_str(text).map_err(|_| BAD)?;
    let field = |name: &str| -> Result<Vec<u8>, &'static str> {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or(BAD)
    };
    let kid = jwk.get("kid").and_then(Value::as_str);
    match (
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("crv").and_then(Value::as_str),
    ) {
        (Some("EC"), Some("P-256")) => {
            let mut key = ES256KeyPair::from_bytes(&field("d")?).map_err(|_| BAD)?;
            if let Some(kid) = kid {
                key = key.with_key_id(kid);
            }
            Ok(SigningKey::Es256(Box::new(key)))
        }
        (Some("RSA"), _) => {
            let parts = ["n", "e", "d", "p", "q", "dp", "dq", "qi"].map(field);
            let mut integers = vec![vec![0u8]];
            for part in parts {
                integers.push(part?);
            }
            let mut key = RS256KeyPair::from_der(&pkcs1_der(&integers)).map_err(|_| BAD)?;
            if let Some(kid) = kid {
                key = key.with_key_id(kid);
            }
            Ok(SigningKey::Rs256(Box::new(key)))
        }
        _ => Err(BAD),
    }
}

/// RFC 8017 Appendix A.1.2 `RSAPrivateKey`: a DER SEQUENCE of unsigned INTEGERs.
fn pkcs1_der(integers: &[Vec<u8>]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    let mut body = Vec::new();
    for integer in integers {
        let trimmed: Vec<u8> = integer.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.is_empty() { vec![0] } else { trimmed };
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        body.push(0x02);
        length(&mut body, value.len());
        body.extend(value);
    }
    let mut der = vec![0x30];
    length(&mut der, body.len());
    der.extend(body);
    der
}

/// A fresh client assertion for `audience` (the issuer identifier, RFC 7523 §3 item 3).
pub(crate) fn assertion(
    key: &SigningKey,
    client_id: &str,
    audience: &str,
    now: UnixTime,
    random: &dyn SecureRandom,
) -> Result<String, RandomError> {
    let mut jti = [0u8; 16];
    random.fill(&mut jti)?;
    let claims: JWTClaims<NoCustomClaims> = JWTClaims {
        issued_at: Some(UnixTimeStamp::from_secs(now.0)),
        expires_at: Some(UnixTimeStamp::from_secs(now.0 + LIFETIME_SECS)),
        invalid_before: None,
        issuer: Some(client_id.to_owned()),
        subject: Some(client_id.to_owned()),
        audiences: Some(Audiences::AsString(audience.to_owned())),
        jwt_id: Some(URL_SAFE_NO_PAD.encode(jti)),
        nonce: None,
        custom: NoCustomClaims {},
    };
    let signed = match key {
        SigningKey::Es256(key) => key.sign(claims),
        SigningKey::Rs256(key) => key.sign(claims),
    };
    // Signing with a parsed key only fails on allocation; report it as no randomness (a 500).
    signed.map_err(|_| RandomError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CounterRandom;

    #[test]
    fn es256_jwk_assertion_verifies_and_carries_injected_time() {
        let pair = ES256KeyPair::from_bytes(&[5u8; 32]).unwrap();
        let jwk =
            serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "c1", "d": URL_SAFE_NO_PAD.encode(pair.to_bytes())});
        let key = parse_private_key(&jwk.to_string()).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(ES256, [redacted])");
        let token = assertion(
            &key,
            "bff",
            "https://idp.example",
            UnixTime(1_900_000_000),
            &CounterRandom::default(),
        )
        .unwrap();
        let options = VerificationOptions {
            artificial_time: Some(UnixTimeStamp::from_secs(1_900_000_010)),
            ..Default::default()
        };
        let claims = pair
            .public_key()
            .verify_token::<NoCustomClaims>(&token, Some(options))
            .unwrap();
        assert_eq!(claims.issued_at.unwrap().as_secs(), 1_900_000_000);
        assert_eq!(claims.expires_at.unwrap().as_secs(), 1_900_000_060);
        assert_eq!(claims.subject.as_deref(), Some("bff"));
        assert_eq!(claims.jwt_id.as_deref(), Some("AAECAwQFBgcICQoLDA0ODw"));
        assert_eq!(Token::decode_metadata(&token).unwrap().key_id(), Some("c1"));
    }

    #[test]
    fn der_integers() {
        assert_eq!(
            pkcs1_der(&[vec![0], vec![0x80]]),
            [0x30, 0x07, 0x02, 0x01, 0x00, 0x02, 0x02, 0x00, 0x80]
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_private_key("not a key").is_err());
        assert!(parse_private_key("{\"kty\":\"oct\"}").is_err());
        assert!(parse_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
    }
}
