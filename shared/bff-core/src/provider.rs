//! The authorization server as seen from one isolate or container: metadata and JWKS, fetched
//! through the `HttpClient` port and cached as owned data (never an I/O object, which workerd
//! refuses to share across requests).

use std::sync::{Arc, Mutex};

use http::header::ACCEPT;

use crate::Deps;
use crate::config::Config;
use crate::oidc::discovery::{self, Jwk, Jwks, Metadata};
use crate::oidc::id_token::{self, Header, IdTokenError};
use crate::oidc::token::UpstreamError;
use crate::ports::{HttpClient, KvStore, Level, UnixTime};

/// Metadata and keys are refetched after this long.
const CACHE_SECS: u64 = 3600;
/// An unknown `kid` triggers a JWKS refetch at most this often (CONTRACT §2.5).
const REFETCH_SECS: u64 = 5;

#[derive(Default)]
pub(crate) struct ProviderCache {
    metadata: Mutex<Option<(Arc<Metadata>, UnixTime)>>,
    jwks: Mutex<Option<(Arc<Jwks>, UnixTime)>>,
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

    /// The key that verifies a token with `header`, refetching the JWKS once (rate-limited) when
    /// the `kid` is unknown, as after a key rotation at the issuer.
    pub(crate) async fn verification_key<H: HttpClient, K: KvStore>(
        &self,
        metadata: &Metadata,
        header: &Header,
        config: &Config,
        deps: &Deps<'_, H, K>,
    ) -> Result<Jwk, KeyError> {
        let now = deps.clock.now();
        let cached = self.jwks.lock().ok().and_then(|j| j.clone());
        if let Some((jwks, fetched)) = &cached
            && fetched.until(now) < CACHE_SECS
        {
            if let Some(key) = jwks.candidates(header.kid.as_deref(), &header.alg).next() {
                return Ok(key.clone());
            }
            if fetched.until(now) < REFETCH_SECS {
                return Err(KeyError::Token(IdTokenError::Signature));
            }
        }
        let response = send(deps, config, get(&metadata.jwks_uri))
            .await
            .map_err(KeyError::Upstream)?;
        if !response.status().is_success() {
            return Err(KeyError::Upstream(unavailable_or_malformed(&response)));
        }
        let jwks = Arc::new(Jwks::parse(response.body()).ok_or(KeyError::Upstream(UpstreamError::Malformed))?);
        if let Ok(mut slot) = self.jwks.lock() {
            *slot = Some((Arc::clone(&jwks), now));
        }
        jwks.candidates(header.kid.as_deref(), &header.alg)
            .next()
            .cloned()
            .ok_or(KeyError::Token(IdTokenError::Signature))
    }

    /// Validates an ID token end to end: algorithm allow-list, key, signature, claims.
    pub(crate) async fn validate_id_token<H: HttpClient, K: KvStore>(
        &self,
        token: &str,
        nonce: Option<&str>,
        config: &Config,
        deps: &Deps<'_, H, K>,
    ) -> Result<id_token::Claims, KeyError> {
        let metadata = self.metadata(config, deps).await.map_err(KeyError::Upstream)?;
        let header = id_token::header(token).map_err(KeyError::Token)?;
        let allowed = id_token::allowed_algs(
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
        id_token::verify(token, &header.alg, &key, &expected, deps.clock.now()).map_err(KeyError::Token)
    }
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
    deps.http.send(request, config.http_timeout).await.map_err(|e| {
        deps.log.line(
            Level::Warn,
            &format!("authorization server request to {target} failed: {e}"),
        );
        UpstreamError::Unavailable
    })
}

fn unavailable_or_malformed(response: &http::Response<Vec<u8>>) -> UpstreamError {
    if response.status().is_server_error() {
        UpstreamError::Unavailable
    } else {
        UpstreamError::Malformed
    }
}
