//! Cloudflare Workers adapter of the TMI-BFF core: converts workerd's request and response to and
//! from `http` types and implements the core's ports with Workers APIs. No logic lives here.

mod coordinator;
mod crypto;
mod http_client;
mod kv;
mod ports;
#[cfg(test)]
mod tests;

use std::cell::OnceCell;
use std::rc::Rc;

use bff_core::{Backend, Clock as _, Deps, Level, Log as _, MAX_REQUEST_BODY, RequestId, log_line};
use http::{HeaderMap, HeaderName, HeaderValue};
use worker::js_sys::{Number, Reflect};
use worker::wasm_bindgen::JsValue;
use worker::{Context, Env, Headers, Request, Response, ResponseBuilder, Url, event};

use crate::http_client::{WorkerHttp, read_bounded};
use crate::ports::{Console, WorkerClock, WorkerRandom};

thread_local! {
    // One per isolate: the parsed configuration and the core's caches. Owned Rust data only:
    // workerd refuses to use a JS I/O object (Request, Response, stream, fetch) from the context
    // of another request. wasm32 is single-threaded, so this is the isolate's only copy.
    static BACKEND: OnceCell<Rc<Backend>> = const { OnceCell::new() };
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    // Per request (see kv.rs); wrangler.toml always binds BFF_KV.
    let coordinator = env.durable_object("BFF_COORDINATOR").ok();
    let store = env.kv("BFF_KV").ok().map(|kv| kv::WorkerKv::Kv(kv, coordinator));
    let backend = BACKEND.with(|cell| Rc::clone(cell.get_or_init(|| backend(&env, store.is_some()))));
    let headers = header_map(req.headers().entries());
    let Ok(url) = req.url() else { return refused("no URL") };
    let target = origin_form(&url);
    let method = req.inner().method();
    // Never more than one byte past the limit: the core answers 413 to anything longer.
    let Ok(body) = read_bounded(req.stream().ok(), MAX_REQUEST_BODY).await else {
        return refused("the body could not be read");
    };
    let Ok(request) = core_request(&method, &target, headers, body) else {
        return refused("not a request the http types take");
    };
    let deps = Deps {
        clock: &WorkerClock,
        random: &WorkerRandom,
        http: &WorkerHttp,
        log: &Console,
        store: store.as_ref(),
    };
    let (parts, body) = backend.handle(request, &deps).await.into_parts();
    let builder = ResponseBuilder::new()
        .with_status(parts.status.as_u16())
        .with_headers(js_headers(&parts.headers)?);
    // An empty body stays null: workerd rejects any body, even an empty one, on 204 and 304.
    Ok(if body.is_empty() {
        builder.empty()
    } else {
        builder.fixed(body)
    })
}

/// The Worker's own 400 for a request the core never sees, with a line saying so.
fn refused(why: &str) -> worker::Result<Response> {
    let line = log_line(
        Level::Warn,
        &format!("refused before the core: {why}"),
        WorkerClock.now_millis(),
    );
    Console.line(Level::Warn, &line);
    Response::error("Bad Request", 400)
}

/// Parses the configuration once per isolate, from the Worker's vars and secrets.
fn backend(env: &Env, store_bound: bool) -> Rc<Backend> {
    let backend = Backend::with_signatures(|name| setting(env, name), Box::new(crypto::WebCrypto));
    backend.log_startup(&Console, &WorkerClock, store_bound);
    Rc::new(backend)
}

/// One var or secret as text. Both are properties of `env` (`Env::secret` and `Env::var` read the
/// same string binding), but an unquoted TOML number or boolean in `[vars]` arrives as a JS number
/// or boolean, which `Env::var` would refuse and the core would then silently take as unset.
fn setting(env: &Env, name: &str) -> Option<String> {
    let value = Reflect::get(env, &JsValue::from_str(name)).ok()?;
    // JS's own Number#toString: Rust's float formatting would add ~14 KB of wasm for this one line.
    (value.as_string())
        .or_else(|| {
            value
                .as_f64()
                .and_then(|_| Number::from(value.clone()).to_string_with_radix(10).ok())
                .map(String::from)
        })
        .or_else(|| value.as_bool().map(|flag| flag.to_string()))
}

/// Copies headers into a fresh JS `Headers`, one `append` per value (`Set-Cookie` stays apart).
fn js_headers(map: &HeaderMap) -> worker::Result<Headers> {
    let headers = Headers::new();
    for (name, value) in header_pairs(map) {
        headers.append(name, &value)?;
    }
    Ok(headers)
}

// Pure conversions, tested on the host (src/tests.rs). workerd hands request header values to JS
// decoded as UTF-8 (an invalid byte becomes U+FFFD), so they go back to bytes as UTF-8: any
// other app's cookie of any text reaches the core, which skips what is not ours. Values the core
// sets are ASCII; they go to JS one character per byte (a ByteString, as `Headers` expects).

/// The origin-form request target (`/path?query`) of an absolute URL, as the core expects.
fn origin_form(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Collects JS header pairs, keeping repeated names as separate values and skipping any pair the
/// `http` crate rejects (workerd has validated them already).
fn header_map(pairs: impl IntoIterator<Item = (String, String)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let value = HeaderValue::from_bytes(value.as_bytes());
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), value) {
            map.append(name, value);
        }
    }
    map
}

/// Each header value as its own pair, so several `Set-Cookie` headers stay separate.
fn header_pairs(map: &HeaderMap) -> impl Iterator<Item = (&str, String)> {
    let text = |value: &HeaderValue| value.as_bytes().iter().copied().map(char::from).collect();
    map.iter().map(move |(name, value)| (name.as_str(), text(value)))
}

/// The core's request: method, origin-form target, all headers, the whole body, and the
/// `cf-ray` header as the request's id for the logs.
fn core_request(method: &str, target: &str, headers: HeaderMap, body: Vec<u8>) -> http::Result<http::Request<Vec<u8>>> {
    let mut request = http::Request::builder().method(method).uri(target).body(body)?;
    if let Some(ray) = headers.get("cf-ray").and_then(|ray| ray.to_str().ok()) {
        request.extensions_mut().insert(RequestId(ray.to_owned()));
    }
    *request.headers_mut() = headers;
    Ok(request)
}
