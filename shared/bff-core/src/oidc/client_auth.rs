//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9).
//!
//! The key is read once, at configuration time, from any accepted form into PKCS#8 DER (RFC 5208
//! §5), the one form every [`Signatures`] implementation imports as it is (WebCrypto `pkcs8`,
//! RustCrypto `from_pkcs8_der`). The assertion's header and claims are built here, its `iat`,
//! `exp` and `jti` from the injected clock and randomness; only the signature comes from the port.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::keys::{Algorithm, ClientKey, PublicKey};
use crate::oidc::der::{self, Reader};
use crate::ports::{RandomError, SecureRandom, SignError, Signatures, UnixTime};

/// An assertion is valid this long.
const LIFETIME_SECS: u64 = 60;
/// Longer than any key we take: a 4096-bit RSA key is about 3.3 KB as PEM, 4.5 KB as JWK.
const MAX_KEY_TEXT: usize = 16 * 1024;
const BAD: &str = "must be an RSA or P-256 private key as PEM or JWK";
/// The order of P-256 (FIPS 186-5 / SEC 2 §2.4.2): a private scalar is in 1..n.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Why no assertion was made; either way the request answers 500.
#[derive(Debug)]
pub(crate) enum AssertionError {
    Random,
    /// The platform could not sign (its message, never the key).
    Sign(SignError),
}

/// Reads a PEM (PKCS#8 "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY") or JWK
/// (RSA, or EC P-256) private key into a [`ClientKey`].
///
/// # Errors
/// A description for the configuration error (never the key) when it is none of those.
pub(crate) fn parse_private_key(text: &str) -> Result<ClientKey, &'static str> {
    let text = text.trim();
    if text.len() > MAX_KEY_TEXT {
        return Err(BAD);
    }
    if text.starts_with('{') {
        return parse_jwk(text);
    }
    // Literal "\n" sequences appear when a PEM is pasted into a single-line variable. Sized up
    // front: a growing String would leave copies of the key behind in freed memory.
    let mut pem = Zeroizing::new(String::with_capacity(text.len()));
    let mut lines = text.split("\\n");
    pem.extend(lines.next());
    for line in lines {
        pem.push('\n');
        pem.push_str(line);
    }
    for (label, wrap) in [
        ("PRIVATE KEY", None),
        ("RSA PRIVATE KEY", Some(Algorithm::Rs256)),
        ("EC PRIVATE KEY", Some(Algorithm::Es256)),
    ] {
        let Some(der) = pem_block(&pem, label) else {
            continue;
        };
        let pkcs8 = match wrap {
            None => der,
            Some(algorithm) => wrap_pkcs8(algorithm, &der),
        };
        return from_pkcs8(pkcs8, None);
    }
    Err(BAD)
}

/// The DER inside the PEM block labelled `label` (RFC 7468 §2), if there is one. Text before it,
/// such as OpenSSL's "EC PARAMETERS" block, is ignored.
fn pem_block(pem: &str, label: &str) -> Option<Zeroizing<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = &pem[pem.find(&begin)? + begin.len()..];
    let body = &body[..body.find(&end)?];
    let mut base64 = Zeroizing::new(String::with_capacity(body.len()));
    base64.extend(body.split_ascii_whitespace());
    STANDARD.decode(base64.as_bytes()).ok().map(Zeroizing::new)
}

fn parse_jwk(text: &str) -> Result<ClientKey, &'static str> {
    let jwk: Value = serde_json::from_str(text).map_err(|_| BAD)?;
    let field = |name: &str| -> Option<Zeroizing<Vec<u8>>> {
        let value = jwk.get(name)?.as_str()?;
        URL_SAFE_NO_PAD.decode(value).ok().map(Zeroizing::new)
    };
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    let str_field = |name: &str| jwk.get(name).and_then(Value::as_str);
    let pkcs8 = match (str_field("kty"), str_field("crv")) {
        (Some("EC"), Some("P-256")) => {
            let d = field("d").ok_or(BAD)?;
            // RFC 7518 §6.2.2.1: `d` is the scalar in the coordinates' length. `x` and `y` are
            // left out: both platforms derive the public key from `d` on import, so a JWK whose
            // coordinates are short or stale cannot pass here and then fail every signature.
            let version = Zeroizing::new(der::unsigned(&[1]));
            let scalar = Zeroizing::new(der::write(der::OCTET_STRING, &d));
            let sec1 = Zeroizing::new(der::sequence(&[&version, &scalar]));
            wrap_pkcs8(Algorithm::Es256, &sec1)
        }
        (Some("RSA"), _) => {
            // RFC 8017 Appendix A.1.2 `RSAPrivateKey`, from the RFC 7518 §6.3.2 members.
            let mut integers = vec![Zeroizing::new(der::unsigned(&[0]))];
            for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                integers.push(Zeroizing::new(der::unsigned(&field(name).ok_or(BAD)?)));
            }
            let parts: Vec<&[u8]> = integers.iter().map(|i| i.as_slice()).collect();
            let pkcs1 = Zeroizing::new(der::sequence(&parts));
            wrap_pkcs8(Algorithm::Rs256, &pkcs1)
        }
        _ => return Err(BAD),
    };
    from_pkcs8(pkcs8, kid)
}

/// A PKCS#1 `RSAPrivateKey` (RFC 8017 Appendix A.1.2) or SEC1 `ECPrivateKey` (RFC 5915 §3) as
/// the `privateKey` of a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5) with its algorithm identifier
/// (RFC 8017 Appendix C; RFC 5480 §2.1.1).
fn wrap_pkcs8(algorithm: Algorithm, inner: &[u8]) -> Zeroizing<Vec<u8>> {
    let identifier = if algorithm == Algorithm::Rs256 {
        der::sequence(&[&der::write(der::OID, der::RSA_ENCRYPTION), &der::write(der::NULL, &[])])
    } else {
        der::sequence(&[
            &der::write(der::OID, der::EC_PUBLIC_KEY),
            &der::write(der::OID, der::P256),
        ])
    };
    let key = Zeroizing::new(der::write(der::OCTET_STRING, inner));
    Zeroizing::new(der::sequence(&[&der::unsigned(&[0]), &identifier, &key]))
}

/// Checks a PKCS#8 key's structure and learns its algorithm: an RSA key meeting the modulus
/// policy (RS256), or a P-256 key with a scalar in range (ES256). Whether an RSA key's numbers
/// belong together is the platform's to check when it imports the key.
fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>, kid: Option<String>) -> Result<ClientKey, &'static str> {
    let algorithm = pkcs8_algorithm(&pkcs8).ok_or(BAD)?;
    Ok(ClientKey::new(algorithm, pkcs8, kid))
}

fn pkcs8_algorithm(pkcs8: &[u8]) -> Option<Algorithm> {
    let mut outer = Reader::new(pkcs8);
    let mut info = Reader::new(outer.read(der::SEQUENCE)?);
    // RFC 5208 §5 version 0 only: WebCrypto's importer (BoringSSL) refuses RFC 5958's version 1,
    // and a key must not work on the Lambda and fail on the Worker.
    if !outer.is_empty() || info.read(der::INTEGER)? != [0] {
        return None;
    }
    let mut identifier = Reader::new(info.read(der::SEQUENCE)?);
    let private = info.read(der::OCTET_STRING)?;
    let oid = identifier.read(der::OID)?;
    if oid == der::RSA_ENCRYPTION {
        if identifier.peek() == Some(der::NULL) {
            identifier.read(der::NULL)?;
        }
        (identifier.is_empty() && rsa_key_fits(private)).then_some(Algorithm::Rs256)
    } else if oid == der::EC_PUBLIC_KEY {
        let curve = identifier.read(der::OID)?;
        (curve == der::P256 && identifier.is_empty() && p256_key_fits(private)).then_some(Algorithm::Es256)
    } else {
        None
    }
}

/// RFC 8017 Appendix A.1.2: a two-prime key (version 0) whose public part meets the policy.
fn rsa_key_fits(pkcs1: &[u8]) -> bool {
    let read = || -> Option<bool> {
        let mut outer = Reader::new(pkcs1);
        let mut key = Reader::new(outer.read(der::SEQUENCE)?);
        if !outer.is_empty() || key.read(der::INTEGER)? != [0] {
            return None;
        }
        let (n, e) = (key.read(der::INTEGER)?, key.read(der::INTEGER)?);
        for _ in 0..6 {
            key.read(der::INTEGER)?;
        }
        Some(key.is_empty() && PublicKey::rsa(n, e).is_some())
    };
    read().unwrap_or(false)
}

/// RFC 5915 §3: version 1, a 32-byte scalar in 1..n, and, when named, the curve P-256.
fn p256_key_fits(sec1: &[u8]) -> bool {
    let read = || -> Option<bool> {
        let mut outer = Reader::new(sec1);
        let mut key = Reader::new(outer.read(der::SEQUENCE)?);
        if !outer.is_empty() || key.read(der::INTEGER)? != [1] {
            return None;
        }
        let d = key.read(der::OCTET_STRING)?;
        let in_range = d.len() == 32 && d.iter().any(|b| *b != 0) && d < &P256_ORDER[..];
        if key.peek() == Some(der::CONTEXT_0) {
            let mut parameters = Reader::new(key.read(der::CONTEXT_0)?);
            if parameters.read(der::OID)? != der::P256 {
                return None;
            }
        }
        Some(in_range)
    };
    read().unwrap_or(false)
}

/// A fresh client assertion for `audience` (the issuer identifier, RFC 7523 §3 item 3), signed
/// through the port (RFC 7515 §5.1).
pub(crate) async fn assertion(
    key: &ClientKey,
    client_id: &str,
    audience: &str,
    now: UnixTime,
    random: &dyn SecureRandom,
    signatures: &dyn Signatures,
) -> Result<String, AssertionError> {
    let mut jti = [0u8; 16];
    random.fill(&mut jti).map_err(|_: RandomError| AssertionError::Random)?;
    let mut header = json!({"alg": key.algorithm().name(), "typ": "JWT"});
    if let Some(kid) = key.key_id() {
        header["kid"] = json!(kid);
    }
    let claims = json!({
        "iat": now.0,
        "exp": now.0.saturating_add(LIFETIME_SECS),
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signatures
        .sign(key, input.as_bytes())
        .await
        .map_err(AssertionError::Sign)?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
#[path = "client_auth_tests.rs"]
mod tests;
