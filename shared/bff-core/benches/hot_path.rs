//! The per-request cost of the backend (docs/performance.md).
//!
//! `bff-token` answered from a session's cached token is what a single-page app calls before
//! nearly every API call, so it is the path whose cost multiplies. The session is a realistic
//! one: a real login through the test kit, then the tokens swapped for production-sized ones (an
//! RS256 ID token, a JWT access token, an opaque refresh token), sealed like the backend seals.
//! The parts are measured on their own as well: unseal and seal, `Cookie` header parsing, and
//! ID-token validation (ES256 and RS256), which runs at login and refresh, not on the hot path.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_core::fuzzing::{self, Keys};
use bff_core::testing::{
    Browser, CLIENT_ID, COOKIE_KEYS, Endpoint, ISSUER, MemoryStore, ORIGIN, SeededRandom, World, request,
};
use bff_core::{Clock, Deps, HttpClient, Level, Log, UnixTime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::FutureExt as _;
use futures::executor::block_on;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use jwt_simple::prelude::*;
use serde_json::{Map, Value, json};

const SESSION: &str = "__Host-bff-session";
const TOKEN_PATH: &str = "/.well-known/bff-token";

/// The benchmark's log: request lines are formatted as in production, then only counted (there
/// are millions); any other line is kept, for the check that the hot path logs nothing else.
#[derive(Default)]
struct CountingLog {
    requests: AtomicUsize,
    others: Mutex<Vec<String>>,
}

impl Log for CountingLog {
    fn line(&self, _level: Level, line: &str) {
        if line.contains(r#""type":"request""#) {
            self.requests.fetch_add(1, Ordering::Relaxed);
        } else if let Ok(mut others) = self.others.lock() {
            others.push(line.to_owned());
        }
    }
}

/// What every benchmark works on, built once.
struct Fixture {
    world: World,
    config: fuzzing::Config,
    /// The whole `Cookie` header of a signed-in request.
    cookie_header: String,
    /// The sealed session value alone (the chunks joined, if it has several).
    sealed: String,
    /// The session as the backend serialises it before sealing.
    session_json: Vec<u8>,
    access_token: String,
    /// When the benchmarks run: the clock stands still here.
    now: UnixTime,
    es256: IdToken,
    rs256: IdToken,
}

struct IdToken {
    keys: Keys,
    token: String,
    nonce: String,
}

/// The settings of `World::new(&[])`, for the parts measured without a backend.
fn config() -> fuzzing::Config {
    let settings = [
        ("BFF_ISSUER", ISSUER),
        ("BFF_CLIENT_ID", CLIENT_ID),
        ("BFF_CLIENT_SECRET", "s3cret"),
        ("BFF_PUBLIC_ORIGIN", ORIGIN),
        ("BFF_COOKIE_KEYS", COOKIE_KEYS),
    ];
    let config =
        fuzzing::Config::from_lookup(|name| settings.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()));
    config.unwrap_or_else(|e| panic!("configuration: {e}"))
}

/// Cookies a real app's origin also carries (analytics, consent, preferences, a load balancer),
/// none of them ours: the parser must skip them cheaply.
const UNRELATED: [&str; 12] = [
    "_ga=GA1.1.1839453207.1764662400",
    "_ga_Q1W2E3R4T5=GS1.1.1764662400.4.1.1764665123.0.0.0",
    "_gid=GA1.2.417263891.1764662400",
    "_fbp=fb.1.1764662400123.1029384756",
    "ajs_anonymous_id=%22b3c1f8e2-4d5a-4c6b-9e7f-0a1b2c3d4e5f%22",
    "OptanonConsent=isGpcEnabled=0&datestamp=Tue+Dec+02+2026+10%3A15%3A00+GMT%2B0000&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=2f0c8a5e-6b7d-4e1f-9a3c-5d8e7f6a4b2c&interactionCount=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A0",
    "OptanonAlertBoxClosed=2026-12-02T10:15:00.000Z",
    "theme=dark",
    "locale=en-GB",
    "AWSALB=Xk3v9QeZl0m2Rt8yUu1wPq7sLd4fGh6jK5zXc2vBn0mQ1aS3dF5gH7jK9lZ0xC2vB4nM6qW8eR1tY3uI5oP7aS9dF2gH4jK6lZ8",
    "AWSALBCORS=Xk3v9QeZl0m2Rt8yUu1wPq7sLd4fGh6jK5zXc2vBn0mQ1aS3dF5gH7jK9lZ0xC2vB4nM6qW8eR1tY3uI5oP7aS9dF2gH4jK6lZ8",
    "intercom-session-abc123=dXJ3c2V4eGtwM0ZxQk5sK1ZPR2tUNnZQbS9hVmpZZ0Z3dE1uT2p5c0Z5V2hHS0RQY2ZuZ0xNZz09LS1aS2ZlQ0V2c3FkT2Q0a3hhZ0d0d0E9PQ",
];

/// An RS256 JWT signed with a 2048-bit key, so the signature has its production length.
fn rs256(key: &RS256KeyPair, issued: (&str, &str, HashSet<String>), custom: Value, iat: u64, exp: u64) -> String {
    let custom: Map<String, Value> = serde_json::from_value(custom).unwrap_or_default();
    let (iss, sub, aud) = issued;
    let mut claims = Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_secs(1))
        .with_issuer(iss)
        .with_subject(sub)
        .with_audiences(aud);
    claims.issued_at = Some(UnixTimeStamp::from_secs(iat));
    claims.invalid_before = Some(UnixTimeStamp::from_secs(iat));
    claims.expires_at = Some(UnixTimeStamp::from_secs(exp));
    key.sign(claims).unwrap_or_else(|e| panic!("signing: {e}"))
}

fn fixture() -> Fixture {
    let world = World::new(&[]);
    let browser = block_on(world.signed_in("alice"));
    let now = world.clock.now();
    let config = config();
    let headers = cookie_headers(&session_cookies(&browser), false);
    let session = fuzzing::load_session(&config, &headers, now).unwrap_or_else(|| panic!("no session after login"));

    // ES256: the ID token the scripted provider signed at this login, and its JWKS.
    let es256_token = session["id_token"].as_str().unwrap_or_default().to_owned();
    let jwks = block_on(world.provider.send(
        request(Method::GET, &format!("{ISSUER}/jwks"), &[], Vec::new()),
        Duration::from_secs(5),
    ));
    let jwks = jwks.unwrap_or_else(|e| panic!("jwks: {e:?}"));
    let es256 = IdToken {
        keys: Keys::parse(jwks.body()).unwrap_or_else(|| panic!("jwks")),
        nonce: nonce_of(&es256_token),
        token: es256_token,
    };

    // The same login as a production provider would sign it: RS256, with the claims such
    // providers put in (a profile, `sid`, `at_hash`).
    let rsa = RS256KeyPair::generate(2048)
        .unwrap_or_else(|e| panic!("RSA key: {e}"))
        .with_key_id("Zx3bq9TQ7lR1m8VwYk2sJd0uHc5fNa6pGe4iLo");
    let sub = session["sub"].as_str().unwrap_or_default().to_owned();
    let sid = session["sid"].clone();
    let iat = now.0;
    let id_token = rs256(
        &rsa,
        (ISSUER, &sub, HashSet::from([CLIENT_ID.to_owned()])),
        json!({
            "nonce": es256.nonce, "sid": sid,
            "auth_time": iat, "at_hash": "nA3Kq0Rj7VtLpS2yXcWm1Q",
            "name": "Alice Example", "given_name": "Alice", "family_name": "Example",
            "email": "alice@example.com", "email_verified": true,
            "picture": "https://s.gravatar.com/avatar/0bc83cb571cd1c50ba6f3e8a78ef1346?s=480&r=pg",
            "locale": "en-GB",
        }),
        iat,
        iat + 36_000,
    );
    let access_token = rs256(
        &rsa,
        (
            &format!("{ISSUER}/"),
            &sub,
            HashSet::from(["https://api.example".to_owned(), format!("{ISSUER}/userinfo")]),
        ),
        json!({
            "azp": CLIENT_ID, "jti": "8f14e45f-ceea-467f-a0e6-95d2c3b1a9e7",
            "scope": "openid profile email offline_access read:orders",
        }),
        iat,
        iat + 3600,
    );
    let rsa_jwks = {
        let c = rsa.public_key().to_components();
        json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "Zx3bq9TQ7lR1m8VwYk2sJd0uHc5fNa6pGe4iLo",
            "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e),
        }]})
    };
    let rs256_keys = Keys::parse(rsa_jwks.to_string().as_bytes()).unwrap_or_else(|| panic!("RSA JWKS"));

    let mut session = session;
    session["id_token"] = json!(id_token);
    // An opaque refresh token of the length large providers issue.
    session["refresh_token"] = json!(format!("v1.{}", URL_SAFE_NO_PAD.encode([0x5a_u8; 64])));
    session["claims"] = json!({
        "name": "Alice Example", "email": "alice@example.com", "email_verified": true,
    });
    let tokens = session["tokens"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no cached token"));
    assert_eq!(tokens.len(), 1, "the login caches one token");
    tokens[0]["token"] = json!(access_token);
    tokens[0]["obtained"] = json!(iat);
    tokens[0]["expires"] = json!(iat + 3600);
    tokens[0]["expires_known"] = json!(true);
    let session_json = serde_json::to_vec(&session).unwrap_or_default();

    let saved = fuzzing::save_session(&config, &session_json, &SeededRandom::new(7), now);
    let (set_cookies, saved) = saved
        .unwrap_or_else(|| panic!("not a session"))
        .unwrap_or_else(|e| panic!("save: {e}"));
    assert_eq!(saved, session, "the session fits the budget unchanged");
    let mut sealed_browser = Browser::default();
    for set_cookie in &set_cookies {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let (name, value) = pair.split_once('=').unwrap_or_default();
        if !value.is_empty() {
            sealed_browser.set_cookie(name, value);
        }
    }
    let ours = session_cookies(&sealed_browser);
    let headers = cookie_headers(&ours, false);
    let sealed = fuzzing::sealed_session(&config, &headers).unwrap_or_default();
    assert!(!sealed.is_empty());
    Fixture {
        cookie_header: cookie_header(&ours, true),
        world,
        config,
        sealed,
        session_json,
        access_token,
        now,
        rs256: IdToken {
            keys: rs256_keys,
            nonce: es256.nonce.clone(),
            token: id_token,
        },
        es256,
    }
}

fn nonce_of(token: &str) -> String {
    fuzzing::unverified_claim(token, "nonce")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The session's `name=value` pairs in a browser's jar.
fn session_cookies(browser: &Browser) -> Vec<String> {
    browser
        .cookie_names()
        .into_iter()
        .filter(|n| n.starts_with(SESSION))
        .map(|n| format!("{n}={}", browser.cookie(&n).unwrap_or_default()))
        .collect()
}

/// One `Cookie` header: ours, amid the unrelated ones when `crowded`, as browsers order cookies
/// by path length and then creation time (so ours, set last, come last).
fn cookie_header(ours: &[String], crowded: bool) -> String {
    let unrelated = if crowded { &UNRELATED[..] } else { &[] };
    let all: Vec<&str> = unrelated
        .iter()
        .copied()
        .chain(ours.iter().map(String::as_str))
        .collect();
    all.join("; ")
}

fn cookie_headers(ours: &[String], crowded: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&cookie_header(ours, crowded)).unwrap_or_else(|e| panic!("header: {e}"));
    headers.insert(COOKIE, value);
    headers
}

fn token_request(cookie_header: &str) -> http::Request<Vec<u8>> {
    let headers = [
        ("x-csrf", "1"),
        ("sec-fetch-site", "same-origin"),
        ("cookie", cookie_header),
    ];
    request(Method::GET, TOKEN_PATH, &headers, Vec::new())
}

fn provider_calls(world: &World) -> Vec<usize> {
    [
        Endpoint::Discovery,
        Endpoint::Jwks,
        Endpoint::Token,
        Endpoint::UserInfo,
        Endpoint::Revocation,
    ]
    .iter()
    .map(|e| world.provider.count(*e))
    .collect()
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    eprintln!(
        "session: {} B of JSON; Cookie header: {} B ({} B of it the session's); ID token {} B, access token {} B",
        f.session_json.len(),
        f.cookie_header.len(),
        f.sealed.len(),
        f.rs256.token.len(),
        f.access_token.len(),
    );

    // The peer's benchmark (bench/jose-peer.mjs) opens the same session.
    if let Some(path) = std::env::var_os("BFF_BENCH_SESSION_JSON") {
        std::fs::write(&path, &f.session_json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    let random = SeededRandom::new(3);
    let log = CountingLog::default();
    let deps: Deps<'_, _, MemoryStore> = Deps {
        clock: &*f.world.clock,
        random: &random,
        http: &f.world.provider,
        log: &log,
        store: None,
    };
    let backend = f.world.backend();
    let handle = |request| {
        backend
            .handle(request, &deps)
            .now_or_never()
            .unwrap_or_else(|| panic!("the cached-token path waited on a port"))
    };

    // Outside the timing: the answer is the cached token, nothing is written, nobody is called.
    let calls = provider_calls(&f.world);
    let response = handle(token_request(&f.cookie_header));
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(response.body()).unwrap_or_default();
    assert_eq!(body["access_token"], json!(f.access_token));
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(provider_calls(&f.world), calls, "no provider request");

    c.bench_function("hot_path/bff_token_cached", |b| {
        b.iter_batched(|| token_request(&f.cookie_header), &handle, BatchSize::SmallInput);
    });
    assert_eq!(provider_calls(&f.world), calls, "no provider request");
    let others = log.others.lock().map(|lines| lines.clone()).unwrap_or_default();
    assert!(others.is_empty(), "log: {others:?}");
    assert!(log.requests.load(Ordering::Relaxed) > 0, "one line per request");

    let headers = {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&f.cookie_header).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    };
    c.bench_function("cookies/parse_session", |b| {
        b.iter(|| fuzzing::sealed_session(&f.config, std::hint::black_box(&headers)));
    });

    c.bench_function("seal/unseal", |b| {
        b.iter(|| fuzzing::unseal(&f.config, SESSION, std::hint::black_box(&f.sealed), f.now));
    });
    c.bench_function("seal/unseal_and_parse", |b| {
        b.iter(|| {
            let plain = fuzzing::unseal(&f.config, SESSION, std::hint::black_box(&f.sealed), f.now);
            serde_json::from_slice::<Value>(&plain.unwrap_or_default()).ok()
        });
    });
    let expires = UnixTime(f.now.0 + 86_400);
    c.bench_function("seal/seal", |b| {
        b.iter(|| {
            fuzzing::seal(
                &f.config,
                SESSION,
                std::hint::black_box(&f.session_json),
                expires,
                &random,
            )
        });
    });

    for (name, alg, id_token) in [
        ("id_token/es256", "ES256", &f.es256),
        ("id_token/rs256", "RS256", &f.rs256),
    ] {
        let expected = (ISSUER, CLIENT_ID, Some(id_token.nonce.as_str()));
        let check = id_token.keys.verify_id_token(&id_token.token, &[alg], expected, f.now);
        assert!(check.is_ok(), "{name}: {check:?}");
        c.bench_function(name, |b| {
            b.iter(|| {
                id_token
                    .keys
                    .verify_id_token(std::hint::black_box(&id_token.token), &[alg], expected, f.now)
            });
        });
    }
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = hot_path;
    config = short();
    targets = benches
}
criterion_main!(hot_path);
