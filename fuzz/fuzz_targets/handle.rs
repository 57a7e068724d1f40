//! `Backend::handle` end to end: a signed-in browser, then up to four requests with arbitrary
//! method, path, query, headers, body and cookies, the clock moving between them.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bff_core::testing::{ISSUER, ORIGIN, request};
use bff_core_fuzz::json::Text;
use bff_core_fuzz::{Expect, Harness, Jar, Provider, SESSION, Secrets, check, logs_since, raw};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    deployment: Deployment,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Deployment {
    Cookie,
    /// With a store: back-channel logout and revocation.
    Store,
    Kv,
    BasePath,
    /// A small cookie budget and a default resource.
    Tight,
}

#[derive(Arbitrary, Debug)]
struct Step {
    method: Verb,
    path: Path,
    query: Vec<(Param, Value)>,
    headers: Vec<(Header, Value)>,
    body: Body,
    cookies: Cookies,
    /// Seconds the clock moves before the request (at least 5, so the key refetch limiter
    /// never holds a lookup back).
    wait: u8,
}

#[derive(Arbitrary, Debug)]
enum Verb {
    Get,
    Post,
    Options,
    Put,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Path {
    Token,
    SessionInfo,
    Configuration,
    Login,
    Callback,
    Logout,
    Backchannel,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Param {
    Resource,
    Scope,
    RejectedToken,
    ReturnTo,
    Prompt,
    Code,
    State,
    Iss,
    Error,
    LogoutToken,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Header {
    Csrf,
    Origin,
    SecFetchSite,
    ContentType,
    Cookie,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    One,
    SameOrigin,
    Origin,
    Known(Text),
    Any(String),
    /// The current access token, refresh token or ID token of the session.
    AccessToken,
    RefreshToken,
    IdToken,
    /// A logout token signed by the provider for the session's user, by `sid` or `sub`.
    LogoutToken {
        by_sid: bool,
        jti: u8,
        iat_back: u8,
    },
    Resource,
    Path(String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Empty,
    Form(Vec<(Param, Value)>),
    Raw(Vec<u8>),
    /// Just over the limit, or just under.
    Large {
        over: bool,
    },
}

#[derive(Arbitrary, Debug)]
enum Cookies {
    Jar,
    None,
    /// The cookies as they were after sign-in (a stale copy).
    Initial,
    /// Something another app or site planted in front of the jar.
    Planted(String),
    /// The jar with one session value changed.
    Tampered {
        at: u16,
    },
}

fn settings(deployment: Deployment) -> (Vec<(&'static str, &'static str)>, bool) {
    match deployment {
        Deployment::Cookie => (vec![], false),
        Deployment::Store => (vec![], true),
        Deployment::Kv => (vec![("BFF_SESSION_STORE", "kv")], true),
        Deployment::BasePath => (vec![("BFF_BASE_PATH", "/app")], false),
        Deployment::Tight => (
            vec![
                ("BFF_COOKIE_BUDGET", "1900"),
                ("BFF_DEFAULT_RESOURCE", "https://api.example/"),
            ],
            false,
        ),
    }
}

struct Run<'a> {
    harness: &'a Harness,
    jar: &'a Jar,
    base: &'a str,
}

impl Run<'_> {
    fn session(&self) -> serde_json::Value {
        self.harness.session(&self.jar.header()).unwrap_or_default()
    }

    fn param(p: &Param) -> String {
        match p {
            Param::Resource => "resource",
            Param::Scope => "scope",
            Param::RejectedToken => "rejected_token",
            Param::ReturnTo => "return_to",
            Param::Prompt => "prompt",
            Param::Code => "code",
            Param::State => "state",
            Param::Iss => "iss",
            Param::Error => "error",
            Param::LogoutToken => "logout_token",
            Param::Any(s) => s,
        }
        .to_owned()
    }

    fn value(&self, v: &Value) -> String {
        match v {
            Value::One => "1".into(),
            Value::SameOrigin => "same-origin".into(),
            Value::Origin => ORIGIN.into(),
            Value::Known(t) => t.render(),
            Value::Any(s) => s.clone(),
            Value::AccessToken => {
                let session = self.session();
                session["tokens"][0]["token"].as_str().unwrap_or_default().to_owned()
            }
            Value::RefreshToken => self.session()["refresh_token"].as_str().unwrap_or_default().to_owned(),
            Value::IdToken => self.session()["id_token"].as_str().unwrap_or_default().to_owned(),
            Value::LogoutToken { by_sid, jti, iat_back } => {
                let provider = &self.harness.world.provider;
                let iat = self.harness.now().0.saturating_sub(u64::from(*iat_back));
                let jti = format!("jti-{jti}");
                if *by_sid {
                    let sid = provider.sid_of("alice");
                    provider.logout_token(None, sid.as_deref(), &jti, iat)
                } else {
                    provider.logout_token(Some("alice"), None, &jti, iat)
                }
            }
            Value::Resource => "https://api.example/".into(),
            Value::Path(p) => format!("{}/{p}", self.base),
        }
    }
}

fn form(run: &Run<'_>, pairs: &[(Param, Value)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (p, v) in pairs {
        form.append_pair(&Run::param(p), &run.value(v));
    }
    form.finish()
}

fuzz_target!(|data: &[u8]| {
    if let Some((_, text)) = raw(data) {
        raw_request(&String::from_utf8_lossy(text));
        return;
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let (settings, store) = settings(input.deployment);
    let harness = Harness::new(&settings, store);
    let world = &harness.world;
    let base = if matches!(input.deployment, Deployment::BasePath) {
        "/app"
    } else {
        ""
    };
    let initial = harness.sign_in(&world.provider, base, "alice");
    let mut jar = initial.clone();
    let mut secrets = Secrets::deployment();
    secrets.add_jar(&harness, &jar);
    let mut revoked = false;

    for step in input.steps.iter().take(4) {
        world.clock.advance(5 + u64::from(step.wait));
        let run = Run {
            harness: &harness,
            jar: &jar,
            base,
        };
        let method = match &step.method {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Options => Method::OPTIONS,
            Verb::Put => Method::PUT,
            Verb::Any(s) => Method::from_bytes(s.as_bytes()).unwrap_or(Method::PATCH),
        };
        let path = match &step.path {
            Path::Token => format!("{base}/.well-known/bff-token"),
            Path::SessionInfo => format!("{base}/.well-known/bff-sessioninfo"),
            Path::Configuration => format!("{base}/.well-known/bff-configuration"),
            Path::Login => format!("{base}/bff/login"),
            Path::Callback => format!("{base}/bff/callback"),
            Path::Logout => format!("{base}/bff/logout"),
            Path::Backchannel => format!("{base}/bff/backchannel-logout"),
            Path::Any(s) => s.clone(),
        };
        let query = form(&run, &step.query);
        let target = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let Ok(uri) = target.parse::<http::Uri>() else { continue };
        if uri.scheme().is_some() || !target.starts_with('/') {
            continue;
        }
        let body = match &step.body {
            Body::Empty => Vec::new(),
            Body::Form(pairs) => form(&run, pairs).into_bytes(),
            Body::Raw(bytes) => bytes.clone(),
            Body::Large { over } => vec![b'a'; bff_core::MAX_REQUEST_BODY + usize::from(*over)],
        };
        let mut written: Vec<u8> = target.clone().into_bytes();
        written.extend_from_slice(&body);
        let mut req = request(method, "/", &[], body);
        *req.uri_mut() = uri;
        for (name, value) in &step.headers {
            let name = match name {
                Header::Csrf => "x-csrf".to_owned(),
                Header::Origin => "origin".to_owned(),
                Header::SecFetchSite => "sec-fetch-site".to_owned(),
                Header::ContentType => "content-type".to_owned(),
                Header::Cookie => "cookie".to_owned(),
                Header::Any(s) => s.clone(),
            };
            let value = run.value(value);
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                if n != http::header::COOKIE {
                    written.extend_from_slice(value.as_bytes());
                }
                req.headers_mut().append(n, v);
            }
        }
        let cookie = match &step.cookies {
            Cookies::Jar => jar.header(),
            Cookies::None => String::new(),
            Cookies::Initial => initial.header(),
            Cookies::Planted(text) => format!("{text}; {}", jar.header()),
            Cookies::Tampered { at } => {
                let mut copy = jar.clone();
                if let Some((_, value)) = copy.0.iter_mut().find(|(n, _)| n.starts_with(SESSION)) {
                    let mut bytes = value.clone().into_bytes();
                    let i = usize::from(*at) % bytes.len().max(1);
                    if let Some(b) = bytes.get_mut(i) {
                        *b = if *b == b'A' { b'B' } else { b'A' };
                    }
                    *value = String::from_utf8_lossy(&bytes).into_owned();
                }
                copy.header()
            }
        };
        if !cookie.is_empty()
            && let Ok(value) = http::HeaderValue::from_str(&cookie)
        {
            req.headers_mut().append(http::header::COOKIE, value);
        }

        let logged = world.log.lines().len();
        let answer = harness.send(&world.provider, req);
        let logs = logs_since(world, logged);
        let mut all = secrets.clone();
        all.add_answer(&harness, &answer);
        let route = target.split('?').next().unwrap_or_default();
        let expect = Expect {
            path: route,
            input: &written,
            provider: Provider::Working,
            store,
            revoked,
        };
        check(&expect, &answer, &logs, &all);
        if answer.status == StatusCode::OK
            && (route.ends_with("/bff/logout") || route.ends_with("/bff/backchannel-logout"))
        {
            revoked = true;
        }
        if answer.status == StatusCode::OK && route.ends_with("/bff-sessioninfo") {
            assert_eq!(answer.json()["iss"], ISSUER);
            assert_eq!(answer.json()["sub"], "alice");
        }
        secrets = all;
        jar.store(&answer);
    }
});

/// One request written as text (`METHOD target`, `name: value` lines, a blank line, the body) to
/// a signed-in deployment with a store; the session's cookies are added unless it names its own.
fn raw_request(text: &str) {
    let harness = Harness::new(&[], true);
    let world = &harness.world;
    let jar = harness.sign_in(&world.provider, "", "alice");
    // As in the structured mode: the key refetch limiter never holds a lookup back.
    world.clock.advance(5);
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let Some((method, target)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method.as_bytes()), target.parse::<http::Uri>()) else {
        return;
    };
    if uri.scheme().is_some() || !target.starts_with('/') {
        return;
    }
    let mut req = request(method, "/", &[], body.as_bytes().to_vec());
    *req.uri_mut() = uri;
    let mut written = format!("{target}\n{body}\n");
    for (name, value) in lines.filter_map(|l| l.split_once(": ")) {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            if n != http::header::COOKIE {
                written.push_str(value);
            }
            req.headers_mut().append(n, v);
        }
    }
    if !req.headers().contains_key(http::header::COOKIE)
        && let Ok(value) = http::HeaderValue::from_str(&jar.header())
    {
        req.headers_mut().insert(http::header::COOKIE, value);
    }
    let mut secrets = Secrets::deployment();
    secrets.add_jar(&harness, &jar);
    let logged = world.log.lines().len();
    let answer = harness.send(&world.provider, req);
    let logs = logs_since(world, logged);
    secrets.add_answer(&harness, &answer);
    let route = target.split('?').next().unwrap_or_default();
    let expect = Expect {
        path: route,
        input: written.as_bytes(),
        provider: Provider::Working,
        store: true,
        revoked: false,
    };
    check(&expect, &answer, &logs, &secrets);
}
