//! `GET B/bff/callback`: finish the authorization code flow (CONTRACT §2.5; RFC 6749 §4.1.2,
//! RFC 9207, OpenID Connect Core §3.1.3).

use http::Response;
use http::header::AUTHORIZATION;
use serde_json::{Map, Value};

use crate::Ctx;
use crate::config::SameSite;
use crate::cookie::{self, SetCookie};
use crate::error::PageError;
use crate::flow::{query, single};
use crate::oidc::id_token;
use crate::oidc::token::{self, Grant, TokenSet, UpstreamError};
use crate::ports::{HttpClient, KvStore, Level};
use crate::provider::{self, KeyError};
use crate::response;
use crate::secret::{AccessToken, IdToken, RefreshToken, constant_time_eq};
use crate::session::{self, CachedToken, LoginTxn, SaveError, Session, scope_key};
use crate::store;

pub(crate) async fn callback<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    let login_path = ctx.login_path();
    let params = query(ctx.parts);
    let state = single(&params, "state").ok().flatten().unwrap_or_default();
    let txn_name = session::txn_cookie_name(state);
    let Some(value) = cookie::find(&ctx.cookies, &txn_name).filter(|_| !state.is_empty()) else {
        return PageError::BadRequest("This sign-in is unknown, expired or already finished. Please start again.")
            .into_response(&login_path);
    };
    // Any outcome but a retryable outage ends this transaction.
    let delete_txn = SetCookie::delete(txn_name.clone(), SameSite::Lax);
    let outcome = match session::open_txn(value, ctx.config, ctx.now) {
        Ok(txn) if constant_time_eq(&txn.state, state) => finish(ctx, &params, txn).await,
        _ => Err(PageError::BadRequest(
            "This sign-in is unknown, expired or already finished. Please start again.",
        )),
    };
    match outcome {
        Ok((location, mut cookies)) => {
            cookies.push(delete_txn);
            response::with_cookies(response::redirect(&location), &cookies)
        }
        // After an outage the same callback may be retried: the code is still unused.
        Err(error @ PageError::Unavailable) => error.into_response(&login_path),
        Err(error) => response::with_cookies(error.into_response(&login_path), &[delete_txn]),
    }
}

async fn finish<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    params: &[(String, String)],
    txn: LoginTxn,
) -> Result<(String, Vec<SetCookie>), PageError> {
    let config = ctx.config;
    let metadata = ctx.provider.metadata(config, ctx.deps).await?;
    // RFC 9207 §2.4: compare `iss` by simple string comparison; required when advertised.
    match single(params, "iss") {
        Ok(Some(iss)) if iss == config.issuer => {}
        Ok(None) if !metadata.authorization_response_iss_parameter_supported => {}
        _ => {
            return Err(PageError::BadRequest(
                "The sign-in response did not come from the expected issuer.",
            ));
        }
    }
    if let Ok(Some(error)) = single(params, "error") {
        let description = single(params, "error_description").ok().flatten().map(str::to_owned);
        return Err(PageError::Provider {
            error: error.to_owned(),
            description,
        });
    }
    let Ok(Some(code)) = single(params, "code") else {
        return Err(PageError::BadRequest(
            "The sign-in response carried no authorization code.",
        ));
    };

    let assertion = token::client_assertion(config, ctx.now, ctx.deps.random).map_err(|_| PageError::ServerError)?;
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
    let tokens = token::parse_token_response(&response)?;
    let Some(raw_id_token) = tokens.id_token.as_deref() else {
        return Err(PageError::BadRequest("The sign-in service returned no ID token."));
    };
    let claims = ctx
        .provider
        .validate_id_token(raw_id_token, Some(&txn.nonce), config, ctx.deps)
        .await
        .map_err(|e| match e {
            KeyError::Upstream(UpstreamError::Unavailable) => PageError::Unavailable,
            KeyError::Upstream(other) => {
                ctx.deps
                    .log
                    .line(Level::Warn, &format!("ID token not validated: {other:?}"));
                PageError::BadRequest("The ID token from the sign-in service was not valid.")
            }
            KeyError::Token(reason) => {
                ctx.deps.log.line(Level::Warn, &format!("ID token refused: {reason:?}"));
                PageError::BadRequest("The ID token from the sign-in service was not valid.")
            }
        })?;

    let mut projected = Map::new();
    let mut source = claims.other;
    if let Some(endpoint) = metadata.userinfo_endpoint.as_ref().filter(|_| config.userinfo) {
        for (name, value) in userinfo(ctx, endpoint, &tokens, &claims.sub).await? {
            source.entry(name).or_insert(value);
        }
    }
    for name in &config.sessioninfo_claims {
        if let Some(value) = source.remove(name) {
            projected.insert(name.clone(), value);
        }
    }

    // What the grant covers: what was asked and consented to, plus what the token response names.
    // With resource indicators a token response lists only one resource's scopes, so it alone
    // would lose the others.
    let mut scope = txn.scope.clone();
    for extra in tokens.scope.as_deref().unwrap_or_default().split_whitespace() {
        if !scope.split_whitespace().any(|s| s == extra) {
            scope.push(' ');
            scope.push_str(extra);
        }
    }
    let mut session = Session {
        iss: config.issuer.clone(),
        sub: claims.sub,
        sid: claims.sid,
        auth_time: claims.auth_time,
        created: ctx.now.0,
        expires: ctx.now.0 + config.session_max_age,
        claims: projected,
        id_token: IdToken::new(raw_id_token),
        refresh_token: tokens.refresh_token.clone().map(RefreshToken::new),
        scope: scope.clone(),
        resources: txn.resources.clone(),
        tokens: Vec::new(),
    };
    // The code's access token answers requests for that resource with the whole grant's scope.
    session
        .tokens
        .push(cache_entry(first_resource, scope_key(&scope), &tokens, ctx.now.0));
    let cookies = store::create(ctx, session).await.map_err(|e| match e {
        SaveError::Random(_) => PageError::ServerError,
        SaveError::Store => PageError::Unavailable,
        SaveError::TooLarge { bytes } => {
            ctx.deps.log.line(
                Level::Error,
                &format!(
                    "session of {bytes} bytes exceeds BFF_COOKIE_BUDGET={}; use KV mode (BFF_SESSION_STORE=kv)",
                    config.cookie_budget
                ),
            );
            PageError::TooLarge
        }
    })?;
    Ok((txn.return_to, cookies))
}

/// A cache entry for a fresh token response (CONTRACT §2.2: without `expires_in`, a JWT's `exp`,
/// else at most 60 s).
pub(crate) fn cache_entry(resource: Option<String>, key: String, tokens: &TokenSet, now: u64) -> CachedToken {
    let (expires, expires_known) = match (tokens.expires_in, id_token::unverified_exp(&tokens.access_token)) {
        (Some(seconds), _) => (now.saturating_add(seconds), true),
        (None, Some(exp)) if exp > now => (exp, true),
        _ => (now + 60, false),
    };
    let scope = tokens.scope.clone().unwrap_or_else(|| key.clone());
    CachedToken {
        resource,
        key,
        scope,
        token: AccessToken::new(tokens.access_token.clone()),
        obtained: now,
        expires,
        expires_known,
        forced: None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(access_token: &str, expires_in: Option<u64>) -> TokenSet {
        let body = serde_json::json!({"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in});
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn lifetime_without_expires_in() {
        // expires_in wins.
        let entry = cache_entry(None, "openid".into(), &tokens("opaque", Some(300)), 1000);
        assert_eq!((entry.expires, entry.expires_known), (1300, true));
        // A JWT's exp when expires_in is missing.
        let jwt = format!(
            "e30.{}.sig",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, br#"{"exp":1120}"#)
        );
        let entry = cache_entry(None, "openid".into(), &tokens(&jwt, None), 1000);
        assert_eq!((entry.expires, entry.expires_known), (1120, true));
        // Otherwise at most 60 s, and expires_in is not claimed.
        let entry = cache_entry(None, "openid".into(), &tokens("opaque", None), 1000);
        assert_eq!((entry.expires, entry.expires_known), (1060, false));
        assert_eq!(entry.scope, "openid");
    }
}
