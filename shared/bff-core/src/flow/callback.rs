//! `GET B/bff/callback`: finish the authorization code flow (http-api.md: login; RFC 6749 §4.1.2,
//! RFC 9207, OpenID Connect Core §3.1.3).

use http::Response;
use http::header::AUTHORIZATION;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::cookie::{SameSite, SetCookie};
use crate::ctx::Ctx;
use crate::error::PageError;
use crate::flow::{query, single};
use crate::oidc::discovery::Metadata;
use crate::oidc::token::{self, Grant, TokenSet};
use crate::ports::{HttpClient, KvStore, Level};
use crate::provider;
use crate::response;
use crate::secret::{IdToken, RefreshToken, constant_time_eq};
use crate::session::{CachedToken, LoginTxn, Session, project_claims, scope_key};
use crate::session_cookie;
use crate::session_store;

pub(crate) async fn callback<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    let login_path = ctx.login_path();
    let params = query(ctx.parts);
    let state = single(&params, "state").ok().flatten().unwrap_or_default();
    let txn_name = session_cookie::txn_cookie_name(state);
    // A transaction cookie sent twice (one may be planted) is no transaction: login CSRF.
    let Some(value) = ctx.cookies.get(&txn_name).filter(|_| !state.is_empty()) else {
        return PageError::BadRequest("This sign-in is unknown, expired or already finished. Please start again.")
            .into_response(&login_path);
    };
    // Any outcome but an outage before the provider took the code ends this transaction: once it
    // answered the exchange the code is spent, and a retry could only fail (http-api.md: callback).
    let delete_txn = SetCookie::delete(txn_name.clone(), SameSite::Lax);
    let mut code_sent = false;
    let outcome = match session_cookie::open_txn(value, ctx.config, ctx.now) {
        Ok(txn) if constant_time_eq(&txn.state, state) => finish(ctx, &params, txn, &mut code_sent).await,
        _ => Err(PageError::BadRequest(
            "This sign-in is unknown, expired or already finished. Please start again.",
        )),
    };
    match outcome {
        Ok((location, mut cookies)) => {
            cookies.push(delete_txn);
            response::with_cookies(response::redirect(&location), &cookies)
        }
        // No answer to the code exchange, or a 5xx: the same callback may be retried.
        Err(error @ PageError::Unavailable) if !code_sent => error.into_response(&login_path),
        Err(error) => response::with_cookies(error.into_response(&login_path), &[delete_txn]),
    }
}

async fn finish<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    params: &[(String, String)],
    txn: LoginTxn,
    code_sent: &mut bool,
) -> Result<(String, Vec<SetCookie>), PageError> {
    let config = ctx.config;
    // A transaction from before DPoP was required pinned no key: its tokens could not be bound.
    if config.dpop && txn.dpop_jkt.is_none() {
        return Err(PageError::BadRequest(
            "This sign-in started without the browser's DPoP key. Please start again.",
        ));
    }
    let metadata = ctx.provider.metadata(config, ctx.deps).await?;
    let code = authorization_code(params, config, &metadata)?;
    let assertion = token::client_assertion(config, ctx.signatures, ctx.now, ctx.deps.random, ctx.deps.log).await?;
    // The first access token is for the default resource when it was asked for, else the first.
    let first_resource = txn
        .resources
        .iter()
        .find(|r| Some(*r) == config.default_resource.as_ref())
        .or(txn.resources.first())
        .cloned();
    let grant = Grant::AuthorizationCode {
        code,
        verifier: &txn.verifier,
        resource: first_resource.as_deref(),
    };
    let request = token::token_request(config, &metadata.token_endpoint, &grant, assertion.as_deref());
    let response = provider::send(ctx.deps, config, request).await?;
    // The provider answered: from now on the code may be spent (a 5xx most likely did not spend
    // it, and a failed retry only costs a "sign in again"), so no retry of this callback is offered.
    *code_sent = !response.status().is_server_error();
    let tokens = token::parse_token_response(&response, false)?;
    let Some(raw_id_token) = tokens.id_token.as_deref() else {
        return Err(PageError::BadRequest("The sign-in service returned no ID token."));
    };
    // In DPoP mode every token handed out comes from a refresh that carries the browser's proof;
    // a session without a refresh token could only send the user round the login again.
    if config.dpop && tokens.refresh_token.is_none() {
        ctx.deps.log.line(
            Level::Error,
            "BFF_DPOP=required needs a refresh token, and the code exchange returned none: grant the client offline_access (BFF_SCOPES)",
        );
        return Err(PageError::BadRequest(
            "The sign-in service granted no refresh token, which browser-bound tokens need. The operator must allow offline_access.",
        ));
    }
    let claims = ctx
        .provider
        .validate_id_token(raw_id_token, Some(&txn.nonce), config, ctx.deps, ctx.signatures)
        .await
        .inspect_err(|e| ctx.deps.log.line(Level::Warn, &format!("ID token refused: {e:?}")))?;
    let mut source = claims.other;
    if let Some(endpoint) = metadata.userinfo_endpoint.as_ref().filter(|_| config.userinfo) {
        for (name, value) in userinfo(ctx, endpoint, &tokens, &claims.sub).await? {
            source.entry(name).or_insert(value);
        }
    }
    let expires = ctx.now.0 + config.session_max_age;
    let scope = granted_scope(&txn.scope, tokens.scope.as_deref());
    let entry = CachedToken::from_response(first_resource, scope_key(&scope), &tokens, ctx.now.0, expires);
    let session = Session {
        id: String::new(),
        iss: config.issuer.clone(),
        sub: claims.sub,
        sid: claims.sid,
        auth_time: claims.auth_time,
        created: ctx.now.0,
        expires,
        claims: project_claims(config, source),
        id_token: IdToken::new(raw_id_token),
        refresh_token: tokens.refresh_token.clone().map(RefreshToken::new),
        scope,
        resources: txn.resources,
        // The code's access token answers requests for that resource with the whole grant's
        // scope; in DPoP mode it is a bearer token, never handed out.
        tokens: if config.dpop { Vec::new() } else { vec![entry] },
        last_forced: None,
        dpop_jkt: txn.dpop_jkt,
    };
    let cookies = session_store::create(ctx, session)
        .await
        .inspect_err(|e| session_store::report(ctx, e))?;
    Ok((txn.return_to, cookies))
}

/// The authorization response's code, once `iss` (RFC 9207 §2.4: simple string comparison,
/// required when advertised) and `error` (RFC 6749 §4.1.2.1) are checked.
fn authorization_code<'a>(
    params: &'a [(String, String)],
    config: &Config,
    metadata: &Metadata,
) -> Result<&'a str, PageError> {
    match single(params, "iss") {
        Ok(Some(iss)) if iss == config.issuer => {}
        Ok(None) if !metadata.authorization_response_iss_parameter_supported => {}
        _ => {
            return Err(PageError::BadRequest(
                "The sign-in response did not come from the expected issuer.",
            ));
        }
    }
    match single(params, "error") {
        Ok(None) => {}
        Ok(Some(error)) => {
            let description = single(params, "error_description").ok().flatten().map(str::to_owned);
            return Err(PageError::Provider {
                error: error.to_owned(),
                description,
            });
        }
        // Repeated, it is still an error response (RFC 6749 §3.1 forbids the repetition): never
        // a reason to exchange the code beside it.
        Err(()) => {
            return Err(PageError::BadRequest(
                "The sign-in response carried more than one error.",
            ));
        }
    }
    match single(params, "code") {
        Ok(Some(code)) => Ok(code),
        _ => Err(PageError::BadRequest(
            "The sign-in response carried no authorization code.",
        )),
    }
}

/// What the grant covers: what was asked and consented to, plus what the token response names.
/// With resource indicators a token response lists only one resource's scopes, so it alone would
/// lose the others.
fn granted_scope(asked: &str, answered: Option<&str>) -> String {
    let mut scope = asked.to_owned();
    for extra in answered.unwrap_or_default().split_whitespace() {
        if !scope.split_whitespace().any(|s| s == extra) {
            scope.push(' ');
            scope.push_str(extra);
        }
    }
    scope
}

/// OpenID Connect Core §5.3: the UserInfo claims, whose `sub` must match the ID token's.
async fn userinfo<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    endpoint: &str,
    tokens: &TokenSet,
    sub: &str,
) -> Result<Map<String, Value>, PageError> {
    let mut request = provider::get(endpoint);
    if let Ok(value) = format!("Bearer {}", tokens.access_token).parse() {
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let response = provider::send(ctx.deps, ctx.config, request).await?;
    if response.status().is_server_error() {
        return Err(PageError::Unavailable);
    }
    let claims: Map<String, Value> = serde_json::from_slice(response.body())
        .ok()
        .filter(|_| response.status().is_success())
        .ok_or(PageError::BadRequest(
            "The sign-in service's UserInfo answer could not be used.",
        ))?;
    if claims.get("sub").and_then(Value::as_str) != Some(sub) {
        return Err(PageError::BadRequest("The UserInfo answer was for another user."));
    }
    Ok(claims)
}
