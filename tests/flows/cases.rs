//! The cases. Each gets a fresh browser; provider counts are compared before and after, so the
//! cases of one target run one after another.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bff_tests::browser::{Answer, Browser, StoredCookie};
use bff_tests::free_port;
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::{ACCESS_TOKEN_TTL, Case, World};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub const ALL: &[(&str, Case)] = &[$((stringify!($name), |w| Box::pin($name(w)))),*];
    };
}

cases![
    configuration_and_routing,
    login_token_refresh_logout,
    rejected_token,
    csrf_refusals,
    tampered_cookies,
    callback_refusals,
    concurrent_logins,
    return_to_and_prompt,
    large_sessions,
    provider_faults,
    invalid_grant_ends_session,
];

type Standalone = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;
pub const IN_PROCESS_ONLY: &[(&str, Standalone)] = &[
    ("base_path", || Box::pin(base_path())),
    ("key_rotation_and_expiry", || Box::pin(key_rotation_and_expiry())),
];

const SESSION: &str = "__Host-bff-session";

/// Logs `user` in through the provider's real pages; returns the browser holding the session.
pub async fn login(target: &Target, user: &str) -> Browser {
    let mut browser = Browser::new();
    let callback = start_login(&mut browser, target, "", user).await;
    let answer = browser.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(answer.status, StatusCode::FOUND, "callback: {}", answer.body);
    browser
}

/// Runs `B/bff/login?<query>` and the provider's pages; returns the callback URL (unvisited).
pub async fn start_login(browser: &mut Browser, target: &Target, query: &str, user: &str) -> Url {
    let answer = browser.get(&target.url(&format!("/bff/login{query}"))).await;
    assert_eq!(answer.status, StatusCode::FOUND, "login: {}", answer.body);
    let authorize = answer.location().unwrap();
    browser.sign_in_at_provider(authorize, user, &target.origin).await
}

async fn token(browser: &mut Browser, target: &Target, query: &str) -> Answer {
    browser
        .api(
            Method::GET,
            &target.url(&format!("/.well-known/bff-token{query}")),
            None,
        )
        .await
}

fn session_cookies(browser: &mut Browser, target: &Target) -> Vec<(String, StoredCookie)> {
    browser
        .jar(&target.origin)
        .iter()
        .filter(|(n, _)| n.starts_with(SESSION))
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect()
}

fn assert_json_headers(answer: &Answer) {
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(answer.header("x-frame-options"), Some("DENY"));
    assert_eq!(answer.header("cross-origin-resource-policy"), Some("same-origin"));
    assert_eq!(answer.header("content-security-policy"), Some("sandbox"));
    assert!(
        answer
            .headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "no CORS ever"
    );
}

fn assert_error(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.json()["error"], error, "{}", answer.body);
    assert_json_headers(answer);
}

async fn configuration_and_routing(w: Arc<World>) {
    let t = &w.target;
    let mut b = Browser::new();
    let answer = b.get(&t.url("/.well-known/bff-configuration")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["bff_token_endpoint"], format!("{}/.well-known/bff-token", t.base));
    assert_eq!(
        body["bff_sessioninfo_endpoint"],
        format!("{}/.well-known/bff-sessioninfo", t.base)
    );
    assert_eq!(body["login_endpoint"], format!("{}/bff/login", t.base));
    assert_eq!(body["logout_endpoint"], format!("{}/bff/logout", t.base));
    assert_eq!(body["csrf_header"], "X-CSRF");
    assert_eq!(answer.header("cache-control"), Some("max-age=300"));
    assert_eq!(answer.header("pragma"), None);

    for path in ["/.well-known/bff-token", "/.well-known/bff-sessioninfo", "/bff/logout"] {
        let preflight = b
            .send(
                Method::OPTIONS,
                &t.url(path),
                &[
                    ("origin", "https://evil.example"),
                    ("access-control-request-method", "GET"),
                ],
                None,
                false,
            )
            .await;
        assert_error(&preflight, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    assert_error(
        &b.get(&t.url("/bff/logout")).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &b.get(&t.url("/bff/nothing-here")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let no_session = b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None).await;
    assert_error(&no_session, StatusCode::BAD_REQUEST, "invalid_session");
    assert_error(&token(&mut b, t, "").await, StatusCode::BAD_REQUEST, "invalid_session");
    // Cookie mode without a store cannot end stateless sessions: back-channel logout is off. The
    // Worker always has its KV binding, so there a bad logout token is simply refused.
    let backchannel = b
        .send(
            Method::POST,
            &t.url("/bff/backchannel-logout"),
            &[],
            Some("logout_token=x".into()),
            false,
        )
        .await;
    if t.kind == Kind::Worker || w.stand_in.is_some() {
        assert_error(&backchannel, StatusCode::BAD_REQUEST, "invalid_request");
    } else {
        assert_error(&backchannel, StatusCode::NOT_IMPLEMENTED, "unsupported");
    }
}

async fn login_token_refresh_logout(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let codes_before = p.count("authorization_code").await;
    let mut b = login(t, "alice").await;
    assert_eq!(
        p.count_settled("authorization_code", codes_before + 1).await,
        codes_before + 1
    );

    let info = b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_json_headers(&info);
    assert_eq!(info.header("cache-control"), Some("no-store"));
    let info = info.json();
    assert_eq!(info["iss"], p.issuer.as_str());
    assert_eq!(info["sub"], "alice");
    assert!(info["exp"].as_u64().unwrap() > now() + 86_000);
    assert!(info["auth_time"].is_u64(), "{info}");
    assert_eq!(info["email"], "alice@example.test");
    assert_eq!(
        info["userinfo_only"], "from-userinfo",
        "BFF_USERINFO merges UserInfo claims"
    );
    assert!(
        info.get("id_token").is_none() && info.get("access_token").is_none() && info.get("refresh_token").is_none()
    );

    let refreshes = p.count("refresh_token").await;
    let first = token(&mut b, t, "").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_json_headers(&first);
    let first = first.json();
    assert_eq!(first["token_type"], "Bearer");
    let expires_in = first["expires_in"].as_u64().unwrap();
    assert!(expires_in > 0 && expires_in <= ACCESS_TOKEN_TTL, "{expires_in}");
    assert!(
        first["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "offline_access")
    );
    let again = token(&mut b, t, "").await;
    assert_eq!(
        again.json()["access_token"],
        first["access_token"],
        "cached token returned while valid"
    );
    assert!(again.set_cookies().is_empty(), "a plain read writes nothing");
    assert_eq!(p.count("refresh_token").await, refreshes);

    // Past the refresh margin (5 s of a 10 s token): exactly one refresh at the provider.
    tokio::time::sleep(Duration::from_secs(expires_in.saturating_sub(4))).await;
    let second = token(&mut b, t, "").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    // The rotated refresh token is stored: in a new cookie, or (KV mode) in the record.
    assert_eq!(
        second.set_cookies().is_empty(),
        w.kv,
        "cookie written only in cookie mode"
    );
    let second = second.json();
    assert_ne!(second["access_token"], first["access_token"]);
    assert!(second["expires_in"].as_u64().unwrap() > 5);
    assert_eq!(p.count_settled("refresh_token", refreshes + 1).await, refreshes + 1);
    // The rotated refresh token works again (the old one would kill the grant).
    tokio::time::sleep(Duration::from_secs(
        second["expires_in"].as_u64().unwrap().saturating_sub(4),
    ))
    .await;
    let third = token(&mut b, t, "").await.json();
    assert_ne!(third["access_token"], second["access_token"]);
    assert_eq!(p.count_settled("refresh_token", refreshes + 2).await, refreshes + 2);
    assert_eq!(p.count("grant_error").await, 0, "no refresh ever failed");

    let refresh_token = p.newest_refresh_token().await;
    assert!(p.is_active(&refresh_token).await);
    let revocations = p.count("revocation").await;
    let logout = b.api(Method::POST, &t.url("/bff/logout"), None).await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    let logout_url = Url::parse(logout.json()["logout_url"].as_str().unwrap()).unwrap();
    assert!(logout_url.as_str().starts_with(&format!("{}/session/end", p.issuer)));
    let params: Vec<(String, String)> = logout_url.query_pairs().into_owned().collect();
    assert!(params.iter().any(|(k, _)| k == "id_token_hint"));
    assert!(params.contains(&("client_id".into(), "bff".into())));
    assert!(params.contains(&("post_logout_redirect_uri".into(), format!("{}/", t.origin))));
    assert!(session_cookies(&mut b, t).is_empty(), "cookies cleared");
    assert_eq!(p.count_settled("revocation", revocations + 1).await, revocations + 1);
    assert!(
        !p.is_active(&refresh_token).await,
        "the provider reports the refresh token inactive"
    );
    assert_error(&token(&mut b, t, "").await, StatusCode::BAD_REQUEST, "invalid_session");
    // Logging out without a session still answers with the post-logout URL.
    let again = b.api(Method::POST, &t.url("/bff/logout"), None).await;
    assert_eq!(again.json()["logout_url"], format!("{}/", t.origin));
}

async fn rejected_token(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let mut b = login(t, "rita").await;
    let first = token(&mut b, t, "").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshes = p.count("refresh_token").await;
    let second = token(&mut b, t, &format!("?rejected_token={first}")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let second = second.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "a rejected token is not handed out again");
    assert_eq!(p.count_settled("refresh_token", refreshes + 1).await, refreshes + 1);
    // Within 30 s the same entry is not force-refreshed again: no loop, no unlimited refreshes.
    let third = token(&mut b, t, &format!("?rejected_token={second}")).await.json();
    assert_eq!(third["access_token"], second.as_str());
    let other = token(&mut b, t, "?rejected_token=some-other-token").await.json();
    assert_eq!(other["access_token"], second.as_str());
    assert_eq!(p.count_settled("refresh_token", refreshes + 1).await, refreshes + 1);
    // POST form works the same.
    let posted = b
        .api(Method::POST, &t.url("/.well-known/bff-token"), Some("unknown=1".into()))
        .await;
    assert_eq!(posted.json()["access_token"], second.as_str());
}

async fn csrf_refusals(w: Arc<World>) {
    let t = &w.target;
    let mut b = login(t, "carol").await;
    let refusals: &[&[(&str, &str)]] = &[
        &[],
        &[("x-csrf", "0")],
        &[("x-csrf", "1"), ("origin", "https://evil.example")],
        &[("x-csrf", "1"), ("origin", "null")],
        &[("x-csrf", "1"), ("sec-fetch-site", "cross-site")],
        &[("x-csrf", "1"), ("sec-fetch-site", "same-site")],
    ];
    for path in ["/.well-known/bff-token", "/.well-known/bff-sessioninfo", "/bff/logout"] {
        let method = if path == "/bff/logout" {
            Method::POST
        } else {
            Method::GET
        };
        for headers in refusals {
            let answer = b.send(method.clone(), &t.url(path), headers, None, false).await;
            assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
            assert!(answer.set_cookies().is_empty(), "a refusal changes nothing");
        }
    }
    let own_origin = t.origin.clone();
    let ok = b
        .send(
            Method::GET,
            &t.url("/.well-known/bff-sessioninfo"),
            &[("x-csrf", "1"), ("origin", &own_origin)],
            None,
            false,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "the session survived every refusal");
}

async fn tampered_cookies(w: Arc<World>) {
    let t = &w.target;
    let mut b = login(t, "tom").await;
    let original = b
        .jar(&t.origin)
        .get(SESSION)
        .expect("single session cookie")
        .value
        .clone();
    let mid = original.len() / 2;
    let flipped = {
        let mut bytes = original.clone().into_bytes();
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let foreign_kid = original.replacen("v1.k1.", "v1.k9.", 1);
    let variants = [
        ("tampered", flipped),
        ("truncated", original[..mid].to_owned()),
        ("unknown key id", foreign_kid),
        ("empty", String::new()),
        ("garbage", "v1.k1.!!!".to_owned()),
    ];
    for (what, value) in variants {
        b.jar(&t.origin)
            .insert(SESSION.into(), StoredCookie { value, strict: true });
        let answer = b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None).await;
        assert_eq!(answer.json()["error"], "invalid_session", "{what}");
    }
    // A transaction cookie's value moved into the session cookie does not open (name-bound).
    let mut other = Browser::new();
    let login_answer = other.get(&t.url("/bff/login")).await;
    let txn = login_answer
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-bff-txn."))
        .unwrap();
    let txn_value = txn.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    b.jar(&t.origin).insert(
        SESSION.into(),
        StoredCookie {
            value: txn_value,
            strict: true,
        },
    );
    let swapped = b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None).await;
    assert_eq!(swapped.json()["error"], "invalid_session", "swapped");
    b.jar(&t.origin).insert(
        SESSION.into(),
        StoredCookie {
            value: original,
            strict: true,
        },
    );
    assert_eq!(
        b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None)
            .await
            .status,
        StatusCode::OK
    );
}

fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    let mut out = url.clone();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != name).collect();
    {
        let mut query = out.query_pairs_mut();
        query.clear();
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    out
}

async fn callback_refusals(w: Arc<World>) {
    let t = &w.target;
    let mut b = Browser::new();
    let callback = start_login(&mut b, t, "", "cathy").await;
    let txn_cookies: Vec<(String, StoredCookie)> = b
        .jar(&t.origin)
        .iter()
        .filter(|(n, _)| n.starts_with("__Host-bff-txn."))
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();

    let page = |answer: &Answer, status: StatusCode, what: &str| {
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert!(
            answer
                .header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{what}"
        );
        assert!(
            answer
                .set_cookies()
                .iter()
                .all(|c| !c.starts_with(SESSION) || c.contains("Max-Age=0")),
            "{what}: no session"
        );
    };
    page(
        &b.send(
            Method::GET,
            with_param(&callback, "state", Some("forged")).as_str(),
            &[],
            None,
            true,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "state mismatch",
    );
    page(
        &b.send(
            Method::GET,
            with_param(&callback, "iss", Some("http://evil.example")).as_str(),
            &[],
            None,
            true,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "iss mismatch",
    );
    // The iss refusal ended that transaction; start again for the rest.
    let callback = start_login(&mut b, t, "", "cathy").await;
    page(
        &b.send(
            Method::GET,
            with_param(&callback, "iss", None).as_str(),
            &[],
            None,
            true,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "iss missing",
    );
    let callback = start_login(&mut b, t, "", "cathy").await;
    let denied = with_param(&with_param(&callback, "code", None), "error", Some("access_denied"));
    let answer = b.send(Method::GET, denied.as_str(), &[], None, true).await;
    page(&answer, StatusCode::BAD_REQUEST, "provider error");
    assert!(answer.body.contains("access_denied") && answer.body.contains("/bff/login"));

    let callback = start_login(&mut b, t, "", "cathy").await;
    let txn_name = b
        .jar(&t.origin)
        .keys()
        .find(|n| n.starts_with("__Host-bff-txn."))
        .cloned()
        .unwrap();
    let txn_value = b.jar(&t.origin)[&txn_name].clone();
    let ok = b.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.body);
    page(
        &b.send(Method::GET, callback.as_str(), &[], None, true).await,
        StatusCode::BAD_REQUEST,
        "replay",
    );
    // Even with the old transaction cookie put back, the code is spent.
    b.jar(&t.origin).insert(txn_name, txn_value);
    page(
        &b.send(Method::GET, callback.as_str(), &[], None, true).await,
        StatusCode::BAD_REQUEST,
        "replay with cookie",
    );
    drop(txn_cookies);
}

async fn concurrent_logins(w: Arc<World>) {
    let t = &w.target;
    let mut b = Browser::new();
    // Two tabs start logging in before either finishes; both complete.
    let first = start_login(&mut b, t, "?return_to=/tab-one", "dave").await;
    let second = start_login(&mut b, t, "?return_to=/tab-two", "dave").await;
    let done_second = b.send(Method::GET, second.as_str(), &[], None, true).await;
    assert_eq!(done_second.status, StatusCode::FOUND, "{}", done_second.body);
    assert_eq!(done_second.header("location"), Some("/tab-two"));
    let done_first = b.send(Method::GET, first.as_str(), &[], None, true).await;
    assert_eq!(done_first.status, StatusCode::FOUND, "{}", done_first.body);
    assert_eq!(done_first.header("location"), Some("/tab-one"));
    assert_eq!(
        b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None)
            .await
            .json()["sub"],
        "dave"
    );
    // At most five transaction cookies at a time.
    for _ in 0..7 {
        assert_eq!(b.get(&t.url("/bff/login")).await.status, StatusCode::FOUND);
    }
    let txns = b
        .jar(&t.origin)
        .keys()
        .filter(|n| n.starts_with("__Host-bff-txn."))
        .count();
    assert_eq!(txns, 5);
}

async fn return_to_and_prompt(w: Arc<World>) {
    let t = &w.target;
    let mut b = Browser::new();
    for bad in [
        "//evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\\evil.example",
    ] {
        let url = format!(
            "{}?return_to={}",
            t.url("/bff/login"),
            url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
        );
        let answer = b.get(&url).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.header("location").is_none());
        assert!(answer.set_cookies().is_empty());
    }
    let long = format!("/{}", "a".repeat(1100));
    assert_eq!(
        b.get(&format!("{}?return_to={long}", t.url("/bff/login"))).await.status,
        StatusCode::BAD_REQUEST
    );

    let answer = b
        .get(&format!("{}?prompt=login&scope=extra", t.url("/bff/login")))
        .await;
    let authorize = answer.location().unwrap();
    let params: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let get = |name: &str| {
        params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("prompt"), ["login"], "a prompt here replaces the configured one");
    assert_eq!(get("response_type"), ["code"]);
    assert_eq!(get("code_challenge_method"), ["S256"]);
    assert_eq!(get("code_challenge")[0].len(), 43);
    assert!(get("state")[0].len() >= 22 && get("nonce")[0].len() >= 22);
    assert_eq!(get("redirect_uri"), [format!("{}/bff/callback", t.origin)]);
    assert_eq!(get("scope"), ["openid profile email offline_access extra"]);

    let callback = start_login(&mut b, t, "?return_to=/after%3Fx%3D1", "erin").await;
    let done = b.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(done.header("location"), Some("/after?x=1"));
    let default = start_login(&mut b, t, "", "erin").await;
    assert_eq!(
        b.send(Method::GET, default.as_str(), &[], None, true)
            .await
            .header("location"),
        Some("/")
    );
}

async fn large_sessions(w: Arc<World>) {
    let t = &w.target;
    if w.kv {
        // KV mode: the cookie holds only a sealed id, so a session the cookie budget refuses works.
        let mut b = login(t, "big-9000").await;
        let cookies = session_cookies(&mut b, t);
        assert_eq!(cookies.len(), 1);
        assert!(
            cookies[0].1.value.len() < 200,
            "only a sealed id: {}",
            cookies[0].1.value.len()
        );
        assert_eq!(
            b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None)
                .await
                .json()["sub"],
            "big-9000"
        );
        assert_eq!(token(&mut b, t, "").await.status, StatusCode::OK);
        return;
    }
    let mut b = login(t, "big-2500").await;
    let cookies = session_cookies(&mut b, t);
    let names: Vec<&str> = cookies.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [format!("{SESSION}.0"), format!("{SESSION}.1")],
        "two chunks: {names:?}"
    );
    let total: usize = cookies.iter().map(|(n, c)| n.len() + 1 + c.value.len()).sum();
    assert!(total <= 7000, "within the budget: {total}");
    assert!(cookies.iter().all(|(n, c)| n.len() + c.value.len() < 4000));
    assert_eq!(
        b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None)
            .await
            .json()["sub"],
        "big-2500"
    );
    assert_eq!(token(&mut b, t, "").await.status, StatusCode::OK);
    // A later small session deletes the stale chunks (signing out at the provider first).
    let app = t.origin.clone();
    b.jars.retain(|origin, _| *origin == app);
    let callback = start_login(&mut b, t, "", "small").await;
    let done = b.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let names: Vec<String> = session_cookies(&mut b, t).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [SESSION]);

    let mut too_big = Browser::new();
    let callback = start_login(&mut too_big, t, "", "big-9000").await;
    let answer = too_big.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("KV mode"), "{}", answer.body);
    assert!(session_cookies(&mut too_big, t).is_empty());
}

async fn provider_faults(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let mut b = login(t, "frank").await;
    let mut current = token(&mut b, t, "").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for mode in ["refuse", "500", "hang"] {
        p.fault(mode).await;
        let started = std::time::Instant::now();
        let answer = token(&mut b, t, &format!("?rejected_token={current}")).await;
        p.fault("pass").await;
        assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
        assert!(answer.header("retry-after").is_some(), "{mode}");
        assert!(answer.set_cookies().is_empty(), "{mode}: the session is unchanged");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{mode}: BFF_HTTP_TIMEOUT bounds the wait"
        );
    }
    let recovered = token(&mut b, t, &format!("?rejected_token={current}")).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.body);
    let next = recovered.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(next, current);
    current = next;
    assert_eq!(token(&mut b, t, "").await.json()["access_token"], current.as_str());

    // An outage during the callback: a 503 page, and the same callback works once it is over.
    let mut other = Browser::new();
    let callback = start_login(&mut other, t, "", "grace").await;
    p.fault("refuse").await;
    let down = other.send(Method::GET, callback.as_str(), &[], None, true).await;
    p.fault("pass").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{}", down.body);
    assert!(down.body.contains("/bff/login"));
    let up = other.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(up.status, StatusCode::FOUND, "{}", up.body);
}

async fn invalid_grant_ends_session(w: Arc<World>) {
    let t = &w.target;
    let mut b = login(t, "henry").await;
    let access = token(&mut b, t, "").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = session_cookies(&mut b, t);
    b.api(Method::POST, &t.url("/bff/logout"), None).await;
    for (name, cookie) in kept {
        b.jar(&t.origin).insert(name, cookie);
    }
    let answer = token(&mut b, t, &format!("?rejected_token={access}")).await;
    if w.kv {
        // KV mode: logout deleted the record, so the replayed cookie is no session at all.
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_session");
        return;
    }
    // Cookie mode: the stateless cookie replayed after logout carries a refresh token the
    // provider revoked.
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        answer
            .set_cookies()
            .iter()
            .any(|c| c.starts_with(&format!("{SESSION}=")) && c.contains("Max-Age=0"))
    );
    assert!(session_cookies(&mut b, t).is_empty(), "the session is ended");
}

/// Every route under `BFF_BASE_PATH=/app`.
async fn base_path() {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let provider = Provider::start(&origin, "/app", ACCESS_TOKEN_TTL).await;
    let target = Target::start(
        Kind::InProcess,
        port,
        "/app",
        target::settings(&provider.issuer, &origin, "/app"),
    )
    .await;
    let mut b = Browser::new();
    assert_eq!(
        b.get(&format!("{origin}/.well-known/bff-configuration")).await.status,
        StatusCode::NOT_FOUND
    );
    let config = b.get(&target.url("/.well-known/bff-configuration")).await.json();
    assert_eq!(config["bff_token_endpoint"], "/app/.well-known/bff-token");
    let callback = start_login(&mut b, &target, "", "ivy").await;
    assert_eq!(callback.path(), "/app/bff/callback");
    let done = b.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(done.header("location"), Some("/app/"));
    assert_eq!(token(&mut b, &target, "").await.status, StatusCode::OK);
    let logout = b.api(Method::POST, &target.url("/bff/logout"), None).await.json();
    assert!(
        logout["logout_url"]
            .as_str()
            .unwrap()
            .contains("post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A")
    );
    target.stop().await;
    provider.stop().await;
}

/// A session sealed with an old key still opens after a new key is put first; one past
/// `BFF_SESSION_MAX_AGE` does not.
async fn key_rotation_and_expiry() {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let provider = Provider::start(&origin, "", ACCESS_TOKEN_TTL).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    settings.push(("BFF_SESSION_MAX_AGE".into(), "3".into()));
    let old = Target::start(Kind::InProcess, port, "", settings.clone()).await;
    let mut b = login(&old, "jack").await;
    let cookies = session_cookies(&mut b, &old);

    let rotated_port = free_port();
    let mut rotated = settings.clone();
    for (k, v) in rotated.iter_mut() {
        if k == "BFF_COOKIE_KEYS" {
            *v = format!("k2:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA,{v}");
        }
        if k == "BFF_PUBLIC_ORIGIN" {
            *v = format!("http://127.0.0.1:{rotated_port}");
        }
    }
    let new = Target::start(Kind::InProcess, rotated_port, "", rotated.clone()).await;
    for (name, cookie) in &cookies {
        b.jar(&new.origin).insert(name.clone(), cookie.clone());
    }
    let info = b.api(Method::GET, &new.url("/.well-known/bff-sessioninfo"), None).await;
    assert_eq!(info.json()["sub"], "jack", "old key still opens: {}", info.body);
    // A backend that no longer has the old key sees no session.
    let only_new_port = free_port();
    let mut only_new = rotated.clone();
    for (k, v) in only_new.iter_mut() {
        if k == "BFF_COOKIE_KEYS" {
            *v = "k2:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA".into();
        }
        if k == "BFF_PUBLIC_ORIGIN" {
            *v = format!("http://127.0.0.1:{only_new_port}");
        }
    }
    let gone = Target::start(Kind::InProcess, only_new_port, "", only_new).await;
    for (name, cookie) in &cookies {
        b.jar(&gone.origin).insert(name.clone(), cookie.clone());
    }
    assert_eq!(
        b.api(Method::GET, &gone.url("/.well-known/bff-sessioninfo"), None)
            .await
            .json()["error"],
        "invalid_session"
    );
    // Expiry is sealed inside the cookie and checked, whatever Max-Age said.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = b.api(Method::GET, &old.url("/.well-known/bff-sessioninfo"), None).await;
    assert_eq!(expired.json()["error"], "invalid_session");
    for target in [old, new, gone] {
        target.stop().await;
    }
    provider.stop().await;
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[allow(dead_code)]
fn unused(_: Value) {}
