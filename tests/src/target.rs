//! The three places the same backend runs: the core in-process (with the Lambda adapter's real
//! HTTP client), the Lambda handler under `cargo lambda watch`, and the Worker under
//! `wrangler dev` (workerd).

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bff_core::{Backend, Deps, Level, Log};
use bff_lambda::{OsRandom, ReqwestHttp, StdoutLog, SystemClock};
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
    logs: Logs,
}

/// Everything a target logged: the core's `Log` port in-process, the emulator's stdout and stderr
/// otherwise (the function's own lines among them).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<String>>);

impl Logs {
    fn push(&self, line: &str) {
        if let Ok(mut text) = self.0.lock() {
            text.push_str(line);
            text.push('\n');
        }
    }

    pub fn text(&self) -> String {
        self.0.lock().map(|text| text.clone()).unwrap_or_default()
    }
}

/// The in-process core's log: the Lambda's lines on stdout, and a copy kept.
struct CapturingLog(Logs);

impl Log for CapturingLog {
    fn line(&self, level: Level, line: &str) {
        StdoutLog.line(level, line);
        self.0.push(line);
    }
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

    /// What the target has logged so far.
    pub fn logs(&self) -> String {
        self.logs.text()
    }

    pub async fn start(kind: Kind, port: u16, base: &str, settings: Vec<(String, String)>) -> Target {
        let origin = format!("http://127.0.0.1:{port}");
        let logs = Logs::default();
        let child = match kind {
            Kind::InProcess => {
                serve_in_process(port, settings, logs.clone());
                None
            }
            Kind::Lambda => Some(spawn_lambda(port, &settings, &logs)),
            Kind::Worker => Some(spawn_worker(port, &settings, &logs)),
        };
        let target = Target {
            kind,
            origin,
            base: base.to_owned(),
            child,
            logs,
        };
        target.wait_ready().await;
        target
    }

    /// Another instance of this deployment on `port` (whose `BFF_PUBLIC_ORIGIN` `settings`
    /// should name): another in-process backend, another Lambda emulator, or another `wrangler
    /// dev` process, which is another isolate bound to this one's `BFF_COORDINATOR` Durable Object
    /// class (through wrangler's local dev registry), as two isolates of one deployment are.
    pub async fn start_twin(&self, port: u16, settings: Vec<(String, String)>) -> Target {
        if self.kind != Kind::Worker {
            return Target::start(self.kind, port, &self.base, settings).await;
        }
        let primary = self.origin.rsplit(':').next().unwrap_or_default();
        let logs = Logs::default();
        let child = spawn_worker_with(port, &settings, &logs, Some(twin_config(primary, port)));
        let target = Target {
            kind: self.kind,
            origin: format!("http://127.0.0.1:{port}"),
            base: self.base.clone(),
            child: Some(child),
            logs,
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
            // Any answer of the handler itself (its JSON headers), a deliberate 500 included.
            if let Ok(response) = http.get(&url).timeout(Duration::from_secs(30)).send().await
                && response
                    .headers()
                    .get("content-security-policy")
                    .is_some_and(|v| v == "sandbox")
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
fn serve_in_process(port: u16, settings: Vec<(String, String)>, logs: Logs) {
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
            let log = Arc::new(CapturingLog(logs));
            backend.log_startup(&*log, &SystemClock, store.is_some());
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (backend, http, store, log) = (
                    Arc::clone(&backend),
                    Arc::clone(&http),
                    Arc::clone(&store),
                    Arc::clone(&log),
                );
                tokio::task::spawn_local(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (backend, http, store, log) = (
                            Arc::clone(&backend),
                            Arc::clone(&http),
                            Arc::clone(&store),
                            Arc::clone(&log),
                        );
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = read_bounded(body).await;
                            let deps = Deps {
                                clock: &SystemClock,
                                random: &OsRandom,
                                http: &*http,
                                log: &*log,
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

fn spawn_lambda(port: u16, settings: &[(String, String)], logs: &Logs) -> Child {
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
    spawn_group(command, logs)
}

fn spawn_worker(port: u16, settings: &[(String, String)], logs: &Logs) -> Child {
    spawn_worker_with(port, settings, logs, None)
}

/// `wrangler dev` with the repository's wrangler.toml, or with `config`. Each Worker is named
/// after its port, so a twin binds this very process's Durable Objects.
fn spawn_worker_with(port: u16, settings: &[(String, String)], logs: &Logs, config: Option<PathBuf>) -> Child {
    // Each Worker gets its own local KV: workerd holds its SQLite files locked, so two `wrangler
    // dev` on one directory can fail to start (SQLITE_BUSY), and a fresh store keeps worlds apart.
    let state = repo_root().join("target/wrangler-state").join(port.to_string());
    let _ = std::fs::remove_dir_all(&state);
    let mut command = Command::new("npx");
    command.args(["wrangler", "dev", "--ip", "127.0.0.1", "--port", &port.to_string()]);
    command.args(["--name", &format!("tmi-bff-{port}")]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.arg("--persist-to").arg(&state);
    for (k, v) in settings {
        command.arg("--var").arg(format!("{k}:{v}"));
    }
    command
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_SEND_METRICS", "false")
        .current_dir(repo_root());
    spawn_group(command, logs)
}

/// A wrangler configuration for a second isolate of the Worker on `primary`'s port: the same
/// build, its own KV, and the primary's Durable Object class for `BFF_COORDINATOR`.
fn twin_config(primary: &str, port: u16) -> PathBuf {
    let root = repo_root();
    let main = std::fs::read_to_string(root.join("wrangler.toml")).unwrap();
    let date = main
        .lines()
        .find_map(|line| line.strip_prefix("compatibility_date = "))
        .expect("wrangler.toml has a compatibility_date");
    let config = format!(
        "name = \"tmi-bff-{port}\"\n\
         main = \"{}\"\n\
         compatibility_date = {date}\n\
         [[kv_namespaces]]\nbinding = \"BFF_KV\"\nid = \"00000000000000000000000000000000\"\n\
         [[durable_objects.bindings]]\nname = \"BFF_COORDINATOR\"\nclass_name = \"BffCoordinator\"\n\
         script_name = \"tmi-bff-{primary}\"\n",
        root.join("functions/worker/build/index.js").display()
    );
    let dir = root.join("target/wrangler-twin");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{port}.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

/// Starts an emulator in its own process group, its output kept in `logs` (and shown with
/// `BFF_TEST_VERBOSE`).
fn spawn_group(mut command: Command, logs: &Logs) -> Child {
    use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
    let verbose = std::env::var_os("BFF_TEST_VERBOSE").is_some();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().expect("could not start the target");
    fn keep(stream: impl AsyncRead + Unpin + Send + 'static, logs: Logs, verbose: bool) {
        tokio::spawn(async move {
            // Bytes, not lines of UTF-8: one odd byte must not stop the reading (and then the
            // emulator, on a full pipe).
            let mut lines = BufReader::new(stream).split(b'\n');
            while let Ok(Some(line)) = lines.next_segment().await {
                let line = String::from_utf8_lossy(&line);
                if verbose {
                    eprintln!("{line}");
                }
                logs.push(&line);
            }
        });
    }
    if let Some(stdout) = child.stdout.take() {
        keep(stdout, logs.clone(), verbose);
    }
    if let Some(stderr) = child.stderr.take() {
        keep(stderr, logs.clone(), verbose);
    }
    child
}

/// A store for a target: the Worker always has its `BFF_KV` binding (wrangler.toml); the Lambda
/// and the in-process core get a DynamoDB table on a local stand-in of their own.
pub async fn store_settings(kind: Kind) -> Option<crate::dynamodb::StandIn> {
    match kind {
        Kind::Worker => None,
        Kind::Lambda | Kind::InProcess => Some(crate::dynamodb::StandIn::start().await),
    }
}
