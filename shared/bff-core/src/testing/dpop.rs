//! A browser's DPoP key (RFC 9449) for tests: deterministic ES256 proofs that can be bent in any
//! way a hostile page might bend them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::{ECDSAP256PublicKeyLike as _, ES256KeyPair};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Map, Value, json};

use super::ISSUER;

/// The scripted provider's token endpoint: the `htu` of every proof for the backend.
pub const TOKEN_ENDPOINT: &str = "https://idp.example/token";

/// One browser's key pair.
pub struct BrowserKey {
    pair: ES256KeyPair,
    signing: SigningKey,
}

impl BrowserKey {
    /// The key made from `seed` (any byte but 0 gives a valid P-256 scalar).
    pub fn new(seed: u8) -> Self {
        let bytes = [seed.max(1); 32];
        Self {
            pair: ES256KeyPair::from_bytes(&bytes).unwrap_or_else(|_| ES256KeyPair::generate()),
            // Every seed from 1 to 255 repeated is a valid scalar (below the group order).
            signing: SigningKey::from_slice(&bytes).unwrap_or_else(|_| unreachable!("valid scalar")),
        }
    }

    /// The public JWK, members in RFC 7638 order.
    pub fn jwk(&self) -> Map<String, Value> {
        let point = self.pair.public_key().public_key().to_bytes_uncompressed();
        let mut jwk = Map::new();
        jwk.insert("crv".into(), json!("P-256"));
        jwk.insert("kty".into(), json!("EC"));
        jwk.insert("x".into(), json!(URL_SAFE_NO_PAD.encode(&point[1..33])));
        jwk.insert("y".into(), json!(URL_SAFE_NO_PAD.encode(&point[33..])));
        jwk
    }

    /// The RFC 7638 thumbprint, what a login sends as `dpop_jkt`.
    pub fn thumbprint(&self) -> String {
        self.pair.public_key().jwk_thumbprint()
    }

    /// A proof for the scripted provider's token endpoint at `iat`, with `nonce` when given.
    pub fn proof(&self, iat: u64, jti: &str, nonce: Option<&str>) -> String {
        self.proof_with(iat, jti, nonce, |_, _| {})
    }

    /// A proof bent by `edit` (header, claims) before it is signed.
    pub fn proof_with(
        &self,
        iat: u64,
        jti: &str,
        nonce: Option<&str>,
        edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>),
    ) -> String {
        let mut header = Map::new();
        header.insert("typ".into(), json!("dpop+jwt"));
        header.insert("alg".into(), json!("ES256"));
        header.insert("jwk".into(), Value::Object(self.jwk()));
        let mut claims = Map::new();
        claims.insert("jti".into(), json!(jti));
        claims.insert("htm".into(), json!("POST"));
        claims.insert("htu".into(), json!(format!("{ISSUER}/token")));
        claims.insert("iat".into(), json!(iat));
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        edit(&mut header, &mut claims);
        self.sign(&Value::Object(header), &Value::Object(claims))
    }

    /// A compact JWS of `header` and `claims` signed with this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The private scalar as base64url: for a hostile proof whose `jwk` leaks it.
    pub fn private_d(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.to_bytes())
    }
}
