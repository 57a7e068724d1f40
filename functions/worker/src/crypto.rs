//! The core's [`Signatures`] port with WebCrypto (`crypto.subtle`), which workerd implements
//! natively (RSASSA-PKCS1-v1_5, RSA-PSS, ECDSA P-256/P-384, Ed25519): the Worker's wasm carries no
//! public-key crypto of its own, about 340 KB less before compression (docs/performance.md).
//!
//! The core hands over keys it has checked (JWK components, PKCS#8 DER) and JWS-encoded
//! signatures, which are WebCrypto's own encodings: raw RSA bytes, ECDSA `r ‖ s` (W3C Web
//! Cryptography API §23.4), raw Ed25519.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_core::{Algorithm, ClientKey, PortFuture, PublicKey, SignError, Signatures};
use wasm_bindgen::prelude::*;
use worker::js_sys::{Array, Error as JsError, Object, Promise, Reflect, Uint8Array};
use worker::send::SendFuture;
use worker::wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    // Called as methods of `crypto.subtle`, which they must be (WebIDL: "Illegal invocation").
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_key(
        format: &str,
        data: &JsValue,
        algorithm: &Object,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = verify, catch)]
    fn subtle_verify(
        algorithm: &Object,
        key: &JsValue,
        signature: &Uint8Array,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = sign, catch)]
    fn subtle_sign(algorithm: &Object, key: &JsValue, data: &Uint8Array) -> Result<Promise, JsValue>;
}

/// [`Signatures`] with `crypto.subtle`. Keys are imported per operation: a verification key
/// is the issuer's (cached as JSON by the core), and importing is cheap next to the round trip
/// to the authorization server that every signature here goes with.
pub(crate) struct WebCrypto;

impl Signatures for WebCrypto {
    fn verify<'a>(
        &'a self,
        alg: Algorithm,
        key: &'a PublicKey,
        message: &'a [u8],
        signature: &'a [u8],
    ) -> PortFuture<'a, bool> {
        // `SendFuture`: JS promises are `!Send`. The port asks for `Send` only on native targets,
        // where this crate is compiled for its host tests and never runs a promise.
        Box::pin(SendFuture::new(async move {
            // A key WebCrypto refuses (a point off the curve) verifies nothing.
            verify(alg, key, message, signature).await.unwrap_or(false)
        }))
    }

    fn sign<'a>(&'a self, key: &'a ClientKey, message: &'a [u8]) -> PortFuture<'a, Result<Vec<u8>, SignError>> {
        Box::pin(SendFuture::new(async move {
            sign(key, message).await.map_err(|error| {
                // The core logs this and answers 500. A WebCrypto error names the operation
                // that failed, never the key.
                let why = (error.as_string()).or_else(|| error.dyn_ref::<JsError>().map(|e| String::from(e.message())));
                SignError(format!("WebCrypto could not sign: {}", why.unwrap_or_default()))
            })
        }))
    }
}

async fn verify(alg: Algorithm, key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<bool, JsValue> {
    if !key.fits(alg) {
        return Ok(false);
    }
    let (import, params) = parameters(alg)?;
    let jwk = jwk(key)?;
    let key = JsFuture::from(import_key("jwk", &jwk, &import, false, &Array::of1(&"verify".into()))?).await?;
    let valid = subtle_verify(&params, &key, &Uint8Array::from(signature), &Uint8Array::from(message))?;
    Ok(JsFuture::from(valid).await?.as_bool() == Some(true))
}

async fn sign(key: &ClientKey, message: &[u8]) -> Result<Vec<u8>, JsValue> {
    let (import, params) = parameters(key.algorithm())?;
    // WebCrypto copies the key data when importKey is called (Web Cryptography API §14.3.9), so
    // the key's copy in JS memory is overwritten before the first await: a request dropped
    // there leaves nothing behind.
    let der = Uint8Array::from(key.pkcs8_der());
    let import = import_key("pkcs8", &der, &import, false, &Array::of1(&"sign".into()));
    der.fill(0, 0, der.length());
    let imported = JsFuture::from(import?).await;
    let signature = JsFuture::from(subtle_sign(&params, &imported?, &Uint8Array::from(message))?).await?;
    Ok(Uint8Array::new(&signature).to_vec())
}

/// The `importKey` and `verify`/`sign` algorithm parameters for `alg` (Web Cryptography API
/// §20–§23, Ed25519 in the Secure Curves draft); RSA-PSS salts are as long as the hash, as
/// RFC 7518 §3.5 requires.
fn parameters(alg: Algorithm) -> Result<(Object, Object), JsValue> {
    let hash = match alg.hash_len() {
        Some(48) => "SHA-384",
        Some(64) => "SHA-512",
        _ => "SHA-256",
    };
    let salt = JsValue::from(alg.hash_len().unwrap_or(32) as u32);
    Ok(match alg {
        Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512 => (
            object(&[("name", "RSASSA-PKCS1-v1_5".into()), ("hash", hash.into())])?,
            object(&[("name", "RSASSA-PKCS1-v1_5".into())])?,
        ),
        Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512 => (
            object(&[("name", "RSA-PSS".into()), ("hash", hash.into())])?,
            object(&[("name", "RSA-PSS".into()), ("saltLength", salt)])?,
        ),
        Algorithm::Es256 | Algorithm::Es384 => {
            let curve = if alg == Algorithm::Es384 { "P-384" } else { "P-256" };
            (
                object(&[("name", "ECDSA".into()), ("namedCurve", curve.into())])?,
                object(&[("name", "ECDSA".into()), ("hash", hash.into())])?,
            )
        }
        Algorithm::EdDsa => (
            object(&[("name", "Ed25519".into())])?,
            object(&[("name", "Ed25519".into())])?,
        ),
        _ => return Err("unsupported algorithm".into()),
    })
}

/// The public key as a JWK object (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2).
fn jwk(key: &PublicKey) -> Result<Object, JsValue> {
    let b64 = |bytes: &[u8]| JsValue::from(URL_SAFE_NO_PAD.encode(bytes));
    match key {
        PublicKey::Ec { curve, x, y } => object(&[
            ("kty", "EC".into()),
            ("crv", curve.name().into()),
            ("x", b64(x)),
            ("y", b64(y)),
        ]),
        PublicKey::Ed25519 { x } => object(&[("kty", "OKP".into()), ("crv", "Ed25519".into()), ("x", b64(x))]),
        PublicKey::Rsa { n, e } => object(&[("kty", "RSA".into()), ("n", b64(n)), ("e", b64(e))]),
        _ => Err("unsupported key".into()),
    }
}

fn object(members: &[(&str, JsValue)]) -> Result<Object, JsValue> {
    let object = Object::new();
    for (name, value) in members {
        Reflect::set(&object, &JsValue::from_str(name), value)?;
    }
    Ok(object)
}
