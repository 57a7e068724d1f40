//! The `BFF_COORDINATOR` Durable Object: one instance per session (named by the core), where the
//! core keeps the records that coordinate that session's refreshes. One object is one thread
//! worldwide and its storage is strongly consistent, so a conditional write here is atomic,
//! which Workers KV cannot offer. It holds only what the core hands it: sealed values with an
//! expiry (30 s), swept by an alarm.

use std::pin::pin;
use std::time::Duration;

use bff_core::KvError;
use futures_util::future::{Either, select};
use serde::{Deserialize, Serialize};
use worker::wasm_bindgen::JsValue;
use worker::{
    Date, Delay, DurableObject, Env, Method, Request, RequestInit, Response, Result, ScheduledTime, State, Storage,
    Stub, durable_object, js_sys,
};

/// Keys are short (a prefix and a hash). A sealed rotation holds the tokens of one token
/// response (the core reads at most 1 MiB of one) in base64: SQLite-backed Durable Object storage
/// takes values up to 2 MB, and this takes all of them, so a publish never fails on size.
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 2_000_000;
/// A Durable Object answers in milliseconds; a call still pending after this is failed, so a
/// stuck object costs a refresh one bounded wait (and the core's breaker skips the rest).
const CALL_DEADLINE: Duration = Duration::from_secs(5);

#[durable_object]
pub struct BffCoordinator {
    state: State,
}

#[derive(Serialize, Deserialize)]
struct Record {
    value: String,
    /// Unix milliseconds.
    expires: f64,
}

impl DurableObject for BffCoordinator {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let (Some(key), Some(ttl)) = (param("key"), param("ttl").and_then(|t| t.parse::<u32>().ok())) else {
            return Response::error("key and ttl wanted", 400);
        };
        let body = req.bytes().await?;
        if key.len() > MAX_KEY || body.len() > MAX_VALUE {
            return Response::error("too large", 413);
        }
        // The core's values are sealed text; anything else is refused, never stored as empty.
        let Ok(value) = String::from_utf8(body) else {
            return Response::error("values are text", 400);
        };
        // No await but storage calls from here on: workerd's input gate then delivers no other
        // request to this object in between, so each read-then-write below is atomic.
        let storage = self.state.storage();
        let now = Date::now().as_millis() as f64;
        let current = storage.get::<Record>(&key).await?.filter(|r| r.expires > now);
        let record = Record {
            value,
            expires: now + f64::from(ttl) * 1000.0,
        };
        let (write, answer) = match url.path() {
            "/get" => {
                return current.map_or_else(
                    || Response::empty().map(|r| r.with_status(404)),
                    |r| Response::ok(r.value),
                );
            }
            "/delete" => {
                storage.delete(&key).await?;
                return Response::empty();
            }
            "/put" => (true, "1"),
            "/put-if-absent" if current.is_none() => (true, "1"),
            "/put-if-present" if current.is_some() => (true, "1"),
            "/put-if-absent" | "/put-if-present" => (false, "0"),
            _ => return Response::error("unknown operation", 400),
        };
        if write {
            storage.put(&key, &record).await?;
            if storage.get_alarm().await?.is_none_or(|at| (at as f64) < record.expires) {
                sweep_at(&storage, record.expires).await?;
            }
        }
        Response::ok(answer)
    }

    /// Deletes the expired records; what is left brings the alarm back when it expires.
    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let now = Date::now().as_millis() as f64;
        let mut latest = None::<f64>;
        for key in storage.list().await?.keys() {
            let key = key?.as_string().unwrap_or_default();
            match storage.get::<Record>(&key).await {
                Ok(Some(record)) if record.expires > now => {
                    latest = Some(latest.map_or(record.expires, |l| l.max(record.expires)));
                }
                _ => {
                    storage.delete(&key).await?;
                }
            }
        }
        if let Some(expires) = latest {
            sweep_at(&storage, expires).await?;
        }
        Response::empty()
    }
}

/// The alarm a second after `expires` (Unix milliseconds).
async fn sweep_at(storage: &Storage, expires: f64) -> Result<()> {
    let at = js_sys::Date::new(&JsValue::from_f64(expires + 1000.0));
    storage.set_alarm(ScheduledTime::new(at)).await
}

/// The core's store for one session's coordination: calls to its Durable Object.
pub(crate) struct Coordinator(pub(crate) Stub);

impl Coordinator {
    pub(crate) async fn call(
        &self,
        operation: &str,
        key: &str,
        value: &[u8],
        ttl: u64,
    ) -> std::result::Result<Response, KvError> {
        let mut url = bff_core::parse_url(&format!("https://coordinator/{operation}"))
            .ok_or_else(|| failed(operation, &"bad operation"))?;
        url.query_pairs_mut()
            .append_pair("key", key)
            .append_pair("ttl", &ttl.min(u64::from(u32::MAX)).to_string());
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(js_sys::Uint8Array::from(value).into()));
        let request = Request::new_with_init(url.as_str(), &init).map_err(|e| failed(operation, &e))?;
        let exchange = pin!(self.0.fetch_with_request(request));
        let response = match select(exchange, pin!(Delay::from(CALL_DEADLINE))).await {
            Either::Left((response, _)) => response.map_err(|e| failed(operation, &e))?,
            Either::Right(_) => return Err(failed(operation, &"no answer in 5 s")),
        };
        match response.status_code() {
            200 | 204 => Ok(response),
            // Absent: only a read says so.
            404 if operation == "get" => Ok(response),
            status => Err(KvError(format!("coordinator {operation}: status {status}"))),
        }
    }
}

/// The operation and the error; never the key or the value.
pub(crate) fn failed(operation: &str, error: &dyn std::fmt::Display) -> KvError {
    KvError(format!("coordinator {operation}: {error}"))
}
