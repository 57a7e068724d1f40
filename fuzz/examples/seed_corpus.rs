//! Writes seed corpora from real flows into `corpus/<target>/`, in each target's raw mode
//! (first byte 0 or 1, then the bytes as they are): Cookie headers, sealed values, a callback
//! query, the provider's answers, an ID token and a logout token, and requests to every endpoint.
//! `cargo fuzz cmin` then keeps what adds coverage.

use std::fs;
use std::path::Path;

use bff_core::testing::{Browser, START};
use bff_core_fuzz::real::real;
use bff_core_fuzz::{Fuzzed, Harness, block_on};

fn write(target: &str, name: &str, mode: u8, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    let mut data = vec![mode];
    data.extend_from_slice(bytes);
    fs::write(dir.join(format!("seed-{name}")), data).expect("seed file");
}

fn main() {
    let real = real();
    let header = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    write("cookie_header", "single", 0, header(&real.single).as_bytes());
    write("cookie_header", "chunked", 0, header(&real.chunked).as_bytes());
    let with_txn = format!("pref=1; {}; {}={}", header(&real.single), real.txn.0, real.txn.1);
    write("cookie_header", "with-txn", 0, with_txn.as_bytes());
    write("unseal", "session", 0, real.sealed[0].as_bytes());
    write("unseal", "txn", 1, real.txn.1.as_bytes());

    // The callback target's first login, made the same way: its query is the real one.
    let harness = Harness::new(&[], false);
    let redirect = block_on(harness.world.start_login(&mut Browser::default(), "", "alice"));
    let query = redirect.split_once('?').map(|(_, q)| q).unwrap_or_default();
    write("callback", "real", 0, query.as_bytes());
    write(
        "callback",
        "error",
        0,
        format!("{query}&error=access_denied&error_description=no").as_bytes(),
    );

    // Every answer of the provider in a sign-in with UserInfo, a refresh and a logout.
    let harness = Harness::new(&[("BFF_USERINFO", "true")], true);
    let recorder = Fuzzed::new(&harness.world.provider, None);
    let jar = harness.sign_in(&recorder, "", "alice");
    harness.world.clock.advance(61);
    let cookies = jar.header();
    let csrf = [("x-csrf", "1"), ("cookie", cookies.as_str())];
    let token = bff_core::testing::request(http::Method::GET, "/.well-known/bff-token", &csrf, Vec::new());
    let answer = harness.send(&recorder, token);
    let mut after = jar.clone();
    after.store(&answer);
    let cookies = after.header();
    let csrf = [("x-csrf", "1"), ("cookie", cookies.as_str())];
    let logout = bff_core::testing::request(http::Method::POST, "/bff/logout", &csrf, Vec::new());
    harness.send(&recorder, logout);
    let seen = recorder.seen.lock().map(|s| s.clone()).unwrap_or_default();
    for (i, (path, status, body)) in seen.iter().enumerate() {
        let kind = match path.as_str() {
            "/token" => 0,
            "/.well-known/openid-configuration" => 1,
            "/jwks" => 2,
            _ => continue,
        };
        let mode = u8::from(*status >= 400);
        let mut bytes = vec![kind];
        bytes.extend_from_slice(body);
        write(
            "provider_responses",
            &format!("{i}-{}", path.trim_start_matches('/').replace('/', "-")),
            mode,
            &bytes,
        );
    }
    write(
        "provider_responses",
        "error",
        1,
        &[
            &[0u8][..],
            br#"{"error":"invalid_grant","error_description":"grant revoked"}"#,
        ]
        .concat(),
    );

    // An ID token and a logout token the provider signed.
    let session = harness.session(&jar.header()).expect("a session");
    let id_token = session["id_token"].as_str().unwrap_or_default();
    write("jwt", "id-token", 0, id_token.as_bytes());
    let provider = &harness.world.provider;
    let sid = provider.sid_of("alice");
    write(
        "jwt",
        "logout-token",
        1,
        provider
            .logout_token(Some("alice"), sid.as_deref(), "jti-1", START)
            .as_bytes(),
    );

    // Requests to every endpoint, as the handle target's raw mode reads them.
    let logout_token = provider.logout_token(None, sid.as_deref(), "jti-2", START);
    let backchannel = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &logout_token)
        .finish();
    let requests = [
        ("token", "GET /.well-known/bff-token\nx-csrf: 1\nsec-fetch-site: same-origin\n\n".to_owned()),
        ("token-post", "POST /.well-known/bff-token\nx-csrf: 1\ncontent-type: application/x-www-form-urlencoded\n\nscope=openid&rejected_token=at-1".to_owned()),
        ("sessioninfo", "GET /.well-known/bff-sessioninfo\nx-csrf: 1\norigin: https://app.example\n\n".to_owned()),
        ("configuration", "GET /.well-known/bff-configuration\n\n".to_owned()),
        ("login", "GET /bff/login?return_to=/app&scope=api:read&resource=https://api.example/&prompt=consent\n\n".to_owned()),
        ("logout", "POST /bff/logout\nx-csrf: 1\n\n".to_owned()),
        ("backchannel", format!("POST /bff/backchannel-logout\ncontent-type: application/x-www-form-urlencoded\n\n{backchannel}")),
        ("preflight", "OPTIONS /.well-known/bff-token\norigin: https://evil.example\n\n".to_owned()),
    ];
    for (name, text) in requests {
        write("handle", name, 0, text.as_bytes());
    }
    println!("seed corpora written");
}
