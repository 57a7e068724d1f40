//! Outbound HTTP for the core, and bounded body reading, on the Workers fetch API.

use std::pin::pin;
use std::time::Duration;

use bff_core::{HttpClient, HttpError, MAX_PROVIDER_RESPONSE};
use futures_util::StreamExt as _;
use futures_util::future::{Either, select};
use worker::js_sys::Uint8Array;
use worker::{AbortController, AbortSignal, ByteStream, Delay, Fetch, Method, Request, RequestInit, RequestRedirect};

use crate::{header_map, js_headers};

/// Outbound HTTP with the Workers fetch API: redirects are returned, never followed.
pub(crate) struct WorkerHttp;

impl HttpClient for WorkerHttp {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let abort = AbortController::default();
        let exchange = pin!(exchange(request, abort.signal()));
        let deadline = pin!(Delay::from(timeout));
        let outcome = match select(exchange, deadline).await {
            Either::Left((result, _)) => result.map_err(|e| HttpError::Connect(e.to_string())),
            Either::Right(_) => Err(HttpError::Timeout),
        };
        // Whatever happened, nothing more of this response is read: a body cut at the limit must
        // not keep streaming in.
        abort.abort();
        outcome
    }

    async fn pause(&self, duration: Duration) {
        Delay::from(duration).await;
    }
}

/// One fetch, including reading the response body up to the core's limit (the timeout covers
/// both); a longer body is cut one byte past it, which the core takes as a provider failure.
async fn exchange(request: http::Request<Vec<u8>>, signal: AbortSignal) -> worker::Result<http::Response<Vec<u8>>> {
    let (parts, body) = request.into_parts();
    let mut init = RequestInit::new();
    init.with_method(Method::from(parts.method.to_string()))
        .with_headers(js_headers(&parts.headers)?)
        .with_redirect(RequestRedirect::Manual);
    if !body.is_empty() {
        init.with_body(Some(Uint8Array::from(body.as_slice()).into()));
    }
    let outbound = Request::new_with_init(&parts.uri.to_string(), &init)?;
    let mut response = Fetch::Request(outbound).send_with_signal(&signal).await?;
    let headers = header_map(response.headers().entries());
    let body = read_bounded(response.stream().ok(), MAX_PROVIDER_RESPONSE).await?;
    let mut upstream = http::Response::builder().status(response.status_code()).body(body)?;
    *upstream.headers_mut() = headers;
    Ok(upstream)
}

/// Reads a body stream (none: empty) but never keeps more than `limit + 1` bytes: enough for the
/// core to see that it is too long, without buffering what an attacker or a broken provider sends.
pub(crate) async fn read_bounded(stream: Option<ByteStream>, limit: usize) -> worker::Result<Vec<u8>> {
    let mut body = Vec::new();
    let Some(mut stream) = stream else {
        return Ok(body);
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = (limit + 1).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() > limit {
            break;
        }
    }
    Ok(body)
}
