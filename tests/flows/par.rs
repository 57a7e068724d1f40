//! Pushed authorization requests (RFC 9126) against the real provider. The main world's client is
//! registered with `require_pushed_authorization_requests`, so every login of its cases is a
//! pushed one; these cases look at the push itself, at a push that fails, and (in process) at a
//! `BFF_PAR` the provider's configuration contradicts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bff_tests::browser::{Answer, Browser, sessioninfo};
use bff_tests::free_port;
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use reqwest::StatusCode;
use serde_json::json;

use crate::{ACCESS_TOKEN_TTL, Case, World};

pub const ALL: &[(&str, Case)] = &[
    ("pushed_authorization_request", |world| {
        Box::pin(pushed_authorization_request(world))
    }),
    ("push_faults", |world| Box::pin(push_faults(world))),
];

type Standalone = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;
pub const IN_PROCESS_ONLY: &[(&str, Standalone)] = &[("par_mismatches", || Box::pin(par_mismatches()))];

/// The redirect to the provider names the client and the pushed request only (RFC 9126 §4); the
/// provider took a push that carried the whole authorization request, and the login completes.
async fn pushed_authorization_request(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let pushes = provider.count("pushed_authorization_request").await;
    let mut browser = Browser::new();
    let answer = browser.get(&target.url("/bff/login?prompt=login")).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let authorize = answer.location().unwrap();
    assert_eq!(authorize.path(), "/auth");
    let names: Vec<String> = authorize.query_pairs().map(|(name, _)| name.into_owned()).collect();
    assert_eq!(names, ["client_id", "request_uri"], "{authorize}");
    assert_eq!(provider.count("pushed_authorization_request").await, pushes + 1);

    let params = provider.authorization_params(&authorize).await;
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(get("client_id"), Some("bff"));
    assert_eq!(get("response_type"), Some("code"));
    assert_eq!(
        get("redirect_uri"),
        Some(format!("{}/bff/callback", target.origin).as_str())
    );
    assert_eq!(get("code_challenge_method"), Some("S256"));
    assert_eq!(get("prompt"), Some("login"));
    for name in ["scope", "state", "nonce", "code_challenge"] {
        assert!(get(name).is_some_and(|v| !v.is_empty()), "{name} pushed: {params:?}");
    }
    for secret in ["client_secret", "client_assertion"] {
        assert!(
            get(secret).is_none(),
            "client authentication is not logged as a parameter"
        );
    }

    let callback = browser.sign_in_at_provider(authorize, "paula", &target.origin).await;
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let info = sessioninfo(&mut browser, target).await;
    assert_eq!(info.json()["sub"], "paula", "{}", info.body);
}

/// A push that fails (an error status, no answer in time, a connection reset, an answer that is
/// not JSON) is the 503 page: no transaction cookie, a log line, and the next login works.
async fn push_faults(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    for fault in [
        "mode=500&path=/request",
        "mode=hang&path=/request",
        "mode=refuse&path=/request",
        "mode=garbage&path=/request",
        "mode=truncated&path=/request",
    ] {
        provider.fault_where(fault).await;
        let mut browser = Browser::new();
        let started = Instant::now();
        let answer = browser.get(&target.url("/bff/login")).await;
        let state = provider.fault_state().await;
        provider.fault("pass").await;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{fault}: BFF_HTTP_TIMEOUT bounds the push"
        );
        assert!(state["hits"].as_u64() >= Some(1), "{fault}: {state}");
        assert_unavailable(&answer, fault);
        assert!(browser.jar(&target.origin).is_empty(), "{fault}: no cookie");
    }
    let said = ["pushed authorization request failed", "request to /request failed"];
    let logs = logs_settled(target, &said).await;
    assert!(said.iter().all(|line| logs.contains(line)), "{logs}");
    bff_tests::logs::assert_no_secrets(&logs, &[], "push faults");
    crate::cases::login(target, "quinn").await;
}

/// `BFF_PAR=required` against a provider without PAR, and `BFF_PAR=off` against one that takes
/// only pushed requests: a configuration error, the 500 page, no cookie, a log line naming the
/// setting; nothing reaches the provider's authorization endpoint.
async fn par_mismatches() {
    for (provider_config, setting) in [
        (json!({"par": false}), "required"),
        (json!({"par_required": true}), "off"),
    ] {
        let port = free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let provider = Provider::start_with(&origin, "", ACCESS_TOKEN_TTL, provider_config, json!({})).await;
        let mut settings = target::settings(&provider.issuer, &origin, "");
        settings.push(("BFF_PAR".to_owned(), setting.to_owned()));
        let target = Target::start(Kind::InProcess, port, "", settings).await;
        let mut browser = Browser::new();
        let answer = browser.get(&target.url("/bff/login")).await;
        assert_eq!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{setting}: {}",
            answer.body
        );
        assert!(is_page(&answer), "{setting}");
        assert!(answer.set_cookies().is_empty(), "{setting}");
        assert!(
            target.logs().contains(&format!("BFF_PAR is {setting}")),
            "{}",
            target.logs()
        );
        assert_eq!(provider.count("pushed_authorization_request").await, 0);
        target.stop().await;
        provider.stop().await;
    }
}

fn assert_unavailable(answer: &Answer, why: &str) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{why}: {}", answer.body);
    assert!(is_page(answer), "{why}: an HTML page");
    assert_eq!(answer.header("retry-after"), Some("5"), "{why}");
    assert!(answer.set_cookies().is_empty(), "{why}: {:?}", answer.set_cookies());
}

fn is_page(answer: &Answer) -> bool {
    answer
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html")
}

/// The target's logs once they mention every one of `needles` (an emulator passes the function's
/// output on a little later), or after two seconds.
async fn logs_settled(target: &Target, needles: &[&str]) -> String {
    for _ in 0..20 {
        let logs = target.logs();
        if needles.iter().all(|needle| logs.contains(needle)) {
            return logs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    target.logs()
}
