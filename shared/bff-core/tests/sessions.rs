//! Sessions in process: what `bff-sessioninfo` and `bff-configuration` show, logout, KV mode end
//! to end, cookie key rotation across a redeploy, and back-channel logout. No network, no sleep:
//! a scripted provider, an in-memory store, a fixed clock, a browser that keeps cookies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test
#![allow(clippy::disallowed_methods)] // tests read the URLs the backend built with the plain parser

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_core::Clock as _;
use bff_core::KvStore as _;
use bff_core::testing::{Answer, Browser, COOKIE_KEYS, Endpoint, Fault, MemoryStore, START, Site, World};
use futures::executor::block_on;
use http::{Method, StatusCode};
use jwt_simple::prelude::{Audiences, JWTClaims, UnixTimeStamp};
use serde_json::{Map, Value};
use url::Url;

const SESSION: &str = "__Host-bff-session";
const SCOPES: &str = "openid offline_access api:read api:write";
/// A second cookie key, for rotation.
const NEW_KEY: &str = "new:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA";

fn logged_in(world: &World, user: &str) -> Browser {
    block_on(world.signed_in(user))
}

fn info(world: &World, browser: &mut Browser) -> Answer {
    block_on(world.session_info(browser))
}

fn alive(world: &World, browser: &mut Browser) -> bool {
    let answer = info(world, browser);
    match answer.status {
        StatusCode::OK => true,
        _ => {
            assert_eq!(answer.error(), "invalid_session", "{}", answer.text());
            false
        }
    }
}

/// Whether `answer` clears the session cookie.
fn clears_session(answer: &Answer) -> bool {
    answer
        .set_cookies()
        .iter()
        .any(|c| c.starts_with(&format!("{SESSION}=;")) && c.contains("Max-Age=0"))
}

/// The claims of a JWT, unverified.
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

// ── bff-sessioninfo and bff-configuration ────────────────────────────────────────────────────

/// `bff-sessioninfo` shows `iss`, `sub`, `exp`, `auth_time`, `sid` and the projected claims,
/// nothing else, and never a token.
#[test]
fn sessioninfo_shows_the_fixed_members_and_projected_claims_only() {
    let world = World::new(&[("BFF_SCOPES", SCOPES)]);
    let mut browser = logged_in(&world, "alice");
    let access = block_on(world.token(&mut browser, "")).access_token();
    let answer = info(&world, &mut browser);
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["auth_time", "email", "exp", "iss", "name", "sid", "sub"]);
    assert_eq!(body["iss"], "https://idp.example");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["exp"], START + 86_400);
    assert_eq!(body["auth_time"], START);
    assert_eq!(body["sid"], world.provider.sid_of("alice").unwrap().as_str());
    assert_eq!(body["name"], "User alice");
    assert_eq!(body["email"], "alice@example.com");
    let text = answer.text();
    assert!(
        !text.contains(&access) && !text.contains("rt-") && !text.contains("eyJ"),
        "{text}"
    );

    // Only the configured claims are projected; the session ends at BFF_SESSION_MAX_AGE.
    let world = World::new(&[("BFF_SESSIONINFO_CLAIMS", "email"), ("BFF_SESSION_MAX_AGE", "600")]);
    let mut browser = logged_in(&world, "bob");
    let body = info(&world, &mut browser).json();
    assert_eq!(
        (body["email"].as_str(), body.get("name")),
        (Some("bob@example.com"), None)
    );
    assert_eq!(body["exp"], START + 600);
    world.clock.advance(599);
    assert!(alive(&world, &mut browser));
    world.clock.advance(1);
    assert!(!alive(&world, &mut browser), "past BFF_SESSION_MAX_AGE");
    assert!(!alive(&world, &mut Browser::default()), "no cookie: invalid_session");
}

/// `bff-configuration` names the endpoints under the base path, may be cached five minutes, and
/// every endpoint it names works there (and only there).
#[test]
fn configuration_names_the_endpoints_under_the_base_path() {
    let world = World::new(&[("BFF_BASE_PATH", "/app")]);
    let mut browser = Browser::default();
    let answer = block_on(world.navigate(&mut browser, "/app/.well-known/bff-configuration"));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("max-age=300"));
    assert_eq!(answer.header("pragma"), None);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let config = answer.json();
    assert_eq!(config["bff_token_endpoint"], "/app/.well-known/bff-token");
    assert_eq!(config["bff_sessioninfo_endpoint"], "/app/.well-known/bff-sessioninfo");
    assert_eq!(config["login_endpoint"], "/app/bff/login");
    assert_eq!(config["logout_endpoint"], "/app/bff/logout");
    assert_eq!(config["csrf_header"], "X-CSRF");
    let outside = block_on(world.navigate(&mut browser, "/.well-known/bff-configuration"));
    assert_eq!(outside.status, StatusCode::NOT_FOUND);

    let endpoint = |name: &str| config[name].as_str().unwrap().to_owned();
    let answer = block_on(world.navigate(&mut browser, &endpoint("login_endpoint")));
    assert_eq!(answer.status, StatusCode::FOUND);
    let callback = world.provider.authorize(answer.header("location").unwrap(), "alice");
    let answer = block_on(world.callback(&mut browser, &callback));
    assert_eq!(answer.header("location"), Some("/app/"), "{}", answer.text());
    let get = |browser: &mut Browser, path: String| block_on(world.api(browser, Method::GET, &path, ""));
    assert_eq!(
        get(&mut browser, endpoint("bff_sessioninfo_endpoint")).json()["sub"],
        "alice"
    );
    let answer = get(&mut browser, endpoint("bff_token_endpoint"));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        get(&mut browser, "/.well-known/bff-sessioninfo".into()).status,
        StatusCode::NOT_FOUND
    );
    let answer = block_on(world.api(&mut browser, Method::POST, &endpoint("logout_endpoint"), ""));
    let logout_url = Url::parse(answer.json()["logout_url"].as_str().unwrap()).unwrap();
    let back = logout_url.query_pairs().find(|(k, _)| k == "post_logout_redirect_uri");
    assert_eq!(back.unwrap().1, "https://app.example/app/");
}

// ── Logout ───────────────────────────────────────────────────────────────────────────────────

/// Logout clears the cookies, revokes the refresh token (so a copy of the cookie, without a store,
/// gets `invalid_grant` at its next refresh) and answers the provider's end-session URL with
/// `id_token_hint`, `client_id` and `post_logout_redirect_uri`.
#[test]
fn logout_revokes_and_returns_the_end_session_url() {
    let world = World::new(&[("BFF_SCOPES", SCOPES)]);
    let mut browser = logged_in(&world, "alice");
    let mut copy = browser.clone();
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(clears_session(&answer), "{:?}", answer.set_cookies());
    assert!(browser.cookie(SESSION).is_none());
    assert_eq!(world.provider.count(Endpoint::Revocation), 1);

    let url = Url::parse(answer.json()["logout_url"].as_str().unwrap()).unwrap();
    assert_eq!((url.host_str(), url.path()), (Some("idp.example"), "/logout"));
    let params: Map<String, Value> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let mut names: Vec<&str> = params.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["client_id", "id_token_hint", "post_logout_redirect_uri"]);
    assert_eq!(params["client_id"], "bff");
    assert_eq!(params["post_logout_redirect_uri"], "https://app.example/");
    let hint = jwt_claims(params["id_token_hint"].as_str().unwrap());
    assert_eq!(
        (hint["sub"].as_str(), hint["aud"].as_str()),
        (Some("alice"), Some("bff"))
    );

    // The revocation named this session's refresh token: the provider ended the grant.
    world.clock.advance(3600);
    let answer = block_on(world.token(&mut copy, ""));
    assert_eq!(answer.error(), "invalid_grant", "{}", answer.text());
    assert!(copy.cookie(SESSION).is_none());

    let world = World::new(&[("BFF_POST_LOGOUT_PATH", "/goodbye")]);
    let mut browser = logged_in(&world, "alice");
    let answer = block_on(world.logout(&mut browser));
    let url = Url::parse(answer.json()["logout_url"].as_str().unwrap()).unwrap();
    let back = url.query_pairs().find(|(k, _)| k == "post_logout_redirect_uri");
    assert_eq!(back.unwrap().1, "https://app.example/goodbye");
}

/// Logout without a session is fine: 200 with the post-logout URL, cookies (transactions too)
/// cleared, nothing asked of the provider.
#[test]
fn logout_without_a_session_still_clears_cookies() {
    let world = World::new(&[]);
    let mut browser = Browser::default();
    let _ = block_on(world.start_login(&mut browser, "", "alice"));
    let txn = browser
        .cookie_names()
        .into_iter()
        .find(|n| n.starts_with("__Host-bff-txn."));
    let txn = txn.unwrap();
    let calls = world.provider.count(Endpoint::Discovery);
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["logout_url"], "https://app.example/");
    assert!(clears_session(&answer), "{:?}", answer.set_cookies());
    assert!(
        answer.set_cookies().iter().any(|c| c.starts_with(&format!("{txn}=;"))),
        "{:?}",
        answer.set_cookies()
    );
    assert!(browser.cookie_names().is_empty());
    assert_eq!(world.provider.count(Endpoint::Discovery), calls);
    assert_eq!(world.provider.count(Endpoint::Revocation), 0);
}

/// A revocation that fails, or issuer metadata that cannot be fetched, does not fail the logout.
#[test]
fn logout_succeeds_when_revocation_fails() {
    for fault in [Fault::Refuse, Fault::Hang, Fault::Status(503), Fault::Status(400)] {
        let world = World::new(&[]);
        let mut browser = logged_in(&world, "alice");
        world.provider.fail(Endpoint::Revocation, fault);
        let answer = block_on(world.logout(&mut browser));
        assert_eq!(answer.status, StatusCode::OK, "{fault:?}");
        assert!(clears_session(&answer), "{fault:?}");
        let logout_url = answer.json()["logout_url"].as_str().unwrap().to_owned();
        assert!(
            logout_url.starts_with("https://idp.example/logout?"),
            "{fault:?}: {logout_url}"
        );
        assert_eq!(world.provider.count(Endpoint::Revocation), 1, "{fault:?}");
        assert!(
            world.log.lines().iter().any(|l| l.contains("revocation")),
            "{fault:?}: {:?}",
            world.log.lines()
        );
    }
    let world = World::new(&[]);
    let mut browser = logged_in(&world, "alice");
    world.clock.advance(3601);
    world.provider.fail(Endpoint::Discovery, Fault::Refuse);
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::OK);
    assert!(clears_session(&answer));
    assert_eq!(
        answer.json()["logout_url"],
        "https://app.example/",
        "no end-session URL known"
    );
}

/// Cookie mode with a store that fails during the logout: the session is still readable from the
/// cookie, so the logout must do what it does without a store: revoke the refresh token at the
/// provider and answer the end-session URL. Otherwise a transient store failure leaves a copy of
/// the cookie working, which is worse than having no store.
#[test]
fn logout_while_the_store_fails_still_revokes_the_refresh_token() {
    let world = World::with_store(&[("BFF_SCOPES", SCOPES)], MemoryStore::consistent);
    let mut browser = logged_in(&world, "alice");
    let mut copy = browser.clone();
    let store = world.store.as_ref().unwrap();
    store.fail_keys(Some(""));
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(clears_session(&answer));
    assert_eq!(
        world.provider.count(Endpoint::Revocation),
        1,
        "the refresh token is revoked"
    );
    let logout_url = answer.json()["logout_url"].as_str().unwrap().to_owned();
    assert!(logout_url.starts_with("https://idp.example/logout?"), "{logout_url}");
    store.fail_keys(None);
    world.clock.advance(3600);
    let answer = block_on(world.token(&mut copy, ""));
    assert_ne!(answer.status, StatusCode::OK, "a copy of the cookie still refreshes");
}

/// Cookie mode, the store failing at a logout: once the session's own read has failed, the logout
/// does not wait on the store again for a revocation entry. A hanging store costs each call its
/// full deadline and retry (about 6 s on DynamoDB), and two of them put the logout past the JS
/// client's 10 s, which then gives up: the cookies stay and the provider's logout page is never
/// reached.
#[test]
fn logout_while_the_store_fails_asks_it_once() {
    let world = World::with_store(&[("BFF_SCOPES", SCOPES)], MemoryStore::consistent);
    let mut browser = logged_in(&world, "alice");
    let store = world.store.as_ref().unwrap();
    store.fail_keys(Some(""));
    store.fail_slowly(3);
    let before = store.operations();
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(clears_session(&answer));
    assert_eq!(world.provider.count(Endpoint::Revocation), 1);
    assert_eq!(
        store.operations() - before,
        3,
        "one round of hung reads (the session's three revocation entries, read at once), then no more store calls"
    );
    assert!(
        world
            .log
            .lines()
            .iter()
            .any(|line| line.contains("without a revocation entry")),
        "{:?}",
        world.log.lines()
    );
}

// ── KV mode ──────────────────────────────────────────────────────────────────────────────────

fn kv_world() -> World {
    World::with_store(
        &[("BFF_SCOPES", SCOPES), ("BFF_SESSION_STORE", "kv")],
        MemoryStore::consistent,
    )
}

/// The only session record in the store: its key and sealed value.
fn record(world: &World) -> (String, Vec<u8>) {
    let store = world.store.as_ref().unwrap();
    let keys = store.keys("session:");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let value = block_on(store.get(&keys[0])).unwrap().unwrap();
    (keys[0].clone(), value)
}

/// KV mode end to end: the cookie holds a sealed id only; a refresh writes the record, not the
/// cookie, and every copy of the cookie sees the new tokens; sessioninfo reads the record.
#[test]
fn kv_mode_keeps_the_session_in_the_store() {
    let world = kv_world();
    let mut browser = logged_in(&world, "alice");
    let cookie = browser.cookie(SESSION).unwrap().to_owned();
    assert!(cookie.len() < 200, "a sealed id: {cookie}");
    assert!(!cookie.contains("rt-") && !cookie.contains("at-"));
    let (_, sealed) = record(&world);
    let text = String::from_utf8(sealed.clone()).unwrap();
    assert!(text.starts_with("v1.k1.") && !text.contains("rt-"), "sealed: {text}");

    let first = block_on(world.token(&mut browser, ""));
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.set_cookies().is_empty());
    assert_eq!(record(&world).1, sealed, "a plain read writes nothing");

    world.clock.advance(3600);
    let mut other_tab = browser.clone();
    let refreshed = block_on(world.token(&mut browser, ""));
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    assert_ne!(refreshed.access_token(), first.access_token());
    assert!(refreshed.set_cookies().is_empty(), "the cookie is unchanged");
    assert_eq!(browser.cookie(SESSION), Some(cookie.as_str()));
    assert_ne!(record(&world).1, sealed, "the record is rewritten");
    let shared = block_on(world.token(&mut other_tab, ""));
    assert_eq!(shared.access_token(), refreshed.access_token());
    assert_eq!(
        world.provider.refreshes(),
        1,
        "the other tab reads the new token from the record"
    );
    assert_eq!(info(&world, &mut browser).json()["sub"], "alice");
}

/// A record gone from the store is no session; a failing store answers 503 and changes nothing.
#[test]
fn kv_mode_without_the_record_or_the_store() {
    let world = kv_world();
    let mut browser = logged_in(&world, "alice");
    let store = world.store.as_ref().unwrap();
    let cookie = browser.cookie(SESSION).unwrap().to_owned();
    world.clock.advance(3600);
    store.fail_keys(Some(""));
    for answer in [info(&world, &mut browser), block_on(world.token(&mut browser, ""))] {
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
            "{}",
            answer.text()
        );
        assert_eq!(answer.header("retry-after"), Some("5"));
        assert!(answer.set_cookies().is_empty());
    }
    assert_eq!(world.provider.refreshes(), 0, "no refresh without the session");
    store.fail_keys(None);
    assert_eq!(browser.cookie(SESSION), Some(cookie.as_str()));
    assert!(alive(&world, &mut browser));
    assert_eq!(block_on(world.token(&mut browser, "")).status, StatusCode::OK);

    let (key, _) = record(&world);
    block_on(store.delete(&key)).unwrap();
    assert!(!alive(&world, &mut browser));
    assert_eq!(block_on(world.token(&mut browser, "")).error(), "invalid_session");
}

// ── Cookie key rotation ──────────────────────────────────────────────────────────────────────

/// A redeploy with `BFF_COOKIE_KEYS=new,old` opens everything sealed with the old key (sessions,
/// a login in progress) and seals anything it writes with the new one; once the old key is
/// removed, what was never re-sealed is gone.
#[test]
fn cookie_keys_rotate_without_logging_anyone_out() {
    let both = format!("{NEW_KEY},{COOKIE_KEYS}");
    let mut world = World::new(&[("BFF_SCOPES", SCOPES)]);
    let mut alice = logged_in(&world, "alice");
    let mut bob = logged_in(&world, "bob");
    let mut carol = Browser::default();
    let carols = block_on(world.start_login(&mut carol, "", "carol"));
    assert!(alice.cookie(SESSION).unwrap().starts_with("v1.k1."));
    let mut before = alice.clone();

    world.redeploy(&[("BFF_SCOPES", SCOPES), ("BFF_COOKIE_KEYS", &both)]);
    assert!(alive(&world, &mut alice) && alive(&world, &mut bob));
    let answer = block_on(world.callback(&mut carol, &carols));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    assert!(carol.cookie(SESSION).unwrap().starts_with("v1.new."));
    world.clock.advance(3600);
    let answer = block_on(world.token(&mut alice, ""));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(
        answer
            .set_cookies()
            .iter()
            .any(|c| c.starts_with(&format!("{SESSION}=v1.new."))),
        "re-sealed with the new key: {:?}",
        answer.set_cookies()
    );

    world.redeploy(&[("BFF_SCOPES", SCOPES), ("BFF_COOKIE_KEYS", NEW_KEY)]);
    assert!(alive(&world, &mut alice), "re-sealed");
    assert!(alive(&world, &mut carol), "sealed after the rotation");
    assert!(!alive(&world, &mut bob), "never re-sealed");
    assert!(!alive(&world, &mut before), "alice's cookie from before");
    assert_eq!(block_on(world.token(&mut alice, "")).status, StatusCode::OK);
}

/// Found by the fault matrix: with store writes hanging until the client's deadline, a refresh in
/// KV mode waited on the store again after every write had timed out (claim, shared rotation,
/// save, save once more: about 15 s on DynamoDB), past the JS client's 10 s. Once one call of a
/// request has hung, the rest of that request does not ask the store again.
#[test]
fn a_hanging_store_costs_a_request_one_deadline() {
    let world = kv_world();
    let mut browser = logged_in(&world, "alice");
    let first = block_on(world.token(&mut browser, "")).access_token();
    world.provider.set_expires_in(Some(serde_json::json!(20)));
    world.clock.advance(3600);
    let store = world.store.as_ref().unwrap();
    store.fail_slowly(3);
    store.fail_writes(Some(""));
    let started = world.clock.now().0;
    let answer = block_on(world.token(&mut browser, ""));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let second = answer.access_token();
    assert_ne!(second, first);
    // The claim hung (3 s); publishing skipped; the save, which must be tried, tried once (3 s).
    let waited = world.clock.now().0 - started;
    assert!(waited <= 6, "the request waited {waited} s on the store");
    // The store is back, the token due again: the session refreshes (the record still holds the
    // used refresh token; the rotation memory has the new one).
    store.fail_writes(None);
    world.clock.advance(17);
    let later = block_on(world.token(&mut browser, ""));
    assert_eq!(later.status, StatusCode::OK, "{}", later.text());
    assert_ne!(later.access_token(), second);
}

/// Found in review: a KV-mode logout whose record deletion and revocation entry both failed
/// answered 200 and cleared the cookie, while the record, refresh token and all, lived on for any
/// copy of the cookie. It is a 503 that changes nothing; the retry ends the session.
#[test]
fn a_kv_logout_that_could_not_end_the_record_is_a_503() {
    let world = kv_world();
    let mut browser = logged_in(&world, "alice");
    let copy = browser.clone();
    let store = world.store.as_ref().unwrap();
    store.fail_writes(Some(""));
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert!(answer.header("retry-after").is_some());
    assert!(answer.set_cookies().is_empty(), "the cookies stay");
    assert_eq!(world.provider.count(Endpoint::Revocation), 0);
    store.fail_writes(None);
    let answer = block_on(world.logout(&mut browser));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let mut copy = copy;
    assert_eq!(block_on(world.session_info(&mut copy)).error(), "invalid_session");
}

fn kv_settings(keys: &str) -> [(&str, &str); 3] {
    [
        ("BFF_SCOPES", SCOPES),
        ("BFF_SESSION_STORE", "kv"),
        ("BFF_COOKIE_KEYS", keys),
    ]
}

/// The same in KV mode: the records and the sealed ids open with either key while both are
/// configured; the store is re-sealed with the new key on write.
#[test]
fn cookie_keys_rotate_in_kv_mode() {
    let both = format!("{NEW_KEY},{COOKIE_KEYS}");
    let mut world = kv_world();
    let mut alice = logged_in(&world, "alice");
    world.redeploy(&kv_settings(&both));
    assert!(alive(&world, &mut alice));
    world.clock.advance(3600);
    assert_eq!(block_on(world.token(&mut alice, "")).status, StatusCode::OK);
    let (_, sealed) = record(&world);
    assert!(
        sealed.starts_with(b"v1.new."),
        "the record is re-sealed with the new key"
    );
    let mut bob = logged_in(&world, "bob");
    assert!(bob.cookie(SESSION).unwrap().starts_with("v1.new."));

    world.redeploy(&kv_settings(NEW_KEY));
    assert!(alive(&world, &mut bob));
    // Alice's cookie (a sealed id, never rewritten in KV mode) was sealed with the old key.
    assert!(!alive(&world, &mut alice));
}

// ── Back-channel logout ──────────────────────────────────────────────────────────────────────

fn backchannel(world: &World, token: &str) -> Answer {
    block_on(world.backchannel_logout(token))
}

/// Cookie mode with a store: a logout token with a `sid` ends only that session of the user
/// (with or without `sub` beside it); one with only `sub` ends all the user's sessions; other
/// users are untouched.
#[test]
fn backchannel_logout_by_sid_or_by_sub() {
    let world = World::with_store(&[], MemoryStore::consistent);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let browser = logged_in(&world, "alice");
        sessions.push((browser, world.provider.sid_of("alice").unwrap()));
    }
    let mut bob = logged_in(&world, "bob");
    world.clock.advance(1);
    let now = START + 1;

    let answer = backchannel(
        &world,
        &world.provider.logout_token(None, Some(&sessions[1].1), "j1", now),
    );
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let states: Vec<bool> = sessions.iter_mut().map(|(b, _)| alive(&world, b)).collect();
    assert_eq!(states, [true, false, true], "sid only");

    let token = world
        .provider
        .logout_token(Some("alice"), Some(&sessions[2].1), "j2", now);
    assert_eq!(backchannel(&world, &token).status, StatusCode::OK);
    let states: Vec<bool> = sessions.iter_mut().map(|(b, _)| alive(&world, b)).collect();
    assert_eq!(states, [true, false, false], "sub and sid: still only that sid");

    assert_eq!(
        backchannel(&world, &world.provider.logout_token(Some("alice"), None, "j3", now)).status,
        StatusCode::OK
    );
    let answer = info(&world, &mut sessions[0].0);
    assert_eq!(answer.error(), "invalid_session", "sub only");
    assert!(clears_session(&answer), "the ended session's cookies are cleared");
    assert!(alive(&world, &mut bob), "another user");
}

/// Without a store a stateless cookie session cannot be ended centrally: 501, nothing fetched.
#[test]
fn backchannel_logout_without_a_store_is_unsupported() {
    let world = World::new(&[]);
    let mut alice = logged_in(&world, "alice");
    let token = world.provider.logout_token(Some("alice"), None, "j1", START);
    let calls = [Endpoint::Discovery, Endpoint::Jwks].map(|e| world.provider.count(e));
    let answer = backchannel(&world, &token);
    assert_eq!(
        (answer.status, answer.error().as_str()),
        (StatusCode::NOT_IMPLEMENTED, "unsupported")
    );
    assert_eq!(
        [Endpoint::Discovery, Endpoint::Jwks].map(|e| world.provider.count(e)),
        calls
    );
    assert!(alive(&world, &mut alice));
}

/// Logout tokens that are not valid are refused with 400 and end nothing: another audience, no
/// back-channel event, a nonce, another issuer, expired, not a JWT, missing, and a signature by a
/// key the JWKS does not list.
#[test]
fn invalid_logout_tokens_are_refused() {
    let world = World::with_store(&[], MemoryStore::consistent);
    let mut alice = logged_in(&world, "alice");
    let sid = world.provider.sid_of("alice").unwrap();
    let sign = |jti: &str, edit: fn(&mut JWTClaims<Map<String, Value>>)| {
        world
            .provider
            .logout_token_with(Some("alice"), Some(&sid), jti, START, edit)
    };
    let cases = [
        (
            "aud",
            sign("b1", |c| c.audiences = Some(Audiences::AsString("other".into()))),
        ),
        (
            "events",
            sign("b2", |c| {
                c.custom.remove("events");
            }),
        ),
        (
            "wrong event",
            sign("b3", |c| {
                c.custom
                    .insert("events".into(), serde_json::json!({"https://other.example/event": {}}));
            }),
        ),
        ("nonce", sign("b4", |c| c.nonce = Some("n-1".into()))),
        ("iss", sign("b5", |c| c.issuer = Some("https://evil.example".into()))),
        (
            "expired",
            sign("b6", |c| c.expires_at = Some(UnixTimeStamp::from_secs(START - 300))),
        ),
        ("no jti", sign("", |_| {})),
        ("not a JWT", "not-a-jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (why, token) in &cases {
        let answer = backchannel(&world, token);
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{why}: {}",
            answer.text()
        );
    }
    let answer = block_on(world.send(
        &mut Browser::default(),
        bff_core::testing::request(Method::POST, "/bff/backchannel-logout", &[], Vec::new()),
        Site::Cross,
    ));
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "no logout_token at all");

    world.provider.rotate_signing_key(false);
    let unknown = world.provider.logout_token(Some("alice"), None, "b7", START);
    // The keys were fetched under 5 s ago: the limiter holds a refetch back, so the token cannot
    // be checked yet (503, the provider retries); once a refetch shows the key is not there: 400.
    assert_eq!(backchannel(&world, &unknown).status, StatusCode::SERVICE_UNAVAILABLE);
    world.clock.advance(5);
    let answer = backchannel(&world, &unknown);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "a key not in the JWKS");
    assert!(alive(&world, &mut alice), "nothing ended");
    // The valid token with the same claims, signed with the published key, works.
    let world = World::with_store(&[], MemoryStore::consistent);
    let mut alice = logged_in(&world, "alice");
    let sid = world.provider.sid_of("alice").unwrap();
    let token = world
        .provider
        .logout_token_with(Some("alice"), Some(&sid), "ok", START, |_| {});
    assert_eq!(backchannel(&world, &token).status, StatusCode::OK);
    assert!(!alive(&world, &mut alice));
}

/// Discovery or the JWKS failing, whatever the fault: 503 with `Retry-After` and nothing ended;
/// the JWKS is asked again only after the 5 s limit, then the same token works.
#[test]
fn backchannel_logout_answers_503_while_the_provider_fails() {
    for fault in Fault::ALL {
        let mut world = World::with_store(&[], MemoryStore::consistent);
        let mut alice = logged_in(&world, "alice");
        let token = world.provider.logout_token(Some("alice"), None, "j1", START);
        // A fresh instance: discovery and keys are not cached yet, this request fetches them.
        world.redeploy(&[]);
        for endpoint in [Endpoint::Discovery, Endpoint::Jwks] {
            world.provider.fail(endpoint, fault);
            let answer = backchannel(&world, &token);
            assert_eq!(
                (answer.status, answer.header("retry-after")),
                (StatusCode::SERVICE_UNAVAILABLE, Some("5")),
                "{endpoint:?} {fault:?}: {}",
                answer.text()
            );
            world.provider.heal(endpoint);
        }
        assert!(alive(&world, &mut alice), "{fault:?}");
        let jwks = world.provider.count(Endpoint::Jwks);
        let answer = backchannel(&world, &token);
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}: within 5 s");
        assert_eq!(world.provider.count(Endpoint::Jwks), jwks, "{fault:?}: rate-limited");
        world.clock.advance(5);
        assert_eq!(backchannel(&world, &token).status, StatusCode::OK, "{fault:?}");
        assert!(!alive(&world, &mut alice), "{fault:?}");
    }
}

// ── The revocation entries on the hot path ───────────────────────────────────────────────────

/// Cookie mode with a store: a token call reads the session's revocation entries (sub, sid, own
/// id) at once, and an instance believes their absence for 10 s, so the calls in between read
/// nothing from the store.
#[test]
fn revocation_entries_are_read_at_most_once_per_ten_seconds() {
    let world = World::with_store(&[], MemoryStore::consistent);
    let mut alice = logged_in(&world, "alice");
    let store = world.store.as_ref().unwrap();
    let reads = |f: &mut dyn FnMut()| {
        let before = store.operations();
        f();
        store.operations() - before
    };
    let mut call = || assert_eq!(block_on(world.token(&mut alice, "")).status, StatusCode::OK);
    assert_eq!(reads(&mut call), 3, "sub, sid and the session's id, in one round");
    assert_eq!(reads(&mut call), 0, "absent a moment ago");
    world.clock.advance(9);
    assert_eq!(reads(&mut call), 0);
    world.clock.advance(1);
    assert_eq!(reads(&mut call), 3);
}

/// A back-channel logout that another instance records ends the session here within 10 s, and
/// at once on the instance that recorded it.
#[test]
fn a_logout_recorded_elsewhere_ends_the_session_within_ten_seconds() {
    let world = World::with_store(&[], MemoryStore::consistent);
    let mut alice = logged_in(&world, "alice");
    assert!(alive(&world, &mut alice));
    let other = world.instance();
    let sid = world.provider.sid_of("alice").unwrap();
    world.clock.advance(1);
    let token = world.provider.logout_token(None, Some(&sid), "j1", START + 1);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &token)
        .finish();
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let request = bff_core::testing::request(Method::POST, "/bff/backchannel-logout", &headers, body.into_bytes());
    let answer = block_on(world.send_via(&other, &mut Browser::default(), request, Site::Cross));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let mut copy = alice.clone();
    let there = block_on(world.send_via(
        &other,
        &mut copy,
        bff_core::testing::request(
            Method::GET,
            "/.well-known/bff-sessioninfo",
            &[("x-csrf", "1"), ("sec-fetch-site", "same-origin")],
            Vec::new(),
        ),
        Site::Same,
    ));
    assert_eq!(
        there.status,
        StatusCode::BAD_REQUEST,
        "ended at once where it was recorded"
    );
    // Here the absence seen a second ago is still believed...
    assert!(alive(&world, &mut alice.clone()));
    // ...for at most 10 s from when it was seen.
    world.clock.advance(9);
    assert!(!alive(&world, &mut alice), "ended within 10 s");
}

/// Workers KV alone cannot make two isolates' refreshes single flight (its conditional write is
/// a read, then a write): two tabs asking two instances at once for keys that both need a
/// refresh present one rotating refresh token twice, and the provider revokes the grant. With a
/// coordinator per session (the `BFF_COORDINATOR` Durable Object), each key is refreshed once
/// with the token the other refresh returned, and the records live in the session's coordinator.
#[test]
fn a_session_coordinator_makes_refreshes_single_flight_across_instances() {
    for coordinated in [false, true] {
        let store = if coordinated {
            MemoryStore::with_coordinators
        } else {
            MemoryStore::eventually_consistent
        };
        let world = World::with_store(&[("BFF_SCOPES", SCOPES)], store);
        let browser = logged_in(&world, "alice");
        let other = world.instance();
        let before = world.provider.refreshes();
        let (mut here, mut there) = (browser.clone(), browser.clone());
        let headers = [("x-csrf", "1"), ("sec-fetch-site", "same-origin")];
        let elsewhere = bff_core::testing::request(
            Method::GET,
            "/.well-known/bff-token?scope=api%3Awrite",
            &headers,
            Vec::new(),
        );
        let (first, second) = block_on(futures::future::join(
            world.token(&mut here, "scope=api%3Aread"),
            world.send_via(&other, &mut there, elsewhere, Site::Same),
        ));
        if !coordinated {
            assert_eq!(world.provider.reuse_detected(), 1, "the failure a coordinator prevents");
            continue;
        }
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        assert_eq!(second.status, StatusCode::OK, "{}", second.text());
        assert_eq!(world.provider.refreshes(), before + 2, "one refresh per key");
        assert_eq!(world.provider.reuse_detected(), 0);
        let store = world.store.as_ref().unwrap();
        assert!(store.keys("rotation:").is_empty(), "nothing in KV");
        let coordinated: Vec<String> = store
            .keys("")
            .into_iter()
            .filter(|k| k.contains("|rotation:"))
            .collect();
        assert_eq!(
            coordinated.len(),
            2,
            "both rotations in the session's coordinator: {coordinated:?}"
        );
    }
}

/// A session coordinator that fails, or hangs until its deadline, leaves a deployment as it is
/// without one: the refresh happens, once, and a hung coordinator costs the request one wait,
/// after which the breaker skips the other coordination calls.
#[test]
fn a_failing_coordinator_leaves_refreshes_working() {
    for hang in [0, 3] {
        let world = World::with_store(&[("BFF_SCOPES", SCOPES)], MemoryStore::with_coordinators);
        let mut alice = logged_in(&world, "alice");
        let store = world.store.as_ref().unwrap();
        // `rotation:` and `rotating:`: the records that go to the coordinator.
        store.fail_keys(Some("rotati"));
        store.fail_slowly(hang);
        let (before, calls, started) = (world.provider.refreshes(), store.operations(), world.clock.now().0);
        let answer = block_on(world.token(&mut alice, "scope=api%3Aread"));
        assert_eq!(answer.status, StatusCode::OK, "hang {hang}: {}", answer.text());
        assert_eq!(world.provider.refreshes(), before + 1, "hang {hang}");
        assert!(store.operations() > calls, "the coordinator was asked");
        assert!(world.clock.now().0 - started <= hang, "hang {hang}: one wait at most");
        assert!(alive(&world, &mut alice));
    }
}
