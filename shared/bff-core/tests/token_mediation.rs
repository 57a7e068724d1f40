//! `bff-token` in process: the cache and when it refreshes, down-scoping, incremental consent,
//! the provider's errors, and the request rules (CSRF, methods, parameters). No network, no
//! sleep: a scripted provider, a fixed clock, a browser that keeps cookies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test
#![allow(clippy::disallowed_methods)] // tests read the URLs the backend built with the plain parser

use bff_core::testing::{Answer, Browser, Endpoint, Fault, MemoryStore, Site, World, request};
use futures::executor::block_on;
use http::{Method, StatusCode};
use serde_json::json;
use url::Url;

const SESSION: &str = "__Host-bff-session";
const RESOURCE_A: &str = "https://a.example/";
const RESOURCE_B: &str = "https://b.example/";
const RESOURCE_C: &str = "https://c.example/";
const SCOPES: &str = "openid offline_access api:read api:write";

fn api_world() -> World {
    World::new(&[("BFF_SCOPES", SCOPES)])
}

/// A finished login as alice with `query` (`?resource=…`).
fn logged_in(world: &World, query: &str) -> Browser {
    let mut browser = Browser::default();
    block_on(async {
        let callback = world.start_login(&mut browser, query, "alice").await;
        let answer = world.callback(&mut browser, &callback).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    });
    browser
}

fn with_resources(world: &World) -> Browser {
    logged_in(world, &format!("?resource={RESOURCE_A}&resource={RESOURCE_B}"))
}

fn token(world: &World, browser: &mut Browser, query: &str) -> Answer {
    block_on(world.token(browser, query))
}

fn ok(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.access_token()
}

/// The session cookies an answer sets (not the chunk names it deletes).
fn session_cookies_set(answer: &Answer) -> usize {
    answer
        .set_cookies()
        .iter()
        .filter(|c| c.starts_with(SESSION) && !c.contains("Max-Age=0"))
        .count()
}

// ── The cache ────────────────────────────────────────────────────────────────────────────────

/// Right after login the code's access token answers from the cookie: no provider call, no
/// `Set-Cookie`, the draft's headers and body.
#[test]
fn a_cached_token_is_answered_without_the_provider() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    let calls = world.provider.count(Endpoint::Token);
    let answer = token(&world, &mut browser, "");
    let access = ok(&answer);
    assert!(!access.is_empty());
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["scope"], SCOPES);
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    assert!(answer.set_cookies().is_empty());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    world.clock.advance(10);
    let again = token(&world, &mut browser, "");
    assert_eq!(ok(&again), access);
    assert_eq!(again.json()["expires_in"], 50);
    assert!(again.set_cookies().is_empty());
    assert_eq!(world.provider.count(Endpoint::Token), calls, "no provider call");
}

/// CONTRACT §2.2: a cached token is refreshed first when less than min(60, max(5, lifetime / 4))
/// seconds remain; exactly the margin left still answers from the cache.
#[test]
fn proactive_refresh_happens_exactly_at_the_margin() {
    // (lifetime, the last second the cached token is still handed out)
    for (lifetime, last_cached) in [(60, 45), (10, 5), (20, 15), (100, 75), (240, 180), (400, 340)] {
        let world = api_world();
        world.provider.set_expires_in(Some(json!(lifetime)));
        let mut browser = logged_in(&world, "");
        let first = ok(&token(&world, &mut browser, ""));
        world.clock.advance(last_cached - 1);
        assert_eq!(
            ok(&token(&world, &mut browser, "")),
            first,
            "{lifetime}: at {}",
            last_cached - 1
        );
        world.clock.advance(1);
        let answer = token(&world, &mut browser, "");
        assert_eq!(ok(&answer), first, "{lifetime}: at {last_cached}");
        assert_eq!(answer.json()["expires_in"], lifetime - last_cached);
        assert_eq!(world.provider.refreshes(), 0, "{lifetime}");
        world.clock.advance(1);
        let answer = token(&world, &mut browser, "");
        assert_ne!(ok(&answer), first, "{lifetime}: at {}", last_cached + 1);
        assert_eq!(answer.json()["expires_in"], lifetime);
        assert_eq!(world.provider.refreshes(), 1, "{lifetime}");
        assert_eq!(session_cookies_set(&answer), 1, "the rotated refresh token is stored");
    }
    // Under 5 s of lifetime the margin is 5 s: such a token is never handed out from the cache.
    let world = api_world();
    world.provider.set_expires_in(Some(json!(4)));
    let mut browser = logged_in(&world, "");
    ok(&token(&world, &mut browser, ""));
    assert_eq!(world.provider.refreshes(), 1);
}

/// A `rejected_token` that is not the current token (an old one, or anything else) gets the
/// current token back, without a refresh and without writing the session.
#[test]
fn rejecting_a_token_that_is_not_current_returns_the_current_one() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    let old = ok(&token(&world, &mut browser, ""));
    let answer = token(&world, &mut browser, "rejected_token=at-unknown");
    assert_eq!(ok(&answer), old);
    assert!(answer.set_cookies().is_empty());
    world.clock.advance(50);
    let current = ok(&token(&world, &mut browser, ""));
    assert_ne!(current, old);
    let refreshes = world.provider.refreshes();
    let answer = token(&world, &mut browser, &format!("rejected_token={old}"));
    assert_eq!(ok(&answer), current);
    assert!(answer.set_cookies().is_empty());
    assert_eq!(world.provider.refreshes(), refreshes);
}

// ── Scopes and resources ─────────────────────────────────────────────────────────────────────

/// A narrower scope is obtained by a refresh naming it, cached on its own; the wide token is
/// never handed out for it, and scope sets compare as sets.
#[test]
fn a_narrower_scope_is_a_separate_down_scoped_token() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    let wide = ok(&token(&world, &mut browser, ""));
    let answer = token(&world, &mut browser, "scope=api:read");
    let narrow = ok(&answer);
    assert_ne!(narrow, wide);
    // The provider answers with the scope it was asked for: the refresh named it.
    assert_eq!(answer.json()["scope"], "api:read");
    assert_eq!(world.provider.refreshes(), 1);

    assert_eq!(
        ok(&token(&world, &mut browser, "")),
        wide,
        "the wide one is still cached"
    );
    assert_eq!(ok(&token(&world, &mut browser, "scope=api:read")), narrow);
    let reordered = "scope=api:write%20openid%20api:read%20offline_access%20api:read";
    assert_eq!(ok(&token(&world, &mut browser, reordered)), wide, "the same set");
    assert_eq!(world.provider.refreshes(), 1, "all from the cache");

    let other = token(&world, &mut browser, "scope=api:write");
    assert_eq!(other.json()["scope"], "api:write");
    assert!(![wide.as_str(), narrow.as_str()].contains(&ok(&other).as_str()));
    assert_eq!(world.provider.refreshes(), 2);
}

/// A scope or resource the login never asked for: `backend_not_ready` with a `login_url` for
/// what is missing, no provider call. Following it asks for the union of the old grant and the
/// new, and afterwards both the new and the old work.
#[test]
fn an_ungranted_scope_or_resource_leads_to_an_incremental_login() {
    let world = api_world();
    let mut browser = with_resources(&world);
    let calls = world.provider.count(Endpoint::Token);
    for (query, login_url) in [
        ("scope=api:admin", "/bff/login?scope=api%3Aadmin"),
        (
            &format!("resource={RESOURCE_C}") as &str,
            "/bff/login?resource=https%3A%2F%2Fc.example%2F",
        ),
        (
            &format!("resource={RESOURCE_A}&scope=api:read%20api:admin"),
            "/bff/login?scope=api%3Aadmin",
        ),
    ] {
        let answer = token(&world, &mut browser, query);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.error(), "backend_not_ready", "{query}");
        assert_eq!(answer.json()["login_url"], login_url, "{query}");
        assert!(answer.set_cookies().is_empty());
    }
    assert_eq!(world.provider.count(Endpoint::Token), calls);

    let answer = token(&world, &mut browser, &format!("resource={RESOURCE_C}&scope=api:admin"));
    let login_url = answer.json()["login_url"].as_str().unwrap().to_owned();
    let answer = block_on(world.navigate(&mut browser, &login_url));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    let url = Url::parse(answer.header("location").unwrap()).unwrap();
    let param = |name: &str| -> Vec<String> {
        url.query_pairs()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    };
    assert_eq!(param("scope"), [format!("{SCOPES} api:admin")]);
    assert_eq!(param("resource"), [RESOURCE_A, RESOURCE_B, RESOURCE_C]);

    let callback = world.provider.authorize(url.as_str(), "alice");
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    let answer = token(&world, &mut browser, &format!("resource={RESOURCE_C}&scope=api:admin"));
    ok(&answer);
    assert_eq!(answer.json()["scope"], "api:admin");
    ok(&token(&world, &mut browser, &format!("resource={RESOURCE_A}")));
    ok(&token(&world, &mut browser, "scope=api:write"));
}

// ── The provider's errors ────────────────────────────────────────────────────────────────────

/// An OAuth error of the refresh other than `invalid_grant` (consent for a scope withdrawn:
/// `invalid_scope`) is passed through, and the session stays as it was.
#[test]
fn a_provider_oauth_error_is_passed_through_and_the_session_stays() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    let cookie = browser.cookie(SESSION).unwrap().to_owned();
    let wide = ok(&token(&world, &mut browser, ""));
    world.provider.withdraw_scope("alice", "api:write");
    let answer = token(&world, &mut browser, "scope=api:write");
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_scope"),
        "{}",
        answer.text()
    );
    assert!(answer.set_cookies().is_empty());
    assert_eq!(browser.cookie(SESSION), Some(cookie.as_str()));
    assert_eq!(ok(&token(&world, &mut browser, "")), wide);
    let answer = token(&world, &mut browser, "scope=api:read");
    assert_eq!(answer.json()["scope"], "api:read", "{}", answer.text());
    assert_eq!(world.provider.reuse_detected(), 0);
}

fn assert_ended_by_invalid_grant(answer: &Answer, browser: &Browser, why: &str) {
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "{why}: {}",
        answer.text()
    );
    assert!(
        answer
            .set_cookies()
            .iter()
            .any(|c| c.starts_with(&format!("{SESSION}=")) && c.contains("Max-Age=0")),
        "{why}: {:?}",
        answer.set_cookies()
    );
    assert!(browser.cookie(SESSION).is_none(), "{why}");
}

/// `invalid_grant` on a refresh ends the session: after a logout elsewhere revoked the refresh
/// token, and after a copy presented a refresh token already used (the provider then revokes the
/// whole grant, so the other copy's session ends at its next refresh too).
#[test]
fn invalid_grant_ends_the_session() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    let mut copy = browser.clone();
    assert_eq!(block_on(world.logout(&mut browser)).status, StatusCode::OK);
    world.clock.advance(3600);
    let answer = token(&world, &mut copy, "");
    assert_ended_by_invalid_grant(&answer, &copy, "revoked by logout");
    assert_eq!(block_on(world.session_info(&mut copy)).error(), "invalid_session");

    let world = api_world();
    let mut browser = logged_in(&world, "");
    let mut stolen = browser.clone();
    world.clock.advance(3600);
    ok(&token(&world, &mut browser, ""));
    world.clock.advance(31);
    let answer = token(&world, &mut stolen, "");
    assert_ended_by_invalid_grant(&answer, &stolen, "a used refresh token");
    assert_eq!(world.provider.reuse_detected(), 1);
    world.clock.advance(3600);
    let answer = token(&world, &mut browser, "");
    assert_ended_by_invalid_grant(&answer, &browser, "the grant is revoked");
}

/// In KV mode `invalid_grant` also deletes the record: a copy of the cookie finds nothing.
#[test]
fn invalid_grant_in_kv_mode_deletes_the_record() {
    let world = World::with_store(
        &[("BFF_SCOPES", SCOPES), ("BFF_SESSION_STORE", "kv")],
        MemoryStore::consistent,
    );
    let mut browser = logged_in(&world, "");
    let mut copy = browser.clone();
    let store = world.store.as_ref().unwrap();
    assert_eq!(store.keys("session:").len(), 1);
    world.provider.revoke_grants("alice");
    world.clock.advance(3600);
    let answer = token(&world, &mut browser, "");
    assert_ended_by_invalid_grant(&answer, &browser, "kv");
    assert!(store.keys("session:").is_empty(), "the record is gone");
    assert_eq!(block_on(world.session_info(&mut copy)).error(), "invalid_session");
}

/// Discovery failing when a refresh needs it (metadata cache expired): 503 with `Retry-After`
/// whatever the fault, the session unchanged, no token request; then it works again.
#[test]
fn discovery_faults_on_refresh_answer_503() {
    for fault in Fault::ALL {
        let world = api_world();
        let mut browser = logged_in(&world, "");
        let cookie = browser.cookie(SESSION).unwrap().to_owned();
        world.clock.advance(3601);
        world.provider.fail(Endpoint::Discovery, fault);
        let answer = token(&world, &mut browser, "");
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
            "{fault:?}: {}",
            answer.text()
        );
        assert_eq!(answer.header("retry-after"), Some("5"), "{fault:?}");
        assert!(answer.set_cookies().is_empty(), "{fault:?}");
        assert_eq!(browser.cookie(SESSION), Some(cookie.as_str()), "{fault:?}");
        assert_eq!(world.provider.count(Endpoint::Token), 1, "{fault:?}: only the code");
        world.provider.heal(Endpoint::Discovery);
        ok(&token(&world, &mut browser, ""));
    }
}

// ── Request rules ────────────────────────────────────────────────────────────────────────────

/// Without `X-CSRF: 1`, from a foreign `Origin` or a cross-site `Sec-Fetch-Site`, the JSON
/// endpoints answer 400 `invalid_request` and nothing happens: no refresh, no logout.
#[test]
fn csrf_rules_refuse_and_change_nothing() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    world.clock.advance(3600);
    let token_path = "/.well-known/bff-token";
    type Headers = &'static [(&'static str, &'static str)];
    let cases: [(Method, &str, Headers); 8] = [
        (Method::GET, token_path, &[("sec-fetch-site", "same-origin")]),
        (Method::GET, token_path, &[("x-csrf", "0")]),
        (
            Method::GET,
            token_path,
            &[("x-csrf", "1"), ("origin", "https://evil.example")],
        ),
        (Method::GET, token_path, &[("x-csrf", "1"), ("origin", "null")]),
        (
            Method::GET,
            token_path,
            &[("x-csrf", "1"), ("sec-fetch-site", "cross-site")],
        ),
        (
            Method::GET,
            token_path,
            &[("x-csrf", "1"), ("sec-fetch-site", "same-site")],
        ),
        (Method::GET, "/.well-known/bff-sessioninfo", &[]),
        (Method::POST, "/bff/logout", &[("origin", "https://app.example")]),
    ];
    for (method, path, headers) in cases {
        let answer = block_on(world.send(
            &mut browser,
            request(method.clone(), path, headers, Vec::new()),
            Site::Same,
        ));
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{method} {path} {headers:?}"
        );
        assert!(answer.set_cookies().is_empty(), "{method} {path} {headers:?}");
    }
    assert_eq!(world.provider.count(Endpoint::Token), 1, "no refresh");
    assert_eq!(world.provider.count(Endpoint::Revocation), 0, "no logout");
    let headers = [
        ("x-csrf", "1"),
        ("origin", "https://app.example"),
        ("sec-fetch-site", "same-origin"),
    ];
    let answer = block_on(world.send(
        &mut browser,
        request(Method::GET, token_path, &headers, Vec::new()),
        Site::Same,
    ));
    ok(&answer);
    assert_eq!(world.provider.refreshes(), 1, "the same request, allowed, refreshes");
}

/// Methods and paths the backend does not serve: 405 with `Allow` (a CORS preflight included,
/// answered without any CORS header), 404 elsewhere.
#[test]
fn other_methods_and_paths_are_refused() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    let preflight = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "GET"),
    ];
    for (method, path, allow) in [
        (Method::OPTIONS, "/.well-known/bff-token", "GET, POST"),
        (Method::DELETE, "/.well-known/bff-token", "GET, POST"),
        (Method::POST, "/.well-known/bff-sessioninfo", "GET"),
        (Method::GET, "/bff/logout", "POST"),
        (Method::POST, "/bff/login", "GET"),
    ] {
        let answer = block_on(world.send(
            &mut browser,
            request(method.clone(), path, &preflight, Vec::new()),
            Site::Same,
        ));
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(answer.error(), "method_not_allowed");
        assert!(
            answer
                .headers
                .keys()
                .all(|h| !h.as_str().starts_with("access-control-")),
            "{method} {path}"
        );
    }
    for path in ["/", "/.well-known/bff-nothing", "/bff/login/extra", "/bff"] {
        let answer = block_on(world.api(&mut browser, Method::GET, path, ""));
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    assert_eq!(world.provider.count(Endpoint::Token), 1);
}

/// `resource` or `scope` given twice, or a `resource` that is no absolute URI: 400
/// `invalid_request`, no provider call.
#[test]
fn malformed_parameters_are_refused() {
    let world = api_world();
    let mut browser = with_resources(&world);
    world.clock.advance(3600);
    for query in [
        format!("resource={RESOURCE_A}&resource={RESOURCE_A}"),
        format!("resource={RESOURCE_A}&resource={RESOURCE_B}"),
        "scope=api:read&scope=api:read".to_owned(),
        "resource=not-a-uri".to_owned(),
        "resource=https://a.example/%23frag".to_owned(),
    ] {
        let answer = token(&world, &mut browser, &query);
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{query}"
        );
        let body = format!("{query}&x=1");
        let answer = block_on(world.api(&mut browser, Method::POST, "/.well-known/bff-token", &body));
        assert_eq!(answer.error(), "invalid_request", "POST {query}");
    }
    assert_eq!(world.provider.count(Endpoint::Token), 1);
}

/// A POST with a form body works as a GET with the same query: the same cached token, and the
/// same refresh when one is needed.
#[test]
fn a_post_form_body_works_like_a_get_query() {
    let world = api_world();
    let mut browser = with_resources(&world);
    let path = "/.well-known/bff-token";
    let query = format!("resource={RESOURCE_B}&scope=api:read");
    let got = ok(&token(&world, &mut browser, &query));
    let posted = block_on(world.api(&mut browser, Method::POST, path, &query));
    assert_eq!(ok(&posted), got);
    assert_eq!(world.provider.refreshes(), 1);

    let query = format!("resource={RESOURCE_A}&scope=api:write");
    let answer = block_on(world.api(&mut browser, Method::POST, path, &query));
    let refreshed = ok(&answer);
    assert_eq!(answer.json()["scope"], "api:write");
    assert_eq!(world.provider.refreshes(), 2);
    assert_eq!(ok(&token(&world, &mut browser, &query)), refreshed);
    assert_eq!(world.provider.refreshes(), 2, "the POST's token is cached for the GET");

    let answer = block_on(world.api(&mut browser, Method::POST, path, "scope=api:admin"));
    assert_eq!(answer.error(), "backend_not_ready");
}

/// Without `expires_in` (and an access token that is no JWT) a token is cached as if it lived
/// 60 s, under the same margin, and the answer carries no `expires_in`.
#[test]
fn a_token_of_unknown_lifetime_is_cached_for_at_most_60_seconds() {
    let world = api_world();
    world.provider.set_expires_in(None);
    let mut browser = logged_in(&world, "");
    let answer = token(&world, &mut browser, "");
    let first = ok(&answer);
    assert!(answer.json().get("expires_in").is_none(), "{}", answer.text());
    world.clock.advance(45);
    assert_eq!(ok(&token(&world, &mut browser, "")), first);
    world.clock.advance(1);
    let answer = token(&world, &mut browser, "");
    assert_ne!(ok(&answer), first);
    assert!(answer.json().get("expires_in").is_none());
    assert_eq!(world.provider.refreshes(), 1);
}

/// Without a refresh token (no `offline_access`), an expired token or a narrower scope needs a
/// new login: `backend_not_ready` pointing at `B/bff/login`; the session itself stays.
#[test]
fn without_a_refresh_token_the_backend_is_not_ready() {
    let world = World::new(&[("BFF_SCOPES", "openid api:read api:write"), ("BFF_BASE_PATH", "/app")]);
    let mut browser = Browser::default();
    let answer = block_on(world.navigate(&mut browser, "/app/bff/login"));
    let callback = world.provider.authorize(answer.header("location").unwrap(), "alice");
    assert_eq!(
        block_on(world.callback(&mut browser, &callback)).status,
        StatusCode::FOUND
    );
    let path = "/app/.well-known/bff-token";
    let get =
        |browser: &mut Browser, query: &str| block_on(world.api(browser, Method::GET, &format!("{path}?{query}"), ""));
    ok(&get(&mut browser, ""));
    world.clock.advance(3600);
    for query in ["", "scope=api:read"] {
        let answer = get(&mut browser, query);
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::BAD_REQUEST, "backend_not_ready"),
            "{query}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["login_url"], "/app/bff/login", "{query}");
        assert!(answer.set_cookies().is_empty());
    }
    assert_eq!(world.provider.count(Endpoint::Token), 1, "only the code");
    let info = block_on(world.api(&mut browser, Method::GET, "/app/.well-known/bff-sessioninfo", ""));
    assert_eq!(info.status, StatusCode::OK);
}

fn bloated(claims: &mut jwt_simple::prelude::JWTClaims<serde_json::Map<String, serde_json::Value>>) {
    claims.custom.insert("name".into(), json!("N".repeat(4000)));
}

/// A refresh whose new ID token no longer fits the cookie budget: the provider has already
/// consumed the old refresh token, so the new one is stored whatever happens (a rotating provider
/// revokes the whole grant when a used token comes back). The session keeps the login's claims and
/// a log line names the budget and KV mode; the next refresh works.
#[test]
fn a_refresh_that_no_longer_fits_the_cookie_never_presents_the_used_token_again() {
    let world = api_world();
    let mut browser = logged_in(&world, "");
    world.provider.set_refresh_claims(Some(bloated));
    world.clock.advance(3600);
    let claims_before = block_on(world.session_info(&mut browser)).json();
    let answer = token(&world, &mut browser, "");
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(block_on(world.session_info(&mut browser)).json(), claims_before);
    assert!(
        world.log.lines().iter().any(|l| l.contains("BFF_COOKIE_BUDGET")),
        "{:?}",
        world.log.lines()
    );
    world.provider.set_refresh_claims(None);
    world.clock.advance(3600);
    let answer = token(&world, &mut browser, "");
    assert_eq!(
        world.provider.reuse_detected(),
        0,
        "the used refresh token came back: {}",
        answer.text()
    );
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}
