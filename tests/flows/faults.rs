//! The fault matrix: the provider down, failing, slow or answering nonsense on each path the
//! backend uses it for (discovery, token endpoint, JWKS, UserInfo, revocation), a token response
//! without a refresh token, a signing key rotated mid-session, a refresh whose answer is lost
//! after the provider rotated, and the session store down, slow or failing. Each case checks the
//! contract's answer, what the session is afterwards, and that no secret reached the logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_tests::browser::{Answer, Browser, StoredCookie, sessioninfo, token};
use bff_tests::free_port;
use bff_tests::logs::assert_no_secrets;
use bff_tests::provider::{CLIENT_ID, CLIENT_SECRET, Provider};
use bff_tests::target::{self, Kind, Target};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::cases::{SESSION, browser_with, copy_jar, login, start_login};
use crate::store_modes::Sessions;
use crate::{ACCESS_TOKEN_TTL, Case, World};

/// `BFF_HTTP_TIMEOUT` in `target::settings`: a stalled provider costs a request about this.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// The store client's deadline per call and its one retry (functions/dynamodb).
const STORE_GIVES_UP: Duration = Duration::from_secs(7);

macro_rules! case_list {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), |world| Box::pin($name(world)))),*]
    };
}

/// Provider faults, then the store's, in cookie mode with a store (revocation entries). The first
/// case needs a backend that has not fetched the provider's metadata yet.
const PROVIDER: &[(&str, Case)] = case_list![
    login_discovery_faults,
    token_endpoint_faults,
    callback_faults,
    logout_revocation_faults,
    refresh_without_refresh_token,
    signing_key_rotation,
    jwks_down_key_cached,
    lost_refresh_response,
    store_faults,
];

/// KV mode: store faults, and the provider faults whose aftermath is written to the store.
const STORE: &[(&str, Case)] = case_list![
    store_faults,
    store_write_lost_after_refresh,
    kv_values_gone,
    refresh_without_refresh_token,
    lost_refresh_response
];

async fn world(kind: Kind, sessions: Sessions) -> World {
    let kv = sessions == Sessions::Kv;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let provider = Provider::start(&origin, "", ACCESS_TOKEN_TTL).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    settings.extend(crate::userinfo_settings());
    if kv {
        settings.push(("BFF_SESSION_STORE".into(), "kv".into()));
    }
    let stand_in = target::store_settings(kind).await;
    settings.extend(stand_in.iter().flat_map(|stand_in| stand_in.settings.clone()));
    let target = Target::start(kind, port, "", settings.clone()).await;
    World {
        provider,
        target,
        kv,
        settings,
        stand_in,
    }
}

pub async fn run(kind: Kind) {
    if !crate::enabled(kind) {
        return;
    }
    let mut failures = Vec::new();
    for (sessions, mode, cases) in [
        (Sessions::CookieAndStore, "cookie+store", PROVIDER),
        (Sessions::Kv, "kv", STORE),
    ] {
        let label = format!("{} faults {mode}", kind.name());
        let world = world(kind, sessions).await;
        failures.extend(crate::run_cases(&label, world, cases).await);
    }
    assert!(
        failures.is_empty(),
        "{} faults: failed cases: {failures:?}",
        kind.name()
    );
}

// ---- helpers -------------------------------------------------------------------------------

/// What a case saw that must never appear in a log line.
#[derive(Default)]
struct Seen(Vec<(&'static str, String)>);

impl Seen {
    fn add(&mut self, what: &'static str, value: impl Into<String>) {
        self.0.push((what, value.into()));
    }

    /// The session cookies (and transaction cookies) in `browser`'s jar.
    fn cookies(&mut self, browser: &mut Browser, target: &Target) {
        for (_, cookie) in copy_jar(browser, target) {
            self.add("a cookie value", cookie.value);
        }
    }

    /// An answer's access token, if any.
    fn answer(&mut self, answer: &Answer) {
        if let Some(token) = answer.json()["access_token"].as_str() {
            self.add("an access token", token);
        }
    }

    /// The authorization code in a callback URL.
    fn callback(&mut self, callback: &Url) {
        for (name, value) in callback.query_pairs() {
            if name == "code" {
                self.add("an authorization code", value.into_owned());
            }
        }
    }

    /// Checks the target's logs against everything seen, and every refresh token the provider
    /// ever issued.
    async fn check(mut self, world: &World, case: &str) {
        for entry in world.provider.refresh_tokens().await {
            if let Some(value) = entry["value"].as_str() {
                self.add("a refresh token", value);
            }
        }
        let context = format!("{} {case}", world.target.kind.name());
        assert_no_secrets(&world.target.logs(), &self.0, &context);
    }
}

fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        answer.body
    );
    assert_eq!(
        answer.json()["error"],
        "temporarily_unavailable",
        "{what}: {}",
        answer.body
    );
    assert_eq!(answer.header("retry-after"), Some("5"), "{what}");
    assert!(
        answer.set_cookies().is_empty(),
        "{what}: a 503 leaves the session as it was"
    );
}

fn is_page(answer: &Answer) -> bool {
    answer
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html")
}

/// `POST B/.well-known/bff-token` with a form body, as the JS client sends it (a token never in a
/// URL, so never in an access log).
async fn token_post(browser: &mut Browser, target: &Target, form: &str) -> Answer {
    let url = target.url("/.well-known/bff-token");
    browser.api(Method::POST, &url, Some(form.to_owned())).await
}

/// A refresh now: the current token presented as rejected.
async fn forced_refresh(browser: &mut Browser, target: &Target, current: &str) -> Answer {
    token_post(browser, target, &format!("rejected_token={current}")).await
}

fn access_token(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()["access_token"].as_str().unwrap().to_owned()
}

/// Waits until a token obtained now is inside the refresh margin (5 s of a 10 s token).
async fn until_due() {
    tokio::time::sleep(Duration::from_secs(ACCESS_TOKEN_TTL - 4)).await;
}

/// Logs out; returns the answer and the ID token the logout URL carries as `id_token_hint`.
async fn logout(browser: &mut Browser, target: &Target) -> (Answer, Option<String>) {
    let answer = browser.api(Method::POST, &target.url("/bff/logout"), None).await;
    let hint = answer.json()["logout_url"]
        .as_str()
        .and_then(|url| Url::parse(url).ok())
        .and_then(|url| {
            url.query_pairs()
                .find(|(name, _)| name == "id_token_hint")
                .map(|(_, value)| value.into_owned())
        });
    (answer, hint)
}

/// Logs out and checks that the session's ID token (the logout URL's `id_token_hint`) was
/// signed with key `kid`.
async fn logout_signed_by(browser: &mut Browser, target: &Target, expected: &str, seen: &mut Seen, why: &str) {
    let (answer, hint) = logout(browser, target).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let hint = hint.expect("id_token_hint");
    assert_eq!(kid(&hint), expected, "{why}");
    seen.add("an ID token", hint);
}

/// The `kid` in a JWT's header.
fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn session_cookies(browser: &mut Browser, target: &Target) -> Vec<(String, StoredCookie)> {
    copy_jar(browser, target)
        .into_iter()
        .filter(|(name, _)| name.starts_with(SESSION))
        .collect()
}

/// Whatever `jar` holds is no session any more.
async fn assert_dead(target: &Target, jar: &[(String, StoredCookie)], what: &str) {
    let mut browser = browser_with(target, jar);
    let answer = sessioninfo(&mut browser, target).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}: {}", answer.body);
    assert_eq!(answer.json()["error"], "invalid_session", "{what}: {}", answer.body);
}

/// The session in `browser` answers sessioninfo and a token.
async fn assert_alive(browser: &mut Browser, target: &Target, user: &str, what: &str) -> String {
    let info = sessioninfo(browser, target).await;
    assert_eq!(info.status, StatusCode::OK, "{what}: {}", info.body);
    assert_eq!(info.json()["sub"], user, "{what}");
    let answer = token(browser, target, "").await;
    assert_eq!(answer.status, StatusCode::OK, "{what}: {}", answer.body);
    access_token(&answer)
}

fn within(started: Instant, limit: Duration, what: &str) {
    let took = started.elapsed();
    assert!(took < limit, "{what}: took {took:?}, more than {limit:?}");
}

// ---- provider faults -----------------------------------------------------------------------

/// Login needs the provider's metadata (discovery) before it can redirect: down, failing or slow
/// is the 503 page, an unusable answer the 400 page; no transaction cookie either way, and the
/// next login works once the provider is back.
async fn login_discovery_faults(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    let faults = [
        ("mode=refuse", StatusCode::SERVICE_UNAVAILABLE),
        ("mode=500", StatusCode::SERVICE_UNAVAILABLE),
        ("mode=hang", StatusCode::SERVICE_UNAVAILABLE),
        (
            "mode=garbage&path=/.well-known/openid-configuration",
            StatusCode::BAD_REQUEST,
        ),
        (
            "mode=truncated&path=/.well-known/openid-configuration",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (fault, status) in faults {
        provider.fault_where(fault).await;
        let mut browser = Browser::new();
        let started = Instant::now();
        let answer = browser.get(&target.url("/bff/login")).await;
        provider.fault("pass").await;
        within(started, HTTP_TIMEOUT * 3, fault);
        assert_eq!(answer.status, status, "{fault}: {}", answer.body);
        assert!(is_page(&answer), "{fault}: an HTML page");
        assert!(
            answer.set_cookies().is_empty(),
            "{fault}: no transaction: {:?}",
            answer.set_cookies()
        );
    }
    let mut browser = Browser::new();
    let callback = start_login(&mut browser, target, "", "fiona").await;
    seen.callback(&callback);
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    seen.answer(&token(&mut browser, target, "").await);
    seen.cookies(&mut browser, target);
    assert_alive(&mut browser, target, "fiona", "after discovery came back").await;
    seen.check(&world, "login_discovery_faults").await;
}

/// The token endpoint alone down, failing, slow or answering something that is no token
/// response: 503 with Retry-After, the session untouched; the provider saw no refresh it did not
/// answer, and the next refresh works.
async fn token_endpoint_faults(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    let mut browser = login(target, "tobias").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let current = access_token(&first);
    let refreshes = provider.count("refresh_token").await;
    let errors = provider.count("grant_error").await;
    for mode in ["refuse", "500", "hang", "garbage", "truncated"] {
        let state = provider
            .fault_where(&format!("mode={mode}&path=/token&grant_type=refresh_token"))
            .await;
        assert_eq!(state["mode"], mode);
        let started = Instant::now();
        let answer = forced_refresh(&mut browser, target, &current).await;
        let state = provider.fault_state().await;
        provider.fault("pass").await;
        within(started, HTTP_TIMEOUT * 3, mode);
        assert_unavailable(&answer, mode);
        assert_eq!(state["hits"], 1, "{mode}: one refresh attempt, no retry: {state}");
        // sessioninfo still answers from the untouched session.
        assert_eq!(sessioninfo(&mut browser, target).await.status, StatusCode::OK, "{mode}");
    }
    assert_eq!(
        provider.count("refresh_token").await,
        refreshes,
        "no fault was forwarded"
    );
    let recovered = forced_refresh(&mut browser, target, &current).await;
    seen.answer(&recovered);
    let next = access_token(&recovered);
    assert_ne!(next, current);
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1
    );
    assert_eq!(
        provider.count("grant_error").await,
        errors,
        "no refresh token was spent"
    );
    seen.cookies(&mut browser, target);
    seen.check(&world, "token_endpoint_faults").await;
}

/// Faults once the provider has redirected back: at the code exchange and at UserInfo
/// (`BFF_USERINFO`). Each is the 503 page (400 for an unusable UserInfo answer) and no session.
/// The callback rule: an outage with no answer from the token endpoint, or a 5xx, keeps the
/// transaction (the code most likely is not spent), so the same callback can be retried; once
/// the provider answered otherwise the transaction is over. The retry is bounded either way: a
/// code the provider did consume (its answer lost) is refused, and that ends the transaction.
async fn callback_faults(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let (found, refused) = (StatusCode::FOUND, StatusCode::BAD_REQUEST);
    // (fault, its answer, the same callback retried once the provider is back)
    let faults = [
        ("mode=500&path=/token", unavailable, found),
        ("mode=hang&path=/token", unavailable, found),
        ("mode=refuse&path=/token", unavailable, found),
        ("mode=garbage&path=/token", refused, refused),
        ("mode=truncated&path=/token", refused, refused),
        ("mode=lose&path=/token", unavailable, refused),
        ("mode=refuse&path=/me", unavailable, refused),
        ("mode=500&path=/me", unavailable, refused),
        ("mode=hang&path=/me", unavailable, refused),
        ("mode=garbage&path=/me", refused, refused),
    ];
    for (fault, status, retried) in faults {
        let mut browser = Browser::new();
        let callback = start_login(&mut browser, target, "", "carla").await;
        seen.callback(&callback);
        seen.cookies(&mut browser, target);
        let codes = provider.count("authorization_code").await;
        let errors = provider.count("grant_error").await;
        provider.fault_where(fault).await;
        let started = Instant::now();
        let answer = browser.visit_callback(&callback).await;
        let state = provider.fault_state().await;
        provider.fault("pass").await;
        within(started, HTTP_TIMEOUT * 3, fault);
        assert_eq!(answer.status, status, "{fault}: {}", answer.body);
        assert!(is_page(&answer), "{fault}");
        assert_eq!(state["hits"], 1, "{fault}: {state}");
        assert!(session_cookies(&mut browser, target).is_empty(), "{fault}: no session");
        let again = browser.visit_callback(&callback).await;
        assert_eq!(again.status, retried, "{fault}: retried: {}", again.body);
        if retried == found {
            seen.cookies(&mut browser, target);
            assert_alive(&mut browser, target, "carla", fault).await;
        } else {
            assert!(session_cookies(&mut browser, target).is_empty(), "{fault}: no session");
        }
        // Once over, the transaction stays over: no third exchange.
        let third = browser.visit_callback(&callback).await;
        assert_eq!(third.status, refused, "{fault}: third: {}", third.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let exchanged = provider.count("authorization_code").await - codes;
        let failed = provider.count("grant_error").await - errors;
        assert!(
            exchanged + failed <= 2,
            "{fault}: {exchanged} exchanges, {failed} refused"
        );
    }
    let mut browser = login(target, "carla").await;
    seen.cookies(&mut browser, target);
    seen.add(
        "an access token",
        assert_alive(&mut browser, target, "carla", "after the faults").await,
    );
    seen.check(&world, "callback_faults").await;
}

/// Logout revokes the refresh token at the provider, best effort: with the revocation endpoint
/// (or the whole provider) down, failing or slow, the logout still answers 200 with the
/// provider's logout URL and ends the session here.
async fn logout_revocation_faults(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    for fault in [
        "mode=refuse&path=/token/revocation",
        "mode=500&path=/token/revocation",
        "mode=hang&path=/token/revocation",
        "mode=garbage&path=/token/revocation",
        "mode=refuse",
    ] {
        let mut browser = login(target, "leon").await;
        seen.answer(&token(&mut browser, target, "").await);
        let copied = copy_jar(&mut browser, target);
        seen.cookies(&mut browser, target);
        let refresh_token = provider.newest_refresh_token().await;
        let revocations = provider.count("revocation").await;
        provider.fault_where(fault).await;
        let started = Instant::now();
        let (answer, hint) = logout(&mut browser, target).await;
        provider.fault("pass").await;
        within(started, HTTP_TIMEOUT * 3, fault);
        assert_eq!(answer.status, StatusCode::OK, "{fault}: {}", answer.body);
        let logout_url = answer.json()["logout_url"].as_str().unwrap().to_owned();
        assert!(
            logout_url.starts_with(&format!("{}/session/end?", provider.issuer)),
            "{fault}: {logout_url}"
        );
        seen.add("an ID token", hint.expect("id_token_hint"));
        assert!(
            session_cookies(&mut browser, target).is_empty(),
            "{fault}: cookies cleared"
        );
        assert_dead(target, &copied, fault).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(provider.count("revocation").await, revocations, "{fault}");
        // Best effort: what the provider did not hear of stays valid there.
        assert!(provider.is_active(&refresh_token).await, "{fault}");
    }
    seen.check(&world, "logout_revocation_faults").await;
}

/// Makes the world's client rotate its refresh tokens or not, its other metadata as configured.
async fn client_rotating(provider: &Provider, rotate: bool) {
    let clients = provider.clients().await;
    let mut client = clients
        .as_array()
        .and_then(|list| list.iter().find(|c| c["client_id"] == CLIENT_ID))
        .cloned()
        .unwrap_or_else(|| json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}));
    client["rotate_refresh_tokens"] = json!(rotate);
    let answer = provider.set_client(&client).await;
    assert_eq!(answer["rotate_refresh_tokens"], rotate, "{answer}");
}

/// A refresh answer without `refresh_token` means the old one stays in use (RFC 6749 §6). With a
/// provider that does not rotate, that is right and refreshes go on working. With one that
/// rotated anyway (the token was lost on the way), the next refresh presents a consumed token:
/// `invalid_grant`, the session ends and the user is told to sign in, after exactly one failed
/// grant, never a loop.
async fn refresh_without_refresh_token(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    let strip = "mode=strip_refresh_token&path=/token&grant_type=refresh_token";

    // Not rotating (as Google, or Okta without rotation): the kept token goes on working.
    client_rotating(provider, false).await;
    let mut browser = login(target, "nora").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let current = access_token(&first);
    let errors = provider.count("grant_error").await;
    let refreshes = provider.count("refresh_token").await;
    provider.fault_where(strip).await;
    let second = forced_refresh(&mut browser, target, &current).await;
    seen.answer(&second);
    let second = access_token(&second);
    assert_ne!(second, current);
    until_due().await;
    let third = token(&mut browser, target, "").await;
    seen.answer(&third);
    assert_ne!(access_token(&third), second);
    let state = provider.fault_state().await;
    provider.fault("pass").await;
    assert_eq!(state["hits"], 2, "{state}");
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 2).await,
        refreshes + 2
    );
    assert_eq!(provider.count("grant_error").await, errors);
    seen.cookies(&mut browser, target);
    client_rotating(provider, true).await;

    // Rotating: the provider consumed the token the backend still holds.
    let mut browser = login(target, "nora").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let current = access_token(&first);
    let refreshes = provider.count("refresh_token").await;
    provider.fault_where(strip).await;
    let stripped = forced_refresh(&mut browser, target, &current).await;
    provider.fault("pass").await;
    seen.answer(&stripped);
    let fresh = access_token(&stripped);
    assert_ne!(fresh, current);
    seen.cookies(&mut browser, target);
    assert_eq!(sessioninfo(&mut browser, target).await.status, StatusCode::OK);
    until_due().await;
    let copied = session_cookies(&mut browser, target);
    let dead = token(&mut browser, target, "").await;
    assert_eq!(dead.status, StatusCode::BAD_REQUEST, "{}", dead.body);
    assert_eq!(dead.json()["error"], "invalid_grant", "{}", dead.body);
    assert!(
        dead.set_cookies()
            .iter()
            .any(|cookie| cookie.starts_with(&format!("{SESSION}=")) && cookie.contains("Max-Age=0")),
        "the session's cookies are cleared: {:?}",
        dead.set_cookies()
    );
    assert!(session_cookies(&mut browser, target).is_empty());
    // Asked again (a client retrying, another tab with the cookie): no session, no provider call.
    let mut other = browser_with(target, &copied);
    for _ in 0..3 {
        let again = token(&mut browser, target, "").await;
        assert_eq!(again.json()["error"], "invalid_session", "{}", again.body);
    }
    let replay = token(&mut other, target, "").await;
    if world.kv || world.stand_in.is_some() || target.kind == Kind::Worker {
        // With a store, ending the session wrote a revocation entry: the old cookie is dead too.
        assert_eq!(replay.json()["error"], "invalid_session", "{}", replay.body);
    } else {
        assert_eq!(replay.json()["error"], "invalid_grant", "{}", replay.body);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        provider.count("refresh_token").await,
        refreshes + 1,
        "one refresh went through"
    );
    let failed = provider.count("grant_error").await - errors;
    assert_eq!(failed, 1, "exactly one refresh with the consumed token");
    seen.check(&world, "refresh_without_refresh_token").await;
}

/// The provider rotates its signing key mid-session: the next refresh brings an ID token under a
/// `kid` the backend has not seen; one JWKS fetch finds it, the refresh works, and the session
/// carries the new ID token (its `kid` is in the logout URL's `id_token_hint`).
async fn signing_key_rotation(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    let mut browser = login(target, "kira").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let current = access_token(&first);
    let rotated = provider.rotate_keys().await;
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    // Counts JWKS fetches without changing them.
    provider.fault_where("mode=delay&ms=0&path=/jwks").await;
    let refreshed = forced_refresh(&mut browser, target, &current).await;
    seen.answer(&refreshed);
    let next = access_token(&refreshed);
    assert_ne!(next, current);
    until_due().await;
    let later = token(&mut browser, target, "").await;
    seen.answer(&later);
    assert_ne!(access_token(&later), next);
    let state = provider.fault_state().await;
    provider.fault("pass").await;
    assert_eq!(state["hits"], 1, "one JWKS fetch for the new key: {state}");
    let info = sessioninfo(&mut browser, target).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.json()["sub"], "kira");
    seen.cookies(&mut browser, target);
    logout_signed_by(
        &mut browser,
        target,
        &new_kid,
        &mut seen,
        "the session holds the ID token signed with the new key",
    )
    .await;
    seen.check(&world, "signing_key_rotation").await;
}

/// The JWKS endpoint down while the ID token's key is cached: refreshes go on (no JWKS fetch is
/// even needed). Down while the key rotates: the refresh still answers, the session keeps its
/// earlier ID token (and logs a line); once the JWKS is back the next refresh takes the new one.
async fn jwks_down_key_cached(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    let mut browser = login(target, "jonas").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let mut current = access_token(&first);
    for mode in ["refuse", "500"] {
        provider.fault_where(&format!("mode={mode}&path=/jwks")).await;
        // The first is a forced refresh; then (one per 30 s) the token is let age instead.
        let answer = forced_refresh(&mut browser, target, &current).await;
        let state = provider.fault_state().await;
        provider.fault("pass").await;
        seen.answer(&answer);
        let next = access_token(&answer);
        assert_ne!(next, current, "{mode}: refreshed");
        current = next;
        assert_eq!(state["hits"], 0, "{mode}: the cached key needed no fetch: {state}");
        until_due().await;
    }

    let new_kid = provider.rotate_keys().await["kid"].as_str().unwrap().to_owned();
    provider.fault_where("mode=500&path=/jwks").await;
    let during = token(&mut browser, target, "").await;
    let state = provider.fault_state().await;
    provider.fault("pass").await;
    seen.answer(&during);
    let during_token = access_token(&during);
    assert_ne!(
        during_token, current,
        "refreshed although the new key could not be fetched"
    );
    assert!(
        state["hits"].as_u64().unwrap() <= 1,
        "the JWKS is not hammered: {state}"
    );
    assert_eq!(sessioninfo(&mut browser, target).await.status, StatusCode::OK);
    assert!(
        world.target.logs().contains("refreshed ID token not validated"),
        "the kept claims are logged"
    );
    // The JWKS refetch is rate-limited to one per 5 s, failures included: the next refresh is
    // later than that.
    until_due().await;
    let after = token(&mut browser, target, "").await;
    seen.answer(&after);
    assert_ne!(access_token(&after), during_token);
    seen.cookies(&mut browser, target);
    logout_signed_by(
        &mut browser,
        target,
        &new_kid,
        &mut seen,
        "the new ID token was taken once the keys were back",
    )
    .await;
    seen.check(&world, "jwks_down_key_cached").await;
}

/// A refresh whose answer is lost after the provider rotated the token: the backend can only
/// answer 503, keeping the session (and its now consumed refresh token). The retry presents that
/// token: `invalid_grant`, the session ends, the user signs in again. Exactly one lost refresh
/// and one failed grant at the provider, then no more calls.
async fn lost_refresh_response(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut seen = Seen::default();
    let mut browser = login(target, "lara").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let current = access_token(&first);
    let refreshes = provider.count("refresh_token").await;
    let errors = provider.count("grant_error").await;
    provider
        .fault_where("mode=lose&path=/token&grant_type=refresh_token")
        .await;
    let started = Instant::now();
    let lost = forced_refresh(&mut browser, target, &current).await;
    let state = provider.fault_state().await;
    provider.fault("pass").await;
    within(started, HTTP_TIMEOUT * 3, "lose");
    assert_unavailable(&lost, "lost answer");
    assert_eq!(state["hits"], 1, "one refresh sent, not retried: {state}");
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1,
        "the provider rotated"
    );
    seen.cookies(&mut browser, target);
    let copied = session_cookies(&mut browser, target);

    // What the JS client does on 503: try again later.
    let retry = forced_refresh(&mut browser, target, &current).await;
    seen.answer(&retry);
    assert_eq!(retry.status, StatusCode::BAD_REQUEST, "{}", retry.body);
    assert_eq!(retry.json()["error"], "invalid_grant", "{}", retry.body);
    assert!(session_cookies(&mut browser, target).is_empty(), "the session is ended");
    for _ in 0..3 {
        let again = forced_refresh(&mut browser, target, &current).await;
        assert_eq!(again.json()["error"], "invalid_session", "{}", again.body);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(provider.count("grant_error").await, errors + 1, "one failed grant");
    assert_eq!(provider.count("refresh_token").await, refreshes + 1);
    if world.kv || world.stand_in.is_some() || target.kind == Kind::Worker {
        assert_dead(target, &copied, "the cookie from before the loss").await;
    }
    // The way back: a new login.
    let mut again = login(target, "lara").await;
    seen.cookies(&mut again, target);
    seen.add(
        "an access token",
        assert_alive(&mut again, target, "lara", "signed in again").await,
    );
    seen.check(&world, "lost_refresh_response").await;
}

// ---- store faults --------------------------------------------------------------------------

/// The session store (DynamoDB behind its fault proxy) down, hanging, failing or throttling:
/// every request that needs it (the session record in KV mode, the revocation entries in both
/// modes) answers 503 with Retry-After and leaves the session alone; slow but within the
/// client's deadline, or throttled once, it works. Afterwards the session is as it was.
async fn store_faults(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let Some(stand_in) = world.stand_in.as_ref() else {
        eprintln!(
            "[{}] store_faults: the Worker's KV binding has no network hop to cut; see kv_values_gone",
            target.kind.name()
        );
        return;
    };
    let mut seen = Seen::default();
    let mut browser = login(target, "stella").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let current = access_token(&first);
    seen.cookies(&mut browser, target);

    let failing = [
        ("mode=refuse", Duration::from_secs(2)),
        ("mode=hang", STORE_GIVES_UP),
        ("mode=delay&ms=3500", STORE_GIVES_UP),
        ("mode=500", Duration::from_secs(2)),
        ("mode=dynamodb_error&type=InternalServerError", Duration::from_secs(2)),
        (
            "mode=dynamodb_error&type=ProvisionedThroughputExceededException",
            Duration::from_secs(2),
        ),
        ("mode=garbage", Duration::from_secs(2)),
    ];
    // Each fault meets a session this instance has not checked yet: one it checked less than
    // 10 s ago is answered from its memory that the revocation entries are absent, store or not.
    let fresh_session = |n: usize| async move { login(target, &format!("stella-{n}")).await };
    for (n, (fault, limit)) in failing.into_iter().enumerate() {
        let mut browser = fresh_session(n).await;
        seen.cookies(&mut browser, target);
        stand_in.fault(fault).await;
        for (what, answer) in [
            (
                "sessioninfo",
                timed(sessioninfo(&mut browser, target), limit, fault).await,
            ),
            ("token", timed(token(&mut browser, target, ""), limit, fault).await),
        ] {
            assert_unavailable(&answer, &format!("{fault}: {what}"));
        }
        let state = stand_in.fault_state().await;
        stand_in.fault("mode=pass").await;
        // A closed port counts nothing.
        let hits = state["hits"].as_u64().unwrap();
        assert!(fault == "mode=refuse" || hits >= 2, "{fault}: {state}");
        let alive = token(&mut browser, target, "").await;
        assert_eq!(alive.status, StatusCode::OK, "{fault}: after: {}", alive.body);
    }

    // Slow but within the deadline, or throttled once and retried: the requests work.
    for (n, fault) in [
        "mode=delay&ms=800",
        "mode=dynamodb_error&type=ProvisionedThroughputExceededException&times=1",
        "mode=500&times=1",
    ]
    .into_iter()
    .enumerate()
    {
        let mut fresh = fresh_session(100 + n).await;
        seen.cookies(&mut fresh, target);
        stand_in.fault(fault).await;
        let info = sessioninfo(&mut fresh, target).await;
        let state = stand_in.fault_state().await;
        stand_in.fault("mode=pass").await;
        assert_eq!(info.status, StatusCode::OK, "{fault}: {}", info.body);
        assert!(state["hits"].as_u64().unwrap() >= 1, "{fault}: {state}");
    }
    stand_in.fault("mode=delay&ms=800").await;
    let refreshed = forced_refresh(&mut browser, target, &current).await;
    stand_in.fault("mode=pass").await;
    seen.answer(&refreshed);
    assert_ne!(access_token(&refreshed), current);

    // Logout with the store down.
    let copied = session_cookies(&mut browser, target);
    let revocations = provider.count("revocation").await;
    stand_in.fault("mode=refuse").await;
    let (answer, hint) = logout(&mut browser, target).await;
    stand_in.fault("mode=pass").await;
    if let Some(hint) = hint {
        seen.add("an ID token", hint);
    }
    if world.kv {
        // The session and its refresh token live in the store: nothing is done, and it says so.
        assert_unavailable(&answer, "kv logout, store down");
        assert_eq!(provider.count("revocation").await, revocations, "nothing revoked");
        let info = sessioninfo(&mut browser, target).await;
        assert_eq!(info.status, StatusCode::OK, "the session lives: {}", info.body);
        let same = token(&mut browser, target, "").await;
        seen.answer(&same);
        let (answer, hint) = logout(&mut browser, target).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        seen.add("an ID token", hint.expect("id_token_hint"));
        assert_dead(target, &copied, "kv logout once the store is back").await;
    } else {
        // Cookie mode: the cookies are cleared and the refresh token revoked at the provider;
        // only the revocation entry could not be written.
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(session_cookies(&mut browser, target).is_empty());
        assert_eq!(
            provider.count_settled("revocation", revocations + 1).await,
            revocations + 1,
            "the refresh token is revoked at the provider"
        );
    }

    // A login while the store is down (KV mode must write the record).
    let mut other = Browser::new();
    let callback = start_login(&mut other, target, "", "stella").await;
    seen.callback(&callback);
    stand_in.fault("mode=refuse").await;
    let answer = other.visit_callback(&callback).await;
    stand_in.fault("mode=pass").await;
    if world.kv {
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
        assert!(is_page(&answer));
        assert!(session_cookies(&mut other, target).is_empty());
    } else {
        assert_eq!(
            answer.status,
            StatusCode::FOUND,
            "cookie mode needs no store to sign in: {}",
            answer.body
        );
    }
    let mut again = login(target, "stella").await;
    seen.cookies(&mut again, target);
    seen.add(
        "an access token",
        assert_alive(&mut again, target, "stella", "store back").await,
    );

    // A logout while the store hangs answers within the JS client's own deadline (10 s), or the
    // client gives up, the cookies stay, and the logout never reaches the provider's page.
    stand_in.fault("mode=hang").await;
    let started = Instant::now();
    let (answer, hint) = logout(&mut again, target).await;
    let took = started.elapsed();
    stand_in.fault("mode=pass").await;
    if let Some(hint) = hint {
        seen.add("an ID token", hint);
    }
    if world.kv {
        assert_unavailable(&answer, "kv logout, store hanging");
    } else {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(session_cookies(&mut again, target).is_empty());
    }
    assert!(
        took < Duration::from_secs(9),
        "logout with the store hanging took {took:?}"
    );
    seen.check(&world, "store_faults").await;
}

/// The store refuses writes, or hangs on them, just as a refresh rotated the refresh token: the
/// token is answered (the provider has spent the old refresh token, so a 503 would only lose the
/// new one), and the rotation memory still holds the new refresh token, so the next refresh uses
/// it and the session record is repaired: no failed grant, no session lost.
async fn store_write_lost_after_refresh(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let Some(stand_in) = world.stand_in.as_ref() else {
        return;
    };
    let mut seen = Seen::default();
    for mode in ["refuse", "hang"] {
        let mut browser = login(target, "wanda").await;
        let first = token(&mut browser, target, "").await;
        seen.answer(&first);
        let current = access_token(&first);
        seen.cookies(&mut browser, target);
        let refreshes = provider.count("refresh_token").await;
        let errors = provider.count("grant_error").await;
        let logged = target.logs().matches("could not be stored").count();
        stand_in
            .fault(&format!("mode={mode}&header=x-amz-target:DynamoDB_20120810.PutItem"))
            .await;
        let started = Instant::now();
        let refreshed = forced_refresh(&mut browser, target, &current).await;
        let took = started.elapsed();
        let state = stand_in.fault_state().await;
        stand_in.fault("mode=pass").await;
        eprintln!(
            "[{} {}] refresh with the store's writes {mode}: answered {} after {took:?}",
            target.kind.name(),
            if world.kv { "kv" } else { "cookie+store" },
            refreshed.status.as_u16()
        );
        // Every write waits out its deadline: the claim, the shared rotation, two saves.
        within(started, Duration::from_secs(20), mode);
        assert!(state["hits"].as_u64().unwrap() >= 1, "{mode}: {state}");
        seen.answer(&refreshed);
        let refreshed = access_token(&refreshed);
        assert_ne!(refreshed, current, "{mode}");
        assert!(
            target.logs().matches("could not be stored").count() > logged,
            "{mode}: the lost write is logged"
        );
        assert_eq!(
            provider.count_settled("refresh_token", refreshes + 1).await,
            refreshes + 1
        );
        assert_eq!(sessioninfo(&mut browser, target).await.status, StatusCode::OK);
        let mut last = refreshed;
        for round in 2..=3 {
            until_due().await;
            let next = token(&mut browser, target, "").await;
            seen.answer(&next);
            let next = access_token(&next);
            assert_ne!(next, last, "{mode}: round {round}");
            last = next;
            assert_eq!(
                provider.count_settled("refresh_token", refreshes + round).await,
                refreshes + round,
                "{mode}: round {round}"
            );
        }
        assert_eq!(
            provider.count("grant_error").await,
            errors,
            "{mode}: no consumed token was presented"
        );
    }
    seen.check(&world, "store_write_lost_after_refresh").await;
}

async fn timed(request: impl std::future::Future<Output = Answer>, limit: Duration, what: &str) -> Answer {
    let started = Instant::now();
    let answer = request.await;
    within(started, limit + Duration::from_secs(1), what);
    answer
}

/// The local KV's blob directory of a Worker target (`wrangler dev --persist-to`).
fn kv_blobs(target: &Target) -> Option<std::path::PathBuf> {
    let port = Url::parse(&target.origin).ok()?.port()?;
    let kv = bff_tests::repo_root().join(format!("target/wrangler-state/{port}/v3/kv"));
    std::fs::read_dir(kv)
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("blobs"))
        .find(|path| path.is_dir())
}

/// The Worker's KV binding has no network hop to cut, and its local simulation cannot be made
/// to fail: with its blob directory replaced by a file (or each blob by a directory) reads come
/// back empty, and overwriting its SQLite file while workerd runs changes nothing (the data is in
/// the WAL and the page cache). What it can do is lose every value for a while, which a KV-mode
/// session must survive: no session while the values are gone (`invalid_session`), nothing
/// cleared or deleted, and the session whole again once they are back. (Store failures proper
/// are covered on the other targets through the DynamoDB fault proxy, and in the core's tests.)
async fn kv_values_gone(world: Arc<World>) {
    let target = &world.target;
    if target.kind != Kind::Worker || !world.kv {
        return;
    }
    let mut seen = Seen::default();
    let mut browser = login(target, "kurt").await;
    let first = token(&mut browser, target, "").await;
    seen.answer(&first);
    let current = access_token(&first);
    seen.cookies(&mut browser, target);
    let jar = copy_jar(&mut browser, target);
    let blobs = kv_blobs(target).expect("the Worker's local KV directory");
    let away = blobs.with_file_name("blobs.away");
    std::fs::rename(&blobs, &away).unwrap();
    std::fs::write(&blobs, b"not a directory").unwrap();
    let info = sessioninfo(&mut browser, target).await;
    let tok = forced_refresh(&mut browser, target, &current).await;
    let logout_try = browser.api(Method::POST, &target.url("/bff/logout"), None).await;
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(&away, &blobs).unwrap();
    for (what, answer) in [("sessioninfo", &info), ("token", &tok)] {
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}: {}", answer.body);
        assert_eq!(answer.json()["error"], "invalid_session", "{what}: {}", answer.body);
        assert!(answer.set_cookies().is_empty(), "{what}: nothing cleared");
    }
    // A logout that finds no session clears the browser's cookies: the user asked to leave.
    assert_eq!(logout_try.status, StatusCode::OK, "{}", logout_try.body);
    let mut browser = browser_with(target, &jar);
    let back = token(&mut browser, target, "").await;
    assert_eq!(back.status, StatusCode::OK, "the session is whole again: {}", back.body);
    assert_eq!(access_token(&back), current, "with its cached token");
    seen.check(&world, "kv_values_gone").await;
}
