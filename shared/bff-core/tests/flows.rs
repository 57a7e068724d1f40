//! Every flow through `Backend::handle`, in process: a scripted provider, an in-memory store and
//! a fixed clock; no network, no sleep. Each test reads as a story.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test

use bff_core::testing::{
    Browser, ClaimsEdit, Endpoint, Fault, MemoryStore, RefreshPolicy, START, Site, World, request,
};
use futures::executor::block_on;
use futures::future::join_all;
use http::{Method, StatusCode};

const SESSION: &str = "__Host-bff-session";
const RESOURCE_A: &str = "https://a.example/";
const RESOURCE_B: &str = "https://b.example/";

fn logged_in(world: &World, user: &str) -> Browser {
    block_on(world.signed_in(user))
}

fn sub(answer: &bff_core::testing::Answer) -> String {
    answer.json()["sub"].as_str().unwrap_or_default().to_owned()
}

fn txn_cookies(browser: &Browser) -> Vec<String> {
    browser.txn_cookies()
}

// ── Cookies ──────────────────────────────────────────────────────────────────────────────────

/// Review finding 1 (high): `pref=x,__Host-bff-session=<another session>` planted from a sibling
/// subdomain must not become the session (session fixation).
#[test]
fn a_comma_planted_session_cookie_is_never_the_session() {
    let world = World::new(&[]);
    let mut alice = logged_in(&world, "alice");
    let bob = logged_in(&world, "bob");
    let bobs = bob.cookie(SESSION).unwrap().to_owned();
    block_on(async {
        alice.planted = Some(format!("pref=x,{SESSION}={bobs}"));
        assert_eq!(sub(&world.session_info(&mut alice).await), "alice");

        let mut stranger = Browser::default();
        stranger.planted = Some(format!("pref=x,{SESSION}={bobs}"));
        assert_eq!(world.session_info(&mut stranger).await.error(), "invalid_session");

        // The same name twice (one planted with a longer path, listed first): no session at all.
        alice.planted = Some(format!("{SESSION}={bobs}"));
        let answer = world.session_info(&mut alice).await;
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_session")
        );
    });
}

/// One non-UTF-8 or odd pair of another app must not log every user out.
#[test]
fn odd_and_non_utf8_app_cookies_are_skipped() {
    let world = World::new(&[]);
    let mut alice = logged_in(&world, "alice");
    let cookies = format!(
        "app=caf\u{e9}; flag; =novalue; {SESSION}={}",
        alice.cookie(SESSION).unwrap()
    );
    let mut raw = cookies.into_bytes();
    raw.extend_from_slice(b"; latin=\xe9t\xe9");
    let mut request = request(
        Method::GET,
        "/.well-known/bff-sessioninfo",
        &[("x-csrf", "1")],
        Vec::new(),
    );
    request
        .headers_mut()
        .insert(http::header::COOKIE, http::HeaderValue::from_bytes(&raw).unwrap());
    let answer = block_on(world.send(&mut Browser::default(), request, Site::Same));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(sub(&answer), "alice");
    let _ = block_on(world.session_info(&mut alice));
}

/// Login CSRF: an attacker's own transaction cookie, planted with the comma trick, does not let
/// the attacker's callback log the victim in as the attacker; sent twice, it is no transaction.
#[test]
fn a_planted_transaction_cookie_is_no_transaction() {
    let world = World::new(&[]);
    let mut attacker = Browser::default();
    let callback = block_on(world.start_login(&mut attacker, "", "mallory"));
    let name = txn_cookies(&attacker).remove(0);
    let value = attacker.cookie(&name).unwrap().to_owned();

    let mut victim = Browser::default();
    victim.planted = Some(format!("pref=x,{name}={value}"));
    let answer = block_on(world.callback(&mut victim, &callback));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(victim.cookie(SESSION).is_none());

    attacker.planted = Some(format!("{name}={value}"));
    let answer = block_on(world.callback(&mut attacker, &callback));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "the same name twice");
    assert!(attacker.cookie(SESSION).is_none());
}

// ── Login and callback ───────────────────────────────────────────────────────────────────────

/// Review finding 2: what `login` seals into a cross-site-plantable cookie is bounded.
#[test]
fn hostile_login_parameters_are_refused() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let resources: String = (0..11).map(|i| format!("&resource=https://r{i}.example/")).collect();
    let long_resource = format!("?resource=https://r.example/{}", "x".repeat(600));
    let long_scope = format!("?scope={}", "s".repeat(1100));
    for query in [
        format!("?x=1{resources}"),
        long_resource,
        long_scope,
        "?prompt=evil".into(),
        "?prompt=login%20evil".into(),
    ] {
        let answer = block_on(world.navigate(&mut browser, &format!("/bff/login{query}")));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer.header("content-type").unwrap().starts_with("text/html"));
        assert!(answer.set_cookies().is_empty(), "{query}: nothing sealed");
    }
    let answer = block_on(world.navigate(&mut browser, "/bff/login?prompt=login%20consent"));
    assert_eq!(answer.status, StatusCode::FOUND);
    assert!(answer.header("location").unwrap().contains("prompt=login+consent"));
}

/// Many logins, each as large as allowed: all transaction cookies stay within 2,500 bytes and
/// five cookies, the oldest pruned first; a single transaction over the budget is refused.
#[test]
fn transaction_cookies_stay_within_their_budget() {
    let world = World::new(&[]);
    let mut browser = logged_in(&world, "alice");
    let resources: String = (0..3)
        .map(|i| format!("&resource=https://r{i}.example/{}", "x".repeat(150)))
        .collect();
    let return_to = format!("/{}", "p".repeat(300));
    let mut names = Vec::new();
    for i in 0..8 {
        world.clock.advance(1);
        let answer = block_on(world.navigate(&mut browser, &format!("/bff/login?return_to={return_to}{i}{resources}")));
        assert_eq!(answer.status, StatusCode::FOUND);
        let txns = txn_cookies(&browser);
        let bytes: usize = txns
            .iter()
            .map(|n| n.len() + 1 + browser.cookie(n).unwrap().len())
            .sum();
        assert!(
            bytes <= 2500 && txns.len() <= 5,
            "login {i}: {} cookies, {bytes} bytes",
            txns.len()
        );
        names.push(txns.iter().find(|n| !names.contains(*n)).cloned().unwrap());
    }
    let kept = txn_cookies(&browser);
    assert!(kept.contains(names.last().unwrap()), "the newest is kept");
    assert!(!kept.contains(&names[0]), "the oldest went first");
    assert_eq!(block_on(world.session_info(&mut browser)).status, StatusCode::OK);

    let many: String = (0..9)
        .map(|i| format!("&resource=https://q{i}.example/{}", "x".repeat(150)))
        .collect();
    let huge = format!("/bff/login?return_to=/{}{many}", "p".repeat(1000));
    assert_eq!(
        block_on(world.navigate(&mut browser, &huge)).status,
        StatusCode::BAD_REQUEST
    );
}

/// Review finding 16: once the code went to the provider, a failure ends the transaction (a
/// retry could only present a consumed code); an outage before that keeps it.
#[test]
fn callback_keeps_the_transaction_only_while_the_code_is_unused() {
    let world = World::new(&[("BFF_USERINFO", "true")]);
    let mut browser = Browser::default();
    let callback = block_on(world.start_login(&mut browser, "", "alice"));
    world.provider.fail(Endpoint::UserInfo, Fault::Status(502));
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(txn_cookies(&browser).is_empty(), "the transaction is deleted");
    assert!(answer.text().contains("/bff/login"), "the page links to a fresh login");
    world.provider.heal(Endpoint::UserInfo);
    assert_eq!(
        block_on(world.callback(&mut browser, &callback)).status,
        StatusCode::BAD_REQUEST
    );

    // No answer from the token endpoint (refused, timed out) or a 5xx: the code most likely was
    // not spent, so the transaction stays and the same callback works once the provider is back.
    for fault in [Fault::Refuse, Fault::Hang, Fault::Status(502)] {
        let world = World::new(&[]);
        let mut browser = Browser::default();
        let callback = block_on(world.start_login(&mut browser, "", "alice"));
        world.provider.fail(Endpoint::Token, fault);
        let answer = block_on(world.callback(&mut browser, &callback));
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        assert_eq!(txn_cookies(&browser).len(), 1, "{fault:?}: kept for a retry");
        world.provider.heal(Endpoint::Token);
        assert_eq!(
            block_on(world.callback(&mut browser, &callback)).status,
            StatusCode::FOUND,
            "{fault:?}"
        );
    }
}

// ── bff-token ────────────────────────────────────────────────────────────────────────────────

fn api_world(policy: RefreshPolicy) -> World {
    let world = World::new(&[("BFF_SCOPES", "openid offline_access api:read api:write")]);
    world.provider.set_refresh_policy(policy);
    world
}

fn login_with_resources(world: &World) -> Browser {
    let mut browser = Browser::default();
    block_on(async {
        let query = format!("?resource={RESOURCE_A}&resource={RESOURCE_B}");
        let callback = world.start_login(&mut browser, &query, "alice").await;
        assert_eq!(world.callback(&mut browser, &callback).await.status, StatusCode::FOUND);
    });
    browser
}

/// Review finding 3: with a provider that does not rotate refresh tokens, a second refresh for
/// another (resource, scope), and a `rejected_token` refresh, within 30 s are real refreshes.
#[test]
fn a_provider_that_does_not_rotate_gets_fresh_tokens() {
    for policy in [RefreshPolicy::Omit, RefreshPolicy::Echo] {
        let world = api_world(policy);
        let mut browser = login_with_resources(&world);
        block_on(async {
            let a = world.token(&mut browser, &format!("resource={RESOURCE_A}")).await;
            let b = world.token(&mut browser, &format!("resource={RESOURCE_B}")).await;
            let narrow = world
                .token(&mut browser, &format!("resource={RESOURCE_B}&scope=api:read"))
                .await;
            for answer in [&a, &b, &narrow] {
                assert_eq!(answer.status, StatusCode::OK, "{policy:?}: {}", answer.text());
            }
            assert_ne!(b.access_token(), narrow.access_token());
            let before = world.provider.refreshes();
            let rejected = b.access_token();
            let again = world
                .token(
                    &mut browser,
                    &format!("resource={RESOURCE_B}&rejected_token={rejected}"),
                )
                .await;
            assert_eq!(again.status, StatusCode::OK, "{}", again.text());
            assert_ne!(
                again.access_token(),
                rejected,
                "{policy:?}: a real refresh, not the rejected token"
            );
            assert_eq!(world.provider.refreshes(), before + 1);
        });
    }
}

/// Single flight: N concurrent requests that need the same refresh share one, with a rotating
/// and with a non-rotating provider; every answer carries the same new token.
#[test]
fn concurrent_requests_share_one_refresh() {
    for policy in [RefreshPolicy::Rotate, RefreshPolicy::Omit] {
        let world = api_world(policy);
        let browser = login_with_resources(&world);
        world.clock.advance(3600);
        let answers = block_on(join_all((0..10).map(|_| {
            let mut tab = browser.clone();
            let world = &world;
            async move { world.token(&mut tab, &format!("resource={RESOURCE_A}")).await }
        })));
        assert!(answers.iter().all(|a| a.status == StatusCode::OK), "{policy:?}");
        assert_eq!(world.provider.refreshes(), 1, "{policy:?}");
        let token = answers[0].access_token();
        assert!(answers.iter().all(|a| a.access_token() == token));
        assert_eq!(world.provider.reuse_detected(), 0);
    }
}

/// A rotating provider: a request that still carries the used refresh token within 30 s is
/// answered from the rotation, never by presenting the used token.
#[test]
fn a_stale_cookie_is_answered_from_the_rotation() {
    let world = api_world(RefreshPolicy::Rotate);
    let browser = login_with_resources(&world);
    world.clock.advance(3600);
    let mut first = browser.clone();
    let mut stale = browser;
    let fresh = block_on(world.token(&mut first, &format!("resource={RESOURCE_A}")));
    let late = block_on(world.token(&mut stale, &format!("resource={RESOURCE_A}")));
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.access_token(), fresh.access_token());
    assert_eq!((world.provider.refreshes(), world.provider.reuse_detected()), (1, 0));
    assert_eq!(first.cookie(SESSION).is_some(), stale.cookie(SESSION).is_some());
}

/// Review finding 10: forced refreshes are limited per session, not per cache entry, so cycling
/// keys buys no extra refreshes.
#[test]
fn forced_refreshes_are_one_per_30_seconds_per_session() {
    let world = api_world(RefreshPolicy::Rotate);
    let mut browser = login_with_resources(&world);
    block_on(async {
        let a = world
            .token(&mut browser, &format!("resource={RESOURCE_A}"))
            .await
            .access_token();
        let b = world
            .token(&mut browser, &format!("resource={RESOURCE_B}"))
            .await
            .access_token();
        let before = world.provider.refreshes();
        let forced = world
            .token(&mut browser, &format!("resource={RESOURCE_A}&rejected_token={a}"))
            .await;
        assert_ne!(forced.access_token(), a);
        assert_eq!(world.provider.refreshes(), before + 1);
        let other = world
            .token(&mut browser, &format!("resource={RESOURCE_B}&rejected_token={b}"))
            .await;
        assert_eq!(
            other.access_token(),
            b,
            "inside the session's window: the current token"
        );
        assert_eq!(world.provider.refreshes(), before + 1);
        world.clock.advance(30);
        let later = world
            .token(&mut browser, &format!("resource={RESOURCE_B}&rejected_token={b}"))
            .await;
        assert_ne!(later.access_token(), b);
        assert_eq!(world.provider.refreshes(), before + 2);
    });
}

/// Found by the load script: a response built from an older copy of the session cookie (another
/// tab's request, answered from the rotation memory) forgot the forced refresh: it put the
/// rejected token back in the cache and cleared the 30 s window.
#[test]
fn a_response_from_an_older_cookie_keeps_the_forced_refresh() {
    let world = api_world(RefreshPolicy::Rotate);
    let mut browser = login_with_resources(&world);
    block_on(async {
        let a = world
            .token(&mut browser, &format!("resource={RESOURCE_A}"))
            .await
            .access_token();
        world.token(&mut browser, &format!("resource={RESOURCE_B}")).await;
        let other_tab = browser.clone();
        world.clock.advance(20);
        let forced = world
            .token(&mut browser, &format!("resource={RESOURCE_A}&rejected_token={a}"))
            .await
            .access_token();
        assert_ne!(forced, a);
        // The other tab's request still carries the consumed refresh token; B's token is due.
        browser = other_tab;
        world.clock.advance(26);
        let answer = world.token(&mut browser, &format!("resource={RESOURCE_B}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let refreshes = world.provider.refreshes();
        let again = world
            .token(&mut browser, &format!("resource={RESOURCE_A}"))
            .await
            .access_token();
        assert_eq!(again, forced, "the rejected token is never handed out again");
        let within = world
            .token(&mut browser, &format!("resource={RESOURCE_A}&rejected_token={forced}"))
            .await
            .access_token();
        assert_eq!(within, forced, "inside the window of the forced refresh");
        assert_eq!(world.provider.refreshes(), refreshes, "no refresh");
    });
}

/// Found by the load script: the window lived only in the cookie, so replaying the cookie from
/// before a forced refresh bought another one at once, from a provider that does not rotate.
#[test]
fn a_replayed_cookie_cannot_force_a_second_refresh() {
    let world = api_world(RefreshPolicy::Omit);
    let mut browser = login_with_resources(&world);
    block_on(async {
        let a = world
            .token(&mut browser, &format!("resource={RESOURCE_A}"))
            .await
            .access_token();
        let replayed = browser.clone();
        let before = world.provider.refreshes();
        let forced = world
            .token(&mut browser, &format!("resource={RESOURCE_A}&rejected_token={a}"))
            .await;
        assert_ne!(forced.access_token(), a);
        assert_eq!(world.provider.refreshes(), before + 1);
        for _ in 0..3 {
            let mut copy = replayed.clone();
            world.clock.advance(5);
            world
                .token(&mut copy, &format!("resource={RESOURCE_A}&rejected_token={a}"))
                .await;
        }
        assert_eq!(world.provider.refreshes(), before + 1, "one forced refresh per 30 s");
        world.clock.advance(15);
        let mut copy = replayed.clone();
        let later = world
            .token(&mut copy, &format!("resource={RESOURCE_A}&rejected_token={a}"))
            .await;
        assert_eq!(later.status, StatusCode::OK, "{}", later.text());
        assert_eq!(world.provider.refreshes(), before + 2, "after the window, again");
    });
}

/// A forced refresh that failed (the provider was down) does not use up the window: the client's
/// retry gets a new token, not the rejected one.
#[test]
fn a_failed_forced_refresh_can_be_retried() {
    let world = api_world(RefreshPolicy::Rotate);
    let mut browser = login_with_resources(&world);
    block_on(async {
        let a = world
            .token(&mut browser, &format!("resource={RESOURCE_A}"))
            .await
            .access_token();
        world.provider.fail(Endpoint::Token, Fault::Status(503));
        let down = world
            .token(&mut browser, &format!("resource={RESOURCE_A}&rejected_token={a}"))
            .await;
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        world.provider.heal(Endpoint::Token);
        let retried = world
            .token(&mut browser, &format!("resource={RESOURCE_A}&rejected_token={a}"))
            .await;
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
        assert_ne!(retried.access_token(), a);
    });
}

/// Review finding 4: an ID token that cannot be checked at refresh time (JWKS down, a key not yet
/// published) does not throw away the rotated refresh token: the next refresh works.
#[test]
fn a_refresh_keeps_the_rotated_token_when_the_id_token_cannot_be_checked() {
    for fault in ["jwks down", "new kid"] {
        let world = api_world(RefreshPolicy::Rotate);
        let mut browser = login_with_resources(&world);
        let before = block_on(world.session_info(&mut browser)).json();
        world.clock.advance(3600);
        match fault {
            "jwks down" => {
                world.provider.rotate_signing_key(false);
                world.provider.fail(Endpoint::Jwks, Fault::Status(503));
            }
            _ => world.provider.rotate_signing_key(false),
        }
        let answer = block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}")));
        assert_eq!(answer.status, StatusCode::OK, "{fault}: {}", answer.text());
        assert!(
            world.log.lines().iter().any(|l| l.contains("keeps its claims")),
            "{fault}"
        );
        assert_eq!(
            block_on(world.session_info(&mut browser)).json(),
            before,
            "{fault}: old claims kept"
        );
        world.provider.heal(Endpoint::Jwks);
        world.clock.advance(3600);
        let next = block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}")));
        assert_eq!(next.status, StatusCode::OK, "{fault}: {}", next.text());
        assert_eq!(
            world.provider.reuse_detected(),
            0,
            "{fault}: the used token never came back"
        );
    }
}

/// Review findings 4 and 9: a refreshed ID token for another `sub`, `auth_time`, `iss`, `aud` or
/// `nonce` (OpenID Connect Core §12.2) ends the session explicitly.
#[test]
fn a_refreshed_id_token_for_someone_else_ends_the_session() {
    let edits: [(&str, ClaimsEdit); 5] = [
        ("sub", |c| c.subject = Some("mallory".into())),
        ("auth_time", |c| {
            c.custom.insert("auth_time".into(), serde_json::json!(1));
        }),
        ("iss", |c| c.issuer = Some("https://other.example".into())),
        ("nonce", |c| c.nonce = Some("another".into())),
        ("aud", |c| {
            c.audiences = Some(jwt_simple::prelude::Audiences::AsString("other".into()))
        }),
    ];
    for (claim, edit) in edits {
        let world = api_world(RefreshPolicy::Rotate);
        let mut browser = login_with_resources(&world);
        world.provider.set_refresh_claims(Some(edit));
        world.clock.advance(3600);
        let answer = block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}")));
        assert_eq!(answer.error(), "invalid_session", "{claim}: {}", answer.text());
        assert!(browser.cookie(SESSION).is_none(), "{claim}: cookies cleared");
    }
}

/// Review finding 11: `expires_in` as a string is used; a huge one is capped at a day.
#[test]
fn expires_in_strings_and_huge_values() {
    let world = api_world(RefreshPolicy::Rotate);
    world.provider.set_expires_in(Some(serde_json::json!("120")));
    let mut browser = login_with_resources(&world);
    let answer = block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}")));
    assert_eq!(answer.json()["expires_in"], 120);
    world.provider.set_expires_in(Some(serde_json::json!(1e18)));
    let answer = block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}&scope=api:read")));
    assert_eq!(answer.json()["expires_in"], 86_400);
}

/// Provider faults answer 503 and leave the session as it was.
#[test]
fn provider_faults_leave_the_session_unchanged() {
    for fault in Fault::ALL {
        let world = api_world(RefreshPolicy::Rotate);
        let mut browser = login_with_resources(&world);
        world.clock.advance(3600);
        let session = browser.cookie(SESSION).unwrap().to_owned();
        world.provider.fail(Endpoint::Token, fault);
        let answer = block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}")));
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {}",
            answer.text()
        );
        assert_eq!(answer.header("retry-after"), Some("5"));
        assert!(answer.set_cookies().is_empty(), "{fault:?}");
        assert_eq!(browser.cookie(SESSION), Some(session.as_str()));
        world.provider.heal(Endpoint::Token);
        assert_eq!(
            block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}"))).status,
            StatusCode::OK
        );
    }
}

// ── Bodies, JWKS, startup ────────────────────────────────────────────────────────────────────

/// Review finding 12: a body over 16 KiB is refused with 413 before any work.
#[test]
fn oversized_bodies_get_413() {
    let world = World::with_store(&[], MemoryStore::consistent);
    let mut browser = logged_in(&world, "alice");
    let body = "a".repeat(16 * 1024 + 1);
    let answer = block_on(world.api(&mut browser, Method::POST, "/.well-known/bff-token", &body));
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request")
    );
    let answer = block_on(world.backchannel_logout(&"a".repeat(16 * 1024)));
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let calls = world.provider.count(Endpoint::Token);
    let fits = "resource=".to_owned() + &"a".repeat(16 * 1024 - 9);
    let answer = block_on(world.api(&mut browser, Method::POST, "/.well-known/bff-token", &fits));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "exactly 16 KiB is read");
    assert_eq!(world.provider.count(Endpoint::Token), calls);
}

/// Review finding 13: random `kid`s in unauthenticated logout tokens do not make the backend
/// hammer the JWKS: every attempt counts, failed ones too, and concurrent ones share one fetch.
#[test]
fn jwks_fetches_are_limited_and_shared() {
    let world = World::with_store(&[], MemoryStore::consistent);
    world.provider.rotate_signing_key(false);
    let token = world.provider.logout_token(Some("alice"), None, "j1", START);
    let answers = block_on(join_all((0..20).map(|_| world.backchannel_logout(&token))));
    assert!(answers.iter().all(|a| a.status == StatusCode::BAD_REQUEST));
    assert_eq!(
        world.provider.count(Endpoint::Jwks),
        1,
        "one fetch for 20 concurrent requests"
    );
    world.clock.advance(5);
    world.provider.fail(Endpoint::Jwks, Fault::Status(500));
    for _ in 0..20 {
        let _ = block_on(world.backchannel_logout(&token));
    }
    assert_eq!(world.provider.count(Endpoint::Jwks), 2, "a failed fetch counts too");
}

/// Review finding 14: the startup line says what is true.
#[test]
fn startup_line_names_backchannel_logout_state() {
    let world = World::new(&[]);
    world.backend().log_startup(&world.log, &*world.clock, true);
    world.backend().log_startup(&world.log, &*world.clock, false);
    let lines = world.log.lines();
    assert!(lines[0].contains("back-channel logout is on"), "{lines:?}");
    assert!(lines[1].contains("back-channel logout is off"), "{lines:?}");
}

// ── Logout and back-channel logout ───────────────────────────────────────────────────────────

/// Review finding 15: with a store, a session cookie copied before logout is dead after it.
#[test]
fn a_copied_cookie_is_dead_after_logout() {
    for kv in [false, true] {
        let settings: &[(&str, &str)] = if kv { &[("BFF_SESSION_STORE", "kv")] } else { &[] };
        let world = World::with_store(settings, MemoryStore::eventually_consistent);
        let mut browser = logged_in(&world, "alice");
        let mut copy = browser.clone();
        let answer = block_on(world.logout(&mut browser));
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            block_on(world.session_info(&mut copy)).error(),
            "invalid_session",
            "kv={kv}"
        );
        assert_eq!(world.provider.count(Endpoint::Revocation), 1);
    }
}

/// Review finding 5: in KV mode a refresh racing a logout never brings the session back, on a
/// store with conditional writes and on one without (Workers KV).
#[test]
fn a_refresh_racing_a_logout_leaves_the_session_ended() {
    for store in [
        MemoryStore::consistent as fn(_) -> _,
        MemoryStore::eventually_consistent,
    ] {
        let world = World::with_store(&[("BFF_SESSION_STORE", "kv")], store);
        let browser = logged_in(&world, "alice");
        world.clock.advance(3600);
        let (mut refreshing, mut leaving) = (browser.clone(), browser.clone());
        let (token, logout) = block_on(futures::future::join(
            world.token(&mut refreshing, ""),
            world.logout(&mut leaving),
        ));
        assert_eq!(logout.status, StatusCode::OK);
        // Whichever comes first: the refresh, or the logout (then the session is gone, or its
        // refresh token was revoked before the refresh presented it).
        assert!(
            token.status == StatusCode::OK || matches!(token.error().as_str(), "invalid_session" | "invalid_grant"),
            "{}",
            token.text()
        );
        let mut later = browser.clone();
        assert_eq!(block_on(world.session_info(&mut later)).error(), "invalid_session");
        assert_eq!(block_on(world.token(&mut later, "")).error(), "invalid_session");
        world.store.as_ref().unwrap().settle();
        assert!(
            world.store.as_ref().unwrap().keys("session:").is_empty(),
            "no record left"
        );
    }
}

/// Review findings 6 and 8: back-channel logout by revocation entries, in both modes; an older
/// logout token arriving late never shortens a newer one's reach.
#[test]
fn backchannel_logout_ends_sessions_and_keeps_the_newest_entry() {
    for kv in [false, true] {
        let settings: &[(&str, &str)] = if kv { &[("BFF_SESSION_STORE", "kv")] } else { &[] };
        let world = World::with_store(settings, MemoryStore::consistent);
        world.clock.advance(7);
        let mut first = logged_in(&world, "alice");
        let mut second = logged_in(&world, "alice");
        world.clock.advance(3);
        let newer = world.provider.logout_token(Some("alice"), None, "j-new", START + 10);
        assert_eq!(block_on(world.backchannel_logout(&newer)).status, StatusCode::OK);
        let mut copy = first.clone();
        assert_eq!(
            block_on(world.session_info(&mut first)).error(),
            "invalid_session",
            "kv={kv}"
        );
        assert_eq!(block_on(world.session_info(&mut second)).error(), "invalid_session");
        let older = world.provider.logout_token(Some("alice"), None, "j-old", START + 5);
        assert_eq!(block_on(world.backchannel_logout(&older)).status, StatusCode::OK);
        assert_eq!(
            block_on(world.session_info(&mut copy)).error(),
            "invalid_session",
            "kv={kv}: still dead"
        );
        // Logging in again after the logout works at once.
        world.clock.advance(1);
        let mut again = logged_in(&world, "alice");
        assert_eq!(block_on(world.session_info(&mut again)).status, StatusCode::OK);
        // A replayed token is refused.
        assert_eq!(
            block_on(world.backchannel_logout(&newer)).status,
            StatusCode::BAD_REQUEST
        );
    }
}

/// Review finding 7: if ending the sessions fails, the provider's retry of the same token is not
/// refused as a replay.
#[test]
fn a_failed_backchannel_logout_can_be_retried() {
    let world = World::with_store(&[], MemoryStore::consistent);
    let mut browser = logged_in(&world, "alice");
    let sid = world.provider.sid_of("alice").unwrap();
    let token = world.provider.logout_token(None, Some(&sid), "j1", START);
    // Ending the sessions fails after the token was checked.
    world.store.as_ref().unwrap().fail_keys(Some("revoked:"));
    assert_eq!(
        block_on(world.backchannel_logout(&token)).status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    world.store.as_ref().unwrap().fail_keys(None);
    assert_eq!(block_on(world.backchannel_logout(&token)).status, StatusCode::OK);
    assert_eq!(block_on(world.session_info(&mut browser)).error(), "invalid_session");
}

// ── Found in review ──────────────────────────────────────────────────────────────────────────

/// A remembered rotation can be up to 30 s old: a stale cookie arriving after the remembered
/// token passed its margin gets a fresh token (a refresh with the new refresh token), never an
/// almost expired one, and the used refresh token never comes back.
#[test]
fn a_remembered_rotation_past_its_margin_is_refreshed() {
    let world = api_world(RefreshPolicy::Rotate);
    world.provider.set_expires_in(Some(serde_json::json!(10)));
    let browser = login_with_resources(&world);
    world.clock.advance(3600);
    let (mut first, mut stale) = (browser.clone(), browser);
    let fresh = block_on(world.token(&mut first, &format!("resource={RESOURCE_A}")));
    world.clock.advance(8);
    let late = block_on(world.token(&mut stale, &format!("resource={RESOURCE_A}")));
    assert_eq!(late.status, StatusCode::OK, "{}", late.text());
    assert_ne!(late.access_token(), fresh.access_token());
    assert!(late.json()["expires_in"].as_u64().unwrap() >= 5, "{}", late.text());
    assert_eq!((world.provider.refreshes(), world.provider.reuse_detected()), (2, 0));
}

/// `invalid_client` from the token endpoint is the deployment's fault: 500 and a log line, not
/// the provider's error handed to the page; the session stays.
#[test]
fn invalid_client_on_refresh_is_a_server_error() {
    let world = api_world(RefreshPolicy::Rotate);
    let mut browser = login_with_resources(&world);
    world.clock.advance(3600);
    world
        .provider
        .fail(Endpoint::Token, Fault::OAuth(401, "invalid_client"));
    let answer = block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}")));
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
    );
    assert!(answer.set_cookies().is_empty());
    assert!(world.log.lines().iter().any(|l| l.contains("invalid_client")));
    world.provider.heal(Endpoint::Token);
    assert_eq!(
        block_on(world.token(&mut browser, &format!("resource={RESOURCE_A}"))).status,
        StatusCode::OK
    );
}

/// A session caches at most 32 access tokens, the oldest going first: a page cycling through
/// keys cannot grow a KV record without bound.
#[test]
fn at_most_32_cached_tokens() {
    let scopes: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
    let all = format!("openid offline_access {}", scopes.join(" "));
    let world = World::with_store(
        &[("BFF_SCOPES", &all), ("BFF_SESSION_STORE", "kv")],
        MemoryStore::consistent,
    );
    let mut browser = logged_in(&world, "alice");
    for scope in &scopes {
        assert_eq!(
            block_on(world.token(&mut browser, &format!("scope={scope}"))).status,
            StatusCode::OK
        );
    }
    let refreshes = world.provider.refreshes();
    let _ = block_on(world.token(&mut browser, "scope=s39"));
    assert_eq!(world.provider.refreshes(), refreshes, "the newest is cached");
    let _ = block_on(world.token(&mut browser, "scope=s0"));
    assert_eq!(world.provider.refreshes(), refreshes + 1, "the oldest was dropped");
}

/// KV mode, the store failing at logout: the session (and its refresh token) is in the store, so
/// the logout answers 503 and clears nothing rather than pretending; once the store is back it works.
#[test]
fn a_kv_logout_while_the_store_fails_is_503() {
    let world = World::with_store(&[("BFF_SESSION_STORE", "kv")], MemoryStore::consistent);
    let mut browser = logged_in(&world, "alice");
    world.store.as_ref().unwrap().fail_keys(Some(""));
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert!(answer.set_cookies().is_empty());
    world.store.as_ref().unwrap().fail_keys(None);
    assert_eq!(block_on(world.logout(&mut browser)).status, StatusCode::OK);
    assert_eq!(world.provider.count(Endpoint::Revocation), 1);
}

/// KV mode, the store refusing the write of a refreshed session: the token is answered anyway (a
/// 503 would send the retry to an instance that presents the consumed refresh token), once the
/// write was tried twice, and a line is logged.
#[test]
fn a_refreshed_session_the_store_cannot_take_still_answers_the_token() {
    let world = World::with_store(&[("BFF_SESSION_STORE", "kv")], MemoryStore::consistent);
    let mut browser = logged_in(&world, "alice");
    world.clock.advance(3600);
    world.store.as_ref().unwrap().fail_writes(Some("session:"));
    let answer = block_on(world.token(&mut browser, ""));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(world.log.lines().iter().any(|l| l.contains("could not be stored")));
}
