//! The ports: everything the core needs from the platform, injected by the adapters.
//!
//! The core never reads the clock or OS randomness and never performs I/O itself (sans-IO, as in
//! rustls and quinn-proto); a Worker, a Lambda and a test each bring their own implementations.

use std::fmt;
use std::time::Duration;

pub use crate::keys::{Algorithm, ClientKey, PublicKey};

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

    /// Milliseconds since the Unix epoch, for log timestamps and durations; the default is
    /// [`Clock::now`] in whole seconds.
    fn now_millis(&self) -> u64 {
        self.now().0.saturating_mul(1000)
    }
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
    /// The request never left: the connection could not be made (refused, DNS, TLS handshake).
    /// Repeating it is always safe.
    Unsent(String),
    /// The connection broke after the request may have been sent (reset, closed early).
    Connect(String),
    /// No complete answer within the timeout.
    Timeout,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsent(why) => write!(f, "connection not made: {why}"),
            Self::Connect(why) => write!(f, "connection failed: {why}"),
            Self::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Where the core's log lines go: one JSON object per line, formatted by the core (one per
/// request, and operational events such as a failed revocation; http-api.md: Logs). Lines never
/// contain tokens, cookies or secrets. `level` is the line's own, for platforms that sort output
/// by severity; the adapter writes `line` as it is.
pub trait Log: Send + Sync {
    /// Records one line.
    fn line(&self, level: Level, line: &str);
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

/// A key-value store shared by every isolate or container of one deployment: Workers KV, or a
/// DynamoDB table. Values are opaque bytes the core seals itself (the record's key is the
/// associated data and its expiry is inside), so the store is trusted with neither secrecy nor
/// expiry: the time-to-live only keeps it tidy.
#[allow(async_fn_in_trait)]
pub trait KvStore {
    /// The value under `key`, if any.
    ///
    /// # Errors
    /// [`KvError`] when the store could not be read.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Stores `value` under `key` for about `ttl_secs` seconds (a store may round up: Workers KV
    /// keeps at least 60 s).
    ///
    /// # Errors
    /// [`KvError`] when the write failed.
    async fn put(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<(), KvError>;

    /// Stores `value` only when `key` holds nothing; `Ok(false)` when something was there. On a
    /// store with conditional writes (DynamoDB) exactly one caller wins; on an eventually
    /// consistent store without them (Workers KV) it is a read followed by a write.
    ///
    /// # Errors
    /// [`KvError`] when the store could not be asked.
    async fn put_if_absent(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError>;

    /// Replaces the value under `key` only while `key` holds one; `Ok(false)` when it was absent
    /// (deleted meanwhile). On a store with conditional writes (DynamoDB) this is atomic; on one
    /// without them (Workers KV) it is a read followed by a write.
    ///
    /// # Errors
    /// [`KvError`] when the store could not be asked.
    async fn put_if_present(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError>;

    /// Removes `key` (absent is fine).
    ///
    /// # Errors
    /// [`KvError`] when the delete failed.
    async fn delete(&self, key: &str) -> Result<(), KvError>;

    /// The store that coordinates the refreshes of one session, where the platform has a
    /// strongly consistent one per session whose conditional writes are atomic (on Workers: the
    /// Durable Object `name` of the `BFF_COORDINATOR` binding). The core keeps only its shared
    /// rotation records there (sealed, 30 s). `None`, the default: this store coordinates, with
    /// the guarantees it has.
    fn coordinator(&self, _name: &str) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// The store failed; the message names the operation, never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvError(pub String);

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session store failed: {}", self.0)
    }
}

impl std::error::Error for KvError {}

/// The store of a deployment that has none (cookie mode without back-channel logout).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStore;

impl KvStore for NoStore {
    async fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(None)
    }

    async fn put(&self, _key: &str, _value: Vec<u8>, _ttl_secs: u64) -> Result<(), KvError> {
        Err(KvError("no store is configured".into()))
    }

    async fn put_if_absent(&self, _key: &str, _value: Vec<u8>, _ttl_secs: u64) -> Result<bool, KvError> {
        Err(KvError("no store is configured".into()))
    }

    async fn put_if_present(&self, _key: &str, _value: Vec<u8>, _ttl_secs: u64) -> Result<bool, KvError> {
        Err(KvError("no store is configured".into()))
    }

    async fn delete(&self, _key: &str) -> Result<(), KvError> {
        Ok(())
    }
}

/// What a request needs from the platform, borrowed for the request's duration.
pub struct Deps<'a, H, K = NoStore> {
    /// Wall clock.
    pub clock: &'a dyn Clock,
    /// Secure randomness.
    pub random: &'a dyn SecureRandom,
    /// Outbound HTTP to the authorization server.
    pub http: &'a H,
    /// Operational log lines.
    pub log: &'a dyn Log,
    /// The shared store (Workers KV, DynamoDB), where the deployment has one.
    pub store: Option<&'a K>,
}

/// A future returned by an object-safe port ([`Signatures`]). On native targets it is `Send`, so
/// a Lambda handler that awaits it stays `Send` (`lambda_http::run` requires that); on wasm32 it
/// is not, because the Worker's futures wrap JavaScript promises, which are `!Send`, and a
/// Worker isolate has one thread anyway.
#[cfg(not(target_arch = "wasm32"))]
pub type PortFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A future returned by an object-safe port ([`Signatures`]); see the native definition.
#[cfg(target_arch = "wasm32")]
pub type PortFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + 'a>>;

/// Public-key signatures: the only asymmetric cryptography the core needs (ID and logout token
/// signatures, DPoP proofs, `private_key_jwt` client assertions). The core parses every JWS and
/// checks every claim itself; the port only does the arithmetic, so a platform with native
/// crypto (WebCrypto on Workers) need not ship its own. Signatures use the JWS encodings of
/// RFC 7518 §3 and RFC 8037 §3.1: raw RSA bytes, ECDSA `r ‖ s`, raw Ed25519.
///
/// Object safe, so a backend holds one as `Box<dyn Signatures>` without a generic parameter.
pub trait Signatures: Send + Sync {
    /// Whether `signature` is a valid `alg` signature of `message` by `key`. A key the platform
    /// refuses (a point off the curve, a weak RSA modulus) verifies nothing: `false`.
    fn verify<'a>(
        &'a self,
        alg: Algorithm,
        key: &'a PublicKey,
        message: &'a [u8],
        signature: &'a [u8],
    ) -> PortFuture<'a, bool>;

    /// Signs `message` with the client's key, with the key's algorithm ([`ClientKey::algorithm`]).
    ///
    /// # Errors
    /// [`SignError`] when the platform refuses the key or fails; the request answers 500.
    fn sign<'a>(&'a self, key: &'a ClientKey, message: &'a [u8]) -> PortFuture<'a, Result<Vec<u8>, SignError>>;
}

/// The platform could not sign; never carries key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

impl std::error::Error for SignError {}
