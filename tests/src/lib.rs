//! Test support for the integration suite: the OpenID provider harness, a browser-like HTTP
//! client with its own cookie jar, and the three targets (in-process core, Lambda emulator,
//! workerd) the same cases run against.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed step is a failed test

pub mod browser;
pub mod dynamodb;
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
