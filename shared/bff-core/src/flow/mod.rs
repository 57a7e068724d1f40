//! One function per endpoint: pure decisions, awaiting the ports in between.

pub(crate) mod backchannel;
pub(crate) mod callback;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod session_info;
pub(crate) mod token;

use http::Response;
use http::request::Parts;

use crate::config::Config;
use crate::ctx::Ctx;
use crate::error::{ApiError, PageError};
use crate::limits::MAX_REQUEST_BODY;
use crate::oidc::discovery::Metadata;
use crate::oidc::dpop;
use crate::ports::{HttpClient, KvStore, Level};
use crate::route::{Miss, Route};

/// Why a request was refused before any work.
pub(crate) enum Refusal {
    Api(ApiError),
    Page(PageError),
}

impl Refusal {
    pub(crate) fn into_response(self, config: &Config) -> Response<Vec<u8>> {
        match self {
            Self::Api(error) => error.into_response(),
            Self::Page(error) => error.into_response(&config.login_path()),
        }
    }
}

/// The checks before any work: the route and its method, the body's size, and the CSRF rules
/// where the route needs them.
pub(crate) fn admit(parts: &Parts, body: &[u8], config: &Config) -> Result<Route, Refusal> {
    let route = match Route::resolve(&parts.method, parts.uri.path(), &config.base_path) {
        Ok(route) => route,
        Err(Miss::Method(allow)) => return Err(Refusal::Api(ApiError::MethodNotAllowed(allow))),
        Err(Miss::NotFound) => return Err(Refusal::Api(ApiError::NotFound)),
    };
    if body.len() > MAX_REQUEST_BODY {
        return Err(match route {
            Route::Login | Route::Callback => Refusal::Page(PageError::BodyTooLarge),
            _ => Refusal::Api(ApiError::BodyTooLarge),
        });
    }
    if route.needs_csrf() {
        check_csrf(parts, config).map_err(Refusal::Api)?;
    }
    Ok(route)
}

/// Runs the route's flow; its error becomes the one response it maps to.
pub(crate) async fn answer<H: HttpClient, K: KvStore>(route: Route, ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    let answer = match route {
        Route::Token => token::token(ctx).await,
        Route::SessionInfo => session_info::session_info(ctx).await,
        Route::Configuration => session_info::configuration(ctx).await,
        Route::Logout => logout::logout(ctx).await,
        Route::BackchannelLogout => backchannel::backchannel_logout(ctx).await,
        // The navigations answer with pages.
        Route::Login => return login::login(ctx).await,
        Route::Callback => return callback::callback(ctx).await,
    };
    answer.unwrap_or_else(ApiError::into_response)
}

/// CSRF rules (http-api.md: Rules for every request; RFC 10017 §6.1.3.3.2): a custom header a cross-site form cannot
/// send, plus the browser's own `Origin` and `Sec-Fetch-Site` when present.
fn check_csrf(parts: &Parts, config: &Config) -> Result<(), ApiError> {
    let header = |name: &str| parts.headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    if header("x-csrf") != Some("1") {
        return Err(ApiError::InvalidRequest("the X-CSRF: 1 header is required"));
    }
    if header("origin").is_some_and(|origin| origin != config.public_origin) {
        return Err(ApiError::InvalidRequest("cross-origin requests are refused"));
    }
    if header("sec-fetch-site").is_some_and(|site| site != "same-origin") {
        return Err(ApiError::InvalidRequest("cross-site requests are refused"));
    }
    Ok(())
}

/// In DPoP mode the authorization server must take ES256 proofs; otherwise the deployment is
/// misconfigured: one line names the setting and the request answers 500 (http-api.md:
/// Browser-bound tokens).
pub(crate) fn dpop_offered<H, K>(ctx: &Ctx<'_, H, K>, metadata: &Metadata) -> Result<(), ApiError> {
    if !ctx.config.dpop || dpop::offered(metadata) {
        return Ok(());
    }
    ctx.deps.log.line(
        Level::Error,
        "BFF_DPOP is required, but the issuer's metadata lists no ES256 in dpop_signing_alg_values_supported",
    );
    Err(ApiError::ServerError)
}

/// The query parameters, in order (repeated names kept).
pub(crate) fn query(parts: &Parts) -> Vec<(String, String)> {
    url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The only value of `name`; `Err` when it is repeated.
pub(crate) fn single<'a>(params: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() { Err(()) } else { Ok(first) }
}
