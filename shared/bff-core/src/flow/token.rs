//! `B/.well-known/bff-token`: hand the frontend an access token (draft-01 §4; http-api.md: bff-token).

use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::{Map, Value, json};
use url::form_urlencoded::Serializer;

use crate::cookie::SetCookie;
use crate::ctx::Ctx;
use crate::error::{ApiError, SaveError, Unavailable};
use crate::flow::{dpop_offered, query, single};
use crate::oidc::dpop::{self, DPOP, DPOP_NONCE, ProofError};
use crate::oidc::id_token::{self, IdTokenError};
use crate::oidc::token::{self, Grant, UpstreamError};
use crate::ports::{HttpClient, KvStore, Level, UnixTime};
use crate::provider::{self, KeyError};
use crate::records;
use crate::response;
use crate::rotation::{self, Claim, Rotation};
use crate::secret::{IdToken, RefreshToken, constant_time_eq};
use crate::session::{CachedToken, Session, project_claims, scope_covered, scope_key};
use crate::session_store::{self, Loaded};
use crate::store_breaker;
use crate::urls::is_resource_uri;

/// A session caches at most this many access tokens.
const MAX_CACHED_TOKENS: usize = 32;
/// A `rejected_token` forces a refresh of the same entry at most this often.
const FORCED_REFRESH_SECS: u64 = 30;

pub(crate) async fn token<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Response<Vec<u8>>, ApiError> {
    let params = if ctx.parts.method == Method::POST {
        url::form_urlencoded::parse(ctx.body).into_owned().collect()
    } else {
        query(ctx.parts)
    };
    let request = TokenRequest::parse(&params)?;
    let mut loaded = session_store::require(ctx).await?;
    let proof = match ctx.config.dpop {
        true => Some(dpop_proof(ctx, &loaded.session).await?),
        false => None,
    };
    let session = &mut loaded.session;

    // Which token the request means (http-api.md: bff-token).
    let resource = request
        .resource
        .map(str::to_owned)
        .or_else(|| ctx.config.default_resource.clone());
    let wanted_scope = request.scope.map_or_else(|| session.scope.clone(), str::to_owned);
    let key = scope_key(&wanted_scope);
    let resource_granted = resource.as_ref().is_none_or(|r| session.resources.contains(r));
    if !scope_covered(&key, &session.scope) || !resource_granted {
        return Err(not_ready(ctx, session, &key, resource.as_deref()));
    }

    let mut forced = false;
    let usable = |t: &&CachedToken| t.answers(&key, resource.as_deref()) && t.bound == ctx.config.dpop;
    let cached = session.tokens.iter().find(usable);
    if let Some(entry) = cached {
        let was_rejected = request
            .rejected
            .is_some_and(|r| constant_time_eq(r, entry.token.expose()));
        // At most one forced refresh per 30 s per session, whatever the key (http-api.md: bff-token):
        // as the cookie records it, and as this isolate saw it.
        let may_force = session
            .last_forced
            .is_none_or(|at| ctx.now.0.saturating_sub(at) >= FORCED_REFRESH_SECS);
        forced = was_rejected && may_force && ctx.rotations.try_force(&session.id, ctx.now.0, FORCED_REFRESH_SECS);
        let fresh = entry.is_fresh(ctx.now);
        if was_rejected && !forced {
            // Inside the window: the forced refresh's answer (perhaps still in flight) if this
            // instance made it from the same refresh token, rather than the rejected token.
            let rejected = request.rejected.unwrap_or_default();
            if let Some(rotation) = forced_answer(ctx, session, entry, &key, resource.as_deref(), rejected).await {
                let before = (session.id_token.clone(), session.claims.clone());
                apply(session, &rotation);
                let cookies = store_token(ctx, &mut loaded, rotation.entry.clone(), before).await?;
                return answer(ctx, &rotation.entry, cookies);
            }
        }
        if fresh && !forced {
            // A plain read: answered from the cookie, nothing is written.
            if let Some(entry) = session.tokens.iter().find(usable) {
                return answer(ctx, entry, Vec::new());
            }
        }
    }
    let before = (session.id_token.clone(), session.claims.clone());
    let wanted = Wanted {
        key: &key,
        resource: resource.as_deref(),
        scope: &wanted_scope,
        proof: proof.as_ref().map(|p| p.raw),
    };
    // RFC 9449 §8: a proof without the nonce the authorization server lately demanded would only
    // be refused there; like any refresh that did not happen, it leaves the forced window free.
    let nonce_due = proof
        .as_ref()
        .filter(|p| !p.has_nonce)
        .and_then(|_| ctx.provider.nonces.due(ctx.now));
    let refreshed = match nonce_due {
        Some(nonce) => Err(Refused::Answer(ApiError::UseDpopNonce(nonce))),
        None => refresh(ctx, session, &wanted, forced).await,
    };
    if forced && refreshed.is_err() {
        ctx.rotations.unforce(&session.id, ctx.now.0);
    }
    let entry = match refreshed {
        Ok(entry) => entry,
        Err(Refused::Answer(error)) => return Err(error),
        Err(Refused::SessionDead(error)) => {
            let cookies = session_store::end(ctx, Some(&loaded)).await;
            return Err(ApiError::SessionEnded {
                error: Box::new(error),
                cookies,
            });
        }
    };
    if forced {
        session.last_forced = Some(ctx.now.0);
    }
    let cookies = store_token(ctx, &mut loaded, entry.clone(), before).await?;
    answer(ctx, &entry, cookies)
}

/// A 200 with `entry` and `cookies`, passing on the authorization server's DPoP nonce when this
/// request brought one (RFC 9449 §8.2).
fn answer<H, K>(
    ctx: &Ctx<'_, H, K>,
    entry: &CachedToken,
    cookies: Vec<SetCookie>,
) -> Result<Response<Vec<u8>>, ApiError> {
    if ctx.config.dpop && !entry.bound {
        // Handing it out would break the promise of DPoP mode; the rotated refresh token is kept.
        ctx.deps.log.line(
            Level::Error,
            "the token endpoint answered a DPoP proof with a bearer token; BFF_DPOP=required needs an authorization server that binds tokens (RFC 9449)",
        );
        return Err(ApiError::Stored {
            error: Box::new(ApiError::ServerError),
            cookies,
        });
    }
    let mut response = response::with_cookies(response::json(StatusCode::OK, &body_of(ctx, entry)), &cookies);
    let nonce = ctx.config.dpop.then(|| ctx.provider.nonces.since(ctx.now)).flatten();
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert(DPOP_NONCE, value);
    }
    Ok(response)
}

/// A browser's DPoP proof that passed every check: forwarded byte for byte.
struct Presented<'a> {
    raw: &'a str,
    has_nonce: bool,
}

/// The request's `DPoP` proof, checked against the key pinned in the session and the
/// authorization server's token endpoint (http-api.md: Browser-bound tokens; RFC 9449 §4.3).
async fn dpop_proof<'a, H: HttpClient, K: KvStore>(
    ctx: &Ctx<'a, H, K>,
    session: &Session,
) -> Result<Presented<'a>, ApiError> {
    let metadata = ctx.provider.metadata(ctx.config, ctx.deps).await?;
    dpop_offered(ctx, &metadata)?;
    let Some(jkt) = session.dpop_jkt.as_deref() else {
        return Err(ApiError::BackendNotReady {
            login_url: ctx.login_path(),
            description: "the session has no DPoP key pinned; sign in again",
        });
    };
    let refuse = |error: ProofError| ApiError::InvalidDpopProof(error.description());
    let mut values = ctx.parts.headers.get_all(DPOP).iter();
    let raw = match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().map_err(|_| refuse(ProofError::Malformed))?,
        _ => return Err(refuse(ProofError::Missing)),
    };
    let expected = dpop::Expected {
        jkt,
        htu: &metadata.token_endpoint,
        now: ctx.now,
    };
    let proof = dpop::verify(raw, &expected, ctx.signatures).await.map_err(refuse)?;
    Ok(Presented {
        raw,
        has_nonce: proof.has_nonce,
    })
}

/// What a refresh is for: the cache key, and the browser's proof to forward in DPoP mode.
struct Wanted<'a> {
    key: &'a str,
    resource: Option<&'a str>,
    scope: &'a str,
    proof: Option<&'a str>,
}

/// What the refresh this instance made with the session's refresh token answered for (`key`,
/// `resource`), if it is remembered and still fresh.
async fn forced_answer<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    session: &Session,
    held: &CachedToken,
    key: &str,
    resource: Option<&str>,
    rejected: &str,
) -> Option<std::sync::Arc<Rotation>> {
    let refresh_token = session.refresh_token.as_ref()?;
    let in_flight = rotation::in_flight_limit(ctx.config.http_timeout);
    ctx.rotations
        .latest(
            refresh_token.expose(),
            key,
            resource,
            rejected,
            held,
            in_flight,
            ctx.deps,
        )
        .await
}

/// The parameters of a `bff-token` request (http-api.md: bff-token).
struct TokenRequest<'a> {
    resource: Option<&'a str>,
    scope: Option<&'a str>,
    rejected: Option<&'a str>,
}

impl<'a> TokenRequest<'a> {
    fn parse(params: &'a [(String, String)]) -> Result<Self, ApiError> {
        let resource =
            single(params, "resource").map_err(|()| ApiError::InvalidRequest("resource may be given once"))?;
        if resource.is_some_and(|r| !is_resource_uri(r)) {
            return Err(ApiError::InvalidRequest(
                "resource must be an absolute URI without a fragment",
            ));
        }
        let scope = single(params, "scope").map_err(|()| ApiError::InvalidRequest("scope may be given once"))?;
        let rejected = single(params, "rejected_token").ok().flatten();
        Ok(Self {
            resource,
            scope,
            rejected,
        })
    }
}

/// Caches `entry` in the session and stores the session with its new refresh token: the one
/// thing that must never be lost, since the provider has consumed the old one. When the session
/// no longer fits the cookie budget, cached tokens go first, then the new ID token's claims (the
/// login's are kept, and a line is logged); a session whose refresh token alone does not fit any
/// more is ended (KV mode is the remedy).
async fn store_token<H, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    loaded: &mut Loaded,
    entry: CachedToken,
    before: (IdToken, Map<String, Value>),
) -> Result<Vec<SetCookie>, ApiError> {
    let session = &mut loaded.session;
    session
        .tokens
        .retain(|t| !t.answers(&entry.key, entry.resource.as_deref()));
    session.tokens.push(entry);
    // Least recently obtained first: a page cycling through keys cannot grow a KV record (or the
    // work of trimming a cookie) without bound.
    let excess = session.tokens.len().saturating_sub(MAX_CACHED_TOKENS);
    session.tokens.drain(..excess);
    let started = ctx.deps.clock.now().0;
    let mut saved = session_store::save(ctx, loaded).await;
    let hung = store_breaker::hung_since(ctx.deps.clock, started);
    if matches!(saved, Err(SaveError::Store(Unavailable::Failed))) && !hung {
        // Once more: the provider has consumed the old refresh token. Not after a save that hung
        // until its deadline: another wait would put the answer past the frontend's timeout, and
        // the rotation memory has the new token for the next request.
        saved = session_store::save(ctx, loaded).await;
    }
    if matches!(saved, Err(SaveError::TooLarge { .. })) {
        loaded.session.tokens.clear();
        saved = session_store::save(ctx, loaded).await;
    }
    if let Err(error @ SaveError::TooLarge { .. }) = &saved {
        session_store::report(ctx, error);
        (loaded.session.id_token, loaded.session.claims) = before;
        saved = session_store::save(ctx, loaded).await;
    }
    match saved {
        Ok(cookies) => Ok(cookies),
        Err(error @ SaveError::TooLarge { .. }) => {
            session_store::report(ctx, &error);
            Err(ApiError::SessionEnded {
                error: Box::new(ApiError::InvalidSession),
                cookies: session_store::end(ctx, Some(loaded)).await,
            })
        }
        // The token is good, but the rotated refresh token could not be stored: answering it
        // beats a 503 whose retry, on another instance, would present the consumed one.
        Err(SaveError::Store(Unavailable::Failed)) => {
            ctx.deps.log.line(
                Level::Error,
                "the refreshed session could not be stored; the token is answered anyway",
            );
            Ok(Vec::new())
        }
        Err(error) => Err(error.into()),
    }
}

/// Refreshes through the rotation memory: one refresh per refresh token per isolate or
/// container; requests that arrive with a token just rotated use the result (http-api.md: bff-token).
async fn refresh<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    session: &mut Session,
    wanted: &Wanted<'_>,
    forced: bool,
) -> Result<CachedToken, Refused> {
    let (key, resource) = (wanted.key, wanted.resource);
    // Each pass either refreshes or follows one rotation someone else made; a chain longer than
    // this means another client keeps rotating the same grant.
    for _ in 0..4 {
        let Some(refresh_token) = session.refresh_token.as_ref().map(|t| t.expose().to_owned()) else {
            return Err(Refused::Answer(ApiError::BackendNotReady {
                login_url: ctx.login_path(),
                description: "no refresh token; sign in again",
            }));
        };
        let in_flight = rotation::in_flight_limit(ctx.config.http_timeout);
        let guard = match ctx
            .rotations
            .claim(&refresh_token, key, resource, in_flight, ctx.deps)
            .await
        {
            Claim::Rotated(rotation) => {
                apply(session, &rotation);
                if rotation.serves(key, resource, ctx.deps.clock.now()) {
                    return Ok(rotation.entry.clone());
                }
                continue;
            }
            Claim::Mine(guard) => guard,
        };
        if let Some(rotation) = records::shared_claim(ctx, &session.id, &refresh_token).await {
            apply(session, &rotation);
            let entry = rotation
                .serves(key, resource, ctx.deps.clock.now())
                .then(|| rotation.entry.clone());
            guard.complete(rotation, true, ctx.deps.clock.now().0);
            match entry {
                Some(entry) => return Ok(entry),
                None => continue,
            }
        }
        let outcome = exchange(ctx, session, &refresh_token, wanted).await;
        let rotation = match outcome {
            Ok(rotation) => Rotation {
                forced_at: forced.then_some(ctx.now.0),
                ..rotation
            },
            Err(refused) => {
                records::release(ctx, &session.id, &refresh_token).await;
                return Err(refused);
            }
        };
        apply(session, &rotation);
        let rotated = rotation.refresh_token.is_some();
        if rotated {
            records::publish(ctx, &session.id, &refresh_token, &rotation).await;
        } else {
            records::release(ctx, &session.id, &refresh_token).await;
        }
        let entry = rotation.entry.clone();
        guard.complete(rotation, rotated, ctx.deps.clock.now().0);
        return Ok(entry);
    }
    Err(Refused::Answer(UpstreamError::Unavailable.into()))
}

/// One refresh request at the token endpoint (RFC 6749 §6) and what it yields. The new refresh
/// token is kept whatever happens to the ID token that came with it: a consumed token must never
/// stay in the session.
async fn exchange<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    session: &Session,
    refresh_token: &str,
    wanted: &Wanted<'_>,
) -> Result<Rotation, Refused> {
    let (key, resource) = (wanted.key, wanted.resource);
    let config = ctx.config;
    let metadata = ctx.provider.metadata(config, ctx.deps).await?;
    let assertion = token::client_assertion(
        config,
        ctx.signatures,
        ctx.deps.clock.now(),
        ctx.deps.random,
        ctx.deps.log,
    )
    .await?;
    // RFC 6749 §6: an omitted scope means the originally granted one.
    let grant = Grant::Refresh {
        refresh_token,
        scope: (key != scope_key(&session.scope)).then_some(wanted.scope),
        resource,
    };
    let mut request = token::token_request(config, &metadata.token_endpoint, &grant, assertion.as_deref());
    // RFC 9449 §5: the browser's proof, unchanged, binds the new access token to its key.
    if let Some(value) = wanted.proof.and_then(|p| HeaderValue::from_str(p).ok()) {
        request.headers_mut().insert(DPOP, value);
    }
    let outcome = match provider::send(ctx.deps, config, request).await {
        Ok(response) => {
            let nonce = response
                .headers()
                .get(DPOP_NONCE)
                .and_then(|v| v.to_str().ok())
                .filter(|n| dpop::valid_nonce(n));
            let parsed = token::parse_token_response(&response, wanted.proof.is_some());
            if let Some(nonce) = nonce.filter(|_| wanted.proof.is_some()) {
                let demanded = matches!(&parsed, Err(UpstreamError::OAuth { error, .. }) if error == "use_dpop_nonce");
                ctx.provider.nonces.saw(nonce, demanded, ctx.deps.clock.now());
                if demanded {
                    return Err(Refused::Answer(ApiError::UseDpopNonce(nonce.to_owned())));
                }
            }
            parsed
        }
        Err(e) => Err(e),
    };
    let tokens = match outcome {
        Ok(tokens) => tokens,
        // RFC 10017 §6.1.2.2: the refresh token is dead, and so is the session.
        Err(e @ UpstreamError::OAuth { .. }) if e.is_invalid_grant() => {
            return Err(Refused::SessionDead(ApiError::Upstream(e)));
        }
        // The deployment's credentials, not the user's request: an operator must act.
        Err(UpstreamError::OAuth { error, .. }) if error == "invalid_client" || error == "unauthorized_client" => {
            let line = format!("the token endpoint answered {error}: check BFF_CLIENT_ID and the client credentials");
            ctx.deps.log.line(Level::Error, &line);
            return Err(Refused::Answer(ApiError::ServerError));
        }
        Err(e) => return Err(e.into()),
    };
    let id_token = match tokens.id_token.as_deref() {
        Some(raw) => refreshed_id_token(ctx, session, raw).await?,
        None => None,
    };
    let now = ctx.deps.clock.now().0;
    Ok(Rotation {
        refresh_token: tokens.refresh_token.clone().filter(|new| new != refresh_token),
        id_token,
        entry: CachedToken::from_response(
            resource.map(str::to_owned),
            key.to_owned(),
            &tokens,
            now,
            session.expires,
        ),
        forced_at: None,
    })
}

/// OpenID Connect Core §12.2: a refreshed ID token must keep `iss`, `sub`, `aud` and, when both
/// carry them, `auth_time` and `nonce`. A definite mismatch ends the session; any other failure to validate it
/// (JWKS down, a key not yet fetchable) keeps the old claims, since the tokens themselves are good.
async fn refreshed_id_token<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    session: &Session,
    raw: &str,
) -> Result<Option<(String, Map<String, Value>)>, Refused> {
    let mismatch = |claim: &str| {
        ctx.deps.log.line(
            Level::Warn,
            &format!("refreshed ID token has another {claim} (OpenID Connect Core 12.2): session ended"),
        );
        Refused::SessionDead(ApiError::InvalidSession)
    };
    match ctx
        .provider
        .validate_id_token(raw, None, ctx.config, ctx.deps, ctx.signatures)
        .await
    {
        Ok(claims) if claims.sub != session.sub => Err(mismatch("sub")),
        Ok(claims)
            if claims
                .auth_time
                .zip(session.auth_time)
                .is_some_and(|(new, old)| new != old) =>
        {
            Err(mismatch("auth_time"))
        }
        Ok(claims)
            if claims
                .nonce
                .as_ref()
                .is_some_and(|new| original_nonce(session).is_some_and(|old| *new != old)) =>
        {
            Err(mismatch("nonce"))
        }
        Ok(claims) => Ok(Some((raw.to_owned(), project_claims(ctx.config, claims.other)))),
        Err(KeyError::Token(IdTokenError::Claim(claim @ ("iss" | "aud" | "azp")))) => Err(mismatch(claim)),
        Err(error) => {
            ctx.deps.log.line(
                Level::Warn,
                &format!("refreshed ID token not validated ({error:?}); the session keeps its claims"),
            );
            Ok(None)
        }
    }
}

/// The `nonce` of the session's ID token from the login (validated then, sealed since).
fn original_nonce(session: &Session) -> Option<String> {
    id_token::unverified_claim(session.id_token.expose(), "nonce")?
        .as_str()
        .map(str::to_owned)
}

/// Takes a rotation into the session: the new refresh token, ID token with its claims, the
/// access token obtained (unless the session holds a newer one for that key) and the forced
/// refresh's time. The session may be an older copy than the one the rotation was made from:
/// nothing it brings may be lost.
fn apply(session: &mut Session, rotation: &Rotation) {
    if let Some(rotated) = &rotation.refresh_token {
        session.refresh_token = Some(RefreshToken::new(rotated.clone()));
    }
    session.last_forced = session.last_forced.max(rotation.forced_at);
    let entry = &rotation.entry;
    let held = session
        .tokens
        .iter()
        .position(|t| t.answers(&entry.key, entry.resource.as_deref()));
    match held {
        Some(at) if session.tokens[at].expires >= entry.expires => {}
        Some(at) => session.tokens[at] = entry.clone(),
        None => session.tokens.push(entry.clone()),
    }
    if let Some((raw, claims)) = &rotation.id_token {
        session.id_token = IdToken::new(raw.clone());
        for (name, value) in claims {
            session.claims.insert(name.clone(), value.clone());
        }
    }
}

/// Why a refresh produced no token.
enum Refused {
    /// Answer this; the session stays as it was.
    Answer(ApiError),
    /// The refresh token is dead: end the session, then answer the error.
    SessionDead(ApiError),
}

impl<E: Into<ApiError>> From<E> for Refused {
    fn from(error: E) -> Self {
        Self::Answer(error.into())
    }
}

fn body_of<H, K>(ctx: &Ctx<'_, H, K>, entry: &CachedToken) -> Value {
    let token_type = if entry.bound { "DPoP" } else { "Bearer" };
    let mut body = json!({"access_token": entry.token.expose(), "token_type": token_type, "scope": entry.scope});
    if entry.expires_known {
        body["expires_in"] = json!(ctx.now.until(UnixTime(entry.expires)));
    }
    body
}

/// `backend_not_ready` with a `login_url` asking for what is missing (http-api.md: bff-token).
fn not_ready<H, K>(ctx: &Ctx<'_, H, K>, session: &Session, key: &str, resource: Option<&str>) -> ApiError {
    let mut query = Serializer::new(String::new());
    let missing: Vec<&str> = key
        .split_whitespace()
        .filter(|s| !scope_covered(s, &session.scope))
        .collect();
    if !missing.is_empty() {
        query.append_pair("scope", &missing.join(" "));
    }
    if let Some(resource) = resource.filter(|r| !session.resources.iter().any(|g| g == r)) {
        query.append_pair("resource", resource);
    }
    ApiError::BackendNotReady {
        login_url: format!("{}?{}", ctx.login_path(), query.finish()),
        description: "the session has no grant for this scope or resource; sign in to consent",
    }
}
