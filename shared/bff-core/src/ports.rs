//! The ports: everything the core needs from the platform, injected by the adapters.
//!
//! The core never reads the clock or OS randomness and never performs I/O itself (sans-IO, as in
//! rustls and quinn-proto); a Worker, a Lambda and a test each bring their own implementations.

use std::fmt;
use std::time::Duration;

/// Seconds since the Unix epoch, as read from an injected [`Clock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// This time plus `seconds`, saturating.
    pub fn plus(self, seconds: u64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    /// Seconds from `self` until `later`; zero when `later` is not later.
    pub fn until(self, later: Self) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

/// The wall clock.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> UnixTime;
}

/// A cryptographically secure random source.
pub trait SecureRandom: Send + Sync {
    /// Fills `buf` with random bytes.
    ///
    /// # Errors
    /// [`RandomError`] when the platform has no randomness to give; the request then fails with a
    /// 500 and nothing is sealed.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

/// The platform's random source failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomError;

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("secure random source failed")
    }
}

impl std::error::Error for RandomError {}

/// Outbound HTTP to the authorization server.
///
/// Implementations must not follow redirects (an authorization server never needs them, and
/// following them would turn the backend into an SSRF relay) and must give up after `timeout`.
// No `Send` bound on purpose: Worker futures are `!Send`; on Lambda the concrete future is `Send`
// on its own because auto traits leak through concrete types.
#[allow(async_fn_in_trait)]
pub trait HttpClient {
    /// Sends `request` and collects the whole response body.
    ///
    /// # Errors
    /// [`HttpError`] when no HTTP response arrived: connection refused, timeout, TLS failure.
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, HttpError>;

    /// Waits `duration` on the platform's timer: how a request waits for a refresh that another
    /// request of the same isolate or container has in flight.
    async fn pause(&self, duration: Duration);
}

/// No HTTP response came back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The connection could not be made or broke (refused, reset, DNS, TLS).
    Connect(String),
    /// No complete answer within the timeout.
    Timeout,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "connection failed: {why}"),
            Self::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Where the core's few operational log lines go (a failed revocation, a session too large for
/// cookies). Lines never contain tokens, cookies or secrets.
pub trait Log: Send + Sync {
    /// Records one line.
    fn line(&self, level: Level, message: &str);
}

/// Severity of a [`Log`] line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something an operator must fix (configuration).
    Error,
    /// Something went wrong for one request and was handled.
    Warn,
    /// Normal operation worth a line.
    Info,
}
