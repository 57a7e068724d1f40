use futures::executor::block_on;
use jwt_simple::prelude::*;

use super::*;
use crate::RustCrypto;
use crate::testing::CounterRandom;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/client_key/", $name))
    };
}

fn sign(key: &ClientKey, now: u64) -> String {
    block_on(assertion(
        key,
        "bff",
        "https://idp.example",
        UnixTime(now),
        &CounterRandom::default(),
        &RustCrypto,
    ))
    .unwrap()
}

fn options(now: u64) -> Option<VerificationOptions> {
    Some(VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        ..Default::default()
    })
}

#[test]
fn es256_jwk_assertion_verifies_and_carries_injected_time() {
    let pair = ES256KeyPair::from_bytes(&[5u8; 32]).unwrap();
    let jwk =
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "c1", "d": URL_SAFE_NO_PAD.encode(pair.to_bytes())});
    let key = parse_private_key(&jwk.to_string()).unwrap();
    assert_eq!(format!("{key:?}"), "ClientKey(ES256, [redacted])");
    let token = sign(&key, 1_900_000_000);
    let claims = pair
        .public_key()
        .verify_token::<NoCustomClaims>(&token, options(1_900_000_010))
        .unwrap();
    assert_eq!(claims.issued_at.unwrap().as_secs(), 1_900_000_000);
    assert_eq!(claims.expires_at.unwrap().as_secs(), 1_900_000_060);
    assert_eq!(claims.subject.as_deref(), Some("bff"));
    assert_eq!(claims.issuer.as_deref(), Some("bff"));
    assert_eq!(claims.jwt_id.as_deref(), Some("AAECAwQFBgcICQoLDA0ODw"));
    assert_eq!(Token::decode_metadata(&token).unwrap().key_id(), Some("c1"));
}

/// Every accepted form of one key becomes the same PKCS#8, whose assertions verify with the
/// public key (read by jwt-simple, independently of the DER code here).
#[test]
fn every_form_normalises_to_pkcs8_and_signs() {
    let ec_public = ES256PublicKey::from_pem(fixture!("ec_public.pem")).unwrap();
    let ec_jwk = fixture!("ec_jwk.json");
    let ec_d_only = {
        let mut jwk: Value = serde_json::from_str(ec_jwk).unwrap();
        jwk.as_object_mut().unwrap().retain(|k, _| k != "x" && k != "y");
        jwk.to_string()
    };
    let ec_forms = [
        fixture!("ec_pkcs8.pem").to_owned(),
        fixture!("ec_sec1.pem").to_owned(),
        ec_jwk.to_owned(),
        ec_d_only,
        fixture!("ec_pkcs8.pem").replace('\n', "\\n"),
    ];
    for form in &ec_forms {
        let key = parse_private_key(form).unwrap_or_else(|e| panic!("{e}: {form}"));
        assert_eq!(key.algorithm(), Algorithm::Es256);
        ec_public
            .verify_token::<NoCustomClaims>(&sign(&key, 1_900_000_000), options(1_900_000_001))
            .unwrap();
    }

    let rsa_public = RS256PublicKey::from_pem(fixture!("rsa_public.pem")).unwrap();
    let rsa_forms = [
        fixture!("rsa_pkcs8.pem"),
        fixture!("rsa_pkcs1.pem"),
        fixture!("rsa_jwk.json"),
    ];
    let mut ders = Vec::new();
    for form in rsa_forms {
        let key = parse_private_key(form).unwrap_or_else(|e| panic!("{e}: {form}"));
        assert_eq!(key.algorithm(), Algorithm::Rs256);
        assert_eq!(format!("{key:?}"), "ClientKey(RS256, [redacted])");
        rsa_public
            .verify_token::<NoCustomClaims>(&sign(&key, 1_900_000_000), options(1_900_000_001))
            .unwrap();
        ders.push(key.pkcs8_der().to_vec());
    }
    assert!(ders.iter().all(|der| *der == ders[0]), "one PKCS#8 from every form");
}

#[test]
fn der_integers() {
    assert_eq!(der::unsigned(&[0]), [0x02, 0x01, 0x00]);
    assert_eq!(der::unsigned(&[0, 0, 0x80]), [0x02, 0x02, 0x00, 0x80]);
    assert_eq!(der::unsigned(&[0x7f]), [0x02, 0x01, 0x7f]);
    let long = der::write(der::OCTET_STRING, &[7u8; 300]);
    assert_eq!(long[..4], [0x04, 0x82, 0x01, 0x2c]);
    let mut reader = Reader::new(&long);
    assert_eq!(reader.read(der::OCTET_STRING), Some(&[7u8; 300][..]));
    assert!(reader.is_empty());
    // Truncated, wrong tag, indefinite or oversized lengths: nothing, never a panic.
    for bad in [
        &long[..100],
        &[0x05, 0x00][..],
        &[0x04, 0x80][..],
        &[0x04, 0x85, 1, 1, 1, 1, 1][..],
        &[][..],
    ] {
        assert_eq!(Reader::new(bad).read(der::OCTET_STRING), None);
    }
}

/// A JWK's `x` and `y` are not copied into the key: both platforms derive the public key from
/// `d`, so coordinates that are short (leading zeros stripped) or belong to another key cannot
/// pass the configuration and then fail every signature.
#[test]
fn a_jwk_signs_with_its_scalar_whatever_its_coordinates() {
    let ec_public = ES256PublicKey::from_pem(fixture!("ec_public.pem")).unwrap();
    let mut jwk: Value = serde_json::from_str(fixture!("ec_jwk.json")).unwrap();
    jwk["x"] = URL_SAFE_NO_PAD.encode([1u8; 31]).into();
    jwk["y"] = URL_SAFE_NO_PAD.encode([2u8; 32]).into();
    let key = parse_private_key(&jwk.to_string()).unwrap();
    ec_public
        .verify_token::<NoCustomClaims>(&sign(&key, 1_900_000_000), options(1_900_000_001))
        .unwrap();
}

/// What one platform would take and the other refuse is refused here: PKCS#8 version 1,
/// bytes after a structure, and lengths that are not minimal DER.
#[test]
fn only_strict_der_is_taken() {
    let key = parse_private_key(fixture!("ec_pkcs8.pem")).unwrap();
    let der = key.pkcs8_der().to_vec();
    let pem = |der: &[u8]| {
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
            STANDARD.encode(der)
        )
    };
    assert!(parse_private_key(&pem(&der)).is_ok());
    // The version INTEGER follows the outer SEQUENCE's tag and length.
    let version = der.windows(3).position(|w| w == [0x02, 0x01, 0x00]).unwrap();
    let mut v1 = der.clone();
    v1[version + 2] = 1;
    assert!(parse_private_key(&pem(&v1)).is_err(), "version 1");
    let mut trailing = der;
    trailing.push(0);
    assert!(parse_private_key(&pem(&trailing)).is_err(), "a byte after the key");
    // Long-form lengths for short contents, and a leading zero length octet.
    assert_eq!(Reader::new(&[0x04, 0x81, 0x01, 0x07]).read(der::OCTET_STRING), None);
    let mut padded = vec![0x04, 0x82, 0x00, 0x80];
    padded.extend([7u8; 128]);
    assert_eq!(Reader::new(&padded).read(der::OCTET_STRING), None);
    let mut minimal = vec![0x04, 0x81, 0x80];
    minimal.extend([7u8; 128]);
    assert_eq!(Reader::new(&minimal).read(der::OCTET_STRING), Some(&[7u8; 128][..]));
}

#[test]
fn garbage_is_refused() {
    assert!(parse_private_key("not a key").is_err());
    assert!(parse_private_key("{\"kty\":\"oct\"}").is_err());
    assert!(parse_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
    assert!(parse_private_key(&"A".repeat(MAX_KEY_TEXT + 1)).is_err());
    // An EC key on another curve (P-384 PKCS#8 header), and a P-256 scalar out of range.
    let mut jwk: Value = serde_json::from_str(fixture!("ec_jwk.json")).unwrap();
    jwk["crv"] = "P-384".into();
    assert!(parse_private_key(&jwk.to_string()).is_err());
    jwk["crv"] = "P-256".into();
    jwk["d"] = URL_SAFE_NO_PAD.encode([0xff; 32]).into();
    assert!(parse_private_key(&jwk.to_string()).is_err());
    jwk["d"] = URL_SAFE_NO_PAD.encode([0; 32]).into();
    assert!(parse_private_key(&jwk.to_string()).is_err());
    // An RSA key below 2048 bits.
    let mut rsa: Value = serde_json::from_str(fixture!("rsa_jwk.json")).unwrap();
    rsa["n"] = URL_SAFE_NO_PAD.encode([0xc5; 128]).into();
    assert!(parse_private_key(&rsa.to_string()).is_err());
}
