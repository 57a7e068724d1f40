//! A Token-Mediating Backend (TMI-BFF, draft-bertocci-oauth2-tmi-bff-01; RFC 10017 §6.2).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod ports;

pub use ports::{Clock, HttpClient, HttpError, Level, Log, RandomError, SecureRandom, UnixTime};

/// What a request needs from the platform, borrowed for the request's duration.
pub struct Deps<'a, H> {
    /// Wall clock.
    pub clock: &'a dyn Clock,
    /// Secure randomness.
    pub random: &'a dyn SecureRandom,
    /// Outbound HTTP to the authorization server.
    pub http: &'a H,
    /// Operational log lines.
    pub log: &'a dyn Log,
}

/// The backend of one isolate or container: configuration parsed once, plus caches.
pub struct Backend {
    _private: (),
}

impl Backend {
    /// Parses the configuration (CONTRACT §4) from `lookup` (environment, Worker vars and secrets).
    /// Never fails: a bad configuration is remembered, reported by [`Backend::config_error`] and
    /// answered with 500 `server_error` on every request.
    pub fn from_lookup(_lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self { _private: () }
    }

    /// The configuration problem, if any, as one line naming the setting (never its value).
    pub fn config_error(&self) -> Option<String> {
        None
    }

    /// Answers one request. `request`'s URI is origin-form (path and query); its headers are as
    /// the client sent them (one or more `Cookie` headers). Never panics and never fails: every
    /// error is a response.
    pub async fn handle<H: HttpClient>(
        &self,
        _request: http::Request<Vec<u8>>,
        _deps: &Deps<'_, H>,
    ) -> http::Response<Vec<u8>> {
        let mut response = http::Response::new(b"{\"error\":\"server_error\"}".to_vec());
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        response
    }
}
