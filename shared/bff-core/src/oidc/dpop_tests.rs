#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::testing::{BrowserKey, TOKEN_ENDPOINT};

const NOW: u64 = 1_800_000_000;

/// Bends a proof's header and claims before it is signed.
type Edit = dyn FnOnce(&mut Map<String, Value>, &mut Map<String, Value>);

fn check(proof: &str, key: &BrowserKey) -> Result<Proof, ProofError> {
    let jkt = key.thumbprint();
    let expected = Expected {
        jkt: &jkt,
        htu: TOKEN_ENDPOINT,
        now: UnixTime(NOW),
    };
    futures::executor::block_on(verify(proof, &expected, &crate::RustCrypto))
}

fn bent(edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>)) -> Result<Proof, ProofError> {
    let key = BrowserKey::new(3);
    check(&key.proof_with(NOW, "j1", None, edit), &key)
}

#[test]
fn a_good_proof_passes() {
    let key = BrowserKey::new(3);
    assert!(!check(&key.proof(NOW, "j1", None), &key).unwrap().has_nonce);
    assert!(check(&key.proof(NOW - 60, "j1", Some("n-1")), &key).unwrap().has_nonce);
    assert!(check(&key.proof(NOW + 60, "j1", None), &key).is_ok());
    // The URL parser's normalisation: host case and the default port name the same endpoint;
    // a query or fragment on `htu` is ignored (RFC 9449 §4.3 check 9).
    for htu in ["https://IDP.example:443/token", "https://idp.example/token?x=1#f"] {
        assert!(bent(|_, c| drop(c.insert("htu".into(), json!(htu)))).is_ok(), "{htu}");
    }
}

#[test]
fn the_thumbprint_is_rfc_7638() {
    // RFC 7638 §3.1's member order, hashed with SHA-256 and base64url-encoded.
    use sha2::{Digest, Sha256};
    let key = BrowserKey::new(3);
    let canonical = serde_json::to_string(&key.jwk()).unwrap();
    assert!(canonical.starts_with(r#"{"crv":"P-256","kty":"EC","x":""#));
    assert_eq!(key.thumbprint(), URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)));
    assert!(is_thumbprint(&key.thumbprint()));
    for bad in [
        "",
        "abc",
        &"A".repeat(44),
        &format!("{}=", key.thumbprint()),
        &"*".repeat(43),
    ] {
        assert!(!is_thumbprint(bad), "{bad}");
    }
}

#[test]
fn every_defect_is_refused() {
    let other = BrowserKey::new(4);
    let key = BrowserKey::new(3);
    // Another browser's key: a valid proof, but not the pinned key.
    assert_eq!(
        check(&other.proof(NOW, "j", None), &key).unwrap_err(),
        ProofError::Thumbprint
    );
    // Another key's public JWK over this key's signature, and the reverse.
    let claimed = other.jwk();
    assert_eq!(
        check(
            &other.proof_with(NOW, "j", None, |h, _| drop(
                h.insert("jwk".into(), Value::Object(key.jwk()))
            )),
            &key
        )
        .unwrap_err(),
        ProofError::Signature
    );
    assert_eq!(
        bent(|h, _| drop(h.insert("jwk".into(), Value::Object(claimed)))).unwrap_err(),
        ProofError::Thumbprint
    );
    let cases: Vec<(&str, ProofError, Box<Edit>)> = vec![
        (
            "htu",
            ProofError::Uri,
            Box::new(|_, c| drop(c.insert("htu".into(), json!("https://idp.example/other")))),
        ),
        (
            "htu origin",
            ProofError::Uri,
            Box::new(|_, c| drop(c.insert("htu".into(), json!("https://evil.example/token")))),
        ),
        ("htu missing", ProofError::Uri, Box::new(|_, c| drop(c.remove("htu")))),
        (
            "htm",
            ProofError::Method,
            Box::new(|_, c| drop(c.insert("htm".into(), json!("GET")))),
        ),
        (
            "htm case",
            ProofError::Method,
            Box::new(|_, c| drop(c.insert("htm".into(), json!("post")))),
        ),
        (
            "stale iat",
            ProofError::IssuedAt,
            Box::new(|_, c| drop(c.insert("iat".into(), json!(NOW - 61)))),
        ),
        (
            "future iat",
            ProofError::IssuedAt,
            Box::new(|_, c| drop(c.insert("iat".into(), json!(NOW + 61)))),
        ),
        (
            "string iat",
            ProofError::IssuedAt,
            Box::new(|_, c| drop(c.insert("iat".into(), json!(NOW.to_string())))),
        ),
        ("no jti", ProofError::Jti, Box::new(|_, c| drop(c.remove("jti")))),
        (
            "empty jti",
            ProofError::Jti,
            Box::new(|_, c| drop(c.insert("jti".into(), json!("")))),
        ),
        (
            "numeric nonce",
            ProofError::Nonce,
            Box::new(|_, c| drop(c.insert("nonce".into(), json!(7)))),
        ),
        (
            "alg none",
            ProofError::Algorithm,
            Box::new(|h, _| drop(h.insert("alg".into(), json!("none")))),
        ),
        (
            "alg HS256",
            ProofError::Algorithm,
            Box::new(|h, _| drop(h.insert("alg".into(), json!("HS256")))),
        ),
        (
            "alg RS256",
            ProofError::Algorithm,
            Box::new(|h, _| drop(h.insert("alg".into(), json!("RS256")))),
        ),
        ("no alg", ProofError::Algorithm, Box::new(|h, _| drop(h.remove("alg")))),
        ("no typ", ProofError::Type, Box::new(|h, _| drop(h.remove("typ")))),
        (
            "typ JWT",
            ProofError::Type,
            Box::new(|h, _| drop(h.insert("typ".into(), json!("JWT")))),
        ),
        ("no jwk", ProofError::Key, Box::new(|h, _| drop(h.remove("jwk")))),
        (
            "jwk string",
            ProofError::Key,
            Box::new(|h, _| drop(h.insert("jwk".into(), json!("{}")))),
        ),
        (
            "crit",
            ProofError::Malformed,
            Box::new(|h, _| drop(h.insert("crit".into(), json!(["exp"])))),
        ),
        (
            "jwk P-384",
            ProofError::Key,
            Box::new(|h, _| {
                if let Some(Value::Object(jwk)) = h.get_mut("jwk") {
                    jwk.insert("crv".into(), json!("P-384"));
                }
            }),
        ),
    ];
    for (name, expected, edit) in cases {
        assert_eq!(bent(edit).unwrap_err(), expected, "{name}");
    }
    // A private key in `jwk`: refused, whatever else is right.
    let d = key.private_d();
    let leaked = bent(|h, _| {
        if let Some(Value::Object(jwk)) = h.get_mut("jwk") {
            jwk.insert("d".into(), json!(d));
        }
    });
    assert_eq!(leaked.unwrap_err(), ProofError::Key);
    // A key that says it is for another algorithm or use (RFC 7517 §4.2–4.4).
    for (member, value) in [
        ("alg", json!("HS256")),
        ("use", json!("enc")),
        ("key_ops", json!(["encrypt"])),
        ("key_ops", json!("verify")),
    ] {
        let misused = bent(|h, _| {
            if let Some(Value::Object(jwk)) = h.get_mut("jwk") {
                jwk.insert(member.into(), value.clone());
            }
        });
        assert_eq!(misused.unwrap_err(), ProofError::Key, "{member}: {value}");
    }
    for (member, value) in [
        ("alg", json!("ES256")),
        ("use", json!("sig")),
        ("key_ops", json!(["verify"])),
    ] {
        let declared = bent(|h, _| {
            if let Some(Value::Object(jwk)) = h.get_mut("jwk") {
                jwk.insert(member.into(), value.clone());
            }
        });
        assert!(declared.is_ok(), "{member}: {value}");
    }
}

#[test]
fn a_tampered_or_malformed_proof_is_refused() {
    let key = BrowserKey::new(3);
    let proof = key.proof(NOW, "j1", None);
    let (signed, signature) = proof.rsplit_once('.').unwrap();
    // The claims swapped after signing.
    let (header, _) = signed.split_once('.').unwrap();
    let forged_claims =
        URL_SAFE_NO_PAD.encode(json!({"jti": "j2", "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": NOW}).to_string());
    let forged = format!("{header}.{forged_claims}.{signature}");
    assert_eq!(check(&forged, &key).unwrap_err(), ProofError::Signature);
    // One bit of the signature flipped; a signature of the wrong length.
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 1;
    let flipped = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_eq!(check(&flipped, &key).unwrap_err(), ProofError::Signature);
    let short = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes[..63]));
    assert_eq!(check(&short, &key).unwrap_err(), ProofError::Signature);
    for garbage in ["", "a.b", "a.b.c.d", &format!("{proof}.x"), "é.é.é", &"A".repeat(5000)] {
        assert!(check(garbage, &key).is_err(), "{garbage}");
    }
    let padded = format!("{proof}==");
    assert!(check(&padded, &key).is_err());
}

#[test]
fn nonces_are_remembered_and_bounded() {
    let nonces = Nonces::default();
    assert_eq!(nonces.due(UnixTime(NOW)), None);
    nonces.saw("n-1", false, UnixTime(NOW));
    assert_eq!(nonces.due(UnixTime(NOW)), None, "sent on success, not demanded");
    assert_eq!(nonces.since(UnixTime(NOW)).as_deref(), Some("n-1"));
    assert_eq!(nonces.since(UnixTime(NOW + 1)), None);
    nonces.saw("n-2", true, UnixTime(NOW + 1));
    assert_eq!(nonces.due(UnixTime(NOW + 2)).as_deref(), Some("n-2"));
    // A nonce older than a provider's rotation is not handed out: the browser would spend its
    // one retry on it.
    assert_eq!(nonces.due(UnixTime(NOW + 1 + NONCE_FRESH_SECS)), None);
    nonces.saw("n-3", false, UnixTime(NOW + 200));
    assert_eq!(
        nonces.due(UnixTime(NOW + 201)).as_deref(),
        Some("n-3"),
        "still demanded, fresh again"
    );
    assert_eq!(
        nonces.due(UnixTime(NOW + 1 + NONCE_DUE_SECS)),
        None,
        "no longer demanded"
    );
    assert!(valid_nonce("eyJ7S_zG.Hn-~!#[]"));
    for bad in ["", "a b", "a\"b", "a\\b", "é", &"n".repeat(513)] {
        assert!(!valid_nonce(bad), "{bad}");
    }
}
