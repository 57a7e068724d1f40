//! `B/.well-known/bff-sessioninfo` (draft-01 §5; CONTRACT §2.3) and `B/.well-known/bff-configuration`
//! (CONTRACT §2.4).

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use crate::Ctx;
use crate::error::ApiError;
use crate::response;
use crate::session;

pub(crate) fn session_info<H, K>(ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    let Some(session) = session::load(&ctx.cookies, ctx.config, ctx.now) else {
        return ApiError::InvalidSession.into_response();
    };
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
    response::json(StatusCode::OK, &body)
}

pub(crate) fn configuration<H, K>(ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    let base = &ctx.config.base_path;
    let body = json!({
        "bff_token_endpoint": format!("{base}/.well-known/bff-token"),
        "bff_sessioninfo_endpoint": format!("{base}/.well-known/bff-sessioninfo"),
        "login_endpoint": format!("{base}/bff/login"),
        "logout_endpoint": format!("{base}/bff/logout"),
        "csrf_header": "X-CSRF",
    });
    let mut response = response::json(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    response.headers_mut().remove(PRAGMA);
    response
}
