//! Browser-bound tokens in process (http-api.md: Browser-bound access tokens; RFC 9449): the key
//! pinned at login, every proof defect refused with the session unchanged, the proof forwarded
//! byte for byte, nonces, and a provider that does not take DPoP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test

use bff_core::testing::{Answer, Browser, BrowserKey, DpopPolicy, Endpoint, START, Site, World, request};
use futures::executor::block_on;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const DPOP: &[(&str, &str)] = &[("BFF_DPOP", "required")];

/// A browser signed in as alice with `key` pinned.
fn signed_in(world: &World, key: &BrowserKey) -> Browser {
    let mut browser = Browser::default();
    block_on(async {
        let query = format!("?dpop_jkt={}", key.thumbprint());
        let callback = world.start_login(&mut browser, &query, "alice").await;
        let answer = world.callback(&mut browser, &callback).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    });
    browser
}

fn now(world: &World) -> u64 {
    use bff_core::Clock as _;
    world.clock.now().0
}

fn token(world: &World, browser: &mut Browser, proofs: &[&str]) -> Answer {
    block_on(world.token_with_proofs(browser, "", proofs))
}

fn refused(answer: &Answer, why: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}: {}", answer.text());
    assert_eq!(answer.error(), "invalid_dpop_proof", "{why}");
    assert!(
        answer.set_cookies().is_empty(),
        "{why}: the session must stay as it was"
    );
}

#[test]
fn configuration_advertises_dpop() {
    let world = World::new(DPOP);
    let answer = block_on(world.navigate(&mut Browser::default(), "/.well-known/bff-configuration"));
    let body = answer.json();
    assert_eq!(body["dpop"], json!(true));
    assert_eq!(body["dpop_token_endpoint"], json!("https://idp.example/token"));
    assert_eq!(body["dpop_signing_alg_values_supported"], json!(["ES256"]));
    let off = World::new(&[]);
    let body = block_on(off.navigate(&mut Browser::default(), "/.well-known/bff-configuration")).json();
    assert_eq!(body["dpop"], json!(false));
    assert!(body.get("dpop_token_endpoint").is_none());
}

#[test]
fn a_login_must_pin_a_thumbprint_and_keeps_it_from_the_provider() {
    let world = World::new(DPOP);
    let key = BrowserKey::new(3);
    let mut browser = Browser::default();
    let headers = [("sec-fetch-site", "same-origin")];
    for query in [
        String::new(),
        "?dpop_jkt=short".to_owned(),
        format!("?dpop_jkt={}=", key.thumbprint()),
        format!("?dpop_jkt={0}&dpop_jkt={0}", key.thumbprint()),
    ] {
        let request = request(Method::GET, &format!("/bff/login{query}"), &headers, Vec::new());
        let answer = block_on(world.send(&mut browser, request, Site::Same));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer.text().contains("dpop_jkt"), "{query}");
        assert!(answer.set_cookies().is_empty(), "{query}");
    }
    let login = |query: &str, headers: &[(&str, &str)]| {
        let request = request(Method::GET, &format!("/bff/login{query}"), headers, Vec::new());
        block_on(world.send(&mut Browser::default(), request, Site::Same))
    };
    let same = [("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "document")];
    let answer = login(&format!("?dpop_jkt={}", key.thumbprint()), &same);
    assert_eq!(answer.status, StatusCode::FOUND);
    // RFC 9449 §10 would make the provider want a proof on the code exchange.
    assert!(!answer.header("location").unwrap().contains("dpop_jkt"));
}

#[test]
fn the_token_is_bound_and_the_proof_forwarded_byte_for_byte() {
    let world = World::new(DPOP);
    let key = BrowserKey::new(3);
    let mut browser = signed_in(&world, &key);
    // The code exchange carried no proof, and its bearer token is never handed out.
    assert!(world.provider.dpop_proofs().is_empty());
    let proof = key.proof(now(&world), "jti-1", None);
    let answer = token(&world, &mut browser, &[&proof]);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["token_type"], json!("DPoP"));
    assert_eq!(world.provider.dpop_proofs(), vec![proof.clone()]);
    assert_eq!(world.provider.refreshes(), 1);
    let bound = answer.access_token();

    // Cached while valid, and still only with a proof by the pinned key.
    let again = token(&world, &mut browser, &[&key.proof(now(&world), "jti-2", None)]);
    assert_eq!(
        (again.access_token(), again.json()["token_type"].clone()),
        (bound, json!("DPoP"))
    );
    assert_eq!(world.provider.refreshes(), 1);
    refused(&token(&world, &mut browser, &[]), "a cached token without a proof");

    // Expired: the next refresh forwards the next proof.
    world.clock.advance(60);
    let proof = key.proof(now(&world), "jti-3", None);
    assert_eq!(token(&world, &mut browser, &[&proof]).status, StatusCode::OK);
    assert_eq!(world.provider.dpop_proofs().last(), Some(&proof));
    assert_eq!(world.provider.refreshes(), 2);
}

#[test]
fn every_proof_defect_is_refused_and_changes_nothing() {
    let world = World::new(DPOP);
    let key = BrowserKey::new(3);
    let mut browser = signed_in(&world, &key);
    let t = now(&world);
    let other = BrowserKey::new(4);
    let d = key.private_d();
    let good = key.proof(t, "j", None);
    let (signed, signature) = good.rsplit_once('.').unwrap();
    let flipped = format!(
        "{signed}.{}{}",
        if signature.starts_with('A') { "B" } else { "A" },
        &signature[1..]
    );
    let set = |name: &'static str, value: Value| {
        move |_: &mut _, c: &mut serde_json::Map<String, Value>| drop(c.insert(name.into(), value))
    };
    let header = |name: &'static str, value: Option<Value>| {
        move |h: &mut serde_json::Map<String, Value>, _: &mut _| match value {
            Some(value) => drop(h.insert(name.into(), value)),
            None => drop(h.remove(name)),
        }
    };
    let cases = [
        ("another key", other.proof(t, "j", None)),
        (
            "wrong htu",
            key.proof_with(
                t,
                "j",
                None,
                set("htu", json!("https://app.example/.well-known/bff-token")),
            ),
        ),
        ("wrong htm", key.proof_with(t, "j", None, set("htm", json!("GET")))),
        ("stale iat", key.proof(t - 61, "j", None)),
        ("future iat", key.proof(t + 61, "j", None)),
        (
            "alg none",
            key.proof_with(t, "j", None, header("alg", Some(json!("none")))),
        ),
        (
            "alg HS256",
            key.proof_with(t, "j", None, header("alg", Some(json!("HS256")))),
        ),
        (
            "alg RS256",
            key.proof_with(t, "j", None, header("alg", Some(json!("RS256")))),
        ),
        ("no jwk", key.proof_with(t, "j", None, header("jwk", None))),
        ("no typ", key.proof_with(t, "j", None, header("typ", None))),
        (
            "private key in jwk",
            key.proof_with(t, "j", None, |h, _| {
                if let Some(Value::Object(jwk)) = h.get_mut("jwk") {
                    jwk.insert("d".into(), json!(d));
                }
            }),
        ),
        ("bad signature", flipped),
        ("not a JWS", "not.a.proof".to_owned()),
    ];
    for (why, proof) in &cases {
        refused(&token(&world, &mut browser, &[proof]), why);
    }
    refused(&token(&world, &mut browser, &[]), "no proof");
    refused(&token(&world, &mut browser, &[&good, &good]), "two proofs");
    assert_eq!(
        world.provider.count(Endpoint::Token),
        1,
        "only the code exchange reached the provider"
    );
    // And the session is still good.
    assert_eq!(token(&world, &mut browser, &[&good]).status, StatusCode::OK);
}

#[test]
fn a_stolen_cookie_with_another_key_gets_nothing() {
    let world = World::new(DPOP);
    let key = BrowserKey::new(3);
    let mut victim = signed_in(&world, &key);
    assert_eq!(
        token(&world, &mut victim, &[&key.proof(now(&world), "j1", None)]).status,
        StatusCode::OK
    );
    // The attacker has every cookie and a proof of their own, fresh and otherwise perfect.
    let mut attacker = Browser::default();
    for name in victim.cookie_names() {
        let value = victim.cookie(&name).unwrap().to_owned();
        attacker.set_cookie(&name, &value);
    }
    let thief = BrowserKey::new(9);
    refused(
        &token(&world, &mut attacker, &[&thief.proof(now(&world), "j2", None)]),
        "stolen cookie",
    );
    world.clock.advance(120);
    refused(
        &token(&world, &mut attacker, &[&thief.proof(now(&world), "j3", None)]),
        "stolen cookie, refresh due",
    );
    assert_eq!(world.provider.refreshes(), 1);
}

#[test]
fn nonces_are_passed_to_the_browser_and_back() {
    let world = World::new(DPOP);
    world.provider.set_dpop(DpopPolicy::Nonce("n-1"));
    let key = BrowserKey::new(3);
    let mut browser = signed_in(&world, &key);
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j1", None)]);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert_eq!(answer.error(), "use_dpop_nonce");
    assert_eq!(answer.header("dpop-nonce"), Some("n-1"));
    assert!(answer.set_cookies().is_empty(), "the refresh token was not spent");
    assert_eq!(world.provider.refreshes(), 0);

    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j2", Some("n-1"))]);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.header("dpop-nonce"),
        Some("n-1"),
        "a nonce sent on success is passed on"
    );

    // Once the provider demanded nonces, a proof without one is answered here, without a round
    // trip, while the nonce is fresh (the token is due for a refresh 45 s into its 60 s).
    world.clock.advance(50);
    let requests = world.provider.count(Endpoint::Token);
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j3", None)]);
    assert_eq!(
        (answer.error(), answer.header("dpop-nonce")),
        ("use_dpop_nonce".to_owned(), Some("n-1"))
    );
    assert_eq!(world.provider.count(Endpoint::Token), requests);
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j4", Some("n-1"))]);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[test]
fn a_provider_without_dpop_is_a_configuration_error() {
    let world = World::new(DPOP);
    world.provider.set_dpop(DpopPolicy::NotOffered);
    let key = BrowserKey::new(3);
    let mut browser = Browser::default();
    let headers = [("sec-fetch-site", "same-origin")];
    let path = format!("/bff/login?dpop_jkt={}", key.thumbprint());
    let login = block_on(world.send(
        &mut browser,
        request(Method::GET, &path, &headers, Vec::new()),
        Site::Same,
    ));
    assert_eq!(login.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(login.error(), "server_error");
    let config = block_on(world.navigate(&mut browser, "/.well-known/bff-configuration"));
    assert_eq!(config.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(world.log.lines().iter().any(|l| l.contains("BFF_DPOP")));
}

#[test]
fn a_bearer_token_is_never_handed_out_in_dpop_mode() {
    let world = World::new(DPOP);
    let key = BrowserKey::new(3);
    let mut browser = signed_in(&world, &key);
    world
        .provider
        .set_token_edit(Some(|body| drop(body.insert("token_type".into(), json!("Bearer")))));
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j1", None)]);
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", answer.text());
    assert!(answer.json().get("access_token").is_none());
    assert!(!answer.set_cookies().is_empty(), "the rotated refresh token is kept");
    assert!(world.log.lines().iter().any(|l| l.contains("bearer token")));
    // The kept refresh token still works once the provider binds again.
    world.provider.set_token_edit(None);
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j2", None)]);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(world.provider.reuse_detected(), 0);
}

#[test]
fn a_session_from_before_dpop_must_sign_in_again() {
    let mut world = World::new(&[]);
    let mut browser = block_on(world.signed_in("alice"));
    let bearer = block_on(world.token(&mut browser, ""));
    assert_eq!(bearer.json()["token_type"], json!("Bearer"));
    world.redeploy(DPOP);
    let key = BrowserKey::new(3);
    let answer = token(&world, &mut browser, &[&key.proof(START, "j", None)]);
    assert_eq!(answer.error(), "backend_not_ready", "{}", answer.text());
    assert!(answer.json()["login_url"].as_str().unwrap().starts_with("/bff/login"));
    assert!(answer.set_cookies().is_empty());
}

#[test]
fn off_mode_ignores_dpop_parameters() {
    let world = World::new(&[]);
    let key = BrowserKey::new(3);
    let mut browser = signed_in(&world, &key);
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j", None)]);
    assert_eq!(answer.json()["token_type"], json!("Bearer"));
    assert!(world.provider.dpop_proofs().is_empty());
}

#[test]
fn a_rejected_bound_token_forces_a_refresh_with_the_proof() {
    let world = World::new(DPOP);
    let key = BrowserKey::new(3);
    let mut browser = signed_in(&world, &key);
    let first = token(&world, &mut browser, &[&key.proof(now(&world), "j1", None)]).access_token();
    let proof = key.proof(now(&world), "j2", None);
    let query = format!("rejected_token={first}");
    let answer = block_on(world.token_with_proofs(&mut browser, &query, &[&proof]));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_ne!(answer.access_token(), first);
    assert_eq!(answer.json()["token_type"], json!("DPoP"));
    assert_eq!(world.provider.dpop_proofs().last(), Some(&proof));
}

#[test]
fn only_the_apps_own_pages_can_start_a_login_that_pins_a_key() {
    // Another site (or a hidden frame) navigating to the login could pin a key of its choosing
    // to the user's next session: with silent SSO, the user's browser would finish it.
    let world = World::new(DPOP);
    let thief = BrowserKey::new(9);
    let path = format!("/bff/login?dpop_jkt={}&prompt=none", thief.thumbprint());
    let refusals: [&[(&str, &str)]; 5] = [
        &[("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "document")],
        &[("sec-fetch-site", "same-site"), ("sec-fetch-dest", "document")],
        &[("sec-fetch-site", "none"), ("sec-fetch-dest", "document")],
        &[("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "iframe")],
        &[],
    ];
    for headers in refusals {
        let mut victim = Browser::default();
        let answer = block_on(world.send(
            &mut victim,
            request(Method::GET, &path, headers, Vec::new()),
            Site::Cross,
        ));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{headers:?}: {}", answer.text());
        assert!(answer.set_cookies().is_empty(), "{headers:?}");
    }
    // Without DPoP a login stays a plain navigation anyone may start (the pinned key is the risk).
    let off = World::new(&[]);
    let answer = block_on(off.navigate(&mut Browser::default(), "/bff/login"));
    assert_eq!(answer.status, StatusCode::FOUND);
}

/// Signed in while the provider demands the nonce `n-1`: the first refresh is answered
/// use_dpop_nonce, the retry with it is granted; that answer.
fn granted_after_a_nonce(world: &World, key: &BrowserKey) -> (Browser, Answer) {
    world.provider.set_dpop(DpopPolicy::Nonce("n-1"));
    let mut browser = signed_in(world, key);
    let challenge = token(world, &mut browser, &[&key.proof(now(world), "j1", None)]);
    assert_eq!(challenge.error(), "use_dpop_nonce", "{}", challenge.text());
    let granted = token(world, &mut browser, &[&key.proof(now(world), "j2", Some("n-1"))]);
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text());
    (browser, granted)
}

#[test]
fn a_nonce_answered_here_leaves_the_forced_refresh_free() {
    let (world, key) = (World::new(DPOP), BrowserKey::new(3));
    let (mut browser, first) = granted_after_a_nonce(&world, &key);
    let first = first.access_token();
    world.clock.advance(5);
    // A new page (no nonce yet) had the token rejected by an API: its replacement request is
    // answered use_dpop_nonce here, and the retry with the nonce must still force the refresh.
    let query = format!("rejected_token={first}");
    let answer = block_on(world.token_with_proofs(&mut browser, &query, &[&key.proof(now(&world), "j3", None)]));
    assert_eq!(answer.error(), "use_dpop_nonce", "{}", answer.text());
    let proof = key.proof(now(&world), "j4", Some("n-1"));
    let answer = block_on(world.token_with_proofs(&mut browser, &query, &[&proof]));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_ne!(answer.access_token(), first, "the rejected token came back");
}

#[test]
fn a_stale_nonce_is_not_answered_in_the_providers_place() {
    let (world, key) = (World::new(DPOP), BrowserKey::new(3));
    let (mut browser, _) = granted_after_a_nonce(&world, &key);
    // Four minutes on, the provider has moved to another nonce: the one remembered here is too
    // old to hand out, so the provider answers with its current one and the one retry works.
    world.clock.advance(240);
    world.provider.set_dpop(DpopPolicy::Nonce("n-2"));
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j3", None)]);
    assert_eq!(
        (answer.error(), answer.header("dpop-nonce")),
        ("use_dpop_nonce".to_owned(), Some("n-2"))
    );
    let answer = token(&world, &mut browser, &[&key.proof(now(&world), "j4", Some("n-2"))]);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[test]
fn a_login_without_a_refresh_token_is_refused_in_dpop_mode() {
    let world = World::new(DPOP);
    world
        .provider
        .set_token_edit(Some(|body| drop(body.remove("refresh_token"))));
    let key = BrowserKey::new(3);
    let mut browser = Browser::default();
    let answer = block_on(async {
        let callback = world
            .start_login(&mut browser, &format!("?dpop_jkt={}", key.thumbprint()), "alice")
            .await;
        world.callback(&mut browser, &callback).await
    });
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(answer.text().contains("refresh token"));
    assert!(
        browser.cookie("__Host-bff-session").is_none(),
        "no session that could only loop"
    );
    assert!(world.log.lines().iter().any(|l| l.contains("offline_access")));
}
