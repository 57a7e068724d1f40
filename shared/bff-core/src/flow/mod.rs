//! One function per endpoint: pure decisions, awaiting the ports in between.

pub(crate) mod backchannel;
pub(crate) mod callback;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod session_info;
pub(crate) mod token;

use http::request::Parts;

use crate::config::Config;
use crate::error::ApiError;

/// CSRF rules (http-api.md: Rules for every request; RFC 10017 §6.1.3.3.2): a custom header a cross-site form cannot
/// send, plus the browser's own `Origin` and `Sec-Fetch-Site` when present.
pub(crate) fn check_csrf(parts: &Parts, config: &Config) -> Result<(), ApiError> {
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
