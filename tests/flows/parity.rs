//! Parity: the same scripted requests against the Lambda and the Worker give the same statuses,
//! the same JSON bodies (token values, times and origins aside) and the same cookie names and
//! attributes.

use bff_tests::browser::{Answer, Browser, Site, sessioninfo, token};
use bff_tests::free_port;
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ACCESS_TOKEN_TTL;
use crate::mediation::{ClientAuth, ClientKey};

/// One normalised line per step.
async fn transcript(kind: Kind) -> Vec<String> {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    // Both sign their client assertions with RS256: the one key type the mediation worlds leave
    // to the Lambda is also run in the Worker's wasm here.
    let auth = ClientAuth::private_key_jwt(ClientKey::Rsa);
    let provider = Provider::start_with(&origin, "", ACCESS_TOKEN_TTL, json!({}), auth.metadata.clone()).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    auth.apply(&mut settings);
    let target = Target::start(kind, port, "", settings).await;
    let mut browser = Browser::new();
    let mut lines = Vec::new();
    let mut record = |step: &str, answer: &Answer| {
        lines.push(normalise(step, answer, &[&origin, &provider.issuer]));
    };
    record(
        "configuration",
        &browser.get(&target.url("/.well-known/bff-configuration")).await,
    );
    record("sessioninfo, no session", &sessioninfo(&mut browser, &target).await);
    record(
        "token, no csrf",
        &browser.get(&target.url("/.well-known/bff-token")).await,
    );
    record(
        "options",
        &browser
            .send(
                Method::OPTIONS,
                &target.url("/.well-known/bff-token"),
                &[],
                None,
                Site::Same,
            )
            .await,
    );
    record("unknown", &browser.get(&target.url("/bff/unknown")).await);
    record(
        "bad return_to",
        &browser.get(&target.url("/bff/login?return_to=//evil.example")).await,
    );
    let login = browser.get(&target.url("/bff/login?return_to=/here")).await;
    record("login", &login);
    let callback = browser
        .sign_in_at_provider(login.location().unwrap(), "pat", &target.origin)
        .await;
    record("callback", &browser.visit_callback(&callback).await);
    record("callback replay", &browser.visit_callback(&callback).await);
    record("sessioninfo", &sessioninfo(&mut browser, &target).await);
    record("token", &token(&mut browser, &target, "").await);
    record(
        "token, ungranted scope",
        &token(&mut browser, &target, "?scope=admin").await,
    );
    record(
        "logout",
        &browser.api(Method::POST, &target.url("/bff/logout"), None).await,
    );
    record("token after logout", &token(&mut browser, &target, "").await);
    target.stop().await;
    provider.stop().await;
    lines
}

fn normalise(step: &str, answer: &Answer, origins: &[&str]) -> String {
    let mut headers: Vec<String> = [
        "content-type",
        "cache-control",
        "pragma",
        "location",
        "retry-after",
        "allow",
    ]
    .iter()
    .filter(|name| !(step == "login" && **name == "location"))
    .filter_map(|name| answer.header(name).map(|value| format!("{name}={value}")))
    .collect();
    headers.extend(
        answer
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control"))
            .map(|name| name.to_string()),
    );
    let cookies: Vec<String> = answer
        .set_cookies()
        .iter()
        .map(|cookie| {
            let mut parts = cookie.split(';').map(str::trim);
            let name = parts
                .next()
                .and_then(|pair| pair.split_once('='))
                .map(|(name, _)| name)
                .unwrap_or_default();
            let name = if name.starts_with("__Host-bff-txn.") {
                "__Host-bff-txn.<id>"
            } else {
                name
            };
            let attributes: Vec<String> = parts
                .map(|attribute| match attribute.split_once('=') {
                    Some(("Max-Age", value)) if value != "0" && value != "600" => "Max-Age=<remaining>".to_owned(),
                    _ => attribute.to_owned(),
                })
                .collect();
            format!("{name}; {}", attributes.join("; "))
        })
        .collect();
    let body = match serde_json::from_str::<Value>(&answer.body) {
        Ok(mut json) => {
            for field in ["access_token", "exp", "auth_time", "expires_in", "logout_url"] {
                if let Some(value) = json.get_mut(field) {
                    *value = Value::String(format!("<{field}>"));
                }
            }
            json.to_string()
        }
        Err(_) => format!("<{} bytes of text>", if answer.body.is_empty() { 0 } else { 1 }),
    };
    let mut line = format!(
        "{step}: {} {body} [{}] cookies {cookies:?}",
        answer.status,
        headers.join(", ")
    );
    for origin in origins {
        line = line.replace(origin, "<origin>");
    }
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_and_worker_answer_alike() {
    if !(crate::enabled(Kind::Lambda) && crate::enabled(Kind::Worker)) {
        eprintln!("parity needs both the lambda and the worker target; skipped");
        return;
    }
    let lambda = transcript(Kind::Lambda).await;
    let worker = transcript(Kind::Worker).await;
    for (lambda_line, worker_line) in lambda.iter().zip(&worker) {
        assert_eq!(lambda_line, worker_line, "lambda and worker differ");
    }
    assert_eq!(lambda.len(), worker.len());
    // The code exchange, authenticated with the RS256 client assertion, succeeded on both.
    assert!(
        lambda.iter().any(|line| line.starts_with("callback: 302")),
        "{lambda:#?}"
    );
    assert!(lambda.iter().any(|line| line.starts_with("token: 200")), "{lambda:#?}");
}
