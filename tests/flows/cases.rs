//! The cases. Each gets a fresh browser; provider counts are compared before and after, so the
//! cases of one target run one after another.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bff_tests::browser::{Answer, Browser, FETCH_HEADERS, Site, StoredCookie, sessioninfo, token};
use bff_tests::free_port;
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::{ACCESS_TOKEN_TTL, Case, World};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        pub const ALL: &[(&str, Case)] = &[$((stringify!($name), |world| Box::pin($name(world)))),*];
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
    planted_cookies,
    login_parameter_limits,
    transaction_cookie_budget,
    body_limits,
];

type Standalone = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;
pub const IN_PROCESS_ONLY: &[(&str, Standalone)] = &[
    ("base_path", || Box::pin(base_path())),
    ("cookie_key_rotation_and_expiry", || {
        Box::pin(cookie_key_rotation_and_expiry())
    }),
];

pub const SESSION: &str = "__Host-bff-session";

/// Logs `user` in through the provider's real pages; returns the browser holding the session.
pub async fn login(target: &Target, user: &str) -> Browser {
    let mut browser = Browser::new();
    let callback = start_login(&mut browser, target, "", user).await;
    let answer = browser.visit_callback(&callback).await;
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

/// The cookies in `browser`'s jar for `target`, to replay later.
pub fn copy_jar(browser: &mut Browser, target: &Target) -> Vec<(String, StoredCookie)> {
    browser
        .jar(&target.origin)
        .iter()
        .map(|(name, cookie)| (name.clone(), cookie.clone()))
        .collect()
}

/// A browser holding exactly `jar` for `target`.
pub fn browser_with(target: &Target, jar: &[(String, StoredCookie)]) -> Browser {
    let mut browser = Browser::new();
    browser.jar(&target.origin).extend(jar.iter().cloned());
    browser
}

/// The session cookies (one, or its chunks) in `browser`'s jar for `target`.
fn session_cookies(browser: &mut Browser, target: &Target) -> Vec<(String, StoredCookie)> {
    browser
        .jar(&target.origin)
        .iter()
        .filter(|(name, _)| name.starts_with(SESSION))
        .map(|(name, cookie)| (name.clone(), cookie.clone()))
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
            .all(|name| !name.as_str().starts_with("access-control-")),
        "no CORS ever"
    );
}

fn assert_error(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.json()["error"], error, "{}", answer.body);
    assert_json_headers(answer);
}

async fn configuration_and_routing(world: Arc<World>) {
    let target = &world.target;
    let mut browser = Browser::new();
    let answer = browser.get(&target.url("/.well-known/bff-configuration")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(
        body["bff_token_endpoint"],
        format!("{}/.well-known/bff-token", target.base)
    );
    assert_eq!(
        body["bff_sessioninfo_endpoint"],
        format!("{}/.well-known/bff-sessioninfo", target.base)
    );
    assert_eq!(body["login_endpoint"], format!("{}/bff/login", target.base));
    assert_eq!(body["logout_endpoint"], format!("{}/bff/logout", target.base));
    assert_eq!(body["csrf_header"], "X-CSRF");
    assert_eq!(answer.header("cache-control"), Some("max-age=300"));
    assert_eq!(answer.header("pragma"), None);

    for path in ["/.well-known/bff-token", "/.well-known/bff-sessioninfo", "/bff/logout"] {
        let preflight = browser
            .send(
                Method::OPTIONS,
                &target.url(path),
                &[
                    ("origin", "https://evil.example"),
                    ("access-control-request-method", "GET"),
                ],
                None,
                Site::Same,
            )
            .await;
        assert_error(&preflight, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    assert_error(
        &browser.get(&target.url("/bff/logout")).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &browser.get(&target.url("/bff/nothing-here")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let no_session = sessioninfo(&mut browser, target).await;
    assert_error(&no_session, StatusCode::BAD_REQUEST, "invalid_session");
    assert_error(
        &token(&mut browser, target, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_session",
    );
    // Cookie mode without a store cannot end stateless sessions: back-channel logout is off. The
    // Worker always has its KV binding, so there a bad logout token is simply refused.
    let backchannel = browser
        .send(
            Method::POST,
            &target.url("/bff/backchannel-logout"),
            &[],
            Some("logout_token=x".into()),
            Site::Same,
        )
        .await;
    if target.kind == Kind::Worker || world.stand_in.is_some() {
        assert_error(&backchannel, StatusCode::BAD_REQUEST, "invalid_request");
    } else {
        assert_error(&backchannel, StatusCode::NOT_IMPLEMENTED, "unsupported");
    }
}

async fn login_token_refresh_logout(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let logged_before = target.logs().lines().count();
    let codes_before = provider.count("authorization_code").await;
    // Earlier cases of this world may have failed refreshes on purpose.
    let grant_errors = provider.count("grant_error").await;
    let mut browser = login(target, "alice").await;
    assert_eq!(
        provider.count_settled("authorization_code", codes_before + 1).await,
        codes_before + 1
    );

    let info = sessioninfo(&mut browser, target).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_json_headers(&info);
    assert_eq!(info.header("cache-control"), Some("no-store"));
    let info = info.json();
    assert_eq!(info["iss"], provider.issuer.as_str());
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

    let refreshes = provider.count("refresh_token").await;
    let first = token(&mut browser, target, "").await;
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
            .any(|scope| scope == "offline_access")
    );
    let again = token(&mut browser, target, "").await;
    assert_eq!(
        again.json()["access_token"],
        first["access_token"],
        "cached token returned while valid"
    );
    assert!(again.set_cookies().is_empty(), "a plain read writes nothing");
    assert_eq!(provider.count("refresh_token").await, refreshes);

    // Past the refresh margin (5 s of a 10 s token): exactly one refresh at the provider.
    tokio::time::sleep(Duration::from_secs(expires_in.saturating_sub(4))).await;
    let second = token(&mut browser, target, "").await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    // The rotated refresh token is stored: in a new cookie, or (KV mode) in the record.
    assert_eq!(
        second.set_cookies().is_empty(),
        world.kv,
        "cookie written only in cookie mode"
    );
    let second = second.json();
    assert_ne!(second["access_token"], first["access_token"]);
    assert!(second["expires_in"].as_u64().unwrap() > 5);
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1
    );
    // The rotated refresh token works again (the old one would kill the grant).
    tokio::time::sleep(Duration::from_secs(
        second["expires_in"].as_u64().unwrap().saturating_sub(4),
    ))
    .await;
    let third = token(&mut browser, target, "").await.json();
    assert_ne!(third["access_token"], second["access_token"]);
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 2).await,
        refreshes + 2
    );
    assert_eq!(
        provider.count("grant_error").await,
        grant_errors,
        "no refresh ever failed"
    );

    let refresh_token = provider.newest_refresh_token().await;
    assert!(provider.is_active(&refresh_token).await);
    let revocations = provider.count("revocation").await;
    let logout = browser.api(Method::POST, &target.url("/bff/logout"), None).await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    let logout_url = Url::parse(logout.json()["logout_url"].as_str().unwrap()).unwrap();
    assert!(
        logout_url
            .as_str()
            .starts_with(&format!("{}/session/end", provider.issuer))
    );
    let params: Vec<(String, String)> = logout_url.query_pairs().into_owned().collect();
    assert!(params.iter().any(|(name, _)| name == "id_token_hint"));
    assert!(params.contains(&("client_id".into(), "bff".into())));
    assert!(params.contains(&("post_logout_redirect_uri".into(), format!("{}/", target.origin))));
    assert!(session_cookies(&mut browser, target).is_empty(), "cookies cleared");
    assert_eq!(
        provider.count_settled("revocation", revocations + 1).await,
        revocations + 1
    );
    assert!(
        !provider.is_active(&refresh_token).await,
        "the provider reports the refresh token inactive"
    );
    assert_error(
        &token(&mut browser, target, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_session",
    );
    // Logging out without a session still answers with the post-logout URL.
    let again = browser.api(Method::POST, &target.url("/bff/logout"), None).await;
    assert_eq!(again.json()["logout_url"], format!("{}/", target.origin));

    // One JSON line per request above (login, callback, sessioninfo, five bff-token, two logouts).
    let requests = request_lines(target, logged_before, 10).await;
    for route in ["login", "callback", "bff-sessioninfo", "bff-token", "logout"] {
        assert!(requests.iter().any(|r| r["route"] == route), "{route}: {requests:?}");
    }
    assert!(
        requests
            .iter()
            .all(|r| r["request_id"].as_str().is_some_and(|id| !id.is_empty()))
    );
    let refresh = requests
        .iter()
        .find(|r| r["refresh"] == true)
        .expect("a request line with a refresh");
    let call = &refresh["provider"][0];
    assert_eq!(
        (&call["call"], &call["grant"], &call["status"]),
        (&"POST /token".into(), &"refresh_token".into(), &200.into()),
        "{refresh}"
    );
    assert!(call["ms"].is_u64() && refresh["ms"].is_u64(), "{refresh}");
    let id = refresh["request_id"].as_str().unwrap_or_default();
    let logs = target.logs();
    let line = logs
        .lines()
        .find(|line| line.contains(id) && line.contains(r#""refresh":true"#));
    eprintln!("[{}] a request line: {}", target.kind.name(), line.unwrap_or_default());
}

/// The request lines `target` logged after its first `skip` lines, once there are `wanted` of
/// them (the emulators pass the function's output on a little later). Every line the BFF wrote
/// since it started must be one JSON object (`logs::records`).
async fn request_lines(target: &Target, skip: usize, wanted: usize) -> Vec<serde_json::Value> {
    let context = format!("{} logs", target.kind.name());
    let mut requests = Vec::new();
    for _ in 0..50 {
        let logs = target.logs();
        bff_tests::logs::records(&logs, &context);
        let recent = logs.lines().skip(skip).collect::<Vec<_>>().join("\n");
        requests = bff_tests::logs::records(&recent, &context);
        requests.retain(|record| record["type"] == "request");
        if requests.len() >= wanted {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{context}: {} request lines, {wanted} wanted: {requests:?}",
        requests.len()
    );
}

async fn rejected_token(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut browser = login(target, "rita").await;
    let first = token(&mut browser, target, "").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshes = provider.count("refresh_token").await;
    let second = token(&mut browser, target, &format!("?rejected_token={first}")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let second = second.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "a rejected token is not handed out again");
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1
    );
    // Within 30 s the same entry is not force-refreshed again: no loop, no unlimited refreshes.
    let third = token(&mut browser, target, &format!("?rejected_token={second}"))
        .await
        .json();
    assert_eq!(third["access_token"], second.as_str());
    let other = token(&mut browser, target, "?rejected_token=some-other-token")
        .await
        .json();
    assert_eq!(other["access_token"], second.as_str());
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1
    );
    // POST form works the same.
    let posted = browser
        .api(
            Method::POST,
            &target.url("/.well-known/bff-token"),
            Some("unknown=1".into()),
        )
        .await;
    assert_eq!(posted.json()["access_token"], second.as_str());
}

async fn csrf_refusals(world: Arc<World>) {
    let target = &world.target;
    let mut browser = login(target, "carol").await;
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
            let answer = browser
                .send(method.clone(), &target.url(path), headers, None, Site::Same)
                .await;
            assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
            assert!(answer.set_cookies().is_empty(), "a refusal changes nothing");
        }
    }
    let own_origin = target.origin.clone();
    let ok = browser
        .send(
            Method::GET,
            &target.url("/.well-known/bff-sessioninfo"),
            &[("x-csrf", "1"), ("origin", &own_origin)],
            None,
            Site::Same,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "the session survived every refusal");
}

async fn tampered_cookies(world: Arc<World>) {
    let target = &world.target;
    let mut browser = login(target, "tom").await;
    let original = browser
        .jar(&target.origin)
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
        browser
            .jar(&target.origin)
            .insert(SESSION.into(), StoredCookie { value, strict: true });
        let answer = sessioninfo(&mut browser, target).await;
        assert_eq!(answer.json()["error"], "invalid_session", "{what}");
    }
    // A transaction cookie's value moved into the session cookie does not open (name-bound).
    let mut other = Browser::new();
    let login_answer = other.get(&target.url("/bff/login")).await;
    let txn = login_answer
        .set_cookies()
        .into_iter()
        .find(|cookie| cookie.starts_with("__Host-bff-txn."))
        .unwrap();
    let txn_value = txn.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    browser.jar(&target.origin).insert(
        SESSION.into(),
        StoredCookie {
            value: txn_value,
            strict: true,
        },
    );
    let swapped = sessioninfo(&mut browser, target).await;
    assert_eq!(swapped.json()["error"], "invalid_session", "swapped");
    browser.jar(&target.origin).insert(
        SESSION.into(),
        StoredCookie {
            value: original,
            strict: true,
        },
    );
    assert_eq!(sessioninfo(&mut browser, target).await.status, StatusCode::OK);
}

fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    let mut out = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(pair_name, _)| pair_name != name)
        .collect();
    {
        let mut query = out.query_pairs_mut();
        query.clear();
        for (pair_name, pair_value) in &pairs {
            query.append_pair(pair_name, pair_value);
        }
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    out
}

async fn callback_refusals(world: Arc<World>) {
    let target = &world.target;
    let mut browser = Browser::new();
    let callback = start_login(&mut browser, target, "", "cathy").await;
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
                .all(|cookie| !cookie.starts_with(SESSION) || cookie.contains("Max-Age=0")),
            "{what}: no session"
        );
    };
    page(
        &browser
            .visit_callback(&with_param(&callback, "state", Some("forged")))
            .await,
        StatusCode::BAD_REQUEST,
        "state mismatch",
    );
    page(
        &browser
            .visit_callback(&with_param(&callback, "iss", Some("http://evil.example")))
            .await,
        StatusCode::BAD_REQUEST,
        "iss mismatch",
    );
    // The iss refusal ended that transaction; start again for the rest.
    let callback = start_login(&mut browser, target, "", "cathy").await;
    page(
        &browser.visit_callback(&with_param(&callback, "iss", None)).await,
        StatusCode::BAD_REQUEST,
        "iss missing",
    );
    let callback = start_login(&mut browser, target, "", "cathy").await;
    let denied = with_param(&with_param(&callback, "code", None), "error", Some("access_denied"));
    let answer = browser.visit_callback(&denied).await;
    page(&answer, StatusCode::BAD_REQUEST, "provider error");
    assert!(answer.body.contains("access_denied") && answer.body.contains("/bff/login"));

    let callback = start_login(&mut browser, target, "", "cathy").await;
    let txn_name = browser
        .jar(&target.origin)
        .keys()
        .find(|name| name.starts_with("__Host-bff-txn."))
        .cloned()
        .unwrap();
    let txn_value = browser.jar(&target.origin)[&txn_name].clone();
    let ok = browser.visit_callback(&callback).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.body);
    page(
        &browser.visit_callback(&callback).await,
        StatusCode::BAD_REQUEST,
        "replay",
    );
    // Even with the old transaction cookie put back, the code is spent.
    browser.jar(&target.origin).insert(txn_name, txn_value);
    page(
        &browser.visit_callback(&callback).await,
        StatusCode::BAD_REQUEST,
        "replay with cookie",
    );
}

async fn concurrent_logins(world: Arc<World>) {
    let target = &world.target;
    let mut browser = Browser::new();
    // Two tabs start logging in before either finishes; both complete.
    let first = start_login(&mut browser, target, "?return_to=/tab-one", "dave").await;
    let second = start_login(&mut browser, target, "?return_to=/tab-two", "dave").await;
    let done_second = browser.visit_callback(&second).await;
    assert_eq!(done_second.status, StatusCode::FOUND, "{}", done_second.body);
    assert_eq!(done_second.header("location"), Some("/tab-two"));
    let done_first = browser.visit_callback(&first).await;
    assert_eq!(done_first.status, StatusCode::FOUND, "{}", done_first.body);
    assert_eq!(done_first.header("location"), Some("/tab-one"));
    assert_eq!(sessioninfo(&mut browser, target).await.json()["sub"], "dave");
    // At most five transaction cookies at a time.
    for _ in 0..7 {
        assert_eq!(browser.get(&target.url("/bff/login")).await.status, StatusCode::FOUND);
    }
    let txns = browser
        .jar(&target.origin)
        .keys()
        .filter(|name| name.starts_with("__Host-bff-txn."))
        .count();
    assert_eq!(txns, 5);
}

async fn return_to_and_prompt(world: Arc<World>) {
    let target = &world.target;
    let mut browser = Browser::new();
    for bad in [
        "//evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\\evil.example",
    ] {
        let url = format!(
            "{}?return_to={}",
            target.url("/bff/login"),
            url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
        );
        let answer = browser.get(&url).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.header("location").is_none());
        assert!(answer.set_cookies().is_empty());
    }
    let long = format!("/{}", "a".repeat(1100));
    assert_eq!(
        browser
            .get(&format!("{}?return_to={long}", target.url("/bff/login")))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    let answer = browser
        .get(&format!("{}?prompt=login&scope=extra", target.url("/bff/login")))
        .await;
    let authorize = answer.location().unwrap();
    let params = world.provider.authorization_params(&authorize).await;
    let get = |name: &str| {
        params
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("prompt"), ["login"], "a prompt here replaces the configured one");
    assert_eq!(get("response_type"), ["code"]);
    assert_eq!(get("code_challenge_method"), ["S256"]);
    assert_eq!(get("code_challenge")[0].len(), 43);
    assert!(get("state")[0].len() >= 22 && get("nonce")[0].len() >= 22);
    assert_eq!(get("redirect_uri"), [format!("{}/bff/callback", target.origin)]);
    assert_eq!(get("scope"), ["openid profile email offline_access extra"]);

    let callback = start_login(&mut browser, target, "?return_to=/after%3Fx%3D1", "erin").await;
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.header("location"), Some("/after?x=1"));
    let default = start_login(&mut browser, target, "", "erin").await;
    assert_eq!(browser.visit_callback(&default).await.header("location"), Some("/"));
}

async fn large_sessions(world: Arc<World>) {
    let target = &world.target;
    if world.kv {
        // KV mode: the cookie holds only a sealed id, so a session the cookie budget refuses works.
        let mut browser = login(target, "big-9000").await;
        let cookies = session_cookies(&mut browser, target);
        assert_eq!(cookies.len(), 1);
        assert!(
            cookies[0].1.value.len() < 200,
            "only a sealed id: {}",
            cookies[0].1.value.len()
        );
        assert_eq!(sessioninfo(&mut browser, target).await.json()["sub"], "big-9000");
        assert_eq!(token(&mut browser, target, "").await.status, StatusCode::OK);
        return;
    }
    let mut browser = login(target, "big-2500").await;
    let cookies = session_cookies(&mut browser, target);
    let names: Vec<&str> = cookies.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [format!("{SESSION}.0"), format!("{SESSION}.1")],
        "two chunks: {names:?}"
    );
    let total: usize = cookies
        .iter()
        .map(|(name, cookie)| name.len() + 1 + cookie.value.len())
        .sum();
    assert!(total <= 7000, "within the budget: {total}");
    assert!(
        cookies
            .iter()
            .all(|(name, cookie)| name.len() + cookie.value.len() < 4000)
    );
    assert_eq!(sessioninfo(&mut browser, target).await.json()["sub"], "big-2500");
    assert_eq!(token(&mut browser, target, "").await.status, StatusCode::OK);
    // A later small session deletes the stale chunks (signing out at the provider first).
    let app = target.origin.clone();
    browser.jars.retain(|origin, _| *origin == app);
    let callback = start_login(&mut browser, target, "", "small").await;
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let names: Vec<String> = session_cookies(&mut browser, target)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, [SESSION]);

    let mut too_big = Browser::new();
    let callback = start_login(&mut too_big, target, "", "big-9000").await;
    let answer = too_big.visit_callback(&callback).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("KV mode"), "{}", answer.body);
    assert!(session_cookies(&mut too_big, target).is_empty());
}

async fn provider_faults(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut browser = login(target, "frank").await;
    let mut current = token(&mut browser, target, "").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for mode in ["refuse", "500", "hang"] {
        provider.fault(mode).await;
        let started = std::time::Instant::now();
        let answer = token(&mut browser, target, &format!("?rejected_token={current}")).await;
        provider.fault("pass").await;
        assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
        assert!(answer.header("retry-after").is_some(), "{mode}");
        assert!(answer.set_cookies().is_empty(), "{mode}: the session is unchanged");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{mode}: BFF_HTTP_TIMEOUT bounds the wait"
        );
    }
    let recovered = token(&mut browser, target, &format!("?rejected_token={current}")).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.body);
    let next = recovered.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(next, current);
    current = next;
    assert_eq!(
        token(&mut browser, target, "").await.json()["access_token"],
        current.as_str()
    );

    // An outage during the callback: a 503 page, and the same callback works once it is over.
    let mut other = Browser::new();
    let callback = start_login(&mut other, target, "", "grace").await;
    provider.fault("refuse").await;
    let down = other.visit_callback(&callback).await;
    provider.fault("pass").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{}", down.body);
    assert!(down.body.contains("/bff/login"));
    let up = other.visit_callback(&callback).await;
    assert_eq!(up.status, StatusCode::FOUND, "{}", up.body);
}

async fn invalid_grant_ends_session(world: Arc<World>) {
    let target = &world.target;
    let mut browser = login(target, "henry").await;
    let access = token(&mut browser, target, "").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = session_cookies(&mut browser, target);
    browser.api(Method::POST, &target.url("/bff/logout"), None).await;
    for (name, cookie) in kept {
        browser.jar(&target.origin).insert(name, cookie);
    }
    let errors = world.provider.count("grant_error").await;
    let answer = token(&mut browser, target, &format!("?rejected_token={access}")).await;
    if world.kv || target.kind == Kind::Worker || world.stand_in.is_some() {
        // With a store (the Worker always has its KV binding) the logout wrote a revocation
        // entry, and in KV mode deleted the record: the replayed cookie is no session at all, and
        // the provider is not asked.
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_session");
        if !world.kv {
            assert!(
                answer
                    .set_cookies()
                    .iter()
                    .any(|cookie| cookie.starts_with(&format!("{SESSION}=")) && cookie.contains("Max-Age=0")),
                "the revoked cookie is cleared"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            world.provider.count("grant_error").await,
            errors,
            "no refresh was tried"
        );
        return;
    }
    // Cookie mode: the stateless cookie replayed after logout carries a refresh token the
    // provider revoked.
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        answer
            .set_cookies()
            .iter()
            .any(|cookie| cookie.starts_with(&format!("{SESSION}=")) && cookie.contains("Max-Age=0"))
    );
    assert!(session_cookies(&mut browser, target).is_empty(), "the session is ended");
}

/// `value` form-urlencoded, for a query parameter.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The value of a session kept in the one cookie `__Host-bff-session` (a small session, or any
/// KV-mode session).
fn single_session(browser: &mut Browser, target: &Target) -> String {
    let cookies = session_cookies(browser, target);
    let names: Vec<&str> = cookies.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, [SESSION], "one session cookie");
    cookies[0].1.value.clone()
}

fn is_page(answer: &Answer) -> bool {
    answer
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html")
}

/// Cookies planted beside ours by a sibling subdomain or a plain-HTTP response. Only `;` separates
/// cookies (RFC 6265bis §5.7.4): `pref=x,__Host-bff-session=<B>` is one cookie named `pref`, so
/// A stays A. Our session name sent twice is no session (neither value can be trusted). Another
/// app's odd cookies (non-ASCII bytes, a pair without `=`, an empty name) leave ours readable.
async fn planted_cookies(world: Arc<World>) {
    let target = &world.target;
    let info_url = target.url("/.well-known/bff-sessioninfo");
    let token_url = target.url("/.well-known/bff-token");
    let mut amy = login(target, "amy").await;
    let mut ben = login(target, "ben").await;
    let amy_value = single_session(&mut amy, target);
    let ben_value = single_session(&mut ben, target);
    assert_ne!(amy_value, ben_value);
    let amy_token = token(&mut amy, target, "").await.json()["access_token"].clone();
    let ben_token = token(&mut ben, target, "").await.json()["access_token"].clone();
    assert!(amy_token.is_string() && amy_token != ben_token);
    let jar = amy.cookie_header(&target.origin, Site::Same);

    // (a) A comma-planted session, before or after A's real cookies, is not a session.
    let planted = format!("pref=x,{SESSION}={ben_value}");
    for header in [format!("{planted}; {jar}"), format!("{jar}; {planted}")] {
        let info = amy
            .send_with_cookie(Method::GET, &info_url, FETCH_HEADERS, None, header.clone().into_bytes())
            .await;
        assert_eq!(info.status, StatusCode::OK, "{header}: {}", info.body);
        assert_eq!(info.json()["sub"], "amy", "a comma never starts a cookie: {header}");
        let mediated = amy
            .send_with_cookie(
                Method::GET,
                &token_url,
                FETCH_HEADERS,
                None,
                header.clone().into_bytes(),
            )
            .await;
        assert_eq!(mediated.status, StatusCode::OK, "{}", mediated.body);
        assert_eq!(mediated.json()["access_token"], amy_token, "A's token, never B's");
        assert!(mediated.set_cookies().is_empty(), "nothing rewritten");
    }
    let info = amy.api_with_planted(Method::GET, &info_url, planted.as_bytes()).await;
    assert_eq!(info.json()["sub"], "amy", "{}", info.body);
    // The planted cookie alone opens nothing.
    let mut stranger = Browser::new();
    for url in [&info_url, &token_url] {
        let answer = stranger.api_with_planted(Method::GET, url, planted.as_bytes()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_session");
    }

    // (b) The session name twice: B's value planted before or after A's, or A's own value again.
    for header in [
        format!("{SESSION}={ben_value}; {jar}"),
        format!("{jar}; {SESSION}={ben_value}"),
        format!("{jar}; {SESSION}={amy_value}"),
    ] {
        for url in [&info_url, &token_url] {
            let answer = amy
                .send_with_cookie(Method::GET, url, FETCH_HEADERS, None, header.clone().into_bytes())
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{header}: {url}: {}",
                answer.body
            );
            assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_session");
        }
    }
    // Two `Cookie` fields, A's and a planted `__Host-bff-session=<B>`: never B. The core reads
    // every field as one list and refuses the name twice (in process). workerd joins the two
    // fields with ", " before the Worker sees them, so B's pair becomes part of A's value, which
    // then opens nothing. The cargo-lambda emulator builds the event's `cookies` from the first
    // field only and lambda_http replaces every `Cookie` field with them: the planted one is gone
    // and A answers.
    let planted_field = format!("{SESSION}={ben_value}");
    let info = amy
        .send(
            Method::GET,
            &info_url,
            &[FETCH_HEADERS[0], FETCH_HEADERS[1], ("cookie", &planted_field)],
            None,
            Site::Same,
        )
        .await;
    assert_ne!(info.json()["sub"], "ben", "{}", info.body);
    match target.kind {
        Kind::InProcess | Kind::Worker => assert_error(&info, StatusCode::BAD_REQUEST, "invalid_session"),
        Kind::Lambda => assert_eq!(info.json()["sub"], "amy", "{}", info.body),
    }
    // A's session in one field and another app's cookie in a second: A, except on the Worker,
    // where workerd's ", " join makes A's value `<A>, theme=dark`, which opens nothing. (A
    // browser sends one Cookie field over HTTP/1.1; HTTP/2 cookie crumbs are joined with "; "
    // before they reach an HTTP/1.1 hop, RFC 9113 §8.2.3.)
    let info = amy
        .send(
            Method::GET,
            &info_url,
            &[FETCH_HEADERS[0], FETCH_HEADERS[1], ("cookie", "theme=dark")],
            None,
            Site::Same,
        )
        .await;
    match target.kind {
        Kind::InProcess | Kind::Lambda => {
            assert_eq!(info.status, StatusCode::OK, "two Cookie fields: {}", info.body);
            assert_eq!(info.json()["sub"], "amy");
        }
        Kind::Worker => assert_error(&info, StatusCode::BAD_REQUEST, "invalid_session"),
    }
    // The refusals ended nothing: each session, sent once, still answers for its user.
    for (browser, user) in [(&mut amy, "amy"), (&mut ben, "ben")] {
        let info = browser.api(Method::GET, &info_url, None).await;
        assert_eq!(info.json()["sub"], user, "{}", info.body);
    }

    // (c) Another app's cookies beside the session. Pairs without `=` or without a name are
    // skipped by the core on every target.
    for raw in [&b"flag; =novalue"[..], b"=; flag; x=1"] {
        let what = String::from_utf8_lossy(raw);
        let info = amy.api_with_planted(Method::GET, &info_url, raw).await;
        assert_eq!(info.status, StatusCode::OK, "{what}: {}", info.body);
        assert_eq!(info.json()["sub"], "amy", "{what}");
    }
    // Non-ASCII bytes in another app's cookie. The core works on bytes and skips such pairs
    // (in process: always A). The runtimes in front of it differ (observed with the pinned
    // workerd 1.20260426.1 and cargo-lambda 1.9.2):
    // - workerd hands header values to JS decoded as UTF-8 (a byte that is not UTF-8 becomes
    //   U+FFFD); the Worker adapter turns them back into their UTF-8 bytes, so every such cookie
    //   reaches the core, which skips it: A answers.
    // - the cargo-lambda emulator reads the Cookie header with `to_str()`, which refuses any
    //   non-ASCII byte, and then sends an empty `cookies` list: no session (400). A byte that is
    //   not UTF-8 makes the emulator itself answer 500 (its event is JSON text); the function
    //   never runs. (API Gateway builds the event itself; this is the emulator's limit.)
    // What holds everywhere: never another user's session, nothing is written, and the session
    // answers again as soon as the odd cookie is gone.
    use Seen::{EmulatorError, NoSession, Session};
    let odd: [(&[u8], [Seen; 3]); 3] = [
        // [in process, Lambda, Worker]
        ("app=café; flag; =novalue".as_bytes(), [Session, NoSession, Session]),
        (b"legacy=caf\xe9; =; flag", [Session, EmulatorError, Session]),
        (
            "t=\u{2603}; other=\u{e9}t\u{e9}".as_bytes(),
            [Session, NoSession, Session],
        ),
    ];
    for (raw, outcomes) in odd {
        let what = String::from_utf8_lossy(raw);
        let expected = match target.kind {
            Kind::InProcess => outcomes[0],
            Kind::Lambda => outcomes[1],
            Kind::Worker => outcomes[2],
        };
        for (url, place) in [
            (&info_url, Place::First),
            (&info_url, Place::Last),
            (&token_url, Place::First),
        ] {
            let answer = match place {
                Place::First => amy.api_with_planted(Method::GET, url, raw).await,
                Place::Last => {
                    let mut header = jar.clone().into_bytes();
                    header.extend_from_slice(b"; ");
                    header.extend_from_slice(raw);
                    amy.send_with_cookie(Method::GET, url, FETCH_HEADERS, None, header)
                        .await
                }
            };
            let place = match place {
                Place::First => "first",
                Place::Last => "last",
            };
            assert_ne!(answer.json()["sub"], "ben", "{what}: never another session");
            assert_ne!(
                answer.json()["access_token"],
                ben_token,
                "{what}: never another session"
            );
            assert!(answer.set_cookies().is_empty(), "{what}: nothing written");
            let holds = if url == &token_url {
                match expected {
                    Session => answer.status == StatusCode::OK && answer.json()["access_token"] == amy_token,
                    _ => expected.holds(&answer, ""),
                }
            } else {
                expected.holds(&answer, "amy")
            };
            assert!(
                holds,
                "{url} with {what} {place}: expected {expected:?}, got {} {}",
                answer.status, answer.body
            );
        }
        let info = amy.api(Method::GET, &info_url, None).await;
        assert_eq!(info.json()["sub"], "amy", "{what}: the session survives: {}", info.body);
    }
}

/// Where in the Cookie header the planted cookies go: before the jar's, or after them.
#[derive(Clone, Copy)]
enum Place {
    First,
    Last,
}

/// What a target answers for a Cookie header with another app's odd cookie beside a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// The session, as without the odd cookie.
    Session,
    /// 400 `invalid_session`: the runtime dropped the Cookie header before the core saw it.
    NoSession,
    /// The Lambda emulator's own 500 (not the backend's JSON error): the function never ran.
    EmulatorError,
}

impl Seen {
    fn holds(self, answer: &Answer, user: &str) -> bool {
        match self {
            Self::Session => answer.status == StatusCode::OK && answer.json()["sub"] == user,
            Self::NoSession => answer.status == StatusCode::BAD_REQUEST && answer.json()["error"] == "invalid_session",
            Self::EmulatorError => {
                answer.status == StatusCode::INTERNAL_SERVER_ERROR && answer.json()["error"].is_null()
            }
        }
    }
}

/// `GET /bff/login` refuses parameters that would make its transaction cookie (or the
/// authorization request) unbounded: more than 10 resources, a resource over 512 bytes or not
/// an absolute URI, more than 1024 bytes of extra scope, a `prompt` that is not OpenID Connect's.
/// Every refusal is a 400 page that sets no cookie.
async fn login_parameter_limits(world: Arc<World>) {
    let target = &world.target;
    let mut browser = Browser::new();
    let login_url = |query: &str| format!("{}?{query}", target.url("/bff/login"));
    let resources = |count: usize| {
        (0..count)
            .map(|index| format!("resource={}", encode(&format!("https://api-{index}.test/"))))
            .collect::<Vec<_>>()
            .join("&")
    };
    let resource_of = |len: usize| {
        let base = "https://api.test/";
        format!(
            "resource={}",
            encode(&format!("{base}{}", "r".repeat(len - base.len())))
        )
    };
    let refused = [
        ("11 resources", resources(11)),
        ("a 600-byte resource", resource_of(600)),
        ("a 513-byte resource", resource_of(513)),
        ("a relative resource", "resource=%2Fapi".to_owned()),
        (
            "a resource with a fragment",
            format!("resource={}", encode("https://api.test/#x")),
        ),
        ("a 1100-byte scope", format!("scope={}", "s".repeat(1100))),
        ("a 1025-byte scope", format!("scope={}", "s".repeat(1025))),
        (
            "two scopes over 1024 bytes together",
            format!("scope={}&scope={}", "s".repeat(600), "t".repeat(600)),
        ),
        ("prompt=evil", "prompt=evil".to_owned()),
        ("prompt=login evil", "prompt=login%20evil".to_owned()),
        ("an empty prompt", "prompt=".to_owned()),
        ("prompt twice", "prompt=login&prompt=consent".to_owned()),
    ];
    for (what, query) in refused {
        let answer = browser.get(&login_url(&query)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}: {}", answer.body);
        assert!(is_page(&answer), "{what}: an HTML page");
        assert!(answer.body.contains("/bff/login"), "{what}: a way to start again");
        assert!(answer.header("location").is_none(), "{what}");
        assert!(answer.set_cookies().is_empty(), "{what}: no transaction");
    }
    assert!(browser.jar(&target.origin).is_empty());

    let accepted = [
        ("10 resources", resources(10), None),
        ("a 512-byte resource", resource_of(512), None),
        ("a 1024-byte scope", format!("scope={}", "s".repeat(1024)), None),
        (
            "prompt=login consent",
            "prompt=login%20consent".to_owned(),
            Some("login consent"),
        ),
        (
            "prompt=select_account",
            "prompt=select_account".to_owned(),
            Some("select_account"),
        ),
        ("prompt=none", "prompt=none".to_owned(), Some("none")),
    ];
    for (what, query, prompt) in accepted {
        let answer = browser.get(&login_url(&query)).await;
        if prompt == Some("select_account") && answer.status == StatusCode::BAD_REQUEST {
            // oidc-provider has no select_account: it refuses the pushed request (RFC 9126
            // §2.3), and the page shows its answer, not a refusal of the backend's own.
            let shown = "The sign-in service answered invalid_request: unsupported prompt value requested";
            assert!(answer.body.contains(shown), "{what}: {}", answer.body);
            assert!(answer.set_cookies().is_empty(), "{what}: no transaction");
            continue;
        }
        assert_eq!(answer.status, StatusCode::FOUND, "{what}: {}", answer.body);
        let authorize = answer.location().unwrap();
        assert!(authorize.as_str().starts_with(&world.provider.issuer), "{what}");
        let params = world.provider.authorization_params(&authorize).await;
        let prompts: Vec<&str> = params
            .iter()
            .filter(|(key, _)| key == "prompt")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(prompts, [prompt.unwrap_or("consent")], "{what}: one prompt");
        if what == "10 resources" {
            assert_eq!(params.iter().filter(|(key, _)| key == "resource").count(), 10);
        }
        assert!(
            answer
                .set_cookies()
                .iter()
                .any(|cookie| cookie.starts_with("__Host-bff-txn.")),
            "{what}: a transaction"
        );
    }
}

/// The transaction cookies stay bounded however many logins a page (or another site, with
/// top-level navigations) starts: at most 5, at most 2,500 bytes together, the oldest dropped
/// first; one that alone would pass 2,500 bytes is refused. The session beside them is untouched
/// and the newest login still completes.
async fn transaction_cookie_budget(world: Arc<World>) {
    let target = &world.target;
    let txns = |browser: &mut Browser| -> Vec<(String, usize)> {
        browser
            .jar(&target.origin)
            .iter()
            .filter(|(name, _)| name.starts_with("__Host-bff-txn."))
            .map(|(name, cookie)| (name.clone(), name.len() + 1 + cookie.value.len()))
            .collect()
    };
    let mut browser = login(target, "tara").await;
    // Starts a login; returns its authorization URL and the transaction cookies it deleted.
    let begin = async |browser: &mut Browser, query: &str| {
        let answer = browser.get(&target.url(&format!("/bff/login{query}"))).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
        let txn_cookies: Vec<String> = answer
            .set_cookies()
            .into_iter()
            .filter(|cookie| cookie.starts_with("__Host-bff-txn."))
            .collect();
        let name = |cookie: &String| cookie.split('=').next().unwrap().to_owned();
        let created: Vec<String> = txn_cookies
            .iter()
            .filter(|cookie| !cookie.contains("Max-Age=0"))
            .map(name)
            .collect();
        assert_eq!(created.len(), 1, "one new transaction: {txn_cookies:?}");
        assert!(
            browser.jar(&target.origin).contains_key(&created[0]),
            "the newest transaction is kept"
        );
        let deleted: Vec<String> = txn_cookies
            .iter()
            .filter(|cookie| cookie.contains("Max-Age=0"))
            .map(name)
            .collect();
        (answer.location().unwrap(), deleted)
    };
    // Small transactions: the count limit.
    for _ in 0..7 {
        begin(&mut browser, "").await;
    }
    assert_eq!(txns(&mut browser).len(), 5);
    let small = txns(&mut browser)[0].1;

    // Large ones (five ~100-byte resources and a 100-byte return_to each): the byte budget.
    let resources: String = (0..5)
        .map(|index| {
            let uri = format!("https://api-{index}.test/{}", "r".repeat(80));
            format!("&resource={}", encode(&uri))
        })
        .collect();
    let return_to = format!("/{}", "p".repeat(99));
    let big = format!("?return_to={return_to}{resources}");
    let mut authorize = None;
    let mut one = 0;
    let mut budget_bound = false;
    for round in 0..8 {
        let before: BTreeMap<String, usize> = txns(&mut browser).into_iter().collect();
        let (url, deleted) = begin(&mut browser, &big).await;
        authorize = Some(url);
        let list = txns(&mut browser);
        let total: usize = list.iter().map(|(_, size)| size).sum();
        assert!(total <= 2500, "round {round}: {total} bytes of transaction cookies");
        assert!(list.len() <= 5, "round {round}: {} transactions", list.len());
        one = list.iter().map(|(_, size)| *size).max().unwrap();
        // Only what had to go went: each deleted one would not have fitted beside the rest.
        // (Which ones go among those started in the same second is the backend's choice.)
        budget_bound |= !deleted.is_empty() && list.len() < 5;
        for name in deleted {
            let size = before[&name];
            assert!(
                list.len() == 5 || total + size > 2500,
                "round {round}: {name} ({size} bytes) deleted beside {total} bytes in {} cookies",
                list.len()
            );
        }
    }
    let list = txns(&mut browser);
    assert!(one > 1000 && one > 3 * small, "a large transaction: {one} bytes");
    let total: usize = list.iter().map(|(_, size)| size).sum();
    assert!(
        budget_bound,
        "the byte budget, not only the count, deleted some: {list:?}"
    );
    eprintln!(
        "[{}] transaction cookies: small {small} bytes, large {one} bytes; {} kept, {total} bytes",
        target.kind.name(),
        list.len()
    );

    // A transaction that alone passes the budget: a 400 page, and the others stay.
    let huge_resources: String = (0..5)
        .map(|index| {
            let uri = format!("https://api-{index}.test/{}", "r".repeat(200 - 18));
            format!("&resource={}", encode(&uri))
        })
        .collect();
    let huge = format!("?return_to=/{}{huge_resources}", "p".repeat(899));
    let answer = browser.get(&target.url(&format!("/bff/login{huge}"))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(is_page(&answer));
    assert!(answer.set_cookies().is_empty(), "nothing set or deleted");
    assert_eq!(txns(&mut browser), list);

    // The session beside them still works.
    let info = sessioninfo(&mut browser, target).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.json()["sub"], "tara");
    assert_eq!(token(&mut browser, target, "").await.status, StatusCode::OK);
    // And the newest login completes.
    let callback = browser
        .sign_in_at_provider(authorize.unwrap(), "tara", &target.origin)
        .await;
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    assert_eq!(done.header("location"), Some(return_to.as_str()));
    assert_eq!(txns(&mut browser).len(), list.len() - 1, "its transaction is spent");
    let info = sessioninfo(&mut browser, target).await;
    assert_eq!(info.json()["sub"], "tara", "{}", info.body);
}

/// Request bodies over 16 KiB are answered 413 before anything else is done (CSRF, session,
/// logout token), whatever the route, and the backend keeps serving.
async fn body_limits(world: Arc<World>) {
    let target = &world.target;
    let mut browser = login(target, "bodo").await;
    let mib = "a".repeat(1 << 20);
    let too_large = |answer: &Answer, what: &str| {
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{what}: {}", answer.body);
        assert_eq!(answer.json()["error"], "invalid_request", "{what}: {}", answer.body);
        assert_json_headers(answer);
        assert!(answer.set_cookies().is_empty(), "{what}: nothing changed");
    };
    // Sent as a browser would, reading the early 413 while the upload is still going on.
    let token_url = target.url("/.well-known/bff-token");
    too_large(
        &browser.post_oversized(&token_url, FETCH_HEADERS, mib.as_bytes()).await,
        "token",
    );
    too_large(
        &browser.post_oversized(&token_url, &[], mib.as_bytes()).await,
        "token without CSRF headers",
    );
    too_large(
        &browser
            .post_oversized(
                &target.url("/bff/backchannel-logout"),
                &[],
                format!("logout_token={mib}").as_bytes(),
            )
            .await,
        "back-channel logout",
    );
    too_large(
        &browser
            .post_oversized(&target.url("/bff/logout"), FETCH_HEADERS, mib.as_bytes())
            .await,
        "logout",
    );
    // At the limit the body is read (and its unknown fields ignored); one byte more is not.
    let limit = bff_core::MAX_REQUEST_BODY;
    let at_limit = format!("pad={}", "a".repeat(limit - 4));
    let answer = browser.api(Method::POST, &token_url, Some(at_limit.clone())).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{} bytes: {}",
        at_limit.len(),
        answer.body
    );
    too_large(
        &browser
            .post_oversized(&token_url, FETCH_HEADERS, format!("{at_limit}a").as_bytes())
            .await,
        "one byte over",
    );

    // The backend keeps serving, and the session (the refused logout ended nothing) too.
    let config = browser.get(&target.url("/.well-known/bff-configuration")).await;
    assert_eq!(config.status, StatusCode::OK);
    let info = sessioninfo(&mut browser, target).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.json()["sub"], "bodo");
    assert_eq!(token(&mut browser, target, "").await.status, StatusCode::OK);
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
    let mut browser = Browser::new();
    assert_eq!(
        browser
            .get(&format!("{origin}/.well-known/bff-configuration"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let config = browser.get(&target.url("/.well-known/bff-configuration")).await.json();
    assert_eq!(config["bff_token_endpoint"], "/app/.well-known/bff-token");
    let callback = start_login(&mut browser, &target, "", "ivy").await;
    assert_eq!(callback.path(), "/app/bff/callback");
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.header("location"), Some("/app/"));
    assert_eq!(token(&mut browser, &target, "").await.status, StatusCode::OK);
    let logout = browser.api(Method::POST, &target.url("/bff/logout"), None).await.json();
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
async fn cookie_key_rotation_and_expiry() {
    /// The key put first in `BFF_COOKIE_KEYS`, in front of the one the session was sealed with.
    const NEW_COOKIE_KEY: &str = "k2:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA";
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let provider = Provider::start(&origin, "", ACCESS_TOKEN_TTL).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    settings.push(("BFF_SESSION_MAX_AGE".into(), "3".into()));
    let old = Target::start(Kind::InProcess, port, "", settings.clone()).await;
    let mut browser = login(&old, "jack").await;
    let cookies = session_cookies(&mut browser, &old);

    let rotated_port = free_port();
    let mut rotated = settings.clone();
    for (key, value) in rotated.iter_mut() {
        if key == "BFF_COOKIE_KEYS" {
            *value = format!("{NEW_COOKIE_KEY},{value}");
        }
        if key == "BFF_PUBLIC_ORIGIN" {
            *value = format!("http://127.0.0.1:{rotated_port}");
        }
    }
    let new = Target::start(Kind::InProcess, rotated_port, "", rotated.clone()).await;
    for (name, cookie) in &cookies {
        browser.jar(&new.origin).insert(name.clone(), cookie.clone());
    }
    let info = sessioninfo(&mut browser, &new).await;
    assert_eq!(info.json()["sub"], "jack", "old key still opens: {}", info.body);
    // A backend that no longer has the old key sees no session.
    let only_new_port = free_port();
    let mut only_new = rotated.clone();
    for (key, value) in only_new.iter_mut() {
        if key == "BFF_COOKIE_KEYS" {
            *value = NEW_COOKIE_KEY.into();
        }
        if key == "BFF_PUBLIC_ORIGIN" {
            *value = format!("http://127.0.0.1:{only_new_port}");
        }
    }
    let gone = Target::start(Kind::InProcess, only_new_port, "", only_new).await;
    for (name, cookie) in &cookies {
        browser.jar(&gone.origin).insert(name.clone(), cookie.clone());
    }
    assert_eq!(
        sessioninfo(&mut browser, &gone).await.json()["error"],
        "invalid_session"
    );
    // Expiry is sealed inside the cookie and checked, whatever Max-Age said.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = sessioninfo(&mut browser, &old).await;
    assert_eq!(expired.json()["error"], "invalid_session");
    for target in [old, new, gone] {
        target.stop().await;
    }
    provider.stop().await;
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since_epoch| since_epoch.as_secs())
        .unwrap_or(0)
}
