//! Pushed authorization requests in process (RFC 9126; http-api.md: login): `BFF_PAR` against
//! what the issuer's metadata offers, the push with each client authentication method, the
//! front-channel request that names only the client and the pushed request, and every way the
//! push can fail, each a 503 page that sets no cookie.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test
#![allow(clippy::disallowed_methods)] // tests read the URLs the backend built with the plain parser

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_core::testing::{
    Answer, BodyEdit, Browser, BrowserKey, CLIENT_SECRET, Endpoint, Fault, ParPolicy, Site, World, request,
};
use futures::executor::block_on;
use http::{Method, StatusCode};
use jwt_simple::prelude::ES256KeyPair;
use serde_json::json;
use url::Url;

const RESOURCE: &str = "https://api.example/";

/// A world whose provider takes pushed requests as `policy` says.
fn world(settings: &[(&str, &str)], policy: ParPolicy) -> World {
    let world = World::new(settings);
    world.provider.set_par(policy);
    world
}

/// `GET /bff/login<query>` as a same-origin navigation.
fn login(world: &World, browser: &mut Browser, query: &str) -> Answer {
    let headers = [("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "document")];
    let request = request(Method::GET, &format!("/bff/login{query}"), &headers, Vec::new());
    block_on(world.send(browser, request, Site::Same))
}

fn location(answer: &Answer) -> Url {
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    Url::parse(answer.header("location").unwrap()).unwrap()
}

fn names(url: &Url) -> Vec<String> {
    url.query_pairs().map(|(name, _)| name.into_owned()).collect()
}

fn value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The provider's sign-in from `url`, then the callback: a session.
fn finish(world: &World, browser: &mut Browser, url: &Url) {
    let callback = world.provider.authorize(url.as_str(), "alice");
    let answer = block_on(world.callback(browser, &callback));
    assert_eq!(answer.status, StatusCode::FOUND, "callback: {}", answer.text());
    let info = block_on(world.session_info(browser));
    assert_eq!(info.status, StatusCode::OK, "{}", info.text());
    assert_eq!(info.json()["sub"], json!("alice"));
}

fn is_page(answer: &Answer) -> bool {
    answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html"))
}

/// The front channel carries `client_id` and `request_uri` only (RFC 9126 §4); the pushed form
/// carries every parameter the plain URL would have had, and the login completes.
#[test]
fn auto_pushes_what_the_url_would_carry_and_the_login_completes() {
    let settings = [(
        "BFF_AUTHORIZATION_PARAMS",
        "prompt=consent&audience=https%3A%2F%2Fapi.example",
    )];
    let world = world(&settings, ParPolicy::Offered);
    let mut browser = Browser::default();
    let answer = login(&world, &mut browser, &format!("?resource={RESOURCE}&prompt=login"));
    let url = location(&answer);
    assert_eq!((url.host_str(), url.path()), (Some("idp.example"), "/authorize"));
    assert_eq!(names(&url), ["client_id", "request_uri"]);
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(value(&pairs, "client_id"), Some("bff"));
    assert!(
        value(&pairs, "request_uri")
            .unwrap()
            .starts_with("urn:ietf:params:oauth:request_uri:")
    );
    assert_eq!(browser.txn_cookies().len(), 1, "the transaction cookie is set as ever");

    let pushed = world.provider.pushed_requests();
    assert_eq!(pushed.len(), 1);
    let pushed = &pushed[0];
    let mut pushed_names: Vec<&str> = pushed.iter().map(|(k, _)| k.as_str()).collect();
    pushed_names.sort_unstable();
    assert_eq!(
        pushed_names,
        [
            "audience",
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "prompt",
            "redirect_uri",
            "resource",
            "response_type",
            "scope",
            "state",
        ]
    );
    assert_eq!(value(pushed, "response_type"), Some("code"));
    assert_eq!(value(pushed, "redirect_uri"), Some("https://app.example/bff/callback"));
    assert_eq!(value(pushed, "scope"), Some("openid profile email offline_access"));
    assert_eq!(value(pushed, "code_challenge_method"), Some("S256"));
    assert_eq!(value(pushed, "resource"), Some(RESOURCE));
    assert_eq!(
        value(pushed, "prompt"),
        Some("login"),
        "the request's prompt replaces the configured one"
    );
    assert_eq!(value(pushed, "audience"), Some("https://api.example"));
    let state = value(pushed, "state").unwrap();
    assert!(URL_SAFE_NO_PAD.decode(state).unwrap().len() >= 16);

    finish(&world, &mut browser, &url);
    assert_eq!(world.provider.count(Endpoint::Par), 1);
    // RFC 9126 §4: the pushed request is used up by the sign-in.
    let replay = world.provider.try_authorize(url.as_str(), "mallory").unwrap_err();
    assert!(replay.contains("already used"), "{replay}");
}

/// An issuer that takes nothing but pushed requests (RFC 9126 §5) gets them, with
/// `client_secret_basic` (the default) and `client_secret_post`.
#[test]
fn an_issuer_that_requires_pushed_requests_gets_them() {
    for method in ["client_secret_basic", "client_secret_post"] {
        let world = world(&[("BFF_CLIENT_AUTH", method)], ParPolicy::Required);
        let mut browser = block_on(world.signed_in("alice"));
        assert_eq!(world.provider.count(Endpoint::Par), 1, "{method}");
        assert_eq!(
            block_on(world.token(&mut browser, "")).status,
            StatusCode::OK,
            "{method}"
        );
        assert!(
            world.provider.refusals().is_empty(),
            "{method}: {:?}",
            world.provider.refusals()
        );
    }
}

/// Without the endpoint in the metadata, `auto` sends the plain request, as before.
#[test]
fn auto_without_the_endpoint_sends_the_plain_request() {
    let world = world(&[], ParPolicy::Off);
    let mut browser = Browser::default();
    let url = location(&login(&world, &mut browser, ""));
    assert!(names(&url).contains(&"code_challenge".to_owned()), "{url}");
    assert!(!names(&url).contains(&"request_uri".to_owned()), "{url}");
    finish(&world, &mut browser, &url);
    assert_eq!(world.provider.count(Endpoint::Par), 0);
}

/// `BFF_PAR=off` never pushes, even where the issuer offers it.
#[test]
fn off_sends_the_plain_request_even_where_pushing_is_offered() {
    let world = world(&[("BFF_PAR", "off")], ParPolicy::Offered);
    let mut browser = Browser::default();
    let url = location(&login(&world, &mut browser, ""));
    assert_eq!(names(&url)[..2], ["response_type", "client_id"]);
    finish(&world, &mut browser, &url);
    assert_eq!(world.provider.count(Endpoint::Par), 0);
}

/// A mismatch between `BFF_PAR` and the issuer is the operator's to fix: a 500 page, no
/// transaction cookie, nothing pushed, and a log line naming the setting.
#[test]
fn a_mismatch_with_the_issuer_is_a_configuration_error() {
    for (setting, policy) in [("required", ParPolicy::Off), ("off", ParPolicy::Required)] {
        let world = world(&[("BFF_PAR", setting)], policy);
        let mut browser = Browser::default();
        let answer = login(&world, &mut browser, "");
        assert_eq!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{setting}: {}",
            answer.text()
        );
        assert!(is_page(&answer), "{setting}");
        assert!(answer.set_cookies().is_empty(), "{setting}");
        assert!(browser.txn_cookies().is_empty(), "{setting}");
        assert_eq!(world.provider.count(Endpoint::Par), 0, "{setting}");
        let lines = world.log.lines();
        assert!(
            lines.iter().any(|l| l.contains(&format!("BFF_PAR is {setting}"))),
            "{lines:?}"
        );
    }
}

/// A push that fails for want of a usable provider (no answer, a 5xx, `server_error` or
/// `temporarily_unavailable`, an answer that is not JSON or too large) is the 503 page with
/// `Retry-After`; an OAuth error about the request is the provider's refusal, shown on the 400
/// page as the callback shows one from the authorization endpoint (RFC 9126 §2.3); an
/// `invalid_client` is the deployment's credentials, the 500 page. None sets or deletes a cookie,
/// each logs one line that holds no secret, and once the provider is well the same browser signs
/// in.
#[test]
fn a_failed_push_sets_no_cookie() {
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let faults = [
        (Fault::Refuse, unavailable),
        (Fault::Hang, unavailable),
        (Fault::Status(500), unavailable),
        (Fault::Garbage, unavailable),
        (Fault::Huge, unavailable),
        (Fault::OAuth(500, "server_error"), unavailable),
        (Fault::OAuth(400, "temporarily_unavailable"), unavailable),
        (Fault::OAuth(400, "invalid_request"), StatusCode::BAD_REQUEST),
        (Fault::OAuth(400, "invalid_target"), StatusCode::BAD_REQUEST),
        (Fault::OAuth(401, "invalid_client"), StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for (fault, status) in faults {
        let world = world(&[], ParPolicy::Offered);
        let mut browser = Browser::default();
        // An earlier sign-in in another tab: its transaction must survive the failure untouched.
        location(&login(&world, &mut browser, ""));
        let before = browser.txn_cookies();
        world.provider.fail(Endpoint::Par, fault);
        let answer = login(&world, &mut browser, "");
        assert_failed(&world, &answer, status, &format!("{fault:?}"));
        if let Fault::OAuth(400, error) = fault
            && status == StatusCode::BAD_REQUEST
        {
            let shown = format!("The sign-in service answered {error}");
            assert!(answer.text().contains(&shown), "{fault:?}: {}", answer.text());
        }
        assert_eq!(browser.txn_cookies(), before, "{fault:?}");
        world.provider.heal(Endpoint::Par);
        let url = location(&login(&world, &mut browser, ""));
        finish(&world, &mut browser, &url);
    }
}

/// A 201 that breaks RFC 9126 §2.2 or the backend's bounds is no push either: the 503 page.
#[test]
fn an_unusable_push_answer_is_a_503() {
    let edits: [(&str, BodyEdit); 7] = [
        ("no request_uri", |b| drop(b.remove("request_uri"))),
        ("no expires_in", |b| drop(b.remove("expires_in"))),
        ("an empty request_uri", |b| {
            drop(b.insert("request_uri".into(), json!("")))
        }),
        ("a request_uri with a space", |b| {
            drop(b.insert("request_uri".into(), json!("urn:a b")))
        }),
        ("a request_uri of 2049 bytes", |b| {
            drop(b.insert("request_uri".into(), json!("u".repeat(2049))))
        }),
        ("expires_in 0", |b| drop(b.insert("expires_in".into(), json!(0)))),
        ("an answer over 16 KiB", |b| {
            drop(b.insert("pad".into(), json!(" ".repeat(16 * 1024))))
        }),
    ];
    for (why, edit) in edits {
        let world = world(&[], ParPolicy::Offered);
        world.provider.set_par_edit(Some(edit));
        let mut browser = Browser::default();
        let answer = login(&world, &mut browser, "");
        assert_failed(&world, &answer, StatusCode::SERVICE_UNAVAILABLE, why);
        assert!(browser.txn_cookies().is_empty(), "{why}");
        assert!(
            world
                .log
                .lines()
                .iter()
                .any(|l| l.contains("pushed authorization request failed: unusable answer")),
            "{why}: {:?}",
            world.log.lines()
        );
    }
}

fn assert_failed(world: &World, answer: &Answer, status: StatusCode, why: &str) {
    assert_eq!(answer.status, status, "{why}: {}", answer.text());
    assert!(is_page(answer), "{why}");
    let retry = (status == StatusCode::SERVICE_UNAVAILABLE).then_some("5");
    assert_eq!(answer.header("retry-after"), retry, "{why}");
    assert!(answer.set_cookies().is_empty(), "{why}: {:?}", answer.set_cookies());
    let lines = world.log.lines();
    let said = lines
        .iter()
        .any(|l| l.contains("pushed authorization request failed") || l.contains("request to /par failed"));
    assert!(said, "{why}: {lines:?}");
    // The secret, as itself, in a Basic header or a form, and a client assertion (a JWT).
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bff:{CLIENT_SECRET}"));
    for secret in [CLIENT_SECRET, basic.as_str(), "client_secret=", "eyJ"] {
        assert!(
            lines.iter().all(|l| !l.contains(secret)),
            "{why}: {secret} in {lines:?}"
        );
    }
}

/// A push costs the provider (and the client's quota there) one authenticated call: only a page
/// load causes one. Another site's <img> or fetch of the login gets a 400, pushes nothing and
/// sets no cookie.
#[test]
fn only_a_page_load_pushes() {
    let world = world(&[], ParPolicy::Offered);
    for (dest, mode) in [
        ("image", "no-cors"),
        ("empty", "cors"),
        ("iframe", "navigate"),
        ("script", "no-cors"),
    ] {
        let headers = [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-dest", dest),
            ("sec-fetch-mode", mode),
        ];
        let request = request(Method::GET, "/bff/login", &headers, Vec::new());
        let answer = block_on(world.send(&mut Browser::default(), request, Site::Cross));
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{dest}/{mode}: {}",
            answer.text()
        );
        assert!(answer.set_cookies().is_empty(), "{dest}/{mode}");
    }
    assert_eq!(world.provider.count(Endpoint::Par), 0);
    // A cross-site link the user follows is a page load: it pushes, as a plain login would go.
    let headers = [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
    ];
    let request = request(Method::GET, "/bff/login", &headers, Vec::new());
    let answer = block_on(world.send(&mut Browser::default(), request, Site::Cross));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    assert_eq!(world.provider.count(Endpoint::Par), 1);
    // A script's own client (Node's fetch: `Sec-Fetch-Mode: cors`, no destination) pushes too.
    let node = bff_core::testing::request(Method::GET, "/bff/login", &[("sec-fetch-mode", "cors")], Vec::new());
    let answer = block_on(world.send(&mut Browser::default(), node, Site::Cross));
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text());
    assert_eq!(world.provider.count(Endpoint::Par), 2);
}

/// In DPoP mode the login pins the browser's key in the transaction, and neither the URL nor the
/// pushed request names it: RFC 9449 §10 would bind the code to it and want a proof by the
/// browser's key on the code exchange, which the browser is not part of. The tokens are bound all
/// the same.
#[test]
fn dpop_jkt_is_pinned_but_neither_pushed_nor_in_the_url() {
    let world = world(&[("BFF_DPOP", "required")], ParPolicy::Offered);
    let key = BrowserKey::new(5);
    let mut browser = Browser::default();
    let url = location(&login(&world, &mut browser, &format!("?dpop_jkt={}", key.thumbprint())));
    assert_eq!(names(&url), ["client_id", "request_uri"]);
    let pushed = world.provider.pushed_requests();
    assert!(value(&pushed[0], "dpop_jkt").is_none(), "{pushed:?}");
    finish(&world, &mut browser, &url);
    use bff_core::Clock as _;
    let proof = key.proof(world.clock.now().0, "j1", None);
    let answer = block_on(world.token_with_proofs(&mut browser, "", &[&proof]));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["token_type"], json!("DPoP"));
}

/// With `private_key_jwt` the push carries a fresh client assertion for the issuer (RFC 7523 §3,
/// RFC 9126 §2), which the provider verifies with the registered key; one signed by another key
/// is refused, and that is the 500 page with a log line naming `invalid_client`.
#[test]
fn private_key_jwt_pushes_with_a_client_assertion() {
    let pair = ES256KeyPair::from_bytes(&[11u8; 32]).unwrap();
    let jwk = json!({"kty": "EC", "crv": "P-256", "d": URL_SAFE_NO_PAD.encode(pair.to_bytes())}).to_string();
    let settings = [
        ("BFF_CLIENT_AUTH", "private_key_jwt"),
        ("BFF_CLIENT_SECRET", ""),
        ("BFF_CLIENT_PRIVATE_KEY", jwk.as_str()),
    ];
    let world = world(&settings, ParPolicy::Required);
    world.provider.register_client_key(pair.public_key());
    let mut browser = Browser::default();
    let first = location(&login(&world, &mut browser, ""));
    let second = location(&login(&world, &mut browser, ""));
    assert_ne!(first, second, "each push its own request_uri (and assertion jti)");
    finish(&world, &mut browser, &second);
    assert_eq!(world.provider.count(Endpoint::Par), 2);
    assert!(world.provider.refusals().is_empty(), "{:?}", world.provider.refusals());

    let stranger = ES256KeyPair::from_bytes(&[12u8; 32]).unwrap();
    world.provider.register_client_key(stranger.public_key());
    let answer = login(&world, &mut Browser::default(), "");
    let why = "an assertion the provider cannot verify";
    assert_failed(&world, &answer, StatusCode::INTERNAL_SERVER_ERROR, why);
    assert!(
        world.provider.refusals()[0].contains("client assertion"),
        "{:?}",
        world.provider.refusals()
    );
    let lines = world.log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("status 401, error invalid_client") && l.contains("BFF_CLIENT_ID")),
        "{lines:?}"
    );
}

/// The scripted provider's own strictness, which the tests above lean on: a pushed request
/// expires after 60 s and is named by `client_id` and `request_uri` alone.
#[test]
fn a_pushed_request_expires_and_stands_alone() {
    let world = world(&[], ParPolicy::Offered);
    let mut browser = Browser::default();
    let url = location(&login(&world, &mut browser, ""));
    let mixed = format!("{url}&scope=openid+admin");
    assert!(
        world
            .provider
            .try_authorize(&mixed, "alice")
            .unwrap_err()
            .contains("only")
    );
    let url = location(&login(&world, &mut browser, ""));
    world.clock.advance(60);
    assert!(
        world
            .provider
            .try_authorize(url.as_str(), "alice")
            .unwrap_err()
            .contains("expired")
    );
}
