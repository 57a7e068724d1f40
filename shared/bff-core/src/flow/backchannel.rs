//! `POST B/bff/backchannel-logout` (http-api.md: backchannel-logout; OpenID Connect Back-Channel Logout 1.0 §2.5–2.8).

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::flow::single;
use crate::oidc::algorithms;
use crate::oidc::id_token::{self, IdTokenError};
use crate::oidc::logout_token;
use crate::ports::{HttpClient, KvStore, Level, UnixTime};
use crate::provider::KeyError;
use crate::records;
use crate::response;
use crate::session_store;

pub(crate) async fn backchannel_logout<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
) -> Result<Response<Vec<u8>>, ApiError> {
    // Stateless cookie sessions can only be ended through revocation entries in a store.
    let store = ctx.deps.store.ok_or(ApiError::Unsupported)?;
    end_sessions(ctx, store).await?;
    let mut response = response::json(StatusCode::OK, &json!({}));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn end_sessions<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>, store: &K) -> Result<(), ApiError> {
    let config = ctx.config;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(ctx.body).into_owned().collect();
    let Ok(Some(token)) = single(&params, "logout_token") else {
        return Err(ApiError::InvalidRequest("a logout_token is required"));
    };
    let refused = |reason: IdTokenError| {
        ctx.deps
            .log
            .line(Level::Warn, &format!("logout token refused: {reason:?}"));
        ApiError::InvalidRequest("the logout token is not valid")
    };
    let metadata = ctx.provider.metadata(config, ctx.deps).await?;
    // 2. The signature as for an ID token, with the same algorithm allow-list (never `none`).
    let header = id_token::header(token).map_err(refused)?;
    let allowed = algorithms::allowed_algs(
        config.id_token_algs.as_deref(),
        &metadata.id_token_signing_alg_values_supported,
    );
    if !allowed.contains(&header.alg) {
        return Err(refused(IdTokenError::Algorithm));
    }
    let key = match ctx
        .provider
        .verification_key(&metadata, &header, config, ctx.deps)
        .await
    {
        Ok(key) => key,
        Err(KeyError::Token(reason)) => return Err(refused(reason)),
        Err(error) => return Err(error.into()),
    };
    let expected = logout_token::Expected {
        issuer: &config.issuer,
        client_id: &config.client_id,
    };
    let logout = logout_token::verify(token, &header.alg, &key, &expected, ctx.now, ctx.signatures)
        .await
        .map_err(refused)?;
    // 7. A `jti` seen before is a replay. It is recorded only once the sessions are ended, so a
    //    provider retrying after a failure here (Back-Channel Logout 1.0 §2.8) is not refused.
    if records::logout_token_seen(ctx, store, &logout.jti).await? {
        return Err(refused(IdTokenError::Claim("jti")));
    }
    session_store::end_all(ctx, store, logout.sid.as_deref(), logout.sub.as_deref(), logout.iat).await?;
    records::remember_logout_token(ctx, store, &logout.jti, UnixTime(logout.exp)).await?;
    ctx.deps
        .log
        .line(Level::Info, "back-channel logout ended the sessions of one sid or sub");
    Ok(())
}
