//! A browser-like client: one cookie jar per origin, `SameSite` honoured on cross-site
//! navigations, no automatic redirects. HTTP client libraries will not send `Secure` cookies
//! to `http://127.0.0.1`, but browsers do (loopback is a secure context), so the jar is ours.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, HeaderValue, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::target::Target;

/// Where a request comes from, as far as `SameSite` cookies go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The app itself (or a typed URL): the whole jar goes along.
    Same,
    /// A navigation another site started (the provider's redirect back): `SameSite=Strict`
    /// cookies are left out.
    Cross,
}

/// What a same-origin `fetch` from the app sends besides cookies: the CSRF header and
/// `Sec-Fetch-Site: same-origin`.
pub const FETCH_HEADERS: &[(&str, &str)] = &[("x-csrf", "1"), ("sec-fetch-site", "same-origin")];

#[derive(Clone, Debug)]
pub struct StoredCookie {
    pub value: String,
    pub strict: bool,
}

/// A response with its body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub url: Url,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<Url> {
        self.header(LOCATION.as_str()).and_then(|l| self.url.join(l).ok())
    }

    /// The `Set-Cookie` header values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

pub struct Browser {
    http: reqwest::Client,
    /// origin → name → cookie
    pub jars: BTreeMap<String, BTreeMap<String, StoredCookie>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let http = crate::http_client(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30)),
        );
        Self {
            http,
            jars: BTreeMap::new(),
        }
    }

    pub fn jar(&mut self, origin: &str) -> &mut BTreeMap<String, StoredCookie> {
        self.jars.entry(origin.to_owned()).or_default()
    }

    /// Sends a request. From [`Site::Cross`] it leaves out `SameSite=Strict` cookies, as a
    /// browser does on a navigation that another site started (the provider's redirect back).
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
        site: Site,
    ) -> Answer {
        let origin = Url::parse(url).unwrap().origin().ascii_serialization();
        let cookies = self.cookie_header(&origin, site);
        self.send_with_cookie(method, url, headers, body, cookies.into_bytes())
            .await
    }

    /// The `Cookie` header [`Browser::send`] would build for `origin`: the jar's pairs joined
    /// with `; ` (empty when the jar is).
    pub fn cookie_header(&mut self, origin: &str, site: Site) -> String {
        self.jar(origin)
            .iter()
            .filter(|(_, cookie)| !(site == Site::Cross && cookie.strict))
            .map(|(name, cookie)| format!("{name}={}", cookie.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A same-origin `fetch` from the app (as [`Browser::api`]) whose `Cookie` header is `raw`
    /// followed by the jar's cookies: what a browser sends once another site or a plain-HTTP
    /// response planted a cookie beside ours. `raw` is bytes, so it may carry non-ASCII.
    pub async fn api_with_planted(&mut self, method: Method, url: &str, raw: &[u8]) -> Answer {
        let origin = Url::parse(url).unwrap().origin().ascii_serialization();
        let jar = self.cookie_header(&origin, Site::Same);
        let mut cookie = raw.to_vec();
        if !jar.is_empty() {
            cookie.extend_from_slice(b"; ");
            cookie.extend_from_slice(jar.as_bytes());
        }
        self.send_with_cookie(method, url, FETCH_HEADERS, None, cookie).await
    }

    /// Sends a request with exactly `cookie` as its `Cookie` header (none when empty), whatever
    /// the jar holds; `Set-Cookie` answers still go into the jar.
    pub async fn send_with_cookie(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
        cookie: Vec<u8>,
    ) -> Answer {
        let url = Url::parse(url).unwrap();
        let origin = url.origin().ascii_serialization();
        let cookie = (!cookie.is_empty())
            .then(|| HeaderValue::from_bytes(&cookie).unwrap_or_else(|e| panic!("not a header value: {e}")));
        let send = async || {
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(cookie) = &cookie {
                request = request.header(COOKIE, cookie.clone());
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = &body {
                request = request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone());
            }
            request
                .send()
                .await
                .unwrap_or_else(|e| panic!("request to {url} failed: {}", chain(&e)))
        };
        let mut response = send().await;
        // As the JS client does: one retry of an intermediary's 503 that asks for it at once.
        // `wrangler dev`'s proxy drops a POST that meets its idle keep-alive timeout this way
        // (workers-sdk#14641); the backend's own 503 is JSON and is returned as it is.
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok());
        if is_intermediary_retry_now(response.status(), header) {
            response = send().await;
        }
        let answer = Answer {
            status: response.status(),
            headers: response.headers().clone(),
            url: url.clone(),
            body: String::new(),
        };
        let body = response.text().await.unwrap_or_default();
        let answer = Answer { body, ..answer };
        self.store(&origin, &answer.set_cookies());
        answer
    }

    /// POSTs a form `body` of any size over a connection of its own, reading the answer while
    /// the body is still being written, as browsers and curl do. A server that refuses a body
    /// answers before reading it and may close the connection mid-upload; an HTTP client that
    /// waits for its upload to finish then reports "error sending request" instead of the
    /// answer. The jar's cookies go along and `Set-Cookie` answers are stored.
    ///
    /// An intermediary 503 asking for an immediate retry is retried, up to twice: `wrangler
    /// dev`'s proxy fails the request that follows one whose body the Worker left unread ("Your
    /// worker restarted mid-request", 503, `Retry-After: 0`), and now and then the retry too;
    /// such an answer never came from the backend.
    pub async fn post_oversized(&mut self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let url = Url::parse(url).unwrap();
        let origin = url.origin().ascii_serialization();
        let cookie = self.cookie_header(&origin, Site::Same);
        let mut answer = post_raw(&url, &cookie, headers, body).await;
        for _ in 0..2 {
            if !is_intermediary_retry_now(answer.status, |name| answer.header(name)) {
                break;
            }
            answer = post_raw(&url, &cookie, headers, body).await;
        }
        self.store(&origin, &answer.set_cookies());
        answer
    }

    fn store(&mut self, origin: &str, set_cookies: &[String]) {
        for header in set_cookies {
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let attributes: Vec<String> = parts.map(|a| a.trim().to_ascii_lowercase()).collect();
            let deleted = attributes.iter().any(|a| a == "max-age=0") || value.is_empty();
            let jar = self.jar(origin);
            if deleted {
                jar.remove(name.trim());
            } else {
                let strict = attributes.iter().any(|a| a == "samesite=strict");
                jar.insert(
                    name.trim().to_owned(),
                    StoredCookie {
                        value: value.trim().to_owned(),
                        strict,
                    },
                );
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        self.send(Method::GET, url, &[], None, Site::Same).await
    }

    /// A same-origin `fetch` from the app: `X-CSRF: 1` and `Sec-Fetch-Site: same-origin`.
    pub async fn api(&mut self, method: Method, url: &str, body: Option<String>) -> Answer {
        self.send(method, url, FETCH_HEADERS, body, Site::Same).await
    }

    /// The provider's redirect back to the app: a cross-site navigation to `callback`.
    pub async fn visit_callback(&mut self, callback: &Url) -> Answer {
        self.send(Method::GET, callback.as_str(), &[], None, Site::Cross).await
    }

    /// Drives the provider's login and consent pages from the authorization URL until the
    /// provider redirects to `app_origin`; returns that callback URL (not yet visited).
    pub async fn sign_in_at_provider(&mut self, authorize: Url, user: &str, app_origin: &str) -> Url {
        let mut answer = self.get(authorize.as_str()).await;
        for _ in 0..20 {
            if let Some(next) = answer.location() {
                if next.origin().ascii_serialization() == app_origin {
                    return next;
                }
                answer = self.get(next.as_str()).await;
            } else if answer.status == StatusCode::OK && answer.body.contains("name=\"login\"") {
                let form = format!("prompt=login&login={user}&password=any");
                let url = answer.url.to_string();
                answer = self.send(Method::POST, &url, &[], Some(form), Site::Same).await;
            } else if answer.status == StatusCode::OK && answer.body.contains("value=\"consent\"") {
                let url = answer.url.to_string();
                answer = self
                    .send(Method::POST, &url, &[], Some("prompt=consent".to_owned()), Site::Same)
                    .await;
            } else {
                panic!(
                    "unexpected provider answer {} at {}: {}",
                    answer.status,
                    answer.url,
                    &answer.body[..answer.body.len().min(400)]
                );
            }
        }
        panic!("the provider never redirected back");
    }
}

/// `GET /.well-known/bff-token<query>` as the app's `fetch` sends it.
pub async fn token(browser: &mut Browser, target: &Target, query: &str) -> Answer {
    let url = target.url(&format!("/.well-known/bff-token{query}"));
    browser.api(Method::GET, &url, None).await
}

/// `GET /.well-known/bff-sessioninfo` as the app's `fetch` sends it.
pub async fn sessioninfo(browser: &mut Browser, target: &Target) -> Answer {
    browser
        .api(Method::GET, &target.url("/.well-known/bff-sessioninfo"), None)
        .await
}

/// An intermediary's 503 (not JSON) with `Retry-After` of at most one second, read through
/// `header`.
fn is_intermediary_retry_now<'a>(status: StatusCode, header: impl Fn(&str) -> Option<&'a str>) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE
        && !header("content-type").is_some_and(|kind| kind.contains("json"))
        && header("retry-after")
            .and_then(|value| value.trim().parse::<u64>().ok())
            .is_some_and(|seconds| seconds <= 1)
}

/// An error and its causes, one after another.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}

/// One HTTP/1.1 POST on a fresh connection (`Connection: close`): the body is written by a task
/// of its own while the answer is read; a failed write (the server answered and closed) is
/// ignored, and so is a reset once a whole answer is in.
async fn post_raw(url: &Url, cookie: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap());
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if !cookie.is_empty() {
        head.push_str(&format!("cookie: {cookie}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let stream = tokio::net::TcpStream::connect(&host)
        .await
        .unwrap_or_else(|e| panic!("connect to {host}: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let writing = tokio::spawn(async move {
        // Fails with a broken pipe or a reset when the server answers early: fine.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let parsed = loop {
        if let Some(parsed) = parse_response(&raw, Connection::Open) {
            break Some(parsed);
        }
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break parse_response(&raw, Connection::Closed),
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => break None,
        }
    };
    writing.abort();
    let (status, headers, body) = parsed.unwrap_or_else(|| {
        panic!(
            "POST {url}: no complete answer ({} bytes: {:?})",
            raw.len(),
            String::from_utf8_lossy(&raw[..raw.len().min(300)])
        )
    });
    Answer {
        status,
        headers,
        body,
        url: url.clone(),
    }
}

/// Whether the server has closed the connection a response is read from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Connection {
    Open,
    Closed,
}

/// A complete HTTP/1.1 response in `raw` (body by `Content-Length`, chunked, or up to the end
/// of the connection once it is [`Connection::Closed`]), if there is one yet.
fn parse_response(raw: &[u8], connection: Connection) -> Option<(StatusCode, reqwest::header::HeaderMap, String)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let rest = &raw[end + 4..];
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let body = if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = at + rest[at..].windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[at..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                break body;
            }
            body.extend_from_slice(rest.get(at..at + size)?);
            at += size + 2;
        }
    } else if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        rest.get(..length)?.to_vec()
    } else if status == 204 || status == 304 {
        Vec::new()
    } else if connection == Connection::Closed {
        rest.to_vec()
    } else {
        return None;
    };
    Some((
        StatusCode::from_u16(status).ok()?,
        headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}
