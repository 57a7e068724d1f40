//! ID-token and logout-token validation, and DPoP proofs from the browser: arbitrary compact JWTs,
//! and tokens signed with the scripted provider's key (as a browser key, for proofs) whose header,
//! claims or bytes the fuzzer changed.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_core::UnixTime;
use bff_core::fuzzing::Keys;
use bff_core::testing::{BrowserKey, CLIENT_ID, ISSUER, TOKEN_ENDPOINT};
use bff_core_fuzz::json::{Edit, apply};
use bff_core_fuzz::jwt::sign_raw;
use bff_core_fuzz::raw;
use bff_core_fuzz::real::real;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
struct Input {
    logout: bool,
    /// A DPoP proof (signed by key 7, which the session pinned) rather than a provider's token.
    dpop: bool,
    token: Token,
    /// The nonce the backend expects (ID tokens at login); `None` as on refresh.
    nonce: Option<bool>,
    /// Seconds from the signing time to the check, either way.
    skew: i16,
}

#[derive(Arbitrary, Debug)]
enum Token {
    Any(String),
    Parts {
        header: Vec<u8>,
        payload: Vec<u8>,
    },
    Signed {
        header: Vec<Edit>,
        claims: Vec<Edit>,
        after: Vec<Change>,
    },
}

#[derive(Arbitrary, Debug)]
enum Change {
    Flip { at: u16, bit: u8 },
    Cut(u16),
    Insert { at: u16, text: String },
    DropSegment(u8),
    RepeatSegment(u8),
    SwapFirstTwo,
}

const NONCE: &str = "n-0S6_WzA2Mj";

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::parse(&real().jwks).expect("the JWKS"))
}

fn base_claims(logout: bool, now: u64) -> Map<String, Value> {
    let claims = if logout {
        json!({
            "iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": "j-1", "sub": "alice",
            "sid": "sid-alice-1", "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        })
    } else {
        json!({
            "iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "sub": "alice", "nonce": NONCE,
            "sid": "sid-alice-1", "auth_time": now, "name": "User alice", "email": "alice@example.com",
        })
    };
    claims.as_object().cloned().unwrap_or_default()
}

/// The signature checked on its own, as the JWS spec says.
fn signature_valid(token: &str) -> bool {
    let Some((input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(&signature) else {
        return false;
    };
    let key = SigningKey::from_slice(&[7u8; 32]).expect("a P-256 scalar");
    key.verifying_key().verify(input.as_bytes(), &signature).is_ok()
}

fn segment(token: &str, i: usize) -> Option<Map<String, Value>> {
    let part = token.split('.').nth(i)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64)
}

fuzz_target!(|data: &[u8]| {
    let input = match raw(data) {
        // Mode 0: an ID token (as on refresh, no nonce expected), 1: a logout token, 2: a DPoP proof.
        Some((mode, token)) => Input {
            logout: mode == 1,
            dpop: mode == 2,
            token: Token::Any(String::from_utf8_lossy(token).into_owned()),
            nonce: None,
            skew: 0,
        },
        None => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => input,
            Err(_) => return,
        },
    };
    let signed_at = real().now.0;
    let now = UnixTime(signed_at.saturating_add_signed(i64::from(input.skew)));
    let token = match &input.token {
        Token::Any(s) => s.clone(),
        Token::Parts { header, payload } => sign_raw(header, payload),
        Token::Signed { header, claims, after } => {
            let base = if input.dpop {
                json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": BrowserKey::new(7).jwk()})
            } else {
                json!({"alg": "ES256", "typ": "JWT", "kid": "k1"})
            };
            let mut h = base.as_object().cloned().unwrap_or_default();
            apply(&mut h, header);
            let mut c = if input.dpop {
                let proof = json!({"jti": "j-1", "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": signed_at});
                proof.as_object().cloned().unwrap_or_default()
            } else {
                base_claims(input.logout, signed_at)
            };
            apply(&mut c, claims);
            let mut token = sign_raw(
                Value::Object(h).to_string().as_bytes(),
                Value::Object(c).to_string().as_bytes(),
            );
            for change in after {
                let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
                match change {
                    Change::Flip { at, bit } => {
                        let mut bytes = token.into_bytes();
                        let i = usize::from(*at) % bytes.len().max(1);
                        if let Some(b) = bytes.get_mut(i) {
                            *b ^= 1 << (bit % 8);
                        }
                        token = String::from_utf8_lossy(&bytes).into_owned();
                        continue;
                    }
                    Change::Cut(at) => {
                        let mut at = usize::from(*at) % (token.len() + 1);
                        while !token.is_char_boundary(at) {
                            at -= 1;
                        }
                        token.truncate(at);
                        continue;
                    }
                    Change::Insert { at, text } => {
                        let at = usize::from(*at) % (token.len() + 1);
                        if token.is_char_boundary(at) {
                            token.insert_str(at, text);
                        }
                        continue;
                    }
                    Change::DropSegment(i) => {
                        if !segments.is_empty() {
                            segments.remove(usize::from(*i) % segments.len());
                        }
                    }
                    Change::RepeatSegment(i) => {
                        if !segments.is_empty() {
                            let s = segments[usize::from(*i) % segments.len()].clone();
                            segments.insert(usize::from(*i) % segments.len(), s);
                        }
                    }
                    Change::SwapFirstTwo => {
                        if segments.len() > 1 {
                            segments.swap(0, 1);
                        }
                    }
                }
                token = segments.join(".");
            }
            token
        }
    };

    if input.dpop {
        return check_proof(&token, now);
    }
    let allowed = ["ES256"];
    let verdict = if input.logout {
        keys().verify_logout_token(&token, &allowed, (ISSUER, CLIENT_ID), now)
    } else {
        let nonce = input.nonce.map(|_| NONCE);
        keys().verify_id_token(&token, &allowed, (ISSUER, CLIENT_ID, nonce), now)
    };
    let Ok(verdict) = verdict else { return };

    // Accepted: then it is a compact JWS of three parts, signed by the provider's key with an
    // allowed algorithm, and its claims say what the checks demand.
    assert_eq!(token.split('.').count(), 3, "accepted {token:?}");
    assert!(signature_valid(&token), "accepted a bad signature: {token:?}");
    let header = segment(&token, 0).expect("accepted an unreadable header");
    assert_eq!(header.get("alg").and_then(Value::as_str), Some("ES256"), "{header:?}");
    let claims = segment(&token, 1).expect("accepted an unreadable payload");
    let context = format!("{claims:?} at {}", now.0);
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER), "{context}");
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == CLIENT_ID,
        Some(Value::Array(a)) => a.iter().any(|a| a == CLIENT_ID),
        _ => false,
    };
    assert!(audience_ok, "aud: {context}");
    let exp = number(claims.get("exp")).expect("accepted without exp");
    assert!(exp + 60.0 >= now.0 as f64, "expired: {context}");
    let iat = number(claims.get("iat")).expect("accepted without iat");
    assert!(iat <= now.0 as f64 + 60.0, "issued in the future: {context}");
    if let Some(nbf) = number(claims.get("nbf")) {
        assert!(nbf <= now.0 as f64 + 60.0, "not yet valid: {context}");
    }
    if input.logout {
        let events = claims
            .get("events")
            .and_then(|e| e.get("http://schemas.openid.net/event/backchannel-logout"));
        assert!(events.is_some_and(Value::is_object), "events: {context}");
        assert!(
            claims.get("nonce").is_none_or(Value::is_null),
            "nonce in a logout token: {context}"
        );
        assert!(claims.get("sub").is_some() || claims.get("sid").is_some(), "{context}");
        assert!(
            claims.get("jti").and_then(Value::as_str).is_some_and(|j| !j.is_empty()),
            "jti: {context}"
        );
        assert_eq!(verdict["jti"], claims["jti"]);
    } else {
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
        assert!(!sub.is_empty(), "sub: {context}");
        assert_eq!(verdict["sub"], sub);
        if input.nonce.is_some() {
            assert_eq!(
                claims.get("nonce").and_then(Value::as_str),
                Some(NONCE),
                "nonce: {context}"
            );
        }
        let several = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
        // A JSON null is no claim at all.
        match claims.get("azp").filter(|azp| !azp.is_null()) {
            Some(azp) => assert_eq!(azp.as_str(), Some(CLIENT_ID), "azp: {context}"),
            None => assert!(!several, "several audiences without azp: {context}"),
        }
    }
});

/// A proof accepted for forwarding is a compact JWS signed by the pinned key, with the type,
/// algorithm, public key, method, target and time the backend requires (RFC 9449 §4.3).
fn check_proof(token: &str, now: UnixTime) {
    let jkt = BrowserKey::new(7).thumbprint();
    let Ok(has_nonce) = bff_core::fuzzing::dpop_proof(token, &jkt, TOKEN_ENDPOINT, now) else {
        return;
    };
    assert_eq!(token.split('.').count(), 3, "accepted {token:?}");
    assert!(signature_valid(token), "accepted a bad signature: {token:?}");
    let header = segment(token, 0).expect("accepted an unreadable header");
    assert_eq!(header.get("alg").and_then(Value::as_str), Some("ES256"), "{header:?}");
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or_default();
    assert!(typ.eq_ignore_ascii_case("dpop+jwt"), "{header:?}");
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .expect("accepted without a jwk");
    assert!(!jwk.contains_key("d"), "accepted a private key: {header:?}");
    assert_eq!(jwk.get("x"), BrowserKey::new(7).jwk().get("x"), "{header:?}");
    assert_eq!(jwk.get("y"), BrowserKey::new(7).jwk().get("y"), "{header:?}");
    let claims = segment(token, 1).expect("accepted unreadable claims");
    let context = format!("{claims:?} at {}", now.0);
    assert_eq!(claims.get("htm").and_then(Value::as_str), Some("POST"), "{context}");
    let htu = claims.get("htu").and_then(Value::as_str).expect("accepted without htu");
    let target = url::Url::parse(htu).expect("accepted an htu that is no URL");
    assert_eq!(
        (
            target.scheme(),
            target.host_str(),
            target.port_or_known_default(),
            target.path()
        ),
        ("https", Some("idp.example"), Some(443), "/token"),
        "{context}"
    );
    let iat = claims.get("iat").and_then(Value::as_u64).expect("accepted without iat");
    assert!(iat.abs_diff(now.0) <= 60, "iat out of the window: {context}");
    assert!(
        claims.get("jti").and_then(Value::as_str).is_some_and(|j| !j.is_empty()),
        "jti: {context}"
    );
    assert_eq!(has_nonce, claims.get("nonce").is_some(), "{context}");
}
