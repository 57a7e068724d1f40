//! The values that cross the [`Signatures`](crate::Signatures) port: JWS algorithms, public keys
//! as raw JWK components, and the client's private key as PKCS#8 DER.
//!
//! Both forms are what every platform imports without a parser of its own: WebCrypto takes a JWK
//! or `pkcs8` (W3C Web Cryptography API §14.3.9), RustCrypto takes components or PKCS#8.

use std::fmt;

use zeroize::Zeroizing;

/// A JWS signature algorithm the core verifies or signs with (RFC 7518 §3.1, RFC 8037 §3.1).
/// `none` and the HMAC algorithms are not here: a token signed with them is never accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// EdDSA with Ed25519 (RFC 8037 §3.1).
    EdDsa,
    /// ECDSA P-256 with SHA-256 (RFC 7518 §3.4).
    Es256,
    /// ECDSA P-384 with SHA-384 (RFC 7518 §3.4).
    Es384,
    /// RSASSA-PSS with SHA-256, MGF1 SHA-256 and a 32-byte salt (RFC 7518 §3.5).
    Ps256,
    /// RSASSA-PSS with SHA-384, MGF1 SHA-384 and a 48-byte salt (RFC 7518 §3.5).
    Ps384,
    /// RSASSA-PSS with SHA-512, MGF1 SHA-512 and a 64-byte salt (RFC 7518 §3.5).
    Ps512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (RFC 7518 §3.3).
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (RFC 7518 §3.3).
    Rs512,
}

impl Algorithm {
    /// The algorithm a JWS `alg` names; `None` for any other (including `none` and HMAC).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "EdDSA" => Self::EdDsa,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            _ => return None,
        })
    }

    /// The JWS `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
        }
    }

    /// The length in bytes of the algorithm's hash (the RSA-PSS salt length, RFC 7518 §3.5);
    /// `None` for EdDSA, which hashes internally.
    pub fn hash_len(self) -> Option<usize> {
        match self {
            Self::EdDsa => None,
            Self::Es256 | Self::Ps256 | Self::Rs256 => Some(32),
            Self::Es384 | Self::Ps384 | Self::Rs384 => Some(48),
            Self::Ps512 | Self::Rs512 => Some(64),
        }
    }
}

/// An elliptic curve of an EC public key (RFC 7518 §6.2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-256, `crv` "P-256".
    P256,
    /// NIST P-384, `crv` "P-384".
    P384,
}

impl Curve {
    /// The JWK `crv` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    /// The length in bytes of a coordinate (and of `r` and `s` in a signature, RFC 7518 §3.4).
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

/// A public key as its decoded JWK components, already checked by the core: lengths match the
/// curve, an RSA modulus is 2048–4096 bits with exponent 65537.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKey {
    /// RFC 7518 §6.2.1: `x` and `y`, each [`Curve::coordinate_len`] bytes, big-endian.
    Ec {
        /// The curve.
        curve: Curve,
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// RFC 8037 §2: the 32-byte Ed25519 public key (`kty` "OKP", `crv` "Ed25519").
    Ed25519 {
        /// The public key.
        x: Vec<u8>,
    },
    /// RFC 7518 §6.3.1: modulus and public exponent, big-endian without leading zeros.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
}

impl PublicKey {
    /// Whether `alg` is one this key can verify (RFC 7518 §3.3–3.5, RFC 8037 §3.1).
    pub fn fits(&self, alg: Algorithm) -> bool {
        match self {
            Self::Ec { curve, .. } => {
                matches!(
                    (curve, alg),
                    (Curve::P256, Algorithm::Es256) | (Curve::P384, Algorithm::Es384)
                )
            }
            Self::Ed25519 { .. } => alg == Algorithm::EdDsa,
            Self::Rsa { .. } => matches!(
                alg,
                Algorithm::Rs256
                    | Algorithm::Rs384
                    | Algorithm::Rs512
                    | Algorithm::Ps256
                    | Algorithm::Ps384
                    | Algorithm::Ps512
            ),
        }
    }

    /// The length of an `alg` signature by this key (RFC 7518 §3.4: ECDSA is R‖S, each the
    /// coordinates' length; RFC 8037 §3.1: 64 bytes; RFC 8017 §8.1.2, §8.2.2: the modulus's).
    pub fn signature_len(&self) -> usize {
        match self {
            Self::Ec { curve, .. } => 2 * curve.coordinate_len(),
            Self::Ed25519 { .. } => 64,
            Self::Rsa { n, .. } => n.len(),
        }
    }

    /// An RSA key if it meets the policy both platforms enforce alike: a 2048–4096-bit odd
    /// modulus and the exponent 65537 (what jwt-simple accepted before verification moved behind
    /// the port).
    pub(crate) fn rsa(n: &[u8], e: &[u8]) -> Option<Self> {
        let n = trim_zeros(n);
        let e = trim_zeros(e);
        let first = n.first()?;
        let bits = n.len() * 8 - first.leading_zeros() as usize;
        let odd = n.last().is_some_and(|b| b & 1 == 1);
        ((2048..=4096).contains(&bits) && odd && e == [1, 0, 1]).then(|| Self::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        })
    }

    /// An EC key if both coordinates have the curve's length. Whether the point is on the curve
    /// is the platform's to check when it imports the key.
    pub(crate) fn ec(curve: Curve, x: Vec<u8>, y: Vec<u8>) -> Option<Self> {
        let len = curve.coordinate_len();
        (x.len() == len && y.len() == len).then_some(Self::Ec { curve, x, y })
    }

    /// An Ed25519 key if it is 32 bytes long.
    pub(crate) fn ed25519(x: Vec<u8>) -> Option<Self> {
        (x.len() == 32).then_some(Self::Ed25519 { x })
    }
}

/// Big-endian bytes without leading zeros.
pub(crate) fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The client's private key for `private_key_jwt` (RFC 7523 §2.2), normalised at configuration
/// time to PKCS#8 DER (RFC 5208 §5) whatever form it was given in. Zeroized on drop; `Debug`
/// shows the algorithm only.
pub struct ClientKey {
    algorithm: Algorithm,
    pkcs8: Zeroizing<Vec<u8>>,
    key_id: Option<String>,
}

impl ClientKey {
    /// A key from checked parts (see `client_auth::parse_private_key`).
    pub(crate) fn new(algorithm: Algorithm, pkcs8: Zeroizing<Vec<u8>>, key_id: Option<String>) -> Self {
        Self {
            algorithm,
            pkcs8,
            key_id,
        }
    }

    /// The algorithm its assertions are signed with: [`Algorithm::Es256`] (P-256 key) or
    /// [`Algorithm::Rs256`] (RSA key).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key as PKCS#8 DER `PrivateKeyInfo`, ready for WebCrypto's `importKey("pkcs8", …)` or
    /// RustCrypto's `from_pkcs8_der`.
    ///
    /// # Security
    /// The private key itself: never log it, keep copies short-lived.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The `kid` its JWK named, for the assertion's header.
    pub(crate) fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({}, [redacted])", self.algorithm.name())
    }
}
