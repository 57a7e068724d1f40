//! AWS Lambda adapter of the TMI-BFF core: converts `lambda_http` requests and responses to and
//! from the core's `http` types, and implements the core's ports for a Lambda container (reqwest,
//! the system clock, the OS random source, stdout). It holds no BFF logic; the integration tests
//! reuse the ports to run the core in-process.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bff_core::{
    Backend, Clock, Deps, HttpClient, HttpError, KvStore, Level, Log, MAX_PROVIDER_RESPONSE, MAX_REQUEST_BODY,
    RandomError, RequestId, SecureRandom, UnixTime,
};
use http::Response;
use lambda_http::{Body, Request, RequestExt};

/// The DynamoDB session store `bootstrap` builds when `BFF_DYNAMODB_TABLE` is set, over this
/// adapter's HTTP client and clock.
pub type Store = bff_dynamodb::DynamoDb<ReqwestHttp>;

/// The store the environment (read through `lookup`) describes, if any.
///
/// # Errors
/// A setting that is missing or malformed, named (never its value).
pub fn store(
    lookup: impl Fn(&str) -> Option<String>,
    http: &ReqwestHttp,
) -> Result<Option<Store>, bff_dynamodb::SetupError> {
    bff_dynamodb::DynamoDb::from_lookup(lookup, http.clone(), SystemClock)
}

/// Answers one HTTP event (payload format 2.0) with the core.
pub async fn serve<K: KvStore>(backend: &Backend, deps: &Deps<'_, ReqwestHttp, K>, request: Request) -> Response<Body> {
    from_core_response(backend.handle(into_core_request(request), deps).await)
}

/// The core's view of an event: origin-form URI from the raw path the platform received (not
/// lambda_http's normalised one) and the raw query string; every header, including the one
/// `Cookie` header lambda_http joins from the event's `cookies` array; the decoded body bytes; the
/// invocation's request id, for the logs.
pub fn into_core_request(request: Request) -> http::Request<Vec<u8>> {
    let uri = origin_form(request.raw_http_path(), request.uri());
    let (parts, body) = request.into_parts();
    // The runtime has the whole event already; the core needs no more than one byte past its
    // limit to answer 413.
    let body = body.as_ref();
    let mut core = http::Request::new(body[..body.len().min(MAX_REQUEST_BODY + 1)].to_vec());
    *core.method_mut() = parts.method;
    *core.uri_mut() = uri;
    *core.version_mut() = parts.version;
    *core.headers_mut() = parts.headers;
    if let Some(context) = parts.extensions.lambda_context_ref() {
        core.extensions_mut().insert(RequestId(context.request_id.clone()));
    }
    core
}

/// lambda_http's response; for payload 2.0 it moves every `Set-Cookie` header into the
/// response's `cookies` array, one entry each, and base64-encodes non-text bodies.
pub fn from_core_response(response: Response<Vec<u8>>) -> Response<Body> {
    response.map(Body::from)
}

fn origin_form(raw_path: &str, uri: &http::Uri) -> http::Uri {
    let path = if raw_path.starts_with('/') {
        raw_path
    } else {
        uri.path()
    };
    let target = match uri.query() {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    };
    target.parse().unwrap_or_else(|_| {
        // A raw path that is not a valid URI path: fall back to lambda_http's normalised one.
        uri.path_and_query()
            .map_or_else(|| http::Uri::from_static("/"), |pq| pq.clone().into())
    })
}

/// Outbound HTTP with reqwest: rustls with ring and the platform's CA roots, the environment's
/// proxy settings, no redirects followed, and one deadline covering connect to last body byte.
#[derive(Clone, Debug)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl ReqwestHttp {
    /// A client for the life of the container.
    ///
    /// # Errors
    /// When reqwest cannot set up TLS (no CA roots readable).
    pub fn new() -> Result<Self, reqwest::Error> {
        // Err means a provider is already installed (by another user in this process): fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Below the common 5 s keep-alive of servers (Node's default among them): a pooled
            // connection the server is closing would reset a POST that cannot be retried.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()?;
        Ok(Self { client })
    }
}

impl HttpClient for ReqwestHttp {
    async fn send(&self, request: http::Request<Vec<u8>>, timeout: Duration) -> Result<Response<Vec<u8>>, HttpError> {
        let mut request = reqwest::Request::try_from(request).map_err(failure)?;
        *request.timeout_mut() = Some(timeout);
        let response = self.client.execute(request).await.map_err(failure)?;
        let mut core = Response::new(Vec::new());
        *core.status_mut() = response.status();
        *core.version_mut() = response.version();
        *core.headers_mut() = response.headers().clone();
        *core.body_mut() = read_bounded(response).await?;
        Ok(core)
    }

    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The body, but never more than one byte past the core's limit: enough for the core to refuse
/// it, without buffering what a broken provider sends.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failure)? {
        let room = (MAX_PROVIDER_RESPONSE + 1).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() > MAX_PROVIDER_RESPONSE {
            break;
        }
    }
    Ok(body)
}

/// A transport failure as the core's error: the cause chain, without the URL; whether the request
/// can have left matters to callers that retry (the DynamoDB store).
fn failure(error: reqwest::Error) -> HttpError {
    if error.is_timeout() {
        return HttpError::Timeout;
    }
    let unsent = error.is_connect();
    let error = error.without_url();
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        message = format!("{message}: {inner}");
        cause = inner.source();
    }
    if unsent {
        HttpError::Unsent(message)
    } else {
        HttpError::Connect(message)
    }
}

/// The container's wall clock: the core's, and the one the DynamoDB store signs with.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let since = SystemTime::now().duration_since(UNIX_EPOCH);
        UnixTime(since.map_or(0, |since| since.as_secs()))
    }

    fn now_millis(&self) -> u64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH);
        since.map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The operating system's random source (getrandom).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|_| RandomError)
    }
}

/// The core's JSON lines, one per line on stdout, which Lambda sends to CloudWatch Logs (with the
/// JSON log format, as structured records filtered by their `level`).
#[derive(Clone, Copy, Debug, Default)]
pub struct StdoutLog;

impl StdoutLog {
    /// One line of the adapter's own, formatted by the core as its lines are.
    pub fn event(&self, level: Level, message: &str) {
        self.line(level, &bff_core::log_line(level, message, SystemClock.now_millis()));
    }
}

impl Log for StdoutLog {
    fn line(&self, _level: Level, line: &str) {
        println!("{line}");
    }
}
