//! Login and callback in process: the authorization request the backend builds, where the user
//! lands afterwards, and every way the callback refuses, each leaving no session behind. No
//! network, no sleep: a scripted provider, a fixed clock, a browser that keeps cookies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test
#![allow(clippy::disallowed_methods)] // tests read the URLs the backend built with the plain parser

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_core::testing::{Answer, Browser, Endpoint, Fault, ISSUER, MemoryStore, World};
use futures::executor::block_on;
use http::StatusCode;
use jwt_simple::prelude::JWTClaims;
use serde_json::{Map, Value, json};
use url::Url;

const SESSION: &str = "__Host-bff-session";
const RESOURCE_A: &str = "https://a.example/";
const RESOURCE_B: &str = "https://b.example/";

/// `path` (a login) in `browser`: the authorization URL of its 302.
fn authorization_url(world: &World, browser: &mut Browser, path: &str) -> Url {
    let answer = block_on(world.navigate(browser, path));
    assert_eq!(answer.status, StatusCode::FOUND, "{path}: {}", answer.text());
    Url::parse(answer.header("location").unwrap()).unwrap()
}

/// Every value of query parameter `name`.
fn all(url: &Url, name: &str) -> Vec<String> {
    url.query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The only value of query parameter `name`.
fn one(url: &Url, name: &str) -> String {
    let values = all(url, name);
    assert_eq!(values.len(), 1, "{name} once in {url}");
    values[0].clone()
}

/// `callback` (path and query) with its query rewritten by `edit`.
fn rewrite(callback: &str, edit: impl FnOnce(&mut Vec<(String, String)>)) -> String {
    let url = Url::parse(&format!("https://app.example{callback}")).unwrap();
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    edit(&mut pairs);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{}?{query}", url.path())
}

fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn txn_cookies(browser: &Browser) -> Vec<String> {
    browser.txn_cookies()
}

fn is_page(answer: &Answer) -> bool {
    answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html"))
}

/// A refused callback: the 400 page, and no session anywhere.
fn assert_refused(world: &World, browser: &mut Browser, answer: &Answer, why: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}: {}", answer.text());
    assert!(is_page(answer), "{why}");
    assert!(
        answer.text().contains("/bff/login"),
        "{why}: the page links to a fresh login"
    );
    assert_no_session(world, browser, answer, why);
}

fn assert_no_session(world: &World, browser: &mut Browser, answer: &Answer, why: &str) {
    assert!(
        answer.set_cookies().iter().all(|c| !c.starts_with(SESSION)),
        "{why}: no session cookie set"
    );
    assert!(browser.cookie(SESSION).is_none(), "{why}");
    assert_eq!(
        block_on(world.session_info(browser)).error(),
        "invalid_session",
        "{why}"
    );
}

// ── The authorization request ────────────────────────────────────────────────────────────────

/// The 302 of `login` carries everything OpenID Connect, PKCE and RFC 8707 need, with fresh
/// 128-bit `state` and `nonce` each time, configured extra parameters, and a `prompt` asked for
/// replacing the configured one.
#[test]
fn the_authorization_request_carries_every_parameter() {
    let world = World::new(&[(
        "BFF_AUTHORIZATION_PARAMS",
        "prompt=consent&audience=https%3A%2F%2Fapi.example",
    )]);
    let mut browser = Browser::default();
    let url = authorization_url(
        &world,
        &mut browser,
        &format!("/bff/login?resource={RESOURCE_A}&resource={RESOURCE_B}"),
    );
    assert_eq!(
        (url.scheme(), url.host_str(), url.path()),
        ("https", Some("idp.example"), "/authorize")
    );
    assert_eq!(one(&url, "response_type"), "code");
    assert_eq!(one(&url, "client_id"), "bff");
    assert_eq!(one(&url, "redirect_uri"), "https://app.example/bff/callback");
    assert_eq!(one(&url, "scope"), "openid profile email offline_access");
    let bits = |value: &str| URL_SAFE_NO_PAD.decode(value).map_or(0, |b| b.len() * 8);
    let (state, nonce) = (one(&url, "state"), one(&url, "nonce"));
    assert!(bits(&state) >= 128 && bits(&nonce) >= 128, "{state} {nonce}");
    assert_ne!(state, nonce);
    assert_eq!(one(&url, "code_challenge_method"), "S256");
    let challenge = one(&url, "code_challenge");
    assert_eq!(bits(&challenge), 256, "a SHA-256 digest: {challenge}");
    assert_eq!(all(&url, "resource"), [RESOURCE_A, RESOURCE_B]);
    assert_eq!(one(&url, "audience"), "https://api.example");
    assert_eq!(all(&url, "prompt"), ["consent"], "the configured prompt");
    assert!(
        all(&url, "code_verifier").is_empty(),
        "the verifier never leaves the backend"
    );

    // A second login (another tab): fresh values, and the prompt asked for replaces the configured one.
    let again = authorization_url(&world, &mut browser, "/bff/login?prompt=login");
    assert_eq!(all(&again, "prompt"), ["login"]);
    assert_ne!(one(&again, "state"), state);
    assert_ne!(one(&again, "nonce"), nonce);
    assert_ne!(one(&again, "code_challenge"), challenge);
    assert!(all(&again, "resource").is_empty());

    // The provider checks PKCE (S256) and the nonce at the exchange: the first login completes.
    let callback = world.provider.authorize(url.as_str(), "alice");
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    assert_eq!(world.provider.count(Endpoint::Token), 1);
    assert_eq!(block_on(world.session_info(&mut browser)).json()["sub"], "alice");
    let session = answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{SESSION}=v1.")))
        .unwrap();
    assert!(
        session.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=86400"),
        "{session}"
    );
}

/// Every cookie is `__Host-` (Secure, `Path=/`, no `Domain`) and `HttpOnly`; a login transaction
/// is `SameSite=Lax` (it must come back on the provider's cross-site redirect) for 10 minutes.
#[test]
fn transaction_cookies_are_host_lax_and_short_lived() {
    let world = World::new(&[]);
    let answer = block_on(world.navigate(&mut Browser::default(), "/bff/login"));
    let cookies = answer.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("__Host-bff-txn."), "{}", cookies[0]);
    assert!(
        cookies[0].ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"),
        "{}",
        cookies[0]
    );
    assert!(!cookies[0].to_ascii_lowercase().contains("domain="));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

/// Configured scopes and the default resource come first; scopes and resources asked for are added.
#[test]
fn configured_scopes_and_default_resource_lead_the_request() {
    let world = World::new(&[
        ("BFF_SCOPES", "openid offline_access api:read"),
        ("BFF_DEFAULT_RESOURCE", "https://default.example/"),
    ]);
    let mut browser = Browser::default();
    let url = authorization_url(
        &world,
        &mut browser,
        &format!("/bff/login?scope=api:write&resource={RESOURCE_A}"),
    );
    assert_eq!(one(&url, "scope"), "openid offline_access api:read api:write");
    assert_eq!(all(&url, "resource"), ["https://default.example/", RESOURCE_A]);
}

/// `return_to` must be a path on this site; without one the user lands on `B/`.
#[test]
fn return_to_is_a_local_path_and_defaults_to_the_base() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let bad = [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "evil",
        "/x\ty",
    ];
    for return_to in bad {
        let path = format!("/bff/login?return_to={}", encoded(return_to));
        let answer = block_on(world.navigate(&mut browser, &path));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{return_to}");
        assert!(is_page(&answer), "{return_to}");
        assert!(answer.set_cookies().is_empty(), "{return_to}: nothing sealed");
    }
    let answer = block_on(world.navigate(&mut browser, "/bff/login?return_to=/a&return_to=/b"));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "return_to twice");
    assert!(txn_cookies(&browser).is_empty());
    assert_eq!(world.provider.count(Endpoint::Discovery), 0, "refused before any work");

    let answer = block_on(world.login(&mut browser, "alice"));
    assert_eq!(answer.header("location"), Some("/"));
    let path = format!("/bff/login?return_to={}", encoded("/orders?id=7#top"));
    let callback = {
        let url = authorization_url(&world, &mut browser, &path);
        world.provider.authorize(url.as_str(), "alice")
    };
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.header("location"), Some("/orders?id=7#top"));

    // Under a base path, `B/` is the default and the callback lives under it too.
    let world = World::new(&[("BFF_BASE_PATH", "/app")]);
    let mut browser = Browser::default();
    let url = authorization_url(&world, &mut browser, "/app/bff/login");
    assert_eq!(one(&url, "redirect_uri"), "https://app.example/app/bff/callback");
    let callback = world.provider.authorize(url.as_str(), "alice");
    assert!(callback.starts_with("/app/bff/callback?"), "{callback}");
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    assert_eq!(answer.header("location"), Some("/app/"));
}

// ── Callback refusals ────────────────────────────────────────────────────────────────────────

/// A `state` with no transaction, and a transaction older than 600 s (its cookie still sent:
/// the expiry sealed inside is what counts), are refused before the code is used.
#[test]
fn unknown_and_expired_transactions_are_refused() {
    let world = World::new(&[]);
    let mut stranger = Browser::default();
    let answer = block_on(world.callback(
        &mut stranger,
        &format!("/bff/callback?code=code-1&state=bogus&iss={}", encoded(ISSUER)),
    ));
    assert_refused(&world, &mut stranger, &answer, "unknown state");
    let answer = block_on(world.callback(&mut stranger, "/bff/callback"));
    assert_refused(&world, &mut stranger, &answer, "no parameters at all");

    let (mut early, mut late) = (Browser::default(), Browser::default());
    let early_callback = block_on(world.start_login(&mut early, "", "alice"));
    let late_callback = block_on(world.start_login(&mut late, "", "bob"));
    world.clock.advance(599);
    let answer = block_on(world.callback(&mut early, &early_callback));
    assert_eq!(answer.status, StatusCode::FOUND, "at 599 s: {}", answer.text());
    world.clock.advance(2);
    assert_eq!(txn_cookies(&late).len(), 1, "the browser still sends it");
    let answer = block_on(world.callback(&mut late, &late_callback));
    assert_refused(&world, &mut late, &answer, "at 601 s");
    assert_eq!(
        world.provider.count(Endpoint::Token),
        1,
        "only the timely callback used its code"
    );
}

/// A callback whose `state` belongs to another browser's login (an attacker's callback sent to
/// the victim) finds no transaction; the attacker's code under the victim's `state` fails PKCE at
/// the provider (code injection).
#[test]
fn a_callback_for_another_browsers_login_is_refused() {
    let world = World::new(&[]);
    let mut victim = Browser::default();
    let victims = block_on(world.start_login(&mut victim, "", "alice"));
    let mut attacker = Browser::default();
    let attackers = block_on(world.start_login(&mut attacker, "", "mallory"));

    let answer = block_on(world.callback(&mut victim, &attackers));
    assert_refused(&world, &mut victim, &answer, "state of another login");
    // The victim's state with the attacker's code: the code is bound to the attacker's PKCE
    // challenge, so the provider refuses it.
    let mixed = rewrite(&victims, |pairs| {
        let code = Url::parse(&format!("https://app.example{attackers}"))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        pairs.iter_mut().find(|(k, _)| k == "code").unwrap().1 = code;
    });
    let answer = block_on(world.callback(&mut victim, &mixed));
    assert_refused(&world, &mut victim, &answer, "the attacker's code");
    assert!(answer.text().contains("invalid_grant"), "{}", answer.text());
    assert!(
        txn_cookies(&victim).is_empty(),
        "the code was sent: the transaction is over"
    );
    assert_eq!(world.provider.count(Endpoint::Token), 1);
}

/// RFC 9207: the provider advertises `iss` in authorization responses, so a callback without it
/// or with another one is refused, and the code never reaches the token endpoint.
#[test]
fn a_callback_without_the_right_iss_is_refused_before_the_code_is_used() {
    let world = World::new(&[]);
    for (why, iss) in [("no iss", None), ("another iss", Some("https://evil.example"))] {
        let mut browser = Browser::default();
        let callback = block_on(world.start_login(&mut browser, "", "alice"));
        let callback = rewrite(&callback, |pairs| {
            pairs.retain(|(k, _)| k != "iss");
            if let Some(iss) = iss {
                pairs.push(("iss".into(), iss.into()));
            }
        });
        let answer = block_on(world.callback(&mut browser, &callback));
        assert_refused(&world, &mut browser, &answer, why);
        assert!(answer.text().contains("expected issuer"), "{why}: {}", answer.text());
    }
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    let twice = rewrite(&callback, |pairs| pairs.push(("iss".into(), ISSUER.into())));
    let answer = block_on(world.callback(&mut browser, &twice));
    assert_refused(&world, &mut browser, &answer, "iss twice");
    assert!(answer.text().contains("expected issuer"), "{}", answer.text());
    assert_eq!(world.provider.count(Endpoint::Token), 0);
}

/// Found by the `callback` fuzz target: an `error` parameter sent twice was taken for none, so
/// the code beside it was exchanged and the user signed in. Any `error` refuses the response.
#[test]
fn an_error_sent_twice_still_refuses_the_callback() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    let twice = rewrite(&callback, |pairs| {
        pairs.push(("error".into(), "access_denied".into()));
        pairs.push(("error".into(), "access_denied".into()));
    });
    let answer = block_on(world.callback(&mut browser, &twice));
    assert_refused(&world, &mut browser, &answer, "error twice");
    assert_eq!(world.provider.count(Endpoint::Token), 0, "the code was exchanged");
}

/// The provider's `error` (the user said no) is shown, escaped, on a 400 page; no code, no token
/// request, no session. A response with neither `error` nor `code` is refused too.
#[test]
fn a_provider_error_or_a_missing_code_ends_on_a_400_page() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let url = authorization_url(&world, &mut browser, "/bff/login");
    let state = one(&url, "state");
    let callback = format!(
        "/bff/callback?error=access_denied&error_description={}&state={state}&iss={}",
        encoded("The user said <no>"),
        encoded(ISSUER)
    );
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_refused(&world, &mut browser, &answer, "provider error");
    let text = answer.text();
    assert!(text.contains("access_denied"), "{text}");
    assert!(text.contains("The user said &lt;no&gt;"), "escaped: {text}");
    assert!(txn_cookies(&browser).is_empty(), "the transaction is over");

    let url = authorization_url(&world, &mut browser, "/bff/login");
    let callback = format!("/bff/callback?state={}&iss={}", one(&url, "state"), encoded(ISSUER));
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_refused(&world, &mut browser, &answer, "no code");
    assert!(answer.text().contains("no authorization code"), "{}", answer.text());
    assert_eq!(world.provider.count(Endpoint::Token), 0);
}

fn without_id_token(body: &mut Map<String, Value>) {
    body.remove("id_token");
}

fn wrong_nonce(claims: &mut JWTClaims<Map<String, Value>>) {
    claims.nonce = Some("not-the-nonce-sent".into());
}

fn no_nonce(claims: &mut JWTClaims<Map<String, Value>>) {
    claims.nonce = None;
}

/// What the token endpoint answers can still fail the login: no ID token, an ID token with
/// another nonce or none, a body that is not JSON (400 page), a 5xx (503 page with
/// `Retry-After`). Each spent the code, so the transaction is deleted; none creates a session.
#[test]
fn bad_token_responses_fail_the_login() {
    type Setup = fn(&World);
    let cases: [(&str, Setup, StatusCode, &str); 5] = [
        (
            "no ID token",
            |w| w.provider.set_token_edit(Some(without_id_token)),
            StatusCode::BAD_REQUEST,
            "no ID token",
        ),
        (
            "wrong nonce",
            |w| w.provider.set_code_claims(Some(wrong_nonce)),
            StatusCode::BAD_REQUEST,
            "ID token",
        ),
        (
            "no nonce",
            |w| w.provider.set_code_claims(Some(no_nonce)),
            StatusCode::BAD_REQUEST,
            "ID token",
        ),
        (
            "garbage",
            |w| w.provider.fail(Endpoint::Token, Fault::Garbage),
            StatusCode::BAD_REQUEST,
            "could not be used",
        ),
        (
            "5xx",
            |w| w.provider.fail(Endpoint::Token, Fault::Status(502)),
            StatusCode::SERVICE_UNAVAILABLE,
            "try again",
        ),
    ];
    for (why, setup, status, says) in cases {
        let world = World::new(&[]);
        let mut browser = Browser::default();
        let callback = block_on(world.start_login(&mut browser, "", "alice"));
        setup(&world);
        let answer = block_on(world.callback(&mut browser, &callback));
        assert_eq!(answer.status, status, "{why}: {}", answer.text());
        assert!(is_page(&answer), "{why}");
        assert!(answer.text().contains(says), "{why}: {}", answer.text());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(answer.header("retry-after"), Some("5"), "{why}");
        }
        assert_eq!(world.provider.count(Endpoint::Token), 1, "{why}");
        // A 5xx most likely left the code unspent: the transaction stays for a retry.
        let kept = usize::from(status == StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(txn_cookies(&browser).len(), kept, "{why}");
        assert_no_session(&world, &mut browser, &answer, why);
    }
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    world.provider.set_code_claims(Some(wrong_nonce));
    let _ = block_on(world.callback(&mut browser, &callback));
    assert!(
        world
            .log
            .lines()
            .iter()
            .any(|l| l.contains("ID token refused") && l.contains("nonce")),
        "{:?}",
        world.log.lines()
    );
}

/// A callback visited twice: the second finds no transaction; with the transaction cookie
/// restored (a copy of the jar), the provider refuses the spent code. One session, not two.
#[test]
fn a_replayed_callback_is_refused() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    let mut copy = browser.clone();
    assert_eq!(
        block_on(world.callback(&mut browser, &callback)).status,
        StatusCode::FOUND
    );

    let mut again = browser.clone();
    let answer = block_on(world.callback(&mut again, &callback));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(answer.set_cookies().iter().all(|c| !c.starts_with(SESSION)));
    assert_eq!(
        world.provider.count(Endpoint::Token),
        1,
        "no transaction: the code is not sent"
    );

    let answer = block_on(world.callback(&mut copy, &callback));
    assert_refused(&world, &mut copy, &answer, "spent code");
    assert!(answer.text().contains("invalid_grant"), "{}", answer.text());
    assert_eq!(world.provider.count(Endpoint::Token), 2);
    assert_eq!(
        block_on(world.session_info(&mut browser)).status,
        StatusCode::OK,
        "the first login stands"
    );
}

// ── Several tabs ─────────────────────────────────────────────────────────────────────────────

/// Two tabs start logins and finish them in reverse order: both land where they asked; six
/// logins keep at most five transactions, the oldest dropped.
#[test]
fn logins_in_several_tabs_finish_in_any_order() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let first = block_on(world.start_login(&mut browser, "?return_to=/first", "alice"));
    let first_sid = world.provider.sid_of("alice").unwrap();
    let second = block_on(world.start_login(&mut browser, "?return_to=/second", "alice"));
    assert_eq!(txn_cookies(&browser).len(), 2);

    let answer = block_on(world.callback(&mut browser, &second));
    assert_eq!(answer.header("location"), Some("/second"), "{}", answer.text());
    assert_eq!(txn_cookies(&browser).len(), 1, "only its own transaction is deleted");
    let answer = block_on(world.callback(&mut browser, &first));
    assert_eq!(answer.header("location"), Some("/first"), "{}", answer.text());
    assert!(txn_cookies(&browser).is_empty());
    let info = block_on(world.session_info(&mut browser)).json();
    assert_eq!(
        info["sid"],
        first_sid.as_str(),
        "the login finished last is the session"
    );

    let world = World::new(&[]);
    let mut browser = Browser::default();
    let callbacks: Vec<String> = (0..6)
        .map(|i| {
            world.clock.advance(1);
            let callback = block_on(world.start_login(&mut browser, &format!("?return_to=/tab{i}"), "alice"));
            assert!(txn_cookies(&browser).len() <= 5, "login {i}");
            callback
        })
        .collect();
    assert_eq!(txn_cookies(&browser).len(), 5);
    for (i, callback) in callbacks.iter().enumerate().skip(1).rev() {
        let answer = block_on(world.callback(&mut browser, callback));
        assert_eq!(
            answer.header("location"),
            Some(format!("/tab{i}").as_str()),
            "{}",
            answer.text()
        );
    }
    let answer = block_on(world.callback(&mut browser, &callbacks[0]));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "the oldest was pruned");
    assert_eq!(block_on(world.session_info(&mut browser)).status, StatusCode::OK);
}

// ── Sessions that do not fit, UserInfo ──────────────────────────────────────────────────────

fn long_name(claims: &mut JWTClaims<Map<String, Value>>) {
    claims.custom.insert("name".into(), json!("N".repeat(1500)));
}

/// A session over `BFF_COOKIE_BUDGET` even without cached tokens ends on a 400 page naming KV
/// mode, with a log line for the operator; in KV mode the same login works.
#[test]
fn a_session_too_large_for_cookies_names_kv_mode() {
    let world = World::new(&[("BFF_COOKIE_BUDGET", "1200")]);
    world.provider.set_code_claims(Some(long_name));
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(is_page(&answer));
    assert!(answer.text().contains("BFF_SESSION_STORE=kv"), "{}", answer.text());
    assert_no_session(&world, &mut browser, &answer, "too large");
    let lines = world.log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("BFF_COOKIE_BUDGET=1200") && l.contains("BFF_SESSION_STORE=kv")),
        "{lines:?}"
    );

    let world = World::with_store(
        &[("BFF_COOKIE_BUDGET", "1200"), ("BFF_SESSION_STORE", "kv")],
        MemoryStore::consistent,
    );
    world.provider.set_code_claims(Some(long_name));
    let mut browser = Browser::default();
    block_on(world.login(&mut browser, "alice"));
    assert!(browser.cookie(SESSION).unwrap().len() < 200, "only a sealed id");
    let info = block_on(world.session_info(&mut browser)).json();
    assert_eq!(info["name"].as_str().map(str::len), Some(1500));
}

fn more_claims(body: &mut Map<String, Value>) {
    body.insert("locale".into(), json!("de-CH"));
    body.insert("email".into(), json!("unsigned@example.com"));
}

fn another_sub(body: &mut Map<String, Value>) {
    body.insert("sub".into(), json!("mallory"));
    body.insert("locale".into(), json!("de-CH"));
}

/// `BFF_USERINFO=true`: the UserInfo claims join the session's (the signed ID token's win a
/// conflict); a UserInfo answer for another `sub` fails the login.
#[test]
fn userinfo_claims_are_merged_and_another_sub_is_refused() {
    for enabled in [true, false] {
        let world = World::new(&[("BFF_USERINFO", if enabled { "true" } else { "false" })]);
        world.provider.set_userinfo_edit(Some(more_claims));
        let mut browser = Browser::default();
        block_on(world.login(&mut browser, "alice"));
        assert_eq!(world.provider.count(Endpoint::UserInfo), usize::from(enabled));
        let info = block_on(world.session_info(&mut browser)).json();
        assert_eq!(info["email"], "alice@example.com", "enabled={enabled}");
        let locale = if enabled { json!("de-CH") } else { Value::Null };
        assert_eq!(info["locale"], locale, "enabled={enabled}");
    }

    let world = World::new(&[("BFF_USERINFO", "true")]);
    world.provider.set_userinfo_edit(Some(another_sub));
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_refused(&world, &mut browser, &answer, "UserInfo for mallory");
    assert!(answer.text().contains("another user"), "{}", answer.text());
    assert!(txn_cookies(&browser).is_empty());
}

// ── The provider's metadata and keys failing ─────────────────────────────────────────────────

const OUTAGES: [Fault; 4] = [Fault::Refuse, Fault::Hang, Fault::Status(500), Fault::Huge];

/// Discovery failing: `login` answers a 503 page with `Retry-After` and seals nothing; once the
/// provider is back it works. A discovery document that is not JSON is a 400 page (as a garbage
/// token response is) with a log line for the operator.
#[test]
fn login_answers_503_while_discovery_fails() {
    for fault in OUTAGES {
        let world = World::new(&[]);
        let mut browser = Browser::default();
        world.provider.fail(Endpoint::Discovery, fault);
        let answer = block_on(world.navigate(&mut browser, "/bff/login"));
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {}",
            answer.text()
        );
        assert_eq!(answer.header("retry-after"), Some("5"), "{fault:?}");
        assert!(is_page(&answer), "{fault:?}");
        assert!(answer.set_cookies().is_empty(), "{fault:?}");
        world.provider.heal(Endpoint::Discovery);
        assert_eq!(
            block_on(world.navigate(&mut browser, "/bff/login")).status,
            StatusCode::FOUND
        );
    }
    let world = World::new(&[]);
    world.provider.fail(Endpoint::Discovery, Fault::Garbage);
    let mut browser = Browser::default();
    let answer = block_on(world.navigate(&mut browser, "/bff/login"));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(is_page(&answer));
    assert!(answer.text().contains("could not be used"), "{}", answer.text());
    assert!(answer.set_cookies().is_empty());
    assert!(
        world.log.lines().iter().any(|l| l.contains("issuer metadata refused")),
        "{:?}",
        world.log.lines()
    );
}

/// The JWKS failing when the callback checks the ID token: a 503 page with `Retry-After`, no
/// session, and the transaction gone (the code was spent).
#[test]
fn callback_answers_503_while_the_jwks_fails() {
    for fault in OUTAGES {
        let world = World::new(&[]);
        let mut browser = Browser::default();
        let callback = block_on(world.start_login(&mut browser, "", "alice"));
        world.provider.fail(Endpoint::Jwks, fault);
        let answer = block_on(world.callback(&mut browser, &callback));
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {}",
            answer.text()
        );
        assert_eq!(answer.header("retry-after"), Some("5"), "{fault:?}");
        assert!(txn_cookies(&browser).is_empty(), "{fault:?}");
        assert_no_session(&world, &mut browser, &answer, "jwks down");
    }
}

/// Discovery failing at the callback (a fresh instance, caches empty): nothing was sent, so the
/// transaction is kept and the same callback works once the provider is back.
#[test]
fn callback_keeps_the_transaction_while_discovery_fails() {
    let mut world = World::new(&[]);
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    world.redeploy(&[]);
    world.provider.fail(Endpoint::Discovery, Fault::Refuse);
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert_eq!(answer.header("retry-after"), Some("5"));
    assert_eq!(txn_cookies(&browser).len(), 1, "the transaction is kept");
    assert_eq!(world.provider.count(Endpoint::Token), 0);
    world.provider.heal(Endpoint::Discovery);
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    assert_eq!(block_on(world.session_info(&mut browser)).json()["sub"], "alice");
}

/// `BFF_SESSION_STORE=kv` with no store bound is a deployment error, not an outage: the callback
/// answers the 500 page (as the JSON endpoints answer 500), never "try again in a moment", and
/// logs what is missing.
#[test]
fn kv_mode_without_a_store_is_a_server_error() {
    let world = World::new(&[("BFF_SESSION_STORE", "kv")]);
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    let answer = block_on(world.callback(&mut browser, &callback));
    assert!(
        world.log.lines().iter().any(|l| l.contains("no store is bound")),
        "{:?}",
        world.log.lines()
    );
    assert!(browser.cookie(SESSION).is_none());
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", answer.text());
    assert_eq!(answer.header("retry-after"), None);
    // The JSON endpoints already say so.
    let info = block_on(world.session_info(&mut browser));
    assert_eq!(info.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", info.text());
}
