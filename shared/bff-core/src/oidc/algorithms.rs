//! The signing algorithms the backend verifies, and the allow-list for one issuer (OpenID
//! Connect Core §3.1.3.7 step 6; RFC 8725 §3.1): never `none`, never an HMAC algorithm.

use std::collections::HashSet;

/// Asymmetric algorithms this backend verifies. `none` and HMAC are never accepted.
const SUPPORTED: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Whether `alg` may appear on an allow-list.
pub(crate) fn is_supported_alg(alg: &str) -> bool {
    SUPPORTED.contains(&alg)
}

/// The JWK `kty` that carries keys for `alg`.
pub(crate) fn key_type(alg: &str) -> Option<&'static str> {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => Some("RSA"),
        "ES256" | "ES384" => Some("EC"),
        "EdDSA" => Some("OKP"),
        _ => None,
    }
}

/// The algorithms allowed for ID tokens: the configured list, else the issuer's advertised ones,
/// else RS256 (Core §3.1.3.7 step 6 default); never `none` or HMAC.
pub(crate) fn allowed_algs(configured: Option<&[String]>, advertised: &[String]) -> HashSet<String> {
    let source: Vec<String> = match configured {
        Some(list) => list.to_vec(),
        None if advertised.is_empty() => vec!["RS256".to_owned()],
        None => advertised.to_vec(),
    };
    source.into_iter().filter(|a| is_supported_alg(a)).collect()
}
