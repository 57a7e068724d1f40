//! Token endpoint requests and responses (RFC 6749 §4.1.3, §5, §6), revocation (RFC 7009 §2.1).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use url::form_urlencoded::{Serializer, byte_serialize};

use crate::config::{ClientAuth, Config};
use crate::oidc::client_auth;
use crate::oidc::client_auth::AssertionError;
use crate::ports::{Level, Log, SecureRandom, Signatures, UnixTime};

/// What is being exchanged at the token endpoint.
pub(crate) enum Grant<'a> {
    /// RFC 6749 §4.1.3 with the PKCE verifier (RFC 7636 §4.5).
    /// With several resources granted, `resource` picks the one the first token is for (RFC 8707
    /// §2.2: one token has one audience).
    AuthorizationCode {
        code: &'a str,
        verifier: &'a str,
        resource: Option<&'a str>,
    },
    /// RFC 6749 §6, optionally narrowed by `scope` and `resource` (RFC 8707 §2.2).
    Refresh {
        refresh_token: &'a str,
        scope: Option<&'a str>,
        resource: Option<&'a str>,
    },
}

/// The `private_key_jwt` assertion for one request, when that is the configured method. A key the
/// platform cannot sign with is only found out here (configuration checks its structure, not its
/// numbers), so that is logged for the operator.
pub(crate) async fn client_assertion(
    config: &Config,
    signatures: &dyn Signatures,
    now: UnixTime,
    random: &dyn SecureRandom,
    log: &dyn Log,
) -> Result<Option<String>, AssertionError> {
    match &config.client_auth {
        ClientAuth::PrivateKeyJwt(key) => {
            let signed = client_auth::assertion(key, &config.client_id, &config.issuer, now, random, signatures).await;
            if let Err(AssertionError::Sign(why)) = &signed {
                log.line(
                    Level::Error,
                    &format!("private_key_jwt: {why}; check BFF_CLIENT_PRIVATE_KEY"),
                );
            }
            signed.map(Some)
        }
        ClientAuth::SecretBasic | ClientAuth::SecretPost => Ok(None),
    }
}

/// Builds the token request for `grant`, authenticated as the configuration says (`assertion`
/// from [`client_assertion`]).
pub(crate) fn token_request(
    config: &Config,
    endpoint: &str,
    grant: &Grant<'_>,
    assertion: Option<&str>,
) -> http::Request<Vec<u8>> {
    let mut form = Serializer::new(String::new());
    match grant {
        Grant::AuthorizationCode {
            code,
            verifier,
            resource,
        } => {
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &config.redirect_uri())
                .append_pair("code_verifier", verifier);
            if let Some(resource) = resource {
                form.append_pair("resource", resource);
            }
        }
        Grant::Refresh {
            refresh_token,
            scope,
            resource,
        } => {
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh_token);
            if let Some(scope) = scope {
                form.append_pair("scope", scope);
            }
            if let Some(resource) = resource {
                form.append_pair("resource", resource);
            }
        }
    }
    authenticated_post(config, endpoint, form, assertion)
}

/// RFC 7009 §2.1: revoke a refresh token.
pub(crate) fn revocation_request(
    config: &Config,
    endpoint: &str,
    refresh_token: &str,
    assertion: Option<&str>,
) -> http::Request<Vec<u8>> {
    let mut form = Serializer::new(String::new());
    form.append_pair("token", refresh_token)
        .append_pair("token_type_hint", "refresh_token");
    authenticated_post(config, endpoint, form, assertion)
}

/// A form POST to an endpoint that authenticates the client (RFC 6749 §2.3; RFC 7523 §2.2).
pub(crate) fn authenticated_post(
    config: &Config,
    endpoint: &str,
    mut form: Serializer<'_, String>,
    assertion: Option<&str>,
) -> http::Request<Vec<u8>> {
    let secret = config.client_secret.as_ref().map(|s| s.expose()).unwrap_or_default();
    let mut builder = http::Request::post(endpoint)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    match &config.client_auth {
        ClientAuth::SecretBasic => {
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
            let id: String = byte_serialize(config.client_id.as_bytes()).collect();
            let secret: String = byte_serialize(secret.as_bytes()).collect();
            builder = builder.header(
                AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            );
        }
        ClientAuth::SecretPost => {
            form.append_pair("client_id", &config.client_id)
                .append_pair("client_secret", secret);
        }
        // RFC 7523 §2.2 and OpenID Connect Core §9.
        ClientAuth::PrivateKeyJwt(_) => {
            form.append_pair("client_id", &config.client_id)
                .append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", assertion.unwrap_or_default());
        }
    }
    let body = form.finish().into_bytes();
    builder.body(body).unwrap_or_default()
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Deserialize)]
pub(crate) struct TokenSet {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    /// A number or a string of digits (some providers send `"3600"`); anything else is absent.
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

fn lenient_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    use serde_json::Value;
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            // A fractional or huge number: whole seconds, saturating (`as` saturates).
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)
        }),
        Some(Value::String(s)) if (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.parse().unwrap_or(u64::MAX))
        }
        _ => None,
    })
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What went wrong talking to the authorization server. Never carries a body that might hold a
/// token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// Unreachable, timed out, or a 5xx: try again later; nothing changes.
    Unavailable,
    /// An OAuth error response (RFC 6749 §5.2), passed through (draft-01 §4.3.3).
    OAuth { error: String, description: Option<String> },
    /// A response that is neither a valid success nor an OAuth error.
    Malformed,
}

impl UpstreamError {
    /// RFC 6749 §5.2 `invalid_grant`: the refresh token (or code) is dead.
    pub(crate) fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::OAuth { error, .. } if error == "invalid_grant")
    }
}

/// Parses a token endpoint response.
pub(crate) fn parse_token_response(
    response: &http::Response<Vec<u8>>,
    proof_sent: bool,
) -> Result<TokenSet, UpstreamError> {
    let status = response.status();
    if status.is_server_error() {
        return Err(UpstreamError::Unavailable);
    }
    if !status.is_success() {
        return Err(parse_error(response.body()).unwrap_or(UpstreamError::Malformed));
    }
    let tokens: TokenSet = serde_json::from_slice(response.body()).map_err(|_| UpstreamError::Malformed)?;
    // RFC 6749 §7.1: a type the client does not understand is not usable; a DPoP-bound token
    // (RFC 9449 §5) only where a proof was sent.
    let understood = tokens.token_type.eq_ignore_ascii_case("bearer") || (proof_sent && tokens.is_dpop_bound());
    if !understood || tokens.access_token.is_empty() {
        return Err(UpstreamError::Malformed);
    }
    Ok(tokens)
}

impl TokenSet {
    /// RFC 9449 §5: the access token is bound to the proof's key.
    pub(crate) fn is_dpop_bound(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("dpop")
    }
}

/// Parses an RFC 6749 §5.2 error body, keeping only characters §5.2 allows.
pub(crate) fn parse_error(body: &[u8]) -> Option<UpstreamError> {
    #[derive(Deserialize)]
    struct Raw {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(body).ok()?;
    let allowed = |c: char| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    if raw.error.is_empty() || raw.error.len() > 128 || !raw.error.chars().all(allowed) {
        return None;
    }
    let description = raw
        .error_description
        .map(|d| d.chars().filter(|c| allowed(*c)).take(300).collect());
    Some(UpstreamError::OAuth {
        error: raw.error,
        description,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::config;

    /// A provider's answer, for the tests of what reads one.
    pub(crate) fn response(status: u16, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn refresh_request_with_basic_auth() {
        let config = config(&[("BFF_CLIENT_ID", "my client"), ("BFF_CLIENT_SECRET", "p@ss:word")]);
        let grant = Grant::Refresh {
            refresh_token: "rt",
            scope: Some("api:read"),
            resource: Some("https://api.example/"),
        };
        let request = token_request(&config, "https://idp.example/token", &grant, None);
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.body(),
            b"grant_type=refresh_token&refresh_token=rt&scope=api%3Aread&resource=https%3A%2F%2Fapi.example%2F"
        );
        let auth = request.headers()[AUTHORIZATION].to_str().unwrap();
        assert_eq!(auth, format!("Basic {}", STANDARD.encode("my+client:p%40ss%3Aword")));
    }

    #[test]
    fn code_request_with_post_auth() {
        let config = config(&[("BFF_CLIENT_AUTH", "client_secret_post")]);
        let request = token_request(
            &config,
            "https://idp.example/token",
            &Grant::AuthorizationCode {
                code: "c",
                verifier: "v",
                resource: None,
            },
            None,
        );
        assert!(request.headers().get(AUTHORIZATION).is_none());
        assert_eq!(
            std::str::from_utf8(request.body()).unwrap(),
            "grant_type=authorization_code&code=c&redirect_uri=https%3A%2F%2Fapp.example%2Fbff%2Fcallback&code_verifier=v&client_id=bff&client_secret=s3cret"
        );
    }

    #[test]
    fn private_key_jwt_form() {
        let jwk = r#"{"kty":"EC","crv":"P-256","d":"BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU"}"#;
        let config = config(&[
            ("BFF_CLIENT_AUTH", "private_key_jwt"),
            ("BFF_CLIENT_SECRET", ""),
            ("BFF_CLIENT_PRIVATE_KEY", jwk),
        ]);
        let random = crate::testing::CounterRandom::default();
        let assertion = futures::executor::block_on(client_assertion(
            &config,
            &crate::RustCrypto,
            UnixTime(1_900_000_000),
            &random,
            &crate::testing::MemoryLog::default(),
        ))
        .unwrap()
        .unwrap();
        let grant = Grant::Refresh {
            refresh_token: "rt",
            scope: None,
            resource: None,
        };
        let request = token_request(&config, "https://idp.example/token", &grant, Some(&assertion));
        assert!(request.headers().get(AUTHORIZATION).is_none());
        let body = std::str::from_utf8(request.body()).unwrap();
        assert!(body.ends_with(&format!(
            "&client_id=bff&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        )));
        assert!(!body.contains("client_secret"));
    }

    fn parse_token_response_(response: &http::Response<Vec<u8>>) -> Result<TokenSet, UpstreamError> {
        parse_token_response(response, false)
    }

    #[test]
    fn dpop_bound_only_after_a_proof() {
        let bound = response(200, r#"{"access_token":"at","token_type":"DPoP"}"#);
        assert!(parse_token_response(&bound, true).unwrap().is_dpop_bound());
        assert_eq!(
            parse_token_response(&bound, false).unwrap_err(),
            UpstreamError::Malformed
        );
        let bearer = response(200, r#"{"access_token":"at","token_type":"bearer"}"#);
        assert!(!parse_token_response(&bearer, true).unwrap().is_dpop_bound());
    }

    #[test]
    fn responses() {
        let ok = parse_token_response_(&response(
            200,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":10,"refresh_token":"rt"}"#,
        ))
        .unwrap();
        assert_eq!((ok.access_token.as_str(), ok.expires_in), ("at", Some(10)));
        assert_eq!(
            parse_token_response_(&response(200, r#"{"access_token":"at","token_type":"DPoP"}"#)).unwrap_err(),
            UpstreamError::Malformed
        );
        assert_eq!(
            parse_token_response_(&response(200, "garbage")).unwrap_err(),
            UpstreamError::Malformed
        );
        assert_eq!(
            parse_token_response_(&response(502, "")).unwrap_err(),
            UpstreamError::Unavailable
        );
        assert_eq!(
            parse_token_response_(&response(
                400,
                r#"{"error":"invalid_grant","error_description":"grant \"x\" revoked"}"#
            ))
            .unwrap_err(),
            UpstreamError::OAuth {
                error: "invalid_grant".into(),
                description: Some("grant x revoked".into())
            }
        );
        assert_eq!(
            parse_token_response_(&response(400, r#"{"error":"bad\"code"}"#)).unwrap_err(),
            UpstreamError::Malformed
        );
        assert!(!format!("{ok:?}").contains("at\""));
    }
}
