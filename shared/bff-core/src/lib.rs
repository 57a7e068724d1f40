//! A Token-Mediating Backend (TMI-BFF, draft-bertocci-oauth2-tmi-bff-01; RFC 10017 §6.2) for
//! single-page apps: a confidential OpenID Connect client that keeps the tokens sealed and hands
//! the frontend short-lived access tokens.
//!
//! ```text
//!  browser (SPA)                 this core (Worker or Lambda)          authorization server
//!  ─────────────                 ────────────────────────────          ────────────────────
//!  GET B/bff/login ───────────▶  txn cookie (state, nonce, PKCE) ──302─▶ /authorize
//!  GET B/bff/callback ◀──302──── code ◀───────────────────────────────── (user signs in)
//!                                code + verifier ─────────────────────▶ /token
//!                                ID token validated, session sealed ◀── tokens
//!  ◀── 302 return_to + __Host-bff-session (AES-256-GCM, chunked)
//!  GET B/.well-known/bff-token ▶ cached token, or refresh ─────────────▶ /token
//!  ◀── {"access_token", "expires_in", "scope"}       rotated refresh token re-sealed
//!  GET B/.well-known/bff-sessioninfo ▶ claims projection
//!  POST B/bff/logout ──────────▶ cookies cleared, refresh token revoked ▶ /revoke
//! ```
//!
//! The core is sans-IO: clock, randomness, outbound HTTP and logging are ports ([`Clock`],
//! [`SecureRandom`], [`HttpClient`], [`Log`]) that each platform adapter implements. It never
//! panics on input and never returns an error: every failure is a response.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod cookie;
mod ctx;
mod error;
mod flow;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod limits;
mod oidc;
mod ports;
mod provider;
mod records;
mod request_log;
mod response;
mod revocation_cache;
mod rotation;
mod route;
#[cfg(feature = "rust-crypto")]
mod rust_crypto;
mod seal;
mod secret;
mod session;
mod session_cookie;
mod session_store;
mod store_breaker;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod urls;

pub use config::ConfigError;
pub use keys::{Algorithm, ClientKey, Curve, PublicKey};
pub use limits::{MAX_PROVIDER_RESPONSE, MAX_REQUEST_BODY};
pub use ports::{
    Clock, Deps, HttpClient, HttpError, KvError, KvStore, Level, Log, NoStore, PortFuture, RandomError, SecureRandom,
    SignError, Signatures, UnixTime,
};
pub use request_log::{RequestId, civil_date, log_line};
#[cfg(feature = "rust-crypto")]
pub use rust_crypto::RustCrypto;
pub use urls::{is_https_or_loopback, parse_url};

use crate::config::Config;
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::provider::ProviderCache;
use crate::request_log::{Outcome, RequestLog, TimedHttp};
use crate::revocation_cache::RevocationCache;
use crate::rotation::Rotations;
use crate::route::Route;

/// The backend of one isolate or container: configuration parsed once, plus caches of the
/// issuer's metadata and keys (owned data only).
pub struct Backend {
    state: Result<Inner, ConfigError>,
    /// Every public-key operation (ID and logout tokens, DPoP proofs, client assertions).
    signatures: Box<dyn Signatures>,
}

struct Inner {
    config: Config,
    provider: ProviderCache,
    rotations: Rotations,
    absent_revocations: RevocationCache,
}

impl Backend {
    /// Parses the configuration (http-api.md: Configuration) from `lookup` (environment, Worker vars and
    /// secrets). Never fails: a bad configuration is remembered, reported by
    /// [`Backend::config_error`] and answered with 500 `server_error` on every request.
    #[cfg(feature = "rust-crypto")]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self::with_signatures(lookup, Box::new(RustCrypto))
    }

    /// As [`Backend::from_lookup`], with the platform's own public-key crypto (the Worker's
    /// WebCrypto) in place of [`RustCrypto`].
    pub fn with_signatures(lookup: impl Fn(&str) -> Option<String>, signatures: Box<dyn Signatures>) -> Self {
        let state = Config::from_lookup(lookup).map(|config| Inner {
            config,
            provider: ProviderCache::default(),
            rotations: Rotations::default(),
            absent_revocations: RevocationCache::default(),
        });
        Self { state, signatures }
    }

    /// Logs what an operator must know once per isolate or container, whatever `BFF_LOG_LEVEL`
    /// says: the configuration problem (then every request answers 500), and whether back-channel
    /// logout is on, which depends on whether the deployment bound a store (`store_bound`).
    pub fn log_startup(&self, log: &dyn Log, clock: &dyn Clock, store_bound: bool) {
        let (level, message) = match &self.state {
            Err(problem) => (Level::Error, problem.to_string()),
            Ok(_) if store_bound => (
                Level::Info,
                "back-channel logout is on: sessions are ended through the store".to_owned(),
            ),
            Ok(_) => (
                Level::Info,
                "back-channel logout is off: no store is bound (BFF_KV or BFF_DYNAMODB_TABLE); it answers 501"
                    .to_owned(),
            ),
        };
        log.line(level, &log_line(level, &message, clock.now_millis()));
    }

    /// The configuration problem, if any: one line naming the setting, never its value.
    pub fn config_error(&self) -> Option<&ConfigError> {
        self.state.as_ref().err()
    }

    /// Answers one request. `request`'s URI is origin-form (path and query); its headers are as
    /// the client sent them (one or more `Cookie` headers); its extensions may hold the
    /// platform's [`RequestId`]. Never panics and never fails: every error is a response. Writes
    /// one JSON line for the request to `deps.log` (http-api.md: Logs).
    pub async fn handle<H: HttpClient, K: KvStore>(
        &self,
        request: http::Request<Vec<u8>>,
        deps: &Deps<'_, H, K>,
    ) -> http::Response<Vec<u8>> {
        let threshold = self.state.as_ref().map_or(Level::Info, |inner| inner.config.log_level);
        let id = request_log::request_id(request.extensions(), deps.random);
        let log = RequestLog::new(deps.log, deps.clock, id, threshold);
        let http = TimedHttp::new(deps.http, deps.clock);
        let method = request.method().clone();
        let deps = &Deps {
            clock: deps.clock,
            random: deps.random,
            http: &http,
            log: &log,
            store: deps.store,
        };
        let (route, response) = self.answer(request, deps).await;
        // Not the path: a path outside the BFF's own (an app page, an invitation link) may
        // carry a secret of its own.
        let route = route.map_or("unrouted", |route| route.name());
        log.finish(
            &Outcome {
                method: &method,
                route,
                response: &response,
            },
            &http,
        );
        response
    }

    /// The answer, and the route it came from (none for a request refused before routing).
    async fn answer<H: HttpClient, K: KvStore>(
        &self,
        request: http::Request<Vec<u8>>,
        deps: &Deps<'_, H, K>,
    ) -> (Option<Route>, http::Response<Vec<u8>>) {
        let Ok(inner) = &self.state else {
            return (None, ApiError::ServerError.into_response());
        };
        let (parts, body) = request.into_parts();
        let route = match flow::admit(&parts, &body, &inner.config) {
            Ok(route) => route,
            Err(refusal) => {
                // A refusal after routing (CSRF, body size) still names the route.
                let route = Route::resolve(&parts.method, parts.uri.path(), &inner.config.base_path).ok();
                return (route, refusal.into_response(&inner.config));
            }
        };
        let breaker = deps
            .store
            .map(|store| store_breaker::StoreBreaker::new(store, deps.clock));
        let deps = &Deps {
            clock: deps.clock,
            random: deps.random,
            http: deps.http,
            log: deps.log,
            store: breaker.as_ref(),
        };
        let ctx = Ctx {
            config: &inner.config,
            provider: &inner.provider,
            rotations: &inner.rotations,
            absent_revocations: &inner.absent_revocations,
            deps,
            signatures: &*self.signatures,
            parts: &parts,
            body: &body,
            cookies: cookie::Cookies::parse(&parts.headers),
            now: deps.clock.now(),
        };
        (Some(route), flow::answer(route, &ctx).await)
    }
}
