//! One suite, three targets: every case runs against the core in-process, the Lambda handler
//! under `cargo lambda watch`, and the Worker under `wrangler dev`, each facing a real, strict
//! `oidc-provider`. A failure names its target and case.
//!
//! `BFF_TEST_TARGETS=in-process,lambda` narrows the targets (all three by default);
//! `BFF_TEST_CASES=planted_cookies,body_limits` runs only the cases so named (while working on
//! them: the worlds still start, and the in-process-only cases still run).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test
#![allow(clippy::disallowed_methods)] // the suite reads URLs the backend built with the plain parser

mod cases;
mod dpop;
mod faults;
mod mediation;
mod par;
mod parity;
mod store_modes;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bff_tests::free_port;
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use serde_json::json;
use store_modes::Sessions;

/// Access tokens live this long at the test provider.
pub const ACCESS_TOKEN_TTL: u64 = 10;

pub struct World {
    pub provider: Provider,
    pub target: Target,
    /// Sessions in the store (`BFF_SESSION_STORE=kv`).
    pub kv: bool,
    /// The target's settings, to start a twin instance of the same deployment.
    pub settings: Vec<(String, String)>,
    /// The DynamoDB stand-in this world's store lives in, if any.
    pub stand_in: Option<bff_tests::dynamodb::StandIn>,
}

type Case = fn(Arc<World>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

impl World {
    pub async fn stop(self) {
        self.target.stop().await;
        self.provider.stop().await;
        if let Some(stand_in) = self.stand_in {
            stand_in.stop().await;
        }
    }
}

/// Runs `cases` one after another against `world`, then stops it. Returns the failed cases'
/// names; each line of progress names `label` (the target, and the world's mode).
pub async fn run_cases(label: &str, world: World, cases: &[(&'static str, Case)]) -> Vec<&'static str> {
    let world = Arc::new(world);
    let mut failures = Vec::new();
    let chosen = std::env::var("BFF_TEST_CASES").ok();
    let chosen = |name: &str| {
        chosen
            .as_ref()
            .is_none_or(|list| list.split(',').any(|listed| listed.trim() == name))
    };
    for (name, case) in cases.iter().filter(|(name, _)| chosen(name)) {
        let started = std::time::Instant::now();
        let ok = tokio::spawn(case(Arc::clone(&world))).await.is_ok();
        let verdict = if ok { "ok" } else { "FAILED" };
        eprintln!(
            "[{label}] {name} ... {verdict} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        if !ok {
            failures.push(*name);
        }
    }
    // Whatever the cases made it log, every line the BFF wrote is one JSON object.
    let logs = world.target.logs();
    if std::panic::catch_unwind(|| bff_tests::logs::records(&logs, label)).is_err() {
        failures.push("structured logs");
    }
    if let Ok(world) = Arc::try_unwrap(world) {
        world.stop().await;
    }
    failures
}

/// UserInfo claims merged into sessioninfo, so the suite sees `BFF_USERINFO` work.
pub fn userinfo_settings() -> Vec<(String, String)> {
    vec![
        ("BFF_USERINFO".into(), "true".into()),
        (
            "BFF_SESSIONINFO_CLAIMS".into(),
            "name given_name family_name preferred_username email email_verified picture locale userinfo_only".into(),
        ),
    ]
}

fn enabled(kind: Kind) -> bool {
    match std::env::var("BFF_TEST_TARGETS") {
        Ok(list) => list.split(',').any(|listed| listed.trim() == kind.name()),
        Err(_) => true,
    }
}

async fn run(kind: Kind) {
    if !enabled(kind) {
        eprintln!("{}: not in BFF_TEST_TARGETS, skipped", kind.name());
        return;
    }
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    // The client takes nothing but pushed authorization requests (RFC 9126 §6): every login of
    // every case below proves the push works on this target.
    let client = json!({"require_pushed_authorization_requests": true});
    let provider = Provider::start_with(&origin, "", ACCESS_TOKEN_TTL, json!({}), client).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    settings.extend(userinfo_settings());
    let target = Target::start(kind, port, "", settings).await;
    let world = World {
        provider,
        target,
        kv: false,
        settings: Vec::new(),
        stand_in: None,
    };
    let all: Vec<(&str, Case)> = cases::ALL.iter().chain(par::ALL).copied().collect();
    let mut failures = run_cases(kind.name(), world, &all).await;
    if kind == Kind::InProcess {
        for (name, case) in cases::IN_PROCESS_ONLY.iter().chain(par::IN_PROCESS_ONLY) {
            let outcome = tokio::spawn(case()).await;
            eprintln!(
                "[{}] {name} ... {}",
                kind.name(),
                if outcome.is_ok() { "ok" } else { "FAILED" }
            );
            if outcome.is_err() {
                failures.push(*name);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "target {}: failed cases: {failures:?}",
        kind.name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process() {
    run(Kind::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda() {
    run(Kind::Lambda).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker() {
    run(Kind::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediation_in_process() {
    mediation::run(Kind::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediation_lambda() {
    mediation::run(Kind::Lambda).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediation_worker() {
    mediation::run(Kind::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_in_process() {
    store_modes::run(Kind::InProcess, Sessions::CookieAndStore).await;
    store_modes::run(Kind::InProcess, Sessions::Kv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_lambda() {
    store_modes::run(Kind::Lambda, Sessions::CookieAndStore).await;
    store_modes::run(Kind::Lambda, Sessions::Kv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_worker() {
    store_modes::run(Kind::Worker, Sessions::CookieAndStore).await;
    store_modes::run(Kind::Worker, Sessions::Kv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_in_process() {
    faults::run(Kind::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lambda() {
    faults::run(Kind::Lambda).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_worker() {
    faults::run(Kind::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_in_process() {
    dpop::run(Kind::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_lambda() {
    dpop::run(Kind::Lambda).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_worker() {
    dpop::run(Kind::Worker).await;
}
