use futures::executor::block_on;
use serde_json::json;

use super::*;
use crate::RustCrypto;
use crate::keys::Curve;
use crate::testing::BrowserKey;

const NOW: u64 = 1_800_000_000;

fn key() -> (BrowserKey, PublicKey) {
    let browser = BrowserKey::new(3);
    let jwk = browser.jwk();
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let public = PublicKey::ec(Curve::P256, coordinate("x"), coordinate("y")).unwrap();
    (browser, public)
}

fn token(header: Value, payload: Value) -> String {
    key().0.sign(&header, &payload)
}

fn verified(token: &str) -> Result<Claims, JwsError> {
    let (_, public) = key();
    block_on(parse(token)?.verify(Algorithm::Es256, &public, &RustCrypto))
}

fn at(claims: Value, now: u64) -> Result<(), JwsError> {
    verified(&token(json!({"alg": "ES256"}), claims))?.check_time(UnixTime(now))
}

#[test]
fn a_good_token_parses_and_verifies() {
    let token = token(
        json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
        json!({"iss": "i", "sub": "s", "aud": ["a", "b"], "exp": NOW, "nbf": NOW, "iat": NOW, "jti": "j", "nonce": "n", "x": 1}),
    );
    let jws = parse(&token).unwrap();
    assert_eq!((jws.alg.as_str(), jws.kid.as_deref()), ("ES256", Some("k1")));
    let claims = verified(&token).unwrap();
    assert_eq!(claims.audiences, ["a", "b"]);
    assert_eq!(
        (claims.issuer.as_deref(), claims.subject.as_deref()),
        (Some("i"), Some("s"))
    );
    assert_eq!(
        (claims.expires_at, claims.not_before, claims.issued_at),
        (Some(NOW), Some(NOW), Some(NOW))
    );
    assert_eq!(
        (claims.jwt_id.as_deref(), claims.nonce.as_deref()),
        (Some("j"), Some("n"))
    );
    assert_eq!(claims.custom, *json!({"x": 1}).as_object().unwrap());
    // One audience may be a plain string (RFC 7519 §4.1.3); `null` is absent.
    let single = verified(&self::token(json!({"alg": "ES256"}), json!({"aud": "a", "iss": null}))).unwrap();
    assert_eq!((single.audiences, single.issuer), (vec!["a".to_owned()], None));
}

#[test]
fn malformed_tokens_are_refused_before_any_crypto() {
    let good = token(json!({"alg": "ES256"}), json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |value: &str| URL_SAFE_NO_PAD.encode(value);
    let cases = [
        ("two parts", format!("{}.{}", parts[0], parts[1]), JwsError::Malformed),
        ("four parts", format!("{good}.x"), JwsError::Malformed),
        (
            "bad base64 header",
            format!("*.{}.{}", parts[1], parts[2]),
            JwsError::Malformed,
        ),
        (
            "padded header",
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            JwsError::Malformed,
        ),
        (
            "bad base64 payload",
            format!("{}.%%.{}", parts[0], parts[2]),
            JwsError::Malformed,
        ),
        (
            "bad base64 signature",
            format!("{}.{}.!", parts[0], parts[1]),
            JwsError::Malformed,
        ),
        (
            "array header",
            format!("{}.{}.{}", b64("[1]"), parts[1], parts[2]),
            JwsError::Malformed,
        ),
        (
            "string header",
            format!("{}.{}.{}", b64("\"x\""), parts[1], parts[2]),
            JwsError::Malformed,
        ),
        (
            "no alg",
            format!("{}.{}.{}", b64("{}"), parts[1], parts[2]),
            JwsError::Malformed,
        ),
        (
            "numeric kid",
            format!("{}.{}.{}", b64(r#"{"alg":"ES256","kid":1}"#), parts[1], parts[2]),
            JwsError::Malformed,
        ),
        (
            "crit",
            token(json!({"alg": "ES256", "crit": ["exp"], "exp": 1}), json!({})),
            JwsError::Critical,
        ),
        (
            "empty crit",
            token(json!({"alg": "ES256", "crit": []}), json!({})),
            JwsError::Critical,
        ),
        (
            "too long",
            format!("{good}{}", "A".repeat(MAX_TOKEN_LEN)),
            JwsError::Malformed,
        ),
    ];
    for (name, token, error) in cases {
        assert_eq!(parse(&token).err(), Some(error), "{name}");
    }
}

#[test]
fn signature_and_payload_are_checked_in_that_order() {
    let good = token(json!({"alg": "ES256"}), json!({"sub": "alice"}));
    let parts: Vec<&str> = good.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(r#"{"sub":"mallory"}"#),
        parts[2]
    );
    assert_eq!(verified(&swapped).err(), Some(JwsError::Signature));
    // The token's own `alg` must be the one the key was picked for (RFC 8725 §3.1).
    let (_, public) = key();
    let result = block_on(parse(&good).unwrap().verify(Algorithm::Es384, &public, &RustCrypto));
    assert_eq!(result.err(), Some(JwsError::Signature));
    // Signed, but not a JSON object of well-typed claims.
    for payload in [
        json!([1]),
        json!("text"),
        json!({"exp": "soon"}),
        json!({"aud": [1]}),
        json!({"iss": 7}),
        json!({"exp": -1}),
    ] {
        let token = token(json!({"alg": "ES256"}), payload.clone());
        assert_eq!(verified(&token).err(), Some(JwsError::Signature), "{payload}");
    }
}

#[test]
fn the_time_window_has_a_leeway_of_sixty_seconds() {
    // `exp` passes up to exactly the leeway's edge, and no further.
    assert_eq!(at(json!({"exp": NOW}), NOW + LEEWAY_SECS), Ok(()));
    assert_eq!(at(json!({"exp": NOW}), NOW + LEEWAY_SECS + 1), Err(JwsError::Time));
    // `nbf` and `iat` may be up to the leeway in the future.
    assert_eq!(at(json!({"nbf": NOW + LEEWAY_SECS}), NOW), Ok(()));
    assert_eq!(at(json!({"nbf": NOW + LEEWAY_SECS + 1}), NOW), Err(JwsError::Time));
    assert_eq!(at(json!({"iat": NOW + LEEWAY_SECS}), NOW), Ok(()));
    assert_eq!(at(json!({"iat": NOW + LEEWAY_SECS + 1}), NOW), Err(JwsError::Time));
    // A fractional NumericDate (RFC 7519 §2) is read in whole seconds.
    assert_eq!(at(json!({"exp": NOW as f64 + 0.5}), NOW + LEEWAY_SECS), Ok(()));
    // Absent claims are the callers' to require.
    assert_eq!(at(json!({}), NOW), Ok(()));
}

#[test]
fn a_jwt_is_untyped_jwt_or_an_explicit_jwt_subtype() {
    for typ in [
        json!(null),
        json!("JWT"),
        json!("jwt"),
        json!("logout+jwt"),
        json!("DPOP+JWT"),
    ] {
        let token = token(json!({"alg": "ES256", "typ": typ}), json!({"iss": "i"}));
        assert!(verified(&token).is_ok(), "{typ}");
    }
    for typ in [json!("JOSE"), json!("+jwt"), json!("at+jwtx"), json!(1)] {
        let token = token(json!({"alg": "ES256", "typ": typ}), json!({"iss": "i"}));
        assert_eq!(parse(&token).err(), Some(JwsError::Malformed), "{typ}");
    }
}

#[test]
fn one_audience_named_twice_is_one_audience() {
    let claims = verified(&token(json!({"alg": "ES256"}), json!({"aud": ["a", "b", "a", "b"]}))).unwrap();
    assert_eq!(claims.audiences, ["a", "b"]);
}

#[test]
fn a_clock_near_the_epoch_lets_no_exp_pass() {
    assert_eq!(at(json!({"exp": NOW}), 30), Err(JwsError::Time));
    assert_eq!(at(json!({"exp": NOW}), 60), Ok(()));
}

/// The core hands the port only a key that fits the algorithm and a signature of the exact
/// length: a port that took DER-encoded ECDSA or a mismatched key could not weaken anything.
#[test]
fn the_port_never_sees_a_misfit_key_or_signature() {
    struct Yes;
    impl Signatures for Yes {
        fn verify<'a>(
            &'a self,
            _: Algorithm,
            _: &'a PublicKey,
            _: &'a [u8],
            _: &'a [u8],
        ) -> crate::ports::PortFuture<'a, bool> {
            Box::pin(async { true })
        }
        fn sign<'a>(
            &'a self,
            _: &'a crate::keys::ClientKey,
            _: &'a [u8],
        ) -> crate::ports::PortFuture<'a, Result<Vec<u8>, crate::ports::SignError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }
    let (_, public) = key();
    let good = token(json!({"alg": "ES256"}), json!({}));
    assert!(block_on(parse(&good).unwrap().verify(Algorithm::Es256, &public, &Yes)).is_ok());
    let (head, _) = good.rsplit_once('.').unwrap();
    let long = format!("{head}.{}", URL_SAFE_NO_PAD.encode([7u8; 72]));
    assert_eq!(
        block_on(parse(&long).unwrap().verify(Algorithm::Es256, &public, &Yes)).err(),
        Some(JwsError::Signature)
    );
    let es384 = token(json!({"alg": "ES384"}), json!({}));
    assert_eq!(
        block_on(parse(&es384).unwrap().verify(Algorithm::Es384, &public, &Yes)).err(),
        Some(JwsError::Signature)
    );
}
