//! Every error the JSON endpoints and the navigations can answer, mapped to responses in one place.

use http::header::{ALLOW, CACHE_CONTROL, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::cookie::SetCookie;
use crate::oidc::client_auth::AssertionError;
use crate::oidc::dpop::DPOP_NONCE;
use crate::oidc::token::UpstreamError;
use crate::ports::RandomError;
use crate::provider::KeyError;
use crate::response;

/// The store failed (try again later), or KV mode has none (a deployment error).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    Failed,
    NotConfigured,
}

/// Why a session could not be stored.
#[derive(Debug)]
pub(crate) enum SaveError {
    Random(RandomError),
    /// The session store failed, or KV mode has none (KV mode).
    Store(Unavailable),
    /// The record was deleted meanwhile (a logout won the race): the session is over.
    Gone,
    TooLarge {
        bytes: usize,
    },
}

/// Errors of the JSON endpoints (draft-01 §4.3; http-api.md).
#[derive(Debug)]
pub(crate) enum ApiError {
    /// §4.3.2: no refresh token, or the request needs user interaction.
    BackendNotReady {
        login_url: String,
        description: &'static str,
    },
    /// Refused request: CSRF rules, bad parameters.
    InvalidRequest(&'static str),
    /// A request body over [`crate::limits::MAX_REQUEST_BODY`] (413).
    BodyTooLarge,
    /// §4.3.1: no valid session.
    InvalidSession,
    /// Known path, wrong method (including every CORS preflight).
    MethodNotAllowed(&'static str),
    /// Not a path of this backend.
    NotFound,
    /// Misconfiguration or no randomness.
    ServerError,
    /// A feature this deployment does not offer.
    Unsupported,
    /// The authorization server failed or answered an error.
    Upstream(UpstreamError),
    /// RFC 9449 §7.1 style: the browser's `DPoP` proof was refused (http-api.md: Browser-bound tokens).
    InvalidDpopProof(&'static str),
    /// RFC 9449 §8: the authorization server wants a proof with this nonce.
    UseDpopNonce(String),
    /// The session was stored anew (a rotated refresh token), and yet `error` is the answer.
    Stored {
        error: Box<ApiError>,
        cookies: Vec<SetCookie>,
    },
    /// The session is over: `error`, with its cookies cleared.
    SessionEnded {
        error: Box<ApiError>,
        cookies: Vec<SetCookie>,
    },
}

impl ApiError {
    /// The one mapping from error to status and body.
    pub(crate) fn into_response(self) -> Response<Vec<u8>> {
        let (status, body) = match self {
            Self::SessionEnded { error, cookies } | Self::Stored { error, cookies } => {
                return response::with_cookies(error.into_response(), &cookies);
            }
            Self::InvalidDpopProof(description) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_dpop_proof", "error_description": description}),
            ),
            Self::UseDpopNonce(nonce) => {
                let mut response = response::json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "use_dpop_nonce", "error_description": "the authorization server requires a DPoP nonce; retry with the one in DPoP-Nonce"}),
                );
                if let Ok(value) = HeaderValue::from_str(&nonce) {
                    response.headers_mut().insert(DPOP_NONCE, value);
                }
                return response;
            }
            Self::BackendNotReady { login_url, description } => (
                StatusCode::BAD_REQUEST,
                json!({"error": "backend_not_ready", "error_description": description, "login_url": login_url}),
            ),
            Self::InvalidRequest(description) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_request", "error_description": description}),
            ),
            Self::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "invalid_request", "error_description": "the request body is too large"}),
            ),
            Self::InvalidSession => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_session", "error_description": "no valid session"}),
            ),
            Self::MethodNotAllowed(allow) => {
                let mut response =
                    response::json(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "method_not_allowed"}));
                response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
                return response;
            }
            Self::NotFound => (StatusCode::NOT_FOUND, json!({"error": "not_found"})),
            Self::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "server_error"})),
            Self::Unsupported => (StatusCode::NOT_IMPLEMENTED, json!({"error": "unsupported"})),
            Self::Upstream(UpstreamError::OAuth { error, description }) => {
                let mut body = json!({"error": error});
                if let Some(description) = description {
                    body["error_description"] = Value::String(description);
                }
                (StatusCode::BAD_REQUEST, body)
            }
            Self::Upstream(UpstreamError::Unavailable | UpstreamError::Malformed) => {
                let mut response = response::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"error": "temporarily_unavailable", "error_description": "the authorization server is not answering properly"}),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
                return response;
            }
        };
        response::json(status, &body)
    }
}

/// Errors of the navigations (`login`, `callback`), shown as a small HTML page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// A refusal: bad `return_to`, state, `iss`, ID token, token response (400).
    BadRequest(&'static str),
    /// A request body over [`crate::limits::MAX_REQUEST_BODY`] (413).
    BodyTooLarge,
    /// The authorization server answered the authorization request with an error (400).
    Provider { error: String, description: Option<String> },
    /// No randomness or misconfiguration (500).
    ServerError,
    /// The session would not fit in cookies (400, names KV mode).
    TooLarge,
    /// The authorization server is unreachable, slow or failing (503).
    Unavailable,
}

impl PageError {
    /// The one mapping from error to page. `login_url` is where "try again" leads.
    pub(crate) fn into_response(self, login_url: &str) -> Response<Vec<u8>> {
        let again = Some((login_url, "Sign in again"));
        match self {
            Self::BadRequest(why) => response::page(StatusCode::BAD_REQUEST, "Sign-in failed", why, again),
            Self::BodyTooLarge => response::page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large",
                "The request body is too large.",
                again,
            ),
            Self::Provider { error, description } => {
                let message = match description {
                    Some(d) => format!("The sign-in service answered {error}: {d}"),
                    None => format!("The sign-in service answered {error}."),
                };
                response::page(StatusCode::BAD_REQUEST, "Sign-in failed", &message, again)
            }
            Self::ServerError => response::page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Server error",
                "The sign-in could not be completed because of a server error.",
                None,
            ),
            Self::TooLarge => response::page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "The session is too large to be kept in cookies. The operator must switch this backend to KV mode (BFF_SESSION_STORE=kv).",
                None,
            ),
            Self::Unavailable => {
                let mut response = response::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in temporarily unavailable",
                    "The sign-in service is not answering. Please try again in a moment.",
                    Some((login_url, "Retry")),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> Self {
        Self::Upstream(error)
    }
}

impl From<Unavailable> for ApiError {
    /// 500 for a deployment without its store, 503 when the store failed.
    fn from(unavailable: Unavailable) -> Self {
        match unavailable {
            Unavailable::Failed => Self::Upstream(UpstreamError::Unavailable),
            Unavailable::NotConfigured => Self::ServerError,
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Upstream(e) => Self::Upstream(e),
            KeyError::Token(_) => Self::InvalidRequest("the token is not valid"),
        }
    }
}

impl From<SaveError> for ApiError {
    fn from(error: SaveError) -> Self {
        match error {
            // A logout deleted the record meanwhile: the session stays ended.
            SaveError::Gone => Self::InvalidSession,
            SaveError::Store(unavailable) => unavailable.into(),
            SaveError::Random(_) | SaveError::TooLarge { .. } => Self::ServerError,
        }
    }
}

impl From<RandomError> for ApiError {
    fn from(_: RandomError) -> Self {
        Self::ServerError
    }
}

impl From<AssertionError> for ApiError {
    fn from(_: AssertionError) -> Self {
        Self::ServerError
    }
}

impl From<KeyError> for PageError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Upstream(UpstreamError::Unavailable) => Self::Unavailable,
            KeyError::Upstream(_) | KeyError::Token(_) => {
                Self::BadRequest("The ID token from the sign-in service was not valid.")
            }
        }
    }
}

impl From<SaveError> for PageError {
    fn from(error: SaveError) -> Self {
        match error {
            SaveError::Random(_) => Self::ServerError,
            SaveError::Store(Unavailable::NotConfigured) => Self::ServerError,
            SaveError::Store(Unavailable::Failed) | SaveError::Gone => Self::Unavailable,
            SaveError::TooLarge { .. } => Self::TooLarge,
        }
    }
}

impl From<RandomError> for PageError {
    fn from(_: RandomError) -> Self {
        Self::ServerError
    }
}

impl From<AssertionError> for PageError {
    fn from(_: AssertionError) -> Self {
        Self::ServerError
    }
}

impl From<UpstreamError> for PageError {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::Unavailable => Self::Unavailable,
            UpstreamError::OAuth { error, description } => Self::Provider { error, description },
            UpstreamError::Malformed => Self::BadRequest("The sign-in service sent a response that could not be used."),
        }
    }
}
