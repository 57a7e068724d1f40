//! `B/.well-known/bff-sessioninfo` (draft-01 §5; http-api.md: bff-sessioninfo) and `B/.well-known/bff-configuration`
//! (http-api.md: bff-configuration).

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::flow::dpop_offered;
use crate::ports::{HttpClient, KvStore};
use crate::response;
use crate::session_store;

pub(crate) async fn session_info<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
) -> Result<Response<Vec<u8>>, ApiError> {
    let session = session_store::require(ctx).await?.session;
    let mut body = json!({"iss": session.iss, "sub": session.sub, "exp": session.expires});
    if let Some(auth_time) = session.auth_time {
        body["auth_time"] = json!(auth_time);
    }
    if let Some(sid) = session.sid {
        body["sid"] = Value::String(sid);
    }
    for (name, value) in session.claims {
        // The fixed members above win over a claim of the same name.
        body.as_object_mut().map(|o| o.entry(name).or_insert(value));
    }
    Ok(response::json(StatusCode::OK, &body))
}

pub(crate) async fn configuration<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
) -> Result<Response<Vec<u8>>, ApiError> {
    let base = &ctx.config.base_path;
    let mut body = json!({
        "bff_token_endpoint": format!("{base}/.well-known/bff-token"),
        "bff_sessioninfo_endpoint": format!("{base}/.well-known/bff-sessioninfo"),
        "login_endpoint": format!("{base}/bff/login"),
        "logout_endpoint": format!("{base}/bff/logout"),
        "csrf_header": "X-CSRF",
        "dpop": ctx.config.dpop,
    });
    if ctx.config.dpop {
        // Where the browser's proofs are forwarded: their `htu` (http-api.md: Browser-bound tokens).
        let metadata = ctx.provider.metadata(ctx.config, ctx.deps).await?;
        dpop_offered(ctx, &metadata)?;
        body["dpop_token_endpoint"] = json!(metadata.token_endpoint);
        body["dpop_signing_alg_values_supported"] = json!(["ES256"]);
    }
    let mut response = response::json(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    response.headers_mut().remove(PRAGMA);
    Ok(response)
}
