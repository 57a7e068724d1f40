//! `B/.well-known/bff-token`: hand the frontend an access token (draft-01 §4; CONTRACT §2.2).

use http::{Method, Response, StatusCode};
use serde_json::{Map, json};
use url::form_urlencoded::Serializer;

use crate::Ctx;
use crate::config::is_resource_uri;
use crate::error::ApiError;
use crate::flow::callback::cache_entry;
use crate::flow::{query, single};
use crate::oidc::token::{self, Grant, UpstreamError};
use crate::ports::{HttpClient, KvStore, Level, UnixTime};
use crate::provider::{self, KeyError};
use crate::response;
use crate::rotation::{self, Claim, Rotation};
use crate::secret::{IdToken, RefreshToken, constant_time_eq};
use crate::session::{CachedToken, Session, scope_covered, scope_key};
use crate::store::{self, Loaded, Lookup};

/// A `rejected_token` forces a refresh of the same entry at most this often.
const FORCED_REFRESH_SECS: u64 = 30;

pub(crate) async fn token<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    match mediate(ctx).await {
        Ok(response) => response,
        Err(error) => error,
    }
}

async fn mediate<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Response<Vec<u8>>, Response<Vec<u8>>> {
    let config = ctx.config;
    let params = if ctx.parts.method == Method::POST {
        url::form_urlencoded::parse(ctx.body).into_owned().collect()
    } else {
        query(ctx.parts)
    };
    let fail = |e: ApiError| e.into_response();
    let resource =
        single(&params, "resource").map_err(|()| fail(ApiError::InvalidRequest("resource may be given once")))?;
    if resource.is_some_and(|r| !is_resource_uri(r)) {
        return Err(fail(ApiError::InvalidRequest(
            "resource must be an absolute URI without a fragment",
        )));
    }
    let scope = single(&params, "scope").map_err(|()| fail(ApiError::InvalidRequest("scope may be given once")))?;
    let rejected = single(&params, "rejected_token").ok().flatten();
    let mut loaded = match store::load(ctx).await {
        Ok(Lookup::Found(loaded)) => *loaded,
        Ok(Lookup::Missing) => return Err(fail(ApiError::InvalidSession)),
        Ok(Lookup::Revoked) => {
            let cookies = store::end(ctx, None).await;
            return Err(response::with_cookies(fail(ApiError::InvalidSession), &cookies));
        }
        Err(unavailable) => return Err(fail(unavailable.into_api_error())),
    };
    let session = &mut loaded.session;

    // Which token the request means (CONTRACT §2.2).
    let resource = resource.map(str::to_owned).or_else(|| config.default_resource.clone());
    let wanted_scope = scope.map(str::to_owned).unwrap_or_else(|| session.scope.clone());
    let key = scope_key(&wanted_scope);
    let resource_granted = resource.as_ref().is_none_or(|r| session.resources.contains(r));
    if !scope_covered(&key, &session.scope) || !resource_granted {
        return Err(fail(not_ready(ctx, session, &key, resource.as_deref())));
    }

    let index = session
        .tokens
        .iter()
        .position(|t| t.key == key && t.resource == resource);
    if let Some(entry) = index.map(|i| &session.tokens[i]) {
        let was_rejected = rejected.is_some_and(|r| constant_time_eq(r, entry.token.expose()));
        let may_force = entry
            .forced
            .is_none_or(|at| ctx.now.0.saturating_sub(at) >= FORCED_REFRESH_SECS);
        if entry.is_fresh(ctx.now) && !(was_rejected && may_force) {
            // A plain read: answered from the cookie, nothing is written.
            return Ok(response::json(StatusCode::OK, &body_of(ctx, entry)));
        }
    }
    let forced_now =
        index.is_some_and(|i| rejected.is_some_and(|r| constant_time_eq(r, session.tokens[i].token.expose())));
    let mut entry = match refresh(ctx, session, &key, resource.as_deref(), &wanted_scope).await {
        Ok(entry) => entry,
        Err(Refused::Answer(response)) => return Err(response),
        Err(Refused::SessionDead(error)) => {
            let cookies = store::end(ctx, Some(&loaded)).await;
            return Err(response::with_cookies(error.into_response(), &cookies));
        }
    };
    session.tokens.retain(|t| !(t.key == key && t.resource == resource));
    // The 30 s window belongs to one cached token: a token from a forced refresh cannot be forced
    // again for 30 s; one from a normal refresh starts without a window.
    entry.forced = forced_now.then_some(ctx.now.0);
    let body = body_of(ctx, &entry);
    session.tokens.push(entry);
    let cookies = save_keeping_newest(&mut loaded, ctx).await;
    Ok(response::with_cookies(response::json(StatusCode::OK, &body), &cookies))
}

/// Refreshes through the rotation memory: one refresh per refresh token per isolate or
/// container; requests that arrive with a token just rotated use the result (CONTRACT §2.2).
async fn refresh<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    session: &mut Session,
    key: &str,
    resource: Option<&str>,
    wanted_scope: &str,
) -> Result<CachedToken, Refused> {
    let config = ctx.config;
    let fail = |e: ApiError| Refused::Answer(e.into_response());
    // Each pass either refreshes or follows one rotation someone else made; a chain longer than
    // this means another client keeps rotating the same grant.
    for _ in 0..4 {
        let Some(refresh_token) = session.refresh_token.as_ref().map(|t| t.expose().to_owned()) else {
            return Err(fail(ApiError::BackendNotReady {
                login_url: ctx.login_path(),
                description: "no refresh token; sign in again",
            }));
        };
        let guard = match ctx.rotations.claim(&refresh_token, ctx.deps).await {
            Claim::Rotated(rotation) => {
                apply(session, &rotation);
                if rotation.entry.key == key && rotation.entry.resource.as_deref() == resource {
                    return Ok(rotation.entry.clone());
                }
                continue;
            }
            Claim::Mine(guard) => guard,
        };
        // RFC 6749 §6: an omitted scope means the originally granted one.
        let narrowed = (key != scope_key(&session.scope)).then_some(wanted_scope);
        let metadata = ctx
            .provider
            .metadata(config, ctx.deps)
            .await
            .map_err(|e| fail(ApiError::Upstream(e)))?;
        if let Some(rotation) = rotation::shared_claim(ctx, &refresh_token).await {
            apply(session, &rotation);
            let matches = rotation.entry.key == key && rotation.entry.resource.as_deref() == resource;
            let entry = rotation.entry.clone();
            guard.complete(rotation, ctx.deps.clock.now().0);
            if matches {
                return Ok(entry);
            }
            continue;
        }

        let assertion = token::client_assertion(config, ctx.deps.clock.now(), ctx.deps.random)
            .map_err(|_| fail(ApiError::ServerError))?;
        let grant = Grant::Refresh {
            refresh_token: &refresh_token,
            scope: narrowed,
            resource,
        };
        let request = token::token_request(config, &metadata.token_endpoint, &grant, assertion.as_deref());
        let outcome = match provider::send(ctx.deps, config, request).await {
            Ok(response) => token::parse_token_response(&response),
            Err(e) => Err(e),
        };
        let tokens = match outcome {
            Ok(tokens) => tokens,
            Err(UpstreamError::OAuth { error, description }) if error == "invalid_grant" => {
                // RFC 10017 §6.1.2.2: the refresh token is dead, and so is the session.
                rotation::release(ctx, &refresh_token).await;
                return Err(Refused::SessionDead(ApiError::Upstream(UpstreamError::OAuth {
                    error,
                    description,
                })));
            }
            Err(e) => {
                rotation::release(ctx, &refresh_token).await;
                return Err(fail(ApiError::Upstream(e)));
            }
        };

        // OpenID Connect Core §12.2: a new ID token keeps `iss`, `sub` and `aud` (checked by the
        // validation and here); its claims update the session's.
        let mut id_token = None;
        if let Some(raw) = tokens.id_token.as_deref() {
            match ctx.provider.validate_id_token(raw, None, config, ctx.deps).await {
                Ok(claims) if claims.sub == session.sub => {
                    let mut projected = Map::new();
                    let mut other = claims.other;
                    for name in &config.sessioninfo_claims {
                        if let Some(value) = other.remove(name) {
                            projected.insert(name.clone(), value);
                        }
                    }
                    id_token = Some((raw.to_owned(), projected));
                }
                Err(KeyError::Upstream(e)) => {
                    rotation::release(ctx, &refresh_token).await;
                    return Err(fail(ApiError::Upstream(e)));
                }
                _ => {
                    rotation::release(ctx, &refresh_token).await;
                    ctx.deps
                        .log
                        .line(Level::Warn, "refresh returned an ID token that failed validation");
                    return Err(fail(ApiError::Upstream(UpstreamError::Malformed)));
                }
            }
        }
        let now = ctx.deps.clock.now().0;
        let rotation = Rotation {
            refresh_token: tokens.refresh_token.clone(),
            id_token,
            entry: cache_entry(resource.map(str::to_owned), key.to_owned(), &tokens, now),
        };
        apply(session, &rotation);
        rotation::publish(ctx, &refresh_token, &rotation).await;
        let entry = rotation.entry.clone();
        guard.complete(rotation, now);
        return Ok(entry);
    }
    Err(fail(ApiError::Upstream(UpstreamError::Unavailable)))
}

/// Takes a rotation into the session: the new refresh token and ID token with its claims.
fn apply(session: &mut Session, rotation: &Rotation) {
    if let Some(rotated) = &rotation.refresh_token {
        session.refresh_token = Some(RefreshToken::new(rotated.clone()));
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
    /// Answer this.
    Answer(Response<Vec<u8>>),
    /// The refresh token is dead: end the session, then answer the error.
    SessionDead(ApiError),
}

/// Stores the session; if even the newest token does not fit, it is handed out uncached.
async fn save_keeping_newest<H, K: KvStore>(loaded: &mut Loaded, ctx: &Ctx<'_, H, K>) -> Vec<crate::cookie::SetCookie> {
    match store::save(ctx, loaded).await {
        Ok(cookies) => cookies,
        Err(_) => {
            loaded.session.tokens.clear();
            store::save(ctx, loaded).await.unwrap_or_default()
        }
    }
}

fn body_of<H, K>(ctx: &Ctx<'_, H, K>, entry: &CachedToken) -> serde_json::Value {
    let mut body = json!({"access_token": entry.token.expose(), "token_type": "Bearer", "scope": entry.scope});
    if entry.expires_known {
        body["expires_in"] = json!(ctx.now.until(UnixTime(entry.expires)));
    }
    body
}

/// `backend_not_ready` with a `login_url` asking for what is missing (CONTRACT §2.2).
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
