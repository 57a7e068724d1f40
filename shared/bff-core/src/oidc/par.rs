//! Pushed authorization requests (RFC 9126): whether to push, the push itself, its answer, and
//! the short front-channel request that follows.

use std::fmt;

use serde::Deserialize;
use url::Url;
use url::form_urlencoded::Serializer;

use crate::config::{ClientAuth, Config};
use crate::oidc::discovery::Metadata;
use crate::oidc::token::{self, UpstreamError};

/// A `request_uri` longer than this is refused: it goes into the browser's URL, and RFC 9126 §2.2
/// leaves its length to the server, which has no reason to make it long.
const MAX_REQUEST_URI: usize = 2048;
/// A push answer holds two short members (RFC 9126 §2.2); anything larger is not one.
const MAX_PUSH_RESPONSE: usize = 16 * 1024;

/// `BFF_PAR`: whether the authorization request is pushed first (http-api.md: Configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParMode {
    /// Pushed when the issuer's metadata names a `pushed_authorization_request_endpoint`.
    Auto,
    /// Never pushed.
    Off,
    /// Always pushed; metadata without the endpoint is a configuration error.
    Required,
}

impl ParMode {
    /// The setting's values; unset is the first.
    pub(crate) const CHOICES: &[(&str, Self)] =
        &[("auto", Self::Auto), ("off", Self::Off), ("required", Self::Required)];
}

/// `BFF_PAR` and the issuer's metadata disagree: every sign-in would fail at the provider, or
/// the operator asked for something the provider does not offer. The text names the setting.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Misconfigured(pub(crate) &'static str);

/// Where the authorization request is pushed, or `None` for a plain one in the URL.
///
/// # Errors
/// [`Misconfigured`] when `BFF_PAR=required` and the issuer offers no endpoint, or when the issuer
/// requires pushed requests (RFC 9126 §5 `require_pushed_authorization_requests`) and they are
/// off or impossible. Sending a plain request anyway would only strand the user on the provider's
/// error page, so the backend refuses up front and says why in its log.
pub(crate) fn push_endpoint(mode: ParMode, metadata: &Metadata) -> Result<Option<&str>, Misconfigured> {
    let endpoint = metadata.pushed_authorization_request_endpoint.as_deref();
    let required_by_issuer = metadata.require_pushed_authorization_requests;
    match (mode, endpoint) {
        (ParMode::Off, _) if required_by_issuer => Err(Misconfigured(
            "BFF_PAR is off, but the issuer's metadata says require_pushed_authorization_requests: \
             it refuses every authorization request that is not pushed; set BFF_PAR=auto",
        )),
        (ParMode::Off, _) => Ok(None),
        (ParMode::Required, None) => Err(Misconfigured(
            "BFF_PAR is required, but the issuer's metadata lists no pushed_authorization_request_endpoint",
        )),
        (ParMode::Auto, None) if required_by_issuer => Err(Misconfigured(
            "the issuer's metadata says require_pushed_authorization_requests but lists no \
             pushed_authorization_request_endpoint; BFF_PAR cannot help until the issuer is fixed",
        )),
        (_, endpoint) => Ok(endpoint),
    }
}

/// RFC 9126 §2.1: the authorization request's parameters as a form, POSTed with the client
/// authentication the token endpoint gets (`assertion` from [`token::client_assertion`]).
/// `client_id` is an authorization request parameter and goes in once: `client_secret_post` and
/// `private_key_jwt` put it in the form themselves, `client_secret_basic` does not.
pub(crate) fn push_request(
    config: &Config,
    endpoint: &str,
    params: &[(&str, String)],
    assertion: Option<&str>,
) -> http::Request<Vec<u8>> {
    let mut form = Serializer::new(String::new());
    for (name, value) in params {
        let added_by_authentication = *name == "client_id" && !matches!(config.client_auth, ClientAuth::SecretBasic);
        if !added_by_authentication {
            form.append_pair(name, value);
        }
    }
    token::authenticated_post(config, endpoint, form, assertion)
}

/// A successful push (RFC 9126 §2.2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pushed {
    pub(crate) request_uri: String,
    pub(crate) expires_in: u64,
}

/// Why a push answer was not used. Carries the status and the OAuth error (sanitised as
/// [`token::parse_error`] does), never the body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// A success answer that is not RFC 9126 §2.2 JSON, or breaks one of its bounds.
    Malformed(&'static str),
    /// RFC 9126 §2.3: an OAuth error answer (RFC 6749 §5.2).
    OAuth {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// Any other status.
    Status(u16),
}

impl PushError {
    /// The provider refused this authorization request: RFC 9126 §2.3 moves the errors of the
    /// authorization endpoint (RFC 6749 §4.1.2.1) and of client authentication to the push, so
    /// trying again cannot help. A 5xx, or `server_error` and `temporarily_unavailable`, is an
    /// outage instead.
    pub(crate) fn refusal(self) -> Option<(String, Option<String>)> {
        match self {
            Self::OAuth {
                status,
                error,
                description,
            } if status < 500 && error != "server_error" && error != "temporarily_unavailable" => {
                Some((error, description))
            }
            _ => None,
        }
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "unusable answer: {why}"),
            Self::OAuth { status, error, .. } => write!(f, "status {status}, error {error}"),
            Self::Status(status) => write!(f, "status {status}"),
        }
    }
}

/// Reads a push answer: `request_uri` and `expires_in` from a 201 (RFC 9126 §2.2), or an error.
///
/// # Errors
/// [`PushError`] for any other answer, including one a byte over its bounds.
pub(crate) fn parse_push_response(response: &http::Response<Vec<u8>>) -> Result<Pushed, PushError> {
    #[derive(Deserialize)]
    struct Raw {
        request_uri: String,
        expires_in: serde_json::Number,
    }
    let status = response.status().as_u16();
    // §2.2 says 201 Created; a 200 is the same answer from a server that skips the nuance.
    if status != 201 && status != 200 {
        return Err(match token::parse_error(response.body()) {
            Some(UpstreamError::OAuth { error, description }) => PushError::OAuth {
                status,
                error,
                description,
            },
            // RFC 6749 §5.2: a 401 is failed client authentication, with or without a body (a
            // server may answer with only `WWW-Authenticate`); a 403 without one, the same.
            _ if status == 401 || status == 403 => PushError::OAuth {
                status,
                error: "invalid_client".to_owned(),
                description: None,
            },
            _ => PushError::Status(status),
        });
    }
    if response.body().len() > MAX_PUSH_RESPONSE {
        return Err(PushError::Malformed("larger than 16 KiB"));
    }
    let raw: Raw = serde_json::from_slice(response.body())
        .map_err(|_| PushError::Malformed("not JSON with request_uri and expires_in"))?;
    // §2.2: the URI is opaque to the client (a `urn:ietf:params:oauth:request_uri:` prefix is
    // only an example); it goes into a URL, so printable ASCII of a sane length.
    let uri_ok = !raw.request_uri.is_empty()
        && raw.request_uri.len() <= MAX_REQUEST_URI
        && raw.request_uri.bytes().all(|b| b.is_ascii_graphic());
    if !uri_ok {
        return Err(PushError::Malformed(
            "request_uri is not 1-2048 printable ASCII characters",
        ));
    }
    // §2.2: "a positive integer".
    let expires_in = raw
        .expires_in
        .as_u64()
        .filter(|seconds| *seconds > 0)
        .ok_or(PushError::Malformed("expires_in is not a positive integer"))?;
    Ok(Pushed {
        request_uri: raw.request_uri,
        expires_in,
    })
}

/// RFC 9126 §4: the front-channel request names the client and the pushed request, nothing more.
/// A query the endpoint has of its own is kept (RFC 6749 §3.1).
pub(crate) fn authorization_redirect(mut endpoint: Url, client_id: &str, request_uri: &str) -> Url {
    endpoint
        .query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri);
    endpoint
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::oidc::token::tests::response;
    use crate::urls::parse_url;

    fn metadata(endpoint: Option<&str>, required: bool) -> Metadata {
        let mut json = serde_json::json!({
            "issuer": "https://idp.example",
            "authorization_endpoint": "https://idp.example/authorize",
            "token_endpoint": "https://idp.example/token",
            "jwks_uri": "https://idp.example/jwks",
            "require_pushed_authorization_requests": required,
        });
        if let Some(endpoint) = endpoint {
            json["pushed_authorization_request_endpoint"] = endpoint.into();
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_mode_and_the_metadata_decide() {
        let par = Some("https://idp.example/par");
        let cases = [
            (ParMode::Auto, par, false, Ok(par)),
            (ParMode::Auto, None, false, Ok(None)),
            (ParMode::Off, par, false, Ok(None)),
            (ParMode::Required, par, false, Ok(par)),
            (ParMode::Required, par, true, Ok(par)),
            (ParMode::Auto, par, true, Ok(par)),
        ];
        for (mode, endpoint, required, expected) in cases {
            let metadata = metadata(endpoint, required);
            assert_eq!(push_endpoint(mode, &metadata).map_err(|_| ()), expected, "{mode:?}");
        }
        for (mode, endpoint, required) in [
            (ParMode::Required, None, false),
            (ParMode::Off, par, true),
            (ParMode::Auto, None, true),
        ] {
            let Err(Misconfigured(why)) = push_endpoint(mode, &metadata(endpoint, required)) else {
                panic!("{mode:?} {endpoint:?} {required}");
            };
            assert!(why.contains("BFF_PAR"), "{why}");
        }
    }

    fn params() -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", "bff".into()),
            ("scope", "openid".into()),
        ]
    }

    #[test]
    fn basic_auth_keeps_client_id_in_the_form() {
        let config = config(&[]);
        let request = push_request(&config, "https://idp.example/par", &params(), None);
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri(), "https://idp.example/par");
        assert!(
            request.headers()["authorization"]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        assert_eq!(request.body(), b"response_type=code&client_id=bff&scope=openid");
    }

    #[test]
    fn post_and_jwt_auth_send_client_id_once() {
        let post = config(&[("BFF_CLIENT_AUTH", "client_secret_post")]);
        let request = push_request(&post, "https://idp.example/par", &params(), None);
        assert!(request.headers().get("authorization").is_none());
        assert_eq!(
            request.body(),
            b"response_type=code&scope=openid&client_id=bff&client_secret=s3cret"
        );
        let jwk = r#"{"kty":"EC","crv":"P-256","d":"BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU"}"#;
        let jwt = config(&[
            ("BFF_CLIENT_AUTH", "private_key_jwt"),
            ("BFF_CLIENT_SECRET", ""),
            ("BFF_CLIENT_PRIVATE_KEY", jwk),
        ]);
        let request = push_request(&jwt, "https://idp.example/par", &params(), Some("a.b.c"));
        let body = String::from_utf8(request.body().clone()).unwrap();
        assert_eq!(body.matches("client_id=").count(), 1, "{body}");
        assert!(body.ends_with("&client_assertion=a.b.c"), "{body}");
    }

    #[test]
    fn a_created_answer() {
        let pushed = parse_push_response(&response(
            201,
            r#"{"request_uri":"urn:ietf:params:oauth:request_uri:6esc_11ACC5bwc014ltc14eY22c","expires_in":60,"extra":1}"#,
        ))
        .unwrap();
        assert_eq!(
            pushed.request_uri,
            "urn:ietf:params:oauth:request_uri:6esc_11ACC5bwc014ltc14eY22c"
        );
        assert_eq!(pushed.expires_in, 60);
        let other_form = parse_push_response(&response(200, r#"{"request_uri":"https://idp/r/1","expires_in":5}"#));
        assert_eq!(other_form.unwrap().request_uri, "https://idp/r/1");
    }

    #[test]
    fn every_other_answer_is_refused() {
        let long = format!(r#"{{"request_uri":"{}","expires_in":60}}"#, "u".repeat(2049));
        let huge = format!(
            r#"{{"request_uri":"u","expires_in":60,"pad":"{}"}}"#,
            " ".repeat(MAX_PUSH_RESPONSE)
        );
        let malformed = [
            "garbage",
            "{}",
            r#"{"expires_in":60}"#,
            r#"{"request_uri":"u"}"#,
            r#"{"request_uri":"","expires_in":60}"#,
            r#"{"request_uri":"a b","expires_in":60}"#,
            r#"{"request_uri":"ü","expires_in":60}"#,
            r#"{"request_uri":7,"expires_in":60}"#,
            r#"{"request_uri":"u","expires_in":0}"#,
            r#"{"request_uri":"u","expires_in":-5}"#,
            r#"{"request_uri":"u","expires_in":1.5}"#,
            r#"{"request_uri":"u","expires_in":"60"}"#,
            &long,
            &huge,
        ];
        for body in malformed {
            let error = parse_push_response(&response(201, body)).unwrap_err();
            assert!(matches!(error, PushError::Malformed(_)), "{body:.80}: {error}");
        }
        let refused = parse_push_response(&response(
            400,
            r#"{"error":"invalid_request","error_description":"x\"y"}"#,
        ))
        .unwrap_err();
        assert_eq!(refused.to_string(), "status 400, error invalid_request");
        assert_eq!(refused.refusal(), Some(("invalid_request".into(), Some("xy".into()))));
        let answer = |status: u16, error: &str| PushError::OAuth {
            status,
            error: error.into(),
            description: None,
        };
        assert!(answer(401, "invalid_client").refusal().is_some());
        assert!(answer(503, "invalid_request").refusal().is_none());
        assert!(answer(400, "temporarily_unavailable").refusal().is_none());
        assert!(answer(400, "server_error").refusal().is_none());
        assert_eq!(
            parse_push_response(&response(500, "{}")).unwrap_err(),
            PushError::Status(500)
        );
        assert_eq!(
            parse_push_response(&response(302, r#"{"request_uri":"u","expires_in":60}"#)).unwrap_err(),
            PushError::Status(302)
        );
    }

    #[test]
    fn a_bare_401_or_403_is_a_client_credentials_problem() {
        for status in [401, 403] {
            let failure = parse_push_response(&response(status, "")).unwrap_err();
            assert_eq!(
                failure.refusal().map(|(error, _)| error).as_deref(),
                Some("invalid_client")
            );
        }
    }

    #[test]
    fn the_redirect_names_only_the_client_and_the_request() {
        let endpoint = parse_url("https://idp.example/authorize?tenant=a").unwrap();
        let url = authorization_redirect(endpoint, "my client", "urn:x:1&y");
        assert_eq!(
            url.as_str(),
            "https://idp.example/authorize?tenant=a&client_id=my+client&request_uri=urn%3Ax%3A1%26y"
        );
    }
}
