//! DPoP (RFC 9449) for tokens handed to the browser (http-api.md: Browser-bound access tokens).
//!
//! The browser signs a proof for the authorization server's token endpoint with its
//! non-extractable key; the backend checks it against the thumbprint pinned in the session and
//! forwards it unchanged as the refresh request's `DPoP` header, so the access token minted is
//! bound to the browser's key. The proof is parsed and its `jwk` read here; the signature is
//! checked through the [`Signatures`] port.

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::keys::{Algorithm, Curve, PublicKey};
use crate::oidc::discovery::Metadata;
use crate::ports::{Signatures, UnixTime};
use crate::secret::constant_time_eq;
use crate::urls::parse_url;

/// RFC 9449 §4.1: the header that carries a proof, from the browser and on to the token endpoint.
pub(crate) const DPOP: &str = "dpop";
/// RFC 9449 §8.1: where the authorization server (and the backend, passing it on) puts a nonce.
pub(crate) const DPOP_NONCE: &str = "dpop-nonce";

/// RFC 9449 §4.3 check 11: `iat` within this many seconds of the backend's clock, either way.
pub(crate) const IAT_WINDOW_SECS: u64 = 60;
/// A proof with a P-256 `jwk`, a `jti` and a nonce is well under 1 KB; this bounds what is parsed
/// and forwarded.
const MAX_PROOF_LEN: usize = 4096;
/// RFC 9449 §8 and §9: a nonce is `1*NQCHAR`; a longer one than this is not forwarded.
const MAX_NONCE_LEN: usize = 512;
/// A `use_dpop_nonce` from the authorization server is remembered this long: a proof without a
/// nonce is then answered at once with the newest one instead of costing a round trip...
const NONCE_DUE_SECS: u64 = 300;
/// ...provided that nonce is this recent: providers rotate nonces (oidc-provider every 60 s, still
/// taking the previous ones for a while), and a stale one would spend the browser's only retry.
const NONCE_FRESH_SECS: u64 = 60;

/// What a proof must say.
pub(crate) struct Expected<'a> {
    /// The RFC 7638 thumbprint pinned in the session at login.
    pub(crate) jkt: &'a str,
    /// The authorization server's token endpoint, where the proof is forwarded.
    pub(crate) htu: &'a str,
    pub(crate) now: UnixTime,
}

/// A proof that passed every check.
#[derive(Debug)]
pub(crate) struct Proof {
    /// Whether it carries a `nonce` (checked by the authorization server, which issued it).
    pub(crate) has_nonce: bool,
}

/// Why a proof was refused; each becomes 400 `invalid_dpop_proof` with its description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProofError {
    Missing,
    Malformed,
    Type,
    Algorithm,
    Key,
    Thumbprint,
    Signature,
    Method,
    Uri,
    IssuedAt,
    Jti,
    Nonce,
}

impl ProofError {
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::Missing => "exactly one DPoP header is required",
            Self::Malformed => "the DPoP proof is not a compact JWS with JSON header and claims",
            Self::Type => "the DPoP proof's typ must be dpop+jwt",
            Self::Algorithm => "the DPoP proof must be signed with ES256",
            Self::Key => "the DPoP proof's jwk must be a public P-256 key",
            Self::Thumbprint => "the DPoP proof is not signed by the key pinned at sign-in",
            Self::Signature => "the DPoP proof's signature does not verify",
            Self::Method => "the DPoP proof's htm must be POST",
            Self::Uri => "the DPoP proof's htu must be the authorization server's token endpoint",
            Self::IssuedAt => "the DPoP proof's iat is not within 60 seconds of now",
            Self::Jti => "the DPoP proof needs a jti",
            Self::Nonce => "the DPoP proof's nonce must be a string",
        }
    }
}

/// RFC 9449 §4.3: checks `raw` for forwarding to `expected.htu`. The `jti` is checked for replay
/// by the authorization server, which sees every proof that reaches it.
pub(crate) async fn verify(
    raw: &str,
    expected: &Expected<'_>,
    signatures: &dyn Signatures,
) -> Result<Proof, ProofError> {
    if raw.len() > MAX_PROOF_LEN || !raw.is_ascii() {
        return Err(ProofError::Malformed);
    }
    let mut parts = raw.split('.');
    let (Some(header_part), Some(claims_part), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let header = json_object(header_part)?;
    // §4.3 checks 4–6: the type, an asymmetric algorithm we support, a public key.
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or_default();
    if !typ.eq_ignore_ascii_case("dpop+jwt") {
        return Err(ProofError::Type);
    }
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(ProofError::Algorithm);
    }
    // RFC 7515 §4.1.11: an extension we do not understand must not be ignored.
    if header.contains_key("crit") {
        return Err(ProofError::Malformed);
    }
    let (key, thumbprint) = match header.get("jwk") {
        Some(Value::Object(jwk)) => public_p256(jwk).ok_or(ProofError::Key)?,
        _ => return Err(ProofError::Key),
    };
    if !constant_time_eq(&thumbprint, expected.jkt) {
        return Err(ProofError::Thumbprint);
    }
    // RFC 7518 §3.4: an ES256 signature is `r ‖ s`, 64 bytes.
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .filter(|bytes| bytes.len() == 64)
        .ok_or(ProofError::Signature)?;
    let signed = &raw[..header_part.len() + 1 + claims_part.len()];
    // A point off the curve verifies nothing: the platform refuses it on import.
    if !signatures
        .verify(Algorithm::Es256, &key, signed.as_bytes(), &signature)
        .await
    {
        return Err(ProofError::Signature);
    }

    let claims = json_object(claims_part)?;
    // §4.3 checks 8–11.
    if claims.get("htm").and_then(Value::as_str) != Some("POST") {
        return Err(ProofError::Method);
    }
    let htu = claims.get("htu").and_then(Value::as_str).ok_or(ProofError::Uri)?;
    if !same_target(htu, expected.htu) {
        return Err(ProofError::Uri);
    }
    let iat = claims.get("iat").and_then(Value::as_u64).ok_or(ProofError::IssuedAt)?;
    if iat.abs_diff(expected.now.0) > IAT_WINDOW_SECS {
        return Err(ProofError::IssuedAt);
    }
    match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() => {}
        _ => return Err(ProofError::Jti),
    }
    let has_nonce = match claims.get("nonce") {
        None => false,
        Some(Value::String(nonce)) if !nonce.is_empty() => true,
        Some(_) => return Err(ProofError::Nonce),
    };
    Ok(Proof { has_nonce })
}

/// RFC 9449 §4.3 check 6: the header's `jwk` is a public P-256 key (RFC 7518 §6.2.1) — no
/// private members (§6.2.2), coordinates of 32 bytes — with its RFC 7638 §3 thumbprint: the
/// SHA-256 of the required members in lexicographic order, without whitespace.
fn public_p256(jwk: &Map<String, Value>) -> Option<(PublicKey, String)> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    if member("kty") != Some("EC") || member("crv") != Some("P-256") {
        return None;
    }
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|m| jwk.contains_key(*m))
    {
        return None;
    }
    // RFC 7517 §4.2–4.4: a key that says it is for something else is not a proof key.
    let for_signing = match jwk.get("key_ops") {
        None => true,
        Some(Value::Array(ops)) => ops.iter().any(|op| op.as_str() == Some("verify")),
        Some(_) => false,
    };
    if !for_signing
        || jwk.get("use").is_some_and(|u| u.as_str() != Some("sig"))
        || jwk.get("alg").is_some_and(|a| a.as_str() != Some("ES256"))
    {
        return None;
    }
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(member(name)?).ok();
    let key = PublicKey::ec(Curve::P256, coordinate("x")?, coordinate("y")?)?;
    let PublicKey::Ec { x, y, .. } = &key else {
        return None;
    };
    // Re-encoded from the bytes, so the thumbprint is of the canonical form.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    Some((key, thumbprint))
}

/// §4.3 check 9: `htu` names the endpoint, ignoring query and fragment, compared after the URL
/// parser's normalisation (scheme and host case, default port, dot segments; RFC 3986 §6.2.2–3).
fn same_target(htu: &str, endpoint: &str) -> bool {
    let strip = |text: &str| {
        parse_url(text).map(|mut url| {
            url.set_query(None);
            url.set_fragment(None);
            url
        })
    };
    matches!((strip(htu), strip(endpoint)), (Some(a), Some(b)) if a == b)
}

fn json_object(part: &str) -> Result<Map<String, Value>, ProofError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| ProofError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| ProofError::Malformed)
}

/// Whether the authorization server takes the proofs browsers make here (RFC 9449 §5.1).
pub(crate) fn offered(metadata: &Metadata) -> bool {
    metadata
        .dpop_signing_alg_values_supported
        .iter()
        .any(|alg| alg == "ES256")
}

/// Whether `jkt` is what a login may pin: a base64url SHA-256 thumbprint (RFC 7638 §3; RFC 9449 §10).
pub(crate) fn is_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43 && URL_SAFE_NO_PAD.decode(jkt).is_ok_and(|bytes| bytes.len() == 32)
}

/// A `DPoP-Nonce` value worth passing on: `1*NQCHAR` (RFC 9449 §8.1), bounded.
pub(crate) fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce
            .bytes()
            .all(|b| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b))
}

/// The authorization server's newest nonce as this isolate or container saw it, and when it last
/// demanded one (owned data only).
#[derive(Default)]
pub(crate) struct Nonces(Mutex<NonceState>);

#[derive(Default)]
struct NonceState {
    latest: Option<(String, UnixTime)>,
    demanded: Option<UnixTime>,
}

impl Nonces {
    /// Remembers a nonce the authorization server sent; `demanded` when it came with
    /// `use_dpop_nonce`.
    pub(crate) fn saw(&self, nonce: &str, demanded: bool, now: UnixTime) {
        if let Ok(mut state) = self.0.lock() {
            state.latest = Some((nonce.to_owned(), now));
            if demanded {
                state.demanded = Some(now);
            }
        }
    }

    /// The newest nonce, if it arrived at or after `since`: what a response passes on.
    pub(crate) fn since(&self, since: UnixTime) -> Option<String> {
        let state = self.0.lock().ok()?;
        state
            .latest
            .as_ref()
            .filter(|(_, at)| *at >= since)
            .map(|(nonce, _)| nonce.clone())
    }

    /// The nonce to answer a proof without one with, when the authorization server recently
    /// demanded nonces: it would refuse that proof anyway, after a round trip.
    pub(crate) fn due(&self, now: UnixTime) -> Option<String> {
        let state = self.0.lock().ok()?;
        let recent = state.demanded.is_some_and(|at| at.until(now) < NONCE_DUE_SECS);
        let fresh = |seen: UnixTime| seen.until(now) < NONCE_FRESH_SECS;
        state
            .latest
            .as_ref()
            .filter(|(_, seen)| recent && fresh(*seen))
            .map(|(nonce, _)| nonce.clone())
    }
}

#[cfg(test)]
#[path = "dpop_tests.rs"]
mod tests;
