//! Issuer metadata (OpenID Connect Discovery 1.0 §3–4) and the issuer's JWKS.

use crate::urls::parse_url;
use serde::Deserialize;

use crate::config::Config;

/// The fields of the issuer's metadata the backend uses.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Metadata {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    pub(crate) jwks_uri: String,
    #[serde(default)]
    pub(crate) userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) revocation_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) end_session_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
    /// RFC 9449 §5.1: the proof algorithms the token endpoint accepts.
    #[serde(default)]
    pub(crate) dpop_signing_alg_values_supported: Vec<String>,
    /// RFC 9126 §5: where authorization requests are pushed. Read leniently, like the flag
    /// below: the same metadata serves refresh, revocation and logout, which a malformed field
    /// of a feature they do not use must not stop. One that is not a usable URL is absent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) pushed_authorization_request_endpoint: Option<String>,
    /// RFC 9126 §5: the issuer takes only pushed authorization requests (only `true` says so).
    #[serde(default, deserialize_with = "lenient_true")]
    pub(crate) require_pushed_authorization_requests: bool,
}

fn lenient_string<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(from)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

fn lenient_true<'de, D: serde::Deserializer<'de>>(from: D) -> Result<bool, D::Error> {
    Ok(serde_json::Value::deserialize(from)? == serde_json::Value::Bool(true))
}

/// Why metadata was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MetadataError {
    /// Not JSON of the expected shape.
    Malformed,
    /// `issuer` differs from the configured one (Discovery §4.3).
    IssuerMismatch,
    /// An endpoint is not https (or loopback http where allowed).
    InsecureEndpoint,
}

/// The metadata URL: `<issuer>/.well-known/openid-configuration` (Discovery §4).
pub(crate) fn metadata_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// Parses and checks metadata against the configuration.
pub(crate) fn parse_metadata(body: &[u8], config: &Config) -> Result<Metadata, MetadataError> {
    let mut metadata: Metadata = serde_json::from_slice(body).map_err(|_| MetadataError::Malformed)?;
    // Discovery §4.3: the issuer MUST be identical to the one used to fetch the metadata.
    if metadata.issuer != config.issuer {
        return Err(MetadataError::IssuerMismatch);
    }
    let endpoints = [
        Some(&metadata.authorization_endpoint),
        Some(&metadata.token_endpoint),
        Some(&metadata.jwks_uri),
        metadata.userinfo_endpoint.as_ref(),
        metadata.revocation_endpoint.as_ref(),
        metadata.end_session_endpoint.as_ref(),
    ];
    for endpoint in endpoints.into_iter().flatten() {
        let url = parse_url(endpoint).ok_or(MetadataError::Malformed)?;
        if !config.endpoint_allowed(&url) {
            return Err(MetadataError::InsecureEndpoint);
        }
    }
    let usable = |endpoint: &String| parse_url(endpoint).is_some_and(|url| config.endpoint_allowed(&url));
    if !metadata
        .pushed_authorization_request_endpoint
        .as_ref()
        .is_some_and(usable)
    {
        metadata.pushed_authorization_request_endpoint = None;
    }
    Ok(metadata)
}

/// One JSON Web Key (RFC 7517), public parts only.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Jwk {
    pub(crate) kty: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) alg: Option<String>,
    #[serde(default, rename = "use")]
    pub(crate) usage: Option<String>,
    #[serde(default)]
    pub(crate) crv: Option<String>,
    #[serde(default)]
    pub(crate) n: Option<String>,
    #[serde(default)]
    pub(crate) e: Option<String>,
    #[serde(default)]
    pub(crate) x: Option<String>,
    #[serde(default)]
    pub(crate) y: Option<String>,
}

/// A JWK Set.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Jwks {
    pub(crate) keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWK Set, skipping keys it cannot use rather than failing on them.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body).ok()?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value(k).ok())
            .collect();
        Some(Self { keys })
    }

    /// The signing keys that can verify a token with header `kid` and `alg`.
    pub(crate) fn candidates<'a>(&'a self, kid: Option<&'a str>, alg: &'a str) -> impl Iterator<Item = &'a Jwk> + 'a {
        let kty = crate::oidc::algorithms::key_type(alg);
        self.keys.iter().filter(move |k| {
            k.usage.as_deref().is_none_or(|u| u == "sig")
                && k.alg.as_deref().is_none_or(|a| a == alg)
                && Some(k.kty.as_str()) == kty
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jwks_skips_unusable_keys() {
        let jwks = Jwks::parse(br#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"},{"bogus":1},{"kty":"EC","kid":"b","crv":"P-256","x":"x","y":"y","use":"enc"}]}"#).unwrap();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(jwks.candidates(Some("a"), "RS256").count(), 1);
        assert_eq!(jwks.candidates(Some("a"), "ES256").count(), 0);
        assert_eq!(
            jwks.candidates(Some("b"), "ES256").count(),
            0,
            "encryption keys never verify"
        );
        assert_eq!(jwks.candidates(None, "RS256").count(), 1);
        assert!(Jwks::parse(b"not json").is_none());
    }

    #[test]
    fn a_par_endpoint_is_used_only_when_it_is_a_safe_url() {
        let config = crate::config::tests::config(&[]);
        let metadata = |par: &str| {
            serde_json::json!({
                "issuer": "https://idp.example",
                "authorization_endpoint": "https://idp.example/authorize",
                "token_endpoint": "https://idp.example/token",
                "jwks_uri": "https://idp.example/jwks",
                "pushed_authorization_request_endpoint": par,
                "require_pushed_authorization_requests": true,
            })
            .to_string()
        };
        let parsed = parse_metadata(metadata("https://idp.example/par").as_bytes(), &config).unwrap();
        assert_eq!(
            parsed.pushed_authorization_request_endpoint.as_deref(),
            Some("https://idp.example/par")
        );
        assert!(parsed.require_pushed_authorization_requests);
        // A bad PAR field is no PAR endpoint; the rest of the metadata stays usable (refresh,
        // revocation and logout need it whatever BFF_PAR says).
        for bad in ["http://idp.example/par", "not a url", ""] {
            let parsed = parse_metadata(metadata(bad).as_bytes(), &config).unwrap();
            assert_eq!(parsed.pushed_authorization_request_endpoint, None, "{bad}");
        }
        for odd in [json!(null), json!("true"), json!(1), json!({})] {
            let mut body: serde_json::Value = serde_json::from_str(&metadata("https://idp.example/par")).unwrap();
            body["require_pushed_authorization_requests"] = odd.clone();
            body["pushed_authorization_request_endpoint"] = odd.clone();
            let parsed = parse_metadata(body.to_string().as_bytes(), &config).unwrap();
            assert!(!parsed.require_pushed_authorization_requests, "{odd}");
            assert_eq!(parsed.pushed_authorization_request_endpoint, None, "{odd}");
        }
    }
}
