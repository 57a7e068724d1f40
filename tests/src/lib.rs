//! Test support for the integration suite: the OpenID provider harness, a browser-like HTTP
//! client with its own cookie jar, and the three targets (in-process core, Lambda emulator,
//! workerd) the same cases run against.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step is a failed test
#![allow(clippy::disallowed_methods)] // the suite reads URLs the backend built with the plain parser

pub mod browser;
pub mod dynamodb;
pub mod logs;
pub mod provider;
pub mod target;

use std::net::TcpListener;

/// A free loopback port (bound and released; the window for a race is tiny on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default()
}

/// A reqwest client for the tests. reqwest is built without a default TLS provider here (the
/// Lambda adapter picks ring), so creating the adapter's client first installs it.
pub fn http_client(builder: reqwest::ClientBuilder) -> reqwest::Client {
    let _ = bff_lambda::ReqwestHttp::new();
    builder.build().unwrap_or_else(|e| panic!("reqwest client: {e}"))
}

/// Starts `node tests/harness/<script> <args>` and waits for the one `READY {json}` line the
/// harness scripts print on stdout once they listen; returns the process (killed on drop) and
/// that JSON.
pub async fn spawn_ready(script: &str, args: &[&std::ffi::OsStr]) -> (tokio::process::Child, serde_json::Value) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let verbose = std::env::var_os("BFF_TEST_VERBOSE").is_some();
    let mut child = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/harness").join(script))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(if verbose {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node must be installed to run {script}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(json) = line.strip_prefix("READY ") {
                return serde_json::from_str::<serde_json::Value>(json).ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("{script} did not print READY"));
    (child, ready)
}
