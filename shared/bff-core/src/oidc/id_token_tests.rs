use futures::executor::block_on;
use jwt_simple::prelude::*;
use serde_json::{Map, Value, json};

use super::Claims;
use super::*;
use crate::oidc::algorithms::{allowed_algs, is_supported_alg};
use crate::oidc::discovery::Jwks;
use std::collections::HashSet;

const NOW: u64 = 1_800_000_000;

fn key_pair() -> ES256KeyPair {
    ES256KeyPair::from_bytes(&[7u8; 32]).unwrap().with_key_id("k1")
}

fn jwk(pair: &ES256KeyPair) -> Jwk {
    let point = pair.public_key().public_key().to_bytes_uncompressed();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": b64(&point[1..33]), "y": b64(&point[33..])}]});
    Jwks::parse(jwks.to_string().as_bytes()).unwrap().keys.remove(0)
}

fn sign(edit: impl FnOnce(&mut JWTClaims<Map<String, Value>>)) -> String {
    let mut custom = Map::new();
    custom.insert("sid".into(), json!("session-1"));
    custom.insert("auth_time".into(), json!(NOW - 5));
    custom.insert("name".into(), json!("Alice"));
    let mut claims = JWTClaims {
        issued_at: Some(UnixTimeStamp::from_secs(NOW)),
        expires_at: Some(UnixTimeStamp::from_secs(NOW + 300)),
        invalid_before: None,
        issuer: Some("https://idp.example".into()),
        subject: Some("alice".into()),
        audiences: Some(Audiences::AsString("bff".into())),
        jwt_id: None,
        nonce: Some("n-123".into()),
        custom,
    };
    edit(&mut claims);
    key_pair().sign(claims).unwrap()
}

fn check(token: &str, now: u64) -> Result<Claims, IdTokenError> {
    let expected = Expected {
        issuer: "https://idp.example",
        client_id: "bff",
        nonce: Some("n-123"),
    };
    block_on(verify(
        token,
        "ES256",
        &jwk(&key_pair()),
        &expected,
        UnixTime(now),
        &crate::RustCrypto,
    ))
}

#[test]
fn valid_token() {
    let claims = check(&sign(|_| {}), NOW + 1).unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.sid.as_deref(), Some("session-1"));
    assert_eq!(claims.auth_time, Some(NOW - 5));
    assert_eq!(claims.other["name"], "Alice");
    assert_eq!(header(&sign(|_| {})).unwrap().kid.as_deref(), Some("k1"));
}

#[test]
fn each_rule_refuses() {
    let cases: Vec<(&str, String, IdTokenError)> = vec![
        (
            "iss",
            sign(|c| c.issuer = Some("https://evil.example".into())),
            IdTokenError::Claim("iss"),
        ),
        ("no iss", sign(|c| c.issuer = None), IdTokenError::Claim("iss")),
        (
            "aud",
            sign(|c| c.audiences = Some(Audiences::AsString("other".into()))),
            IdTokenError::Claim("aud"),
        ),
        (
            "multi aud without azp",
            sign(|c| c.audiences = Some(Audiences::AsSet(["bff".to_owned(), "x".to_owned()].into()))),
            IdTokenError::Claim("azp"),
        ),
        (
            "azp",
            sign(|c| {
                c.custom.insert("azp".into(), json!("other"));
            }),
            IdTokenError::Claim("azp"),
        ),
        ("no exp", sign(|c| c.expires_at = None), IdTokenError::Claim("exp")),
        ("no iat", sign(|c| c.issued_at = None), IdTokenError::Claim("iat")),
        (
            "nonce",
            sign(|c| c.nonce = Some("other".into())),
            IdTokenError::Claim("nonce"),
        ),
        ("no nonce", sign(|c| c.nonce = None), IdTokenError::Claim("nonce")),
        ("no sub", sign(|c| c.subject = None), IdTokenError::Claim("sub")),
    ];
    for (name, token, error) in cases {
        assert_eq!(check(&token, NOW + 1).unwrap_err(), error, "{name}");
    }
    // Expired (beyond the leeway) fails in the signature/time step.
    assert_eq!(
        check(&sign(|_| {}), NOW + 300 + LEEWAY_SECS + 1).unwrap_err(),
        IdTokenError::Signature
    );
}

/// Found by the `jwt` fuzz target: an `azp` that is present but not a string (an object, a
/// number) was taken for an absent one, so a token naming another party passed.
#[test]
fn an_azp_that_is_not_a_string_is_refused() {
    for azp in [json!({"client": "bff"}), json!(7), json!(["bff"]), json!(true)] {
        let token = sign(|c| {
            c.custom.insert("azp".into(), azp.clone());
        });
        assert_eq!(check(&token, NOW + 1).unwrap_err(), IdTokenError::Claim("azp"), "{azp}");
    }
    // A JSON null is no claim: one audience needs no `azp`.
    let token = sign(|c| {
        c.custom.insert("azp".into(), Value::Null);
    });
    assert!(check(&token, NOW + 1).is_ok());
}

#[test]
fn bad_signatures_and_algorithms() {
    let token = sign(|_| {});
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://idp.example","sub":"mallory","aud":"bff","iat":1800000000,"exp":1800000300,"nonce":"n-123"}"#);
    assert_eq!(check(&parts.join("."), NOW).unwrap_err(), IdTokenError::Signature);
    let other_key = ES256KeyPair::from_bytes(&[9u8; 32]).unwrap();
    let expected = Expected {
        issuer: "https://idp.example",
        client_id: "bff",
        nonce: Some("n-123"),
    };
    assert_eq!(
        block_on(verify(
            &token,
            "ES256",
            &jwk(&other_key),
            &expected,
            UnixTime(NOW),
            &crate::RustCrypto
        ))
        .unwrap_err(),
        IdTokenError::Signature
    );
    assert_eq!(
        block_on(verify(
            &token,
            "HS256",
            &jwk(&key_pair()),
            &expected,
            UnixTime(NOW),
            &crate::RustCrypto
        ))
        .unwrap_err(),
        IdTokenError::Algorithm
    );
    assert!(header("garbage").is_err());
    assert!(!is_supported_alg("none") && !is_supported_alg("HS256"));
    assert_eq!(allowed_algs(None, &[]), HashSet::from(["RS256".to_owned()]));
    assert_eq!(
        allowed_algs(None, &["none".into(), "ES256".into()]),
        HashSet::from(["ES256".to_owned()])
    );
}

#[test]
fn unverified_exp_reads_jwt_access_tokens() {
    assert_eq!(unverified_exp(&sign(|_| {})), Some(NOW + 300));
    assert_eq!(unverified_exp("opaque-token"), None);
}
