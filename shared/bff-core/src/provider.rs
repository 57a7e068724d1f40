//! The authorization server as seen from one isolate or container: metadata and JWKS, fetched
//! through the `HttpClient` port and cached as owned data (never an I/O object, which workerd
//! refuses to share across requests).

use std::sync::{Arc, Mutex};

use http::header::ACCEPT;

use crate::config::Config;
use crate::oidc::algorithms;
use crate::oidc::discovery::{self, Jwk, Jwks, Metadata};
use crate::oidc::dpop;
use crate::oidc::id_token::{self, Header, IdTokenError};
use crate::oidc::token::UpstreamError;
use crate::ports::Deps;
use crate::ports::{HttpClient, KvStore, Level, Signatures, UnixTime};

/// Metadata and keys are refetched after this long.
const CACHE_SECS: u64 = 3600;
/// The JWKS is fetched at most this often, counting failed attempts (http-api.md: callback): random
/// `kid`s in unauthenticated back-channel logout tokens must not make the backend hammer the
/// provider.
const REFETCH_SECS: u64 = 5;
/// How often a request waiting for another one's JWKS fetch looks again.
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Default)]
pub(crate) struct ProviderCache {
    metadata: Mutex<Option<(Arc<Metadata>, UnixTime)>>,
    jwks: Mutex<KeySet>,
    /// The token endpoint's newest DPoP nonce (RFC 9449 §8).
    pub(crate) nonces: dpop::Nonces,
}

/// The cached JWKS and the state of fetching it: one fetch in flight per isolate or container.
#[derive(Default)]
struct KeySet {
    jwks: Option<(Arc<Jwks>, UnixTime)>,
    last_attempt: Option<UnixTime>,
    in_flight: bool,
}

/// What a request looking for a key should do next.
enum KeyStep {
    Found(Jwk),
    Fetch,
    Wait,
    GiveUp(KeyError),
}

impl KeySet {
    fn next_step(&mut self, header: &Header, now: UnixTime) -> KeyStep {
        let fresh = self.jwks.as_ref().is_some_and(|(_, at)| at.until(now) < CACHE_SECS);
        let candidate = self
            .jwks
            .as_ref()
            .and_then(|(jwks, _)| jwks.candidates(header.kid.as_deref(), &header.alg).next().cloned());
        match candidate {
            Some(key) if fresh => return KeyStep::Found(key),
            _ if self.in_flight => return KeyStep::Wait,
            candidate if self.last_attempt.is_some_and(|at| at.until(now) < REFETCH_SECS) => {
                // Rate-limited: a stale key still serves; otherwise the token cannot be checked now.
                return match (candidate, &self.jwks) {
                    (Some(key), _) => KeyStep::Found(key),
                    (None, Some(_)) => KeyStep::GiveUp(KeyError::Token(IdTokenError::Signature)),
                    (None, None) => KeyStep::GiveUp(KeyError::Upstream(UpstreamError::Unavailable)),
                };
            }
            _ => {}
        }
        self.in_flight = true;
        self.last_attempt = Some(now);
        KeyStep::Fetch
    }
}

/// Clears the in-flight mark when a fetch ends, however it ends (a dropped future included).
struct FetchGuard<'a>(&'a Mutex<KeySet>);

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.lock() {
            set.in_flight = false;
        }
    }
}

impl ProviderCache {
    /// The issuer's metadata, from cache or fetched.
    pub(crate) async fn metadata<H: HttpClient, K: KvStore>(
        &self,
        config: &Config,
        deps: &Deps<'_, H, K>,
    ) -> Result<Arc<Metadata>, UpstreamError> {
        let now = deps.clock.now();
        if let Some((metadata, fetched)) = self.metadata.lock().ok().and_then(|m| m.clone())
            && fetched.until(now) < CACHE_SECS
        {
            return Ok(metadata);
        }
        let response = send(deps, config, get(&discovery::metadata_url(&config.issuer))).await?;
        if !response.status().is_success() {
            return Err(unavailable_or_malformed(&response));
        }
        let metadata = discovery::parse_metadata(response.body(), config).map_err(|e| {
            deps.log.line(Level::Error, &format!("issuer metadata refused: {e:?}"));
            UpstreamError::Malformed
        })?;
        let metadata = Arc::new(metadata);
        if let Ok(mut slot) = self.metadata.lock() {
            *slot = Some((Arc::clone(&metadata), now));
        }
        Ok(metadata)
    }

    /// The key that verifies a token with `header`, refetching the JWKS (rate-limited, one fetch
    /// at a time) when the `kid` is unknown, as after a key rotation at the issuer.
    pub(crate) async fn verification_key<H: HttpClient, K: KvStore>(
        &self,
        metadata: &Metadata,
        header: &Header,
        config: &Config,
        deps: &Deps<'_, H, K>,
    ) -> Result<Jwk, KeyError> {
        // Whether the keys were fetched while this request looked: only then is an unknown `kid`
        // a bad token; otherwise the limiter held the fetch back, and the token may be good.
        let mut fetched = false;
        loop {
            let step = match self.jwks.lock() {
                Ok(mut set) => set.next_step(header, deps.clock.now()),
                Err(_) => KeyStep::GiveUp(KeyError::Upstream(UpstreamError::Unavailable)),
            };
            match step {
                KeyStep::Found(key) => return Ok(key),
                KeyStep::GiveUp(KeyError::Token(_)) if !fetched => {
                    return Err(KeyError::Upstream(UpstreamError::Unavailable));
                }
                KeyStep::GiveUp(error) => return Err(error),
                KeyStep::Wait => {
                    deps.http.pause(POLL).await;
                    fetched = true;
                }
                KeyStep::Fetch => {
                    fetched = true;
                    let _guard = FetchGuard(&self.jwks);
                    let jwks = fetch_jwks(metadata, config, deps).await.map_err(KeyError::Upstream)?;
                    if let Ok(mut set) = self.jwks.lock() {
                        set.jwks = Some((Arc::new(jwks), deps.clock.now()));
                    }
                }
            }
        }
    }

    /// Validates an ID token end to end: algorithm allow-list, key, signature, claims.
    pub(crate) async fn validate_id_token<H: HttpClient, K: KvStore>(
        &self,
        token: &str,
        nonce: Option<&str>,
        config: &Config,
        deps: &Deps<'_, H, K>,
        signatures: &dyn Signatures,
    ) -> Result<id_token::Claims, KeyError> {
        let metadata = self.metadata(config, deps).await.map_err(KeyError::Upstream)?;
        let header = id_token::header(token).map_err(KeyError::Token)?;
        let allowed = algorithms::allowed_algs(
            config.id_token_algs.as_deref(),
            &metadata.id_token_signing_alg_values_supported,
        );
        if !allowed.contains(&header.alg) {
            return Err(KeyError::Token(IdTokenError::Algorithm));
        }
        let key = self.verification_key(&metadata, &header, config, deps).await?;
        let expected = id_token::Expected {
            issuer: &config.issuer,
            client_id: &config.client_id,
            nonce,
        };
        id_token::verify(token, &header.alg, &key, &expected, deps.clock.now(), signatures)
            .await
            .map_err(KeyError::Token)
    }
}

async fn fetch_jwks<H: HttpClient, K: KvStore>(
    metadata: &Metadata,
    config: &Config,
    deps: &Deps<'_, H, K>,
) -> Result<Jwks, UpstreamError> {
    let response = send(deps, config, get(&metadata.jwks_uri)).await?;
    if !response.status().is_success() {
        return Err(unavailable_or_malformed(&response));
    }
    Jwks::parse(response.body()).ok_or(UpstreamError::Malformed)
}

/// Why no key or claims came out.
#[derive(Debug)]
pub(crate) enum KeyError {
    /// The token itself is bad.
    Token(IdTokenError),
    /// The issuer could not be asked.
    Upstream(UpstreamError),
}

/// A GET for JSON.
pub(crate) fn get(url: &str) -> http::Request<Vec<u8>> {
    http::Request::get(url)
        .header(ACCEPT, "application/json")
        .body(Vec::new())
        .unwrap_or_default()
}

/// Sends through the port; a transport failure is [`UpstreamError::Unavailable`].
pub(crate) async fn send<H: HttpClient, K: KvStore>(
    deps: &Deps<'_, H, K>,
    config: &Config,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, UpstreamError> {
    let target = request.uri().path().to_owned();
    let failed = |why: &dyn std::fmt::Display| {
        deps.log.line(
            Level::Warn,
            &format!("authorization server request to {target} failed: {why}"),
        );
        UpstreamError::Unavailable
    };
    let response = deps
        .http
        .send(request, config.http_timeout)
        .await
        .map_err(|e| failed(&e))?;
    if response.body().len() > crate::limits::MAX_PROVIDER_RESPONSE {
        return Err(failed(&"response over 1 MiB"));
    }
    Ok(response)
}

fn unavailable_or_malformed(response: &http::Response<Vec<u8>>) -> UpstreamError {
    if response.status().is_server_error() {
        UpstreamError::Unavailable
    } else {
        UpstreamError::Malformed
    }
}
