//! A browser-like client: one cookie jar per origin, `SameSite` honoured on cross-site
//! navigations, no automatic redirects. HTTP client libraries will not send `Secure` cookies
//! to `http://127.0.0.1`, but browsers do (loopback is a secure context), so the jar is ours.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

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

    /// Sends a request. `cross_site` leaves out `SameSite=Strict` cookies, as a browser does on
    /// a navigation that another site started (the provider's redirect back).
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
        cross_site: bool,
    ) -> Answer {
        let url = Url::parse(url).unwrap();
        let origin = url.origin().ascii_serialization();
        let cookies: Vec<String> = self
            .jar(&origin)
            .iter()
            .filter(|(_, c)| !(cross_site && c.strict))
            .map(|(n, c)| format!("{n}={}", c.value))
            .collect();
        let send = async || {
            let mut request = self.http.request(method.clone(), url.clone());
            if !cookies.is_empty() {
                request = request.header(COOKIE, cookies.join("; "));
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
                .unwrap_or_else(|e| panic!("request to {url} failed: {e}"))
        };
        let mut response = send().await;
        // As the JS client does: one retry of an intermediary's 503 that asks for it at once.
        // `wrangler dev`'s proxy drops a POST that meets its idle keep-alive timeout this way
        // (workers-sdk#14641); the backend's own 503 is JSON and is returned as it is.
        if retry_now(&response) {
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
        self.send(Method::GET, url, &[], None, false).await
    }

    /// A same-origin `fetch` from the app: `X-CSRF: 1` and `Sec-Fetch-Site: same-origin`.
    pub async fn api(&mut self, method: Method, url: &str, body: Option<String>) -> Answer {
        self.send(
            method,
            url,
            &[("x-csrf", "1"), ("sec-fetch-site", "same-origin")],
            body,
            false,
        )
        .await
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
                answer = self.send(Method::POST, &url, &[], Some(form), false).await;
            } else if answer.status == StatusCode::OK && answer.body.contains("value=\"consent\"") {
                let url = answer.url.to_string();
                answer = self
                    .send(Method::POST, &url, &[], Some("prompt=consent".to_owned()), false)
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

/// An intermediary's 503 (not JSON) with `Retry-After` of at most one second.
fn retry_now(response: &reqwest::Response) -> bool {
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
    response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !header("content-type").is_some_and(|t| t.contains("json"))
        && header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|s| s <= 1)
}
