//! Response builders: the JSON endpoints' headers (http-api.md: Rules for every request) and the navigations' pages.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use serde_json::Value;

use crate::cookie::SetCookie;

/// A JSON response with the TMI-BFF security headers (draft-01 §3 and its example).
pub(crate) fn json(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    let mut response = Response::new(serde_json::to_vec(body).unwrap_or_default());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    security_headers(headers, "sandbox");
    response
}

/// A small HTML page for the navigations (`login`, `callback`); `message` is escaped here.
pub(crate) fn page(status: StatusCode, title: &str, message: &str, link: Option<(&str, &str)>) -> Response<Vec<u8>> {
    let link = link
        .map(|(href, text)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(text)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p>{link}</body></html>",
        title = escape(title),
        message = escape(message),
    );
    let mut response = Response::new(body.into_bytes());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(headers, "default-src 'none'");
    response
}

/// A 302 to `location`.
pub(crate) fn redirect(location: &str) -> Response<Vec<u8>> {
    let mut response = Response::new(Vec::new());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Adds `Set-Cookie` headers.
pub(crate) fn with_cookies(mut response: Response<Vec<u8>>, cookies: &[SetCookie]) -> Response<Vec<u8>> {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie.render()) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

fn security_headers(headers: &mut http::HeaderMap, csp: &'static str) {
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("content-security-policy", HeaderValue::from_static(csp));
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape() {
        let response = page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "<script>alert(1)</script>",
            Some(("/bff/login?a=1&b=\"", "Try again")),
        );
        let body = String::from_utf8(response.into_body()).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
        assert!(body.contains("href=\"/bff/login?a=1&amp;b=&quot;\""));
    }

    #[test]
    fn json_headers() {
        let response = json(StatusCode::OK, &serde_json::json!({"a": 1}));
        let h = response.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["pragma"], "no-cache");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cross-origin-resource-policy"], "same-origin");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["content-security-policy"], "sandbox");
    }
}
