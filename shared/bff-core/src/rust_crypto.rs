//! The pure-Rust [`Signatures`]: RustCrypto's `p256` and `p384`, `ed25519-compact`, and RSA
//! through `superboring` (the crates jwt-simple used before verification moved behind the port).
//! For native adapters (Lambda), tests and benchmarks; the Worker uses WebCrypto instead, so
//! none of this is linked into its wasm (feature `rust-crypto`).

use std::future::ready;

use p256::pkcs8::DecodePrivateKey as _;
use superboring::bn::BigNum;
use superboring::hash::MessageDigest;
use superboring::pkey::PKey;
use superboring::rsa::{Padding, Rsa};
use superboring::sign::{Signer, Verifier};

use crate::keys::{Algorithm, ClientKey, Curve, PublicKey};
use crate::ports::{PortFuture, SignError, Signatures};

/// [`Signatures`] in pure Rust; computes synchronously, its futures are ready at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct RustCrypto;

impl Signatures for RustCrypto {
    fn verify<'a>(
        &'a self,
        alg: Algorithm,
        key: &'a PublicKey,
        message: &'a [u8],
        signature: &'a [u8],
    ) -> PortFuture<'a, bool> {
        Box::pin(ready(verify(alg, key, message, signature)))
    }

    fn sign<'a>(&'a self, key: &'a ClientKey, message: &'a [u8]) -> PortFuture<'a, Result<Vec<u8>, SignError>> {
        Box::pin(ready(sign(key, message)))
    }
}

fn verify(alg: Algorithm, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;

    if !key.fits(alg) {
        return false;
    }
    match key {
        PublicKey::Ec { curve, x, y } => {
            let point = [&[0x04][..], x, y].concat();
            match curve {
                Curve::P256 => {
                    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point);
                    let signature = p256::ecdsa::Signature::from_slice(signature);
                    matches!((key, signature), (Ok(k), Ok(s)) if k.verify(message, &s).is_ok())
                }
                Curve::P384 => {
                    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point);
                    let signature = p384::ecdsa::Signature::from_slice(signature);
                    matches!((key, signature), (Ok(k), Ok(s)) if k.verify(message, &s).is_ok())
                }
            }
        }
        PublicKey::Ed25519 { x } => {
            let key = ed25519_compact::PublicKey::from_slice(x);
            let signature = ed25519_compact::Signature::from_slice(signature);
            matches!((key, signature), (Ok(k), Ok(s)) if k.verify(message, &s).is_ok())
        }
        PublicKey::Rsa { n, e } => verify_rsa(alg, n, e, message, signature).unwrap_or(false),
    }
}

/// RSASSA-PKCS1-v1_5 (RFC 7518 §3.3) or RSASSA-PSS with MGF1 and a salt as long as the hash
/// (§3.5, superboring's default).
fn verify_rsa(alg: Algorithm, n: &[u8], e: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
    let (digest, padding) = match alg {
        Algorithm::Rs256 => (MessageDigest::sha256(), Padding::PKCS1),
        Algorithm::Rs384 => (MessageDigest::sha384(), Padding::PKCS1),
        Algorithm::Rs512 => (MessageDigest::sha512(), Padding::PKCS1),
        Algorithm::Ps256 => (MessageDigest::sha256(), Padding::PKCS1_PSS),
        Algorithm::Ps384 => (MessageDigest::sha384(), Padding::PKCS1_PSS),
        Algorithm::Ps512 => (MessageDigest::sha512(), Padding::PKCS1_PSS),
        _ => return None,
    };
    let rsa = Rsa::from_public_components(BigNum::from_slice(n).ok()?, BigNum::from_slice(e).ok()?).ok()?;
    let pkey = PKey::from_rsa(rsa).ok()?;
    let mut verifier = Verifier::new(digest, &pkey).ok()?;
    verifier.set_rsa_padding(padding).ok()?;
    verifier.update(message).ok()?;
    verifier.verify(signature).ok()
}

fn sign(key: &ClientKey, message: &[u8]) -> Result<Vec<u8>, SignError> {
    use p256::ecdsa::signature::Signer as _;

    let refused = |_| SignError("the platform refused the client key".into());
    match key.algorithm() {
        Algorithm::Es256 => {
            let signing = p256::ecdsa::SigningKey::from_pkcs8_der(key.pkcs8_der()).map_err(refused)?;
            // RFC 6979 deterministic nonces: no randomness needed, none can be bad.
            let signature: p256::ecdsa::Signature = signing.sign(message);
            Ok(signature.to_bytes().to_vec())
        }
        Algorithm::Rs256 => {
            let failed = |_| SignError("RSA signing failed".into());
            let rsa = Rsa::private_key_from_der(key.pkcs8_der())
                .map_err(|_| SignError("the platform refused the client key".into()))?;
            let pkey = PKey::from_rsa(rsa).map_err(failed)?;
            let mut signer = Signer::new(MessageDigest::sha256(), &pkey).map_err(failed)?;
            signer.set_rsa_padding(Padding::PKCS1).map_err(failed)?;
            signer.update(message).map_err(failed)?;
            signer.sign_to_vec().map_err(failed)
        }
        other => Err(SignError(format!("{} is not a client key algorithm", other.name()))),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use futures::executor::block_on;
    use jwt_simple::prelude::*;

    use super::*;

    const RSA: &str = include_str!("../tests/fixtures/client_key/rsa_pkcs8.pem");

    /// Each algorithm verifies what jwt-simple signed, and nothing once a bit is flipped.
    #[test]
    fn every_algorithm_verifies_jwt_simple_tokens() {
        let rsa = |components: RSAPublicKeyComponents| PublicKey::rsa(&components.n, &components.e).unwrap();
        let ec = |curve: Curve, point: Vec<u8>| {
            let half = (point.len() - 1) / 2;
            PublicKey::ec(curve, point[1..=half].to_vec(), point[half + 1..].to_vec()).unwrap()
        };
        let claims = || Claims::create(Duration::from_secs(60));
        let es384 = ES384KeyPair::generate();
        let ed25519 = Ed25519KeyPair::generate();
        let cases: Vec<(Algorithm, PublicKey, String)> = vec![
            {
                let pair = RS256KeyPair::from_pem(RSA).unwrap();
                (
                    Algorithm::Rs256,
                    rsa(pair.public_key().to_components()),
                    pair.sign(claims()).unwrap(),
                )
            },
            {
                let pair = RS384KeyPair::from_pem(RSA).unwrap();
                (
                    Algorithm::Rs384,
                    rsa(pair.public_key().to_components()),
                    pair.sign(claims()).unwrap(),
                )
            },
            {
                let pair = RS512KeyPair::from_pem(RSA).unwrap();
                (
                    Algorithm::Rs512,
                    rsa(pair.public_key().to_components()),
                    pair.sign(claims()).unwrap(),
                )
            },
            {
                let pair = PS256KeyPair::from_pem(RSA).unwrap();
                (
                    Algorithm::Ps256,
                    rsa(pair.public_key().to_components()),
                    pair.sign(claims()).unwrap(),
                )
            },
            {
                let pair = PS384KeyPair::from_pem(RSA).unwrap();
                (
                    Algorithm::Ps384,
                    rsa(pair.public_key().to_components()),
                    pair.sign(claims()).unwrap(),
                )
            },
            {
                let pair = PS512KeyPair::from_pem(RSA).unwrap();
                (
                    Algorithm::Ps512,
                    rsa(pair.public_key().to_components()),
                    pair.sign(claims()).unwrap(),
                )
            },
            (
                Algorithm::Es384,
                ec(Curve::P384, es384.public_key().public_key().to_bytes_uncompressed()),
                es384.sign(claims()).unwrap(),
            ),
            (
                Algorithm::EdDsa,
                PublicKey::ed25519(ed25519.public_key().to_bytes()).unwrap(),
                ed25519.sign(claims()).unwrap(),
            ),
        ];
        for (alg, key, token) in cases {
            let (input, signature) = token.rsplit_once('.').unwrap();
            let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            assert!(
                block_on(RustCrypto.verify(alg, &key, input.as_bytes(), &signature)),
                "{alg:?}"
            );
            signature[7] ^= 1;
            assert!(
                !block_on(RustCrypto.verify(alg, &key, input.as_bytes(), &signature)),
                "{alg:?} flipped"
            );
            // A key of another kind verifies nothing.
            assert!(!block_on(RustCrypto.verify(
                Algorithm::Es256,
                &key,
                input.as_bytes(),
                &signature
            )));
        }
    }
}
