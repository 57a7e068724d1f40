//! A small driver so a flow test reads like a story: a [`World`] (the backend with a scripted
//! provider, an optional store, a fixed clock) and [`Browser`]s that keep cookies as a browser
//! does, `SameSite=Strict` ones left out of the provider's cross-site redirect back.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{Method, StatusCode};
use serde_json::Value;

use super::{FixedClock, MemoryLog, MemoryStore, ScriptedProvider, SeededRandom};
use crate::{Backend, Deps};

/// The backend's public origin in every test configuration.
pub const ORIGIN: &str = "https://app.example";
/// A cookie key ring of one key.
pub const COOKIE_KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// Where the clock starts.
pub const START: u64 = 1_800_000_000;

/// One deployment of the backend with everything it talks to.
pub struct World {
    /// The clock every part reads.
    pub clock: Arc<FixedClock>,
    /// The authorization server.
    pub provider: ScriptedProvider,
    /// The shared store, when the deployment has one.
    pub store: Option<MemoryStore>,
    /// The backend's log lines.
    pub log: MemoryLog,
    random: SeededRandom,
    backend: Backend,
    settings: Vec<(String, String)>,
}

impl World {
    /// A cookie-mode deployment without a store; `settings` override the defaults.
    pub fn new(settings: &[(&str, &str)]) -> Self {
        let clock = Arc::new(FixedClock::at(START));
        Self::build(settings, None, clock)
    }

    /// A deployment with `store` (built on the world's clock).
    pub fn with_store(settings: &[(&str, &str)], store: impl FnOnce(Arc<FixedClock>) -> MemoryStore) -> Self {
        let clock = Arc::new(FixedClock::at(START));
        let store = store(Arc::clone(&clock));
        Self::build(settings, Some(store), clock)
    }

    fn build(settings: &[(&str, &str)], store: Option<MemoryStore>, clock: Arc<FixedClock>) -> Self {
        let provider = ScriptedProvider::new(Arc::clone(&clock));
        Self {
            clock,
            provider,
            store,
            log: MemoryLog::default(),
            random: SeededRandom::new(1),
            backend: configured(settings),
            settings: owned(settings),
        }
    }

    /// A redeploy with `settings` (over the defaults, not over the previous settings): a new
    /// backend with empty caches that faces the same provider, store, clock and log, as after an
    /// operator changed `BFF_COOKIE_KEYS`.
    pub fn redeploy(&mut self, settings: &[(&str, &str)]) {
        self.backend = configured(settings);
        self.settings = owned(settings);
    }

    /// The backend, for what the driver does not cover.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Sends `request` from `browser`, with the cookies a browser would attach (`Site::Cross`:
    /// without `SameSite=Strict` ones), and keeps the cookies the answer sets.
    pub async fn send(&self, browser: &mut Browser, request: http::Request<Vec<u8>>, site: Site) -> Answer {
        self.send_via(&self.backend, browser, request, site).await
    }

    /// Another isolate or container of the same deployment: the same settings, provider, store,
    /// clock and log, its own caches. Requests reach it through [`World::send_via`].
    pub fn instance(&self) -> Backend {
        let settings: Vec<(&str, &str)> = self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        configured(&settings)
    }

    /// [`World::send`] to `backend`.
    pub async fn send_via(
        &self,
        backend: &Backend,
        browser: &mut Browser,
        mut request: http::Request<Vec<u8>>,
        site: Site,
    ) -> Answer {
        let cookies = browser.cookie_header(site);
        if !cookies.is_empty()
            && let Ok(value) = cookies.parse()
        {
            request.headers_mut().insert(COOKIE, value);
        }
        let deps = Deps {
            clock: &*self.clock,
            random: &self.random,
            http: &self.provider,
            log: &self.log,
            store: self.store.as_ref(),
        };
        let response = backend.handle(request, &deps).await;
        let answer = Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.into_body(),
        };
        browser.store(&answer);
        answer
    }

    /// A top-level navigation (GET) from this site.
    pub async fn navigate(&self, browser: &mut Browser, path: &str) -> Answer {
        self.send(browser, request(Method::GET, path, &[], Vec::new()), Site::Same)
            .await
    }

    /// A same-origin `fetch` from the app, with the CSRF header.
    pub async fn api(&self, browser: &mut Browser, method: Method, path: &str, body: &str) -> Answer {
        let headers = [("x-csrf", "1"), ("sec-fetch-site", "same-origin")];
        let mut headers = headers.to_vec();
        if !body.is_empty() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        self.send(
            browser,
            request(method, path, &headers, body.as_bytes().to_vec()),
            Site::Same,
        )
        .await
    }

    /// `GET bff-token` with `query` (without `?`) and a `DPoP` header for each of `proofs`.
    pub async fn token_with_proofs(&self, browser: &mut Browser, query: &str, proofs: &[&str]) -> Answer {
        let path = if query.is_empty() {
            "/.well-known/bff-token".to_owned()
        } else {
            format!("/.well-known/bff-token?{query}")
        };
        let mut headers = vec![("x-csrf", "1"), ("sec-fetch-site", "same-origin")];
        headers.extend(proofs.iter().map(|proof| ("dpop", *proof)));
        self.send(browser, request(Method::GET, &path, &headers, Vec::new()), Site::Same)
            .await
    }

    /// `GET bff-token` with `query` (without `?`).
    pub async fn token(&self, browser: &mut Browser, query: &str) -> Answer {
        let path = if query.is_empty() {
            "/.well-known/bff-token".to_owned()
        } else {
            format!("/.well-known/bff-token?{query}")
        };
        self.api(browser, Method::GET, &path, "").await
    }

    /// `GET bff-sessioninfo`.
    pub async fn session_info(&self, browser: &mut Browser) -> Answer {
        self.api(browser, Method::GET, "/.well-known/bff-sessioninfo", "").await
    }

    /// `B/bff/login?<query>` and the provider's sign-in as `user`: the callback path and query,
    /// not yet visited.
    pub async fn start_login(&self, browser: &mut Browser, query: &str, user: &str) -> String {
        // A link or script on the app's own page: a same-origin top-level navigation.
        let headers = [("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "document")];
        let request = request(Method::GET, &format!("/bff/login{query}"), &headers, Vec::new());
        let answer = self.send(browser, request, Site::Same).await;
        assert_eq!(answer.status, StatusCode::FOUND, "login: {}", answer.text());
        let location = answer.header(LOCATION.as_str()).unwrap_or_default().to_owned();
        self.provider.authorize(&location, user)
    }

    /// The provider's redirect back: a cross-site navigation.
    pub async fn callback(&self, browser: &mut Browser, callback: &str) -> Answer {
        self.send(browser, request(Method::GET, callback, &[], Vec::new()), Site::Cross)
            .await
    }

    /// A whole login as `user`; panics unless the callback redirects.
    pub async fn login(&self, browser: &mut Browser, user: &str) -> Answer {
        let callback = self.start_login(browser, "", user).await;
        let answer = self.callback(browser, &callback).await;
        assert_eq!(answer.status, StatusCode::FOUND, "callback: {}", answer.text());
        answer
    }

    /// A new browser, logged in as `user`.
    pub async fn signed_in(&self, user: &str) -> Browser {
        let mut browser = Browser::default();
        self.login(&mut browser, user).await;
        browser
    }

    /// `POST B/bff/logout`.
    pub async fn logout(&self, browser: &mut Browser) -> Answer {
        self.api(browser, Method::POST, "/bff/logout", "").await
    }

    /// The provider calls `B/bff/backchannel-logout` with `logout_token`.
    pub async fn backchannel_logout(&self, logout_token: &str) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", logout_token)
            .finish();
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let request = request(Method::POST, "/bff/backchannel-logout", &headers, body.into_bytes());
        self.send(&mut Browser::default(), request, Site::Cross).await
    }
}

fn owned(settings: &[(&str, &str)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A backend configured with `settings` over the defaults.
fn configured(settings: &[(&str, &str)]) -> Backend {
    let mut all: Vec<(String, String)> = [
        ("BFF_ISSUER", super::ISSUER),
        ("BFF_CLIENT_ID", super::CLIENT_ID),
        ("BFF_CLIENT_SECRET", super::CLIENT_SECRET),
        ("BFF_PUBLIC_ORIGIN", ORIGIN),
        ("BFF_COOKIE_KEYS", COOKIE_KEYS),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    all.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Backend::from_lookup(|name| all.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// A request to the backend.
pub fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).unwrap_or_default()
}

/// Where a request comes from, as far as `SameSite` cookies go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The app's own pages: every cookie is sent.
    Same,
    /// Another site's navigation (the provider's redirect back): `SameSite=Strict` cookies stay home.
    Cross,
}

/// One cookie in a browser's jar.
#[derive(Clone, Debug)]
struct Stored {
    value: String,
    strict: bool,
}

/// A browser's cookie jar for the app's origin.
#[derive(Clone, Debug, Default)]
pub struct Browser {
    jar: BTreeMap<String, Stored>,
    /// Raw text put in front of the `Cookie` header: what another site or app planted.
    pub planted: Option<String>,
}

impl Browser {
    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(|c| c.value.as_str())
    }

    /// The names of the login transaction cookies.
    pub fn txn_cookies(&self) -> Vec<String> {
        self.jar
            .keys()
            .filter(|n| n.starts_with("__Host-bff-txn."))
            .cloned()
            .collect()
    }

    /// The cookie names, in order.
    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.keys().cloned().collect()
    }

    /// Sets cookie `name` as if the backend had (a copy from another browser).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.insert(
            name.to_owned(),
            Stored {
                value: value.to_owned(),
                strict: true,
            },
        );
    }

    fn cookie_header(&self, site: Site) -> String {
        let ours = self
            .jar
            .iter()
            .filter(|(_, c)| !(site == Site::Cross && c.strict))
            .map(|(n, c)| format!("{n}={}", c.value));
        self.planted.iter().cloned().chain(ours).collect::<Vec<_>>().join("; ")
    }

    fn store(&mut self, answer: &Answer) {
        for header in answer.headers.get_all(SET_COOKIE) {
            let Ok(header) = header.to_str() else { continue };
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let attributes: Vec<String> = parts.map(|a| a.trim().to_ascii_lowercase()).collect();
            if attributes.iter().any(|a| a == "max-age=0") {
                self.jar.remove(name);
            } else {
                let strict = attributes.iter().any(|a| a == "samesite=strict");
                self.jar.insert(
                    name.to_owned(),
                    Stored {
                        value: value.to_owned(),
                        strict,
                    },
                );
            }
        }
    }
}

/// The backend's answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Set-Cookie` values.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// `access_token` of a `bff-token` answer.
    pub fn access_token(&self) -> String {
        self.json()["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// `error` of a JSON error answer.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}
