//! `POST B/bff/logout` (http-api.md: logout; RFC 7009; OpenID Connect RP-Initiated Logout 1.0 §2).

use crate::urls::parse_url;
use http::{Response, StatusCode};
use serde_json::json;

use crate::config::SessionMode;
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::oidc::token;
use crate::ports::{HttpClient, KvStore, Level};
use crate::provider;
use crate::response;
use crate::session_cookie;
use crate::session_store::{self, Loaded, Lookup};
use crate::store_breaker;

pub(crate) async fn logout<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Response<Vec<u8>>, ApiError> {
    let config = ctx.config;
    let post_logout = format!("{}{}", config.public_origin, config.post_logout_path);
    let started = ctx.deps.clock.now().0;
    let (loaded, store_hung) = match session_store::load(ctx).await {
        Ok(Lookup::Found(loaded)) => (Some(*loaded), false),
        // The store failed, but a cookie session is still readable: its refresh token must be
        // revoked all the same, or a copy of the cookie would outlive the logout.
        Err(_) if config.session_store == SessionMode::Cookie => {
            let session = session_cookie::load(&ctx.cookies, config, ctx.now);
            let hung = store_breaker::hung_since(ctx.deps.clock, started);
            (session.map(|session| Loaded { session, id: None }), hung)
        }
        // In KV mode the session, its refresh token included, is in the store: clearing only the
        // cookies would look like a logout and leave the session alive. The client retries.
        Err(unavailable) => return Err(unavailable.into()),
        Ok(_) => (None, false),
    };
    let mut cookies = if store_hung {
        // Not the store again for the revocation entry: a store that hung once would cost a
        // second full wait, and the client would give up on the logout before the provider is
        // asked. (One that failed fast is tried again: another key may well be written.)
        if loaded.is_some() {
            ctx.deps.log.line(
                Level::Warn,
                "logout without a revocation entry: the session store is unavailable",
            );
        }
        session_store::end(ctx, None).await
    } else if let Some(kv) = loaded.as_ref().filter(|l| l.id.is_some()) {
        session_store::end_kv(ctx, kv).await?
    } else {
        session_store::end(ctx, loaded.as_ref()).await
    };
    cookies.extend(session_cookie::clear_txns(&ctx.cookies));
    let mut logout_url = post_logout.clone();

    if let Some(session) = loaded.as_ref().map(|l| &l.session) {
        match ctx.provider.metadata(config, ctx.deps).await {
            Ok(metadata) => {
                if let (Some(endpoint), Some(refresh_token)) = (&metadata.revocation_endpoint, &session.refresh_token) {
                    // Best effort: a failed revocation is logged, the logout still succeeds.
                    let assertion =
                        token::client_assertion(config, ctx.signatures, ctx.now, ctx.deps.random, ctx.deps.log)
                            .await
                            .ok()
                            .flatten();
                    let request =
                        token::revocation_request(config, endpoint, refresh_token.expose(), assertion.as_deref());
                    match provider::send(ctx.deps, config, request).await {
                        Ok(response) if response.status().is_success() => {}
                        Ok(response) => ctx.deps.log.line(
                            Level::Warn,
                            &format!("refresh token revocation answered {}", response.status()),
                        ),
                        Err(_) => ctx.deps.log.line(Level::Warn, "refresh token revocation failed"),
                    }
                }
                if let Some(mut url) = metadata.end_session_endpoint.as_deref().and_then(parse_url) {
                    url.query_pairs_mut()
                        .append_pair("id_token_hint", session.id_token.expose())
                        .append_pair("client_id", &config.client_id)
                        .append_pair("post_logout_redirect_uri", &post_logout);
                    logout_url = url.into();
                }
            }
            Err(_) => ctx
                .deps
                .log
                .line(Level::Warn, "logout without revocation: issuer metadata unavailable"),
        }
    }
    Ok(response::with_cookies(
        response::json(StatusCode::OK, &json!({"logout_url": logout_url})),
        &cookies,
    ))
}
