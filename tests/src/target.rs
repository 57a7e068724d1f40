//! The three places the same backend runs: the core in-process (with the Lambda adapter's real
//! HTTP client), the Lambda handler under `cargo lambda watch`, and the Worker under
//! `wrangler dev` (workerd).

use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bff_core::{Backend, Deps};
use bff_lambda::{OsRandom, ReqwestHttp, StderrLog, SystemClock};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::process::{Child, Command};

use crate::repo_root;

pub const COOKIE_KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InProcess,
    Lambda,
    Worker,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Lambda => "lambda",
            Self::Worker => "worker",
        }
    }
}

/// A running backend.
pub struct Target {
    pub kind: Kind,
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    /// `BFF_BASE_PATH`
    pub base: String,
    child: Option<Child>,
}

/// The settings every target gets, on top of which a case may add its own.
pub fn settings(issuer: &str, origin: &str, base: &str) -> Vec<(String, String)> {
    [
        ("BFF_ISSUER", issuer),
        ("BFF_CLIENT_ID", crate::provider::CLIENT_ID),
        ("BFF_CLIENT_SECRET", crate::provider::CLIENT_SECRET),
        ("BFF_PUBLIC_ORIGIN", origin),
        ("BFF_BASE_PATH", base),
        ("BFF_COOKIE_KEYS", COOKIE_KEYS),
        // oidc-provider drops offline_access (no refresh token) unless prompt=consent.
        ("BFF_AUTHORIZATION_PARAMS", "prompt=consent"),
        ("BFF_ALLOW_INSECURE_ISSUER", "true"),
        ("BFF_HTTP_TIMEOUT", "2"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

impl Target {
    /// `B` + `path`, absolute.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.origin, self.base, path)
    }

    pub async fn start(kind: Kind, port: u16, base: &str, settings: Vec<(String, String)>) -> Target {
        let origin = format!("http://127.0.0.1:{port}");
        let child = match kind {
            Kind::InProcess => {
                serve_in_process(port, settings);
                None
            }
            Kind::Lambda => Some(spawn_lambda(port, &settings)),
            Kind::Worker => Some(spawn_worker(port, &settings)),
        };
        let target = Target {
            kind,
            origin,
            base: base.to_owned(),
            child,
        };
        target.wait_ready().await;
        target
    }

    async fn wait_ready(&self) {
        let http = crate::http_client(reqwest::Client::builder());
        let url = self.url("/.well-known/bff-configuration");
        let started = Instant::now();
        // The first start may compile the handler.
        while started.elapsed() < Duration::from_secs(900) {
            if let Ok(response) = http.get(&url).timeout(Duration::from_secs(30)).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("{} target never answered {url}", self.kind.name());
    }

    pub async fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(pid) = child.id() {
                // The emulators spawn their own children: end the whole process group.
                let _ = std::process::Command::new("kill")
                    .arg("--")
                    .arg(format!("-{pid}"))
                    .status();
            }
            // Let the emulators stop their own workers before the hard kill.
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// Serves the core on its own thread and runtime: the core's futures are not required to be
/// `Send`, so connections run on a `LocalSet`.
fn serve_in_process(port: u16, settings: Vec<(String, String)>) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let backend = Arc::new(Backend::from_lookup(|name| {
                settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            }));
            let lookup = |name: &str| settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let http = Arc::new(ReqwestHttp::new().unwrap());
            let store = Arc::new(bff_lambda::store(lookup, &http).unwrap());
            backend.log_startup(&StderrLog, store.is_some());
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (backend, http, store) = (Arc::clone(&backend), Arc::clone(&http), Arc::clone(&store));
                tokio::task::spawn_local(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (backend, http, store) = (Arc::clone(&backend), Arc::clone(&http), Arc::clone(&store));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = read_bounded(body).await;
                            let deps = Deps {
                                clock: &SystemClock,
                                random: &OsRandom,
                                http: &*http,
                                log: &StderrLog,
                                store: store.as_ref().as_ref(),
                            };
                            let response = backend.handle(http::Request::from_parts(parts, body), &deps).await;
                            Ok::<_, Infallible>(response.map(|b| Full::new(Bytes::from(b))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
}

/// Reads a request body as the adapters do: the core gets at most one byte past its limit. The
/// rest is read and dropped, as a platform's front end would: a server that answers and closes
/// with request bytes still unread makes the kernel reset the connection, and the client may
/// lose the 413 to that reset.
async fn read_bounded(mut body: hyper::body::Incoming) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            let room = (bff_core::MAX_REQUEST_BODY + 1).saturating_sub(bytes.len());
            bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    bytes
}

fn spawn_lambda(port: u16, settings: &[(String, String)]) -> Child {
    let mut command = Command::new("cargo");
    command
        .args([
            "lambda",
            "watch",
            "--disable-cors",
            "--ignore-changes",
            "--bin",
            "bff-lambda",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .current_dir(repo_root().join("functions/lambda"));
    for (k, v) in settings {
        command.env(k, v);
    }
    spawn_group(command)
}

fn spawn_worker(port: u16, settings: &[(String, String)]) -> Child {
    // Each Worker gets its own local KV: workerd holds its SQLite files locked, so two `wrangler
    // dev` on one directory can fail to start (SQLITE_BUSY), and a fresh store keeps worlds apart.
    let state = repo_root().join("target/wrangler-state").join(port.to_string());
    let _ = std::fs::remove_dir_all(&state);
    let mut command = Command::new("npx");
    command.args(["wrangler", "dev", "--ip", "127.0.0.1", "--port", &port.to_string()]);
    command.arg("--persist-to").arg(&state);
    for (k, v) in settings {
        command.arg("--var").arg(format!("{k}:{v}"));
    }
    command
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_SEND_METRICS", "false")
        .current_dir(repo_root());
    spawn_group(command)
}

fn spawn_group(mut command: Command) -> Child {
    let verbose = std::env::var_os("BFF_TEST_VERBOSE").is_some();
    command
        .stdin(Stdio::null())
        .stdout(if verbose { Stdio::inherit() } else { Stdio::null() })
        .stderr(if verbose { Stdio::inherit() } else { Stdio::null() })
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().expect("could not start the target")
}

/// A store for a target: the Worker always has its `BFF_KV` binding (wrangler.toml); the Lambda
/// and the in-process core get a DynamoDB table on a local stand-in of their own.
pub async fn store_settings(kind: Kind) -> Option<crate::dynamodb::StandIn> {
    match kind {
        Kind::Worker => None,
        Kind::Lambda | Kind::InProcess => Some(crate::dynamodb::StandIn::start().await),
    }
}
