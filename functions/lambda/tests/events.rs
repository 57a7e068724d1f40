//! The adapter against payload-2.0 event fixtures, parsed and answered by lambda_http itself.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    io::{Read, Write},
    net::TcpListener,
    time::Duration,
};

use bff_core::{Backend, Deps, HttpClient, HttpError};
use bff_lambda::{OsRandom, ReqwestHttp, StdoutLog, SystemClock, from_core_response, into_core_request, serve};
use lambda_http::{
    Adapter, Context, IntoResponse, LambdaEvent, Request, RequestExt, Service, request::from_str, service_fn,
};
use serde_json::{Value, json};

const HTTP_API: &str = include_str!("data/apigw-v2-callback.json");
const FUNCTION_URL: &str = include_str!("data/function-url-token.json");

/// What `lambda_http::run` does with one event: the serialized Lambda response.
async fn invoke<S: Service<Request, Error = Infallible, Future: Send>>(event: &str, service: S) -> Value
where
    S::Response: IntoResponse,
{
    let event = LambdaEvent::new(serde_json::from_str(event).unwrap(), Context::default());
    serde_json::to_value(Adapter::from(service).call(event).await.unwrap()).unwrap()
}

/// The invocation's request id reaches the core, for its log lines.
#[test]
fn the_lambda_request_id_reaches_the_core() {
    let mut context = Context::default();
    context.request_id = "c0ffee00-1234-4cde-8f00-0123456789ab".to_owned();
    let request = from_str(HTTP_API).unwrap().with_lambda_context(context);
    let core = into_core_request(request);
    let id = core.extensions().get::<bff_core::RequestId>().unwrap();
    assert_eq!(id.0, "c0ffee00-1234-4cde-8f00-0123456789ab");
    assert!(
        into_core_request(from_str(HTTP_API).unwrap())
            .extensions()
            .get::<bff_core::RequestId>()
            .is_none()
    );
}

#[test]
fn http_api_event_reaches_the_core_in_origin_form() {
    let core = into_core_request(from_str(HTTP_API).unwrap());
    assert_eq!(core.method(), "GET");
    assert_eq!(
        core.uri(),
        "/bff/callback?code=c0de&state=st%2Fate&iss=https%3A%2F%2Fidp.example.com"
    );
    assert_eq!(core.headers()["cookie"], "__Host-bff-txn.st=sealed-txn; theme=dark");
    assert_eq!(core.headers()["sec-fetch-site"], "cross-site");
    assert!(core.body().is_empty());
}

/// A body over the core's limit reaches it cut one byte past the limit: enough for a 413, and no
/// copy of the rest.
#[test]
fn oversized_bodies_reach_the_core_cut_one_byte_past_the_limit() {
    let mut event: Value = serde_json::from_str(FUNCTION_URL).unwrap();
    event["isBase64Encoded"] = json!(false);
    event["body"] = json!("a".repeat(1024 * 1024));
    let core = into_core_request(from_str(&event.to_string()).unwrap());
    assert_eq!(core.body().len(), bff_core::MAX_REQUEST_BODY + 1);
}

#[test]
fn function_url_event_keeps_the_raw_path_and_decodes_the_body() {
    let core = into_core_request(from_str(FUNCTION_URL).unwrap());
    assert_eq!(
        (core.method().as_str(), core.uri().to_string().as_str()),
        ("POST", "/app/.well-known/bff-token")
    );
    assert_eq!(
        core.headers()["cookie"],
        "__Host-bff-session.0=part-one; __Host-bff-session.1=part-two"
    );
    assert_eq!(core.body(), b"resource=https%3A%2F%2Fapi.example.com&scope=read");
    // lambda_http's own URI resolves dot segments; the core sees what the client sent.
    let dotted = FUNCTION_URL.replace("\"/app/", "\"/x/%2e%2e/app/");
    assert_eq!(
        into_core_request(from_str(&dotted).unwrap()).uri(),
        "/x/%2e%2e/app/.well-known/bff-token"
    );
}

#[tokio::test]
async fn set_cookie_headers_become_entries_of_the_cookies_array() {
    let answer = service_fn(|_| async {
        let response = http::Response::builder()
            .status(302)
            .header("location", "/app/")
            .header(
                "set-cookie",
                "__Host-bff-session=s; Path=/; Secure; HttpOnly; SameSite=Strict",
            )
            .header(
                "set-cookie",
                "__Host-bff-txn.st=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
            );
        Ok(from_core_response(response.body(Vec::new()).unwrap()))
    });
    let lambda = invoke(HTTP_API, answer).await;
    assert_eq!(lambda["statusCode"], 302);
    assert_eq!(lambda["headers"], json!({"location": "/app/"}));
    assert_eq!(
        lambda["cookies"],
        json!([
            "__Host-bff-session=s; Path=/; Secure; HttpOnly; SameSite=Strict",
            "__Host-bff-txn.st=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
        ])
    );
}

#[tokio::test]
async fn the_core_answers_through_the_adapter() {
    let key = format!("k1:{}", "A".repeat(43));
    let settings = [
        ("BFF_ISSUER", "https://idp.example.com"),
        ("BFF_CLIENT_ID", "spa"),
        ("BFF_CLIENT_SECRET", "s"),
        ("BFF_PUBLIC_ORIGIN", "https://app.example.com"),
        ("BFF_BASE_PATH", "/app"),
        ("BFF_COOKIE_KEYS", &key),
    ];
    let backend = Backend::from_lookup(|name| settings.iter().find(|s| s.0 == name).map(|s| s.1.to_owned()));
    assert!(
        backend.config_error().is_none(),
        "{:?}",
        backend.config_error().map(ToString::to_string)
    );
    let http = ReqwestHttp::new().unwrap();
    let deps = Deps {
        clock: &SystemClock,
        random: &OsRandom,
        http: &http,
        log: &StdoutLog,
        store: None::<&bff_core::NoStore>,
    };
    let (backend, deps) = (&backend, &deps);
    let lambda = invoke(
        FUNCTION_URL,
        service_fn(|request| async move { Ok(serve(backend, deps, request).await) }),
    )
    .await;
    // Unreadable session chunks: invalid_session (http-api.md: bff-token), as JSON text, not base64.
    assert_eq!(
        (&lambda["statusCode"], &lambda["isBase64Encoded"]),
        (&json!(400), &json!(false))
    );
    let body: Value = serde_json::from_str(lambda["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_session");
}

#[tokio::test]
async fn reqwest_does_not_follow_redirects_and_maps_failures() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/authorize", server.local_addr().unwrap());
    let replies = std::thread::spawn(move || {
        let (mut first, _) = server.accept().unwrap();
        let _ = first.read(&mut [0; 4096]).unwrap(); // the whole request, on loopback
        first.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        server.accept().unwrap() // the second request never gets an answer
    });
    let http = ReqwestHttp::new().unwrap();
    let get = || http::Request::get(&url).body(Vec::new()).unwrap();
    let response = http.send(get(), Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (response.status().as_u16(), &response.headers()["location"]),
        (302, &"http://127.0.0.1:1/".parse().unwrap())
    );
    assert_eq!(
        http.send(get(), Duration::from_millis(300)).await.unwrap_err(),
        HttpError::Timeout
    );
    drop(replies.join());
    let refused = http.send(get(), Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(&refused, HttpError::Unsent(why) if why.contains("refused")),
        "{refused:?}"
    );
}
