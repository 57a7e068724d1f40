//! `POST B/bff/backchannel-logout` (CONTRACT §2.7; OpenID Connect Back-Channel Logout 1.0 §2.5–2.8).

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

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

pub(crate) async fn backchannel_logout<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    // Stateless cookie sessions can only be ended through a revocation list in a store.
    let Some(store) = ctx.deps.store else {
        return ApiError::Unsupported.into_response();
    };
    match end_sessions(ctx, store).await {
        Ok(()) => {
            let mut response = response::json(StatusCode::OK, &json!({}));
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
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
    let metadata = ctx
        .provider
        .metadata(config, ctx.deps)
        .await
        .map_err(ApiError::Upstream)?;
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
        Err(KeyError::Upstream(e)) => return Err(ApiError::Upstream(e)),
    };
    let logout =
        logout_token::verify(token, &header.alg, &key, &config.issuer, &config.client_id, ctx.now).map_err(refused)?;
    // 7. A `jti` seen before is a replay. It is recorded only once the sessions are ended, so a
    //    provider retrying after a failure here (Back-Channel Logout 1.0 §2.8) is not refused.
    let digest = Sha256::digest(format!("{}|{}", config.issuer, logout.jti).as_bytes());
    let jti_key = format!(
        "jti:{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, digest)
    );
    let unavailable = records::Unavailable::into_api_error;
    if records::get_sealed(ctx, store, &jti_key)
        .await
        .map_err(unavailable)?
        .is_some()
    {
        return Err(refused(IdTokenError::Claim("jti")));
    }
    session_store::end_all(ctx, store, logout.sid.as_deref(), logout.sub.as_deref(), logout.iat)
        .await
        .map_err(unavailable)?;
    let expires = UnixTime(logout.exp.max(ctx.now.0) + 120);
    records::put_sealed(ctx, store, &jti_key, b"seen", expires, records::Write::Always)
        .await
        .map_err(unavailable)?;
    ctx.deps
        .log
        .line(Level::Info, "back-channel logout ended the sessions of one sid or sub");
    Ok(())
}
