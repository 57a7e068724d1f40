//! JWTs signed with the test kit's provider key, from any header and payload bytes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};

/// The scripted provider's first signing key (`kid` `k1`): it derives its ES256 key from 32
/// bytes of 7. [`check_key`] proves the two still agree.
fn key() -> SigningKey {
    SigningKey::from_slice(&[7u8; 32]).expect("a P-256 scalar")
}

/// `header.payload.signature` with both parts as given (bytes, not necessarily JSON).
pub fn sign_raw(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature: Signature = key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A JWT whose header is `{"alg":"ES256","kid":"k1"}` and whose payload is `claims`.
pub fn sign(claims: &Value) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "k1"});
    sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
}

/// Panics unless a token signed here verifies with the scripted provider's JWKS `jwks`.
pub fn check_key(jwks: &[u8], now: u64) {
    let keys = bff_core::fuzzing::Keys::parse(jwks).expect("the provider's JWKS");
    let token = sign(&json!({
        "iss": bff_core::testing::ISSUER, "aud": bff_core::testing::CLIENT_ID, "sub": "alice",
        "iat": now, "exp": now + 300,
    }));
    let verified = keys.verify_id_token(
        &token,
        &["ES256"],
        (bff_core::testing::ISSUER, bff_core::testing::CLIENT_ID, None),
        bff_core::UnixTime(now),
    );
    assert!(
        verified.is_ok(),
        "the fuzz signer no longer has the test kit's key: {verified:?}"
    );
}
