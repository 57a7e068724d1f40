//! What the fuzz targets share: a deployment driven request by request, a cookie jar, the
//! invariants every answer must keep, structure-aware JSON and a signer with the test kit's key.

pub mod json;
pub mod jwt;
pub mod real;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bff_core::fuzzing::{self, Config};
use bff_core::testing::{
    Answer, Browser, CLIENT_ID, COOKIE_KEYS, Endpoint, ISSUER, MemoryStore, ORIGIN, SeededRandom, World,
};
use bff_core::{Deps, HttpClient, HttpError, UnixTime};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, StatusCode};

/// The client secret every test-kit deployment is configured with.
pub const CLIENT_SECRET: &str = "s3cret";
/// Prefix of every session cookie name (the cookie and its chunks).
pub const SESSION: &str = "__Host-bff-session";

/// Runs a request to completion. The test kit's ports wake their own task, so polling again is
/// all an executor has to do; a future that never finishes is a hang, and a bug.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
    panic!("a request never finished");
}

/// The test kit's configuration with `settings` over it, as the parsers see it.
pub fn config(settings: &[(&str, &str)]) -> Config {
    let defaults = [
        ("BFF_ISSUER", ISSUER),
        ("BFF_CLIENT_ID", CLIENT_ID),
        ("BFF_CLIENT_SECRET", CLIENT_SECRET),
        ("BFF_PUBLIC_ORIGIN", ORIGIN),
        ("BFF_COOKIE_KEYS", COOKIE_KEYS),
    ];
    let all: Vec<(&str, &str)> = defaults.iter().chain(settings).copied().collect();
    let lookup = |name: &str| all.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    Config::from_lookup(lookup).unwrap_or_else(|e| panic!("fuzz configuration: {e}"))
}

/// A `Cookie` header map holding `header`.
pub fn cookie_headers(header: &str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(header) {
        map.insert(COOKIE, value);
    }
    map
}

/// One deployment of the test kit, driven one request at a time through any [`HttpClient`].
pub struct Harness {
    /// The backend, its scripted provider, clock, store and log.
    pub world: World,
    /// The same configuration, for unsealing what the backend sets.
    pub config: Config,
    random: SeededRandom,
}

impl Harness {
    /// A deployment with `settings`, with a consistent store when `store` says so.
    pub fn new(settings: &[(&str, &str)], store: bool) -> Self {
        let world = if store {
            World::with_store(settings, MemoryStore::consistent)
        } else {
            World::new(settings)
        };
        Self {
            world,
            config: config(settings),
            random: SeededRandom::new(7),
        }
    }

    /// A browser signed in as `user` through the scripted provider.
    pub fn signed_in(&self, user: &str) -> Browser {
        block_on(self.world.signed_in(user))
    }

    /// Signs `user` in under the base path `base` through this harness's requests: the jar after
    /// the callback.
    pub fn sign_in<H: HttpClient>(&self, http: &H, base: &str, user: &str) -> Jar {
        let provider = &self.world.provider;
        let mut jar = Jar::default();
        let login = self.send(
            http,
            bff_core::testing::request(http::Method::GET, &format!("{base}/bff/login"), &[], Vec::new()),
        );
        assert_eq!(login.status, StatusCode::FOUND, "login: {}", login.text());
        jar.store(&login);
        let callback = provider.authorize(login.header("location").unwrap_or_default(), user);
        let headers = [("cookie", jar.header())];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = self.send(
            http,
            bff_core::testing::request(http::Method::GET, &callback, &headers, Vec::new()),
        );
        assert_eq!(answer.status, StatusCode::FOUND, "callback: {}", answer.text());
        jar.store(&answer);
        jar
    }

    /// Sends `request` as it is (cookies included) to the backend, the provider reached through `http`.
    pub fn send<H: HttpClient>(&self, http: &H, request: http::Request<Vec<u8>>) -> Answer {
        let deps = Deps {
            clock: &*self.world.clock,
            random: &self.random,
            http,
            log: &self.world.log,
            store: self.world.store.as_ref(),
        };
        let response = block_on(self.world.backend().handle(request, &deps));
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.into_body(),
        }
    }

    /// The session a `Cookie` header carries, as JSON.
    pub fn session(&self, cookie_header: &str) -> Option<serde_json::Value> {
        let now = bff_core::Clock::now(&*self.world.clock);
        fuzzing::load_session(&self.config, &cookie_headers(cookie_header), now)
    }

    /// The current time.
    pub fn now(&self) -> UnixTime {
        bff_core::Clock::now(&*self.world.clock)
    }
}

/// A browser's cookies for the app's origin, kept from `Set-Cookie` as a browser keeps them.
#[derive(Clone, Debug, Default)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    /// The cookies of a test-kit browser.
    pub fn of(browser: &Browser) -> Self {
        let names = browser.cookie_names();
        Self(
            names
                .into_iter()
                .filter_map(|n| browser.cookie(&n).map(|v| (n.clone(), v.to_owned())))
                .collect(),
        )
    }

    /// The `Cookie` header a request carries (all cookies: a same-site request).
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keeps what `answer` sets.
    pub fn store(&mut self, answer: &Answer) {
        for (name, value, deleted) in set_cookies(answer) {
            if deleted {
                self.0.remove(&name);
            } else {
                self.0.insert(name, value);
            }
        }
    }

    /// The session cookies (the cookie or its chunks).
    pub fn session(&self) -> Vec<(&String, &String)> {
        self.0.iter().filter(|(n, _)| n.starts_with(SESSION)).collect()
    }
}

/// (name, value, deleted) of every `Set-Cookie` of `answer`.
pub fn set_cookies(answer: &Answer) -> Vec<(String, String, bool)> {
    answer
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|header| {
            let mut parts = header.split(';');
            let (name, value) = parts.next()?.split_once('=')?;
            let deleted = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            Some((name.to_owned(), value.to_owned(), deleted))
        })
        .collect()
}

/// Values that must never show in a response body or a log line.
#[derive(Clone, Debug, Default)]
pub struct Secrets(pub Vec<String>);

impl Secrets {
    /// The deployment's own: the client secret and the cookie key.
    pub fn deployment() -> Self {
        let key = COOKIE_KEYS.split_once(':').map(|(_, k)| k).unwrap_or(COOKIE_KEYS);
        Self(vec![CLIENT_SECRET.to_owned(), key.to_owned()])
    }

    /// Adds a value (empty ones mean nothing).
    pub fn add(&mut self, value: &str) {
        if !value.is_empty() && !self.0.iter().any(|s| s == value) {
            self.0.push(value.to_owned());
        }
    }

    /// Adds every cookie value of `jar` and the tokens of the session it carries.
    pub fn add_jar(&mut self, harness: &Harness, jar: &Jar) {
        for value in jar.0.values() {
            self.add(value);
        }
        if let Some(session) = harness.session(&jar.header()) {
            self.add_session(&session);
        }
    }

    /// Adds the tokens a session (as JSON) holds.
    pub fn add_session(&mut self, session: &serde_json::Value) {
        for name in ["refresh_token", "id_token"] {
            if let Some(token) = session[name].as_str() {
                self.add(token);
            }
        }
        for cached in session["tokens"].as_array().into_iter().flatten() {
            if let Some(token) = cached["token"].as_str() {
                self.add(token);
            }
        }
    }

    /// Adds every value `answer` sets in a cookie and the tokens of the session they carry.
    pub fn add_answer(&mut self, harness: &Harness, answer: &Answer) {
        let mut jar = Jar::default();
        jar.store(answer);
        self.add_jar(harness, &jar);
    }
}

/// How the provider behaves in a run: a working scripted one, or one whose answers are fuzzed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Every answer is right: a 5xx of the backend is a bug.
    Working,
    /// Some answers are arbitrary: 503 (and 500 for the deployment's own credentials) are documented.
    Fuzzed,
}

/// What one answer is checked against.
pub struct Expect<'a> {
    /// The request path (without the query).
    pub path: &'a str,
    /// What the fuzzer wrote into the request (query, body, header values other than `Cookie`) or
    /// into a provider's answer: a secret found there and echoed back is no leak.
    pub input: &'a [u8],
    /// The provider.
    pub provider: Provider,
    /// Whether the deployment has a store (then `backchannel-logout` works and sessions can be revoked).
    pub store: bool,
    /// Whether an earlier request may have revoked the session (a logout or back-channel logout).
    pub revoked: bool,
}

/// Asserts the invariants of http-api.md on one answer; `logs` are the lines logged for it.
pub fn check(expect: &Expect<'_>, answer: &Answer, logs: &[String], secrets: &Secrets) {
    let status = answer.status;
    let error = answer.json()["error"].as_str().unwrap_or_default().to_owned();
    let context = || format!("{} {status} {}\nlogs: {logs:?}", expect.path, answer.text());
    let logged = |what: &str| logs.iter().any(|l| l.contains(what));

    // No 5xx but the documented ones.
    if status.is_server_error() {
        let allowed = match status {
            StatusCode::NOT_IMPLEMENTED => {
                !expect.store && expect.path.ends_with("/bff/backchannel-logout") && error == "unsupported"
            }
            StatusCode::SERVICE_UNAVAILABLE => expect.provider == Provider::Fuzzed,
            // The provider refused the deployment's own credentials: an operator must act.
            StatusCode::INTERNAL_SERVER_ERROR => {
                expect.provider == Provider::Fuzzed && logged("the token endpoint answered")
            }
            _ => false,
        };
        assert!(allowed, "undocumented {status}: {}", context());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(
                answer.header("retry-after"),
                Some("5"),
                "503 without Retry-After: {}",
                context()
            );
        }
    }

    // A refusal or an outage leaves the session alone, but where the contract ends it.
    let touched: Vec<String> = set_cookies(answer)
        .into_iter()
        .filter(|(n, _, _)| n.starts_with(SESSION))
        .map(|(n, _, deleted)| format!("{n} deleted={deleted}"))
        .collect();
    if status.as_u16() >= 400 && !touched.is_empty() {
        let ends = match error.as_str() {
            // RFC 10017 §6.1.2.2: a dead refresh token ends the session.
            "invalid_grant" => status == StatusCode::BAD_REQUEST,
            // Revoked, a refreshed ID token naming someone else, or a refresh token over the budget.
            "invalid_session" => expect.revoked || logged("session ended") || logged("exceeds BFF_COOKIE_BUDGET"),
            _ => false,
        };
        let only_deletes = set_cookies(answer)
            .iter()
            .all(|(n, _, deleted)| !n.starts_with(SESSION) || *deleted);
        assert!(
            ends && only_deletes,
            "a refusal changed the session cookies {touched:?}: {}",
            context()
        );
    }

    // No secret in a body, a header (a redirect's Location) or a log line, but the token
    // bff-token hands out and the ID token a logout URL carries as id_token_hint.
    let mut body = visible_body(answer);
    for (name, value) in &answer.headers {
        if name != SET_COOKIE {
            body.extend_from_slice(value.as_bytes());
        }
    }
    for secret in &secrets.0 {
        if contains(expect.input, secret.as_bytes()) {
            continue;
        }
        assert!(
            !contains(&body, secret.as_bytes()),
            "a secret ({} bytes) in the body or a header: {}",
            secret.len(),
            context()
        );
        for line in logs {
            assert!(
                !line.contains(secret.as_str()),
                "a secret ({} bytes) in the log line {line:?}",
                secret.len()
            );
        }
    }
}

/// The body with what it may carry taken out: `access_token` of a `bff-token` answer and
/// `id_token_hint` of a logout URL.
fn visible_body(answer: &Answer) -> Vec<u8> {
    let mut json = answer.json();
    let Some(object) = json.as_object_mut() else {
        return answer.body.clone();
    };
    if answer.status == StatusCode::OK {
        object.remove("access_token");
        if let Some(url) = object
            .get("logout_url")
            .and_then(|u| u.as_str())
            .and_then(|u| url::Url::parse(u).ok())
        {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "id_token_hint")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut url = url.clone();
            url.query_pairs_mut().clear().extend_pairs(kept);
            object.insert("logout_url".into(), url.as_str().into());
        }
    }
    json.to_string().into_bytes()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// An answer one provider endpoint gives instead of the scripted one.
#[derive(Clone, Debug)]
pub struct Substitute {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// Its status.
    pub status: u16,
    /// Its body.
    pub body: Replacement,
}

/// The body of a substituted answer.
#[derive(Clone, Debug)]
pub enum Replacement {
    /// These bytes.
    Body(Vec<u8>),
    /// The scripted provider's answer (a JSON object) with these edits.
    Edit(Vec<json::Edit>),
}

/// The scripted provider, but for one endpoint whose answer the fuzzer wrote; records every
/// answer it gives (for seed corpora).
pub struct Fuzzed<'a> {
    /// The scripted provider behind it.
    pub inner: &'a bff_core::testing::ScriptedProvider,
    /// The substituted endpoint, if any.
    pub substitute: Option<Substitute>,
    /// (path, status, body) of every answer given.
    pub seen: Mutex<Vec<(String, u16, Vec<u8>)>>,
}

impl<'a> Fuzzed<'a> {
    /// `inner` with `substitute`.
    pub fn new(inner: &'a bff_core::testing::ScriptedProvider, substitute: Option<Substitute>) -> Self {
        Self {
            inner,
            substitute,
            seen: Mutex::new(Vec::new()),
        }
    }
}

fn endpoint_of(path: &str) -> Option<Endpoint> {
    Some(match path {
        "/.well-known/openid-configuration" => Endpoint::Discovery,
        "/jwks" => Endpoint::Jwks,
        "/token" => Endpoint::Token,
        "/userinfo" => Endpoint::UserInfo,
        "/revoke" => Endpoint::Revocation,
        _ => return None,
    })
}

impl HttpClient for Fuzzed<'_> {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let path = request.uri().path().to_owned();
        let response = match &self.substitute {
            Some(s) if endpoint_of(&path) == Some(s.endpoint) => {
                let body = match &s.body {
                    Replacement::Body(body) => body.clone(),
                    Replacement::Edit(edits) => {
                        let scripted = self.inner.send(request, timeout).await?;
                        let mut object: serde_json::Map<String, serde_json::Value> =
                            serde_json::from_slice(scripted.body()).unwrap_or_default();
                        json::apply(&mut object, edits);
                        serde_json::Value::Object(object).to_string().into_bytes()
                    }
                };
                let mut response = http::Response::new(body);
                *response.status_mut() = StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK);
                response
            }
            // An endpoint a fuzzed metadata document made up: nothing there.
            _ if endpoint_of(&path).is_none() => {
                let mut response = http::Response::new(Vec::new());
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
            _ => self.inner.send(request, timeout).await?,
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((path, response.status().as_u16(), response.body().clone()));
        }
        Ok(response)
    }

    async fn pause(&self, duration: Duration) {
        self.inner.pause(duration).await;
    }
}

/// Splits a fuzz input into a raw mode (first byte 0 or 1: the rest as it is, so seed corpora
/// can hold real headers, tokens and answers) or structured data (any other first byte).
pub fn raw(data: &[u8]) -> Option<(u8, &[u8])> {
    match data.split_first() {
        Some((&mode @ (0 | 1), rest)) => Some((mode, rest)),
        _ => None,
    }
}

/// Lines logged since `from`.
pub fn logs_since(world: &World, from: usize) -> Vec<String> {
    world.log.lines().into_iter().skip(from).collect()
}
