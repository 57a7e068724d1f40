//! What the authorization server answers: token, metadata, JWKS and UserInfo bodies, parsed on
//! their own and met by the backend in a callback, a refresh and a logout.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bff_core::fuzzing::{self, Keys, Upstream};
use bff_core::testing::{Browser, Endpoint, ISSUER, request};
use bff_core_fuzz::json::{self, Edit, Json, apply};
use bff_core_fuzz::real::real;
use bff_core_fuzz::{
    Expect, Fuzzed, Harness, Jar, Provider, Replacement, Secrets, Substitute, block_on, check, logs_since, raw,
};
use http::Method;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Arbitrary, Debug)]
enum Input {
    Token {
        status: Status,
        body: Body,
    },
    Metadata(Body),
    Jwks {
        body: Body,
        kid: Option<String>,
        alg: u8,
    },
    Backend {
        flow: Flow,
        endpoint: Which,
        status: Status,
        body: Body,
    },
}

#[derive(Arbitrary, Debug)]
enum Status {
    Ok,
    BadRequest,
    Unauthorized,
    ServerError,
    Any(u16),
}

impl Status {
    fn code(&self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::ServerError => 500,
            Self::Any(n) => 100 + n % 500,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Json(Json),
    /// The answer the scripted provider gives, edited.
    Edited(Vec<Edit>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Flow {
    Callback,
    Refresh,
    Logout,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Which {
    Discovery,
    Jwks,
    Token,
    UserInfo,
    Revocation,
}

const ALGS: &[&str] = &["ES256", "RS256", "ES384", "EdDSA", "PS256", "HS256", "none"];

fn render(body: &Body, real: &[u8]) -> Vec<u8> {
    match body {
        Body::Raw(bytes) => bytes.clone(),
        Body::Json(json) => json.render(8).to_string().into_bytes(),
        Body::Edited(edits) => {
            let mut object = serde_json::from_slice::<serde_json::Map<String, Value>>(real).unwrap_or_default();
            apply(&mut object, edits);
            Value::Object(object).to_string().into_bytes()
        }
    }
}

fn allowed(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

const TOKEN: &[u8] = br#"{"access_token":"at-1","token_type":"Bearer","expires_in":60,"refresh_token":"rt-1","scope":"openid","id_token":"x.y.z"}"#;
const METADATA: &[u8] = br#"{"issuer":"https://idp.example","authorization_endpoint":"https://idp.example/authorize","token_endpoint":"https://idp.example/token","jwks_uri":"https://idp.example/jwks","userinfo_endpoint":"https://idp.example/userinfo","revocation_endpoint":"https://idp.example/revoke","end_session_endpoint":"https://idp.example/logout","id_token_signing_alg_values_supported":["ES256"],"authorization_response_iss_parameter_supported":true}"#;

fuzz_target!(|data: &[u8]| {
    let input = match raw(data) {
        // Mode 0: a success answer, 1: an error answer; the next byte picks the parser.
        Some((mode, rest)) => {
            let (kind, body) = rest.split_first().map_or((0, rest), |(k, b)| (*k, b));
            let body = Body::Raw(body.to_vec());
            match kind % 3 {
                0 => Input::Token {
                    status: if mode == 0 { Status::Ok } else { Status::BadRequest },
                    body,
                },
                1 => Input::Metadata(body),
                _ => Input::Jwks {
                    body,
                    kid: Some("k1".into()),
                    alg: 0,
                },
            }
        }
        None => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => input,
            Err(_) => return,
        },
    };
    let real = real();
    match input {
        Input::Token { status, body } => {
            let mut response = http::Response::new(render(&body, TOKEN));
            *response.status_mut() = http::StatusCode::from_u16(status.code()).unwrap_or_default();
            match fuzzing::token_response(&response) {
                Ok(tokens) => {
                    assert!(response.status().is_success(), "tokens from a {}", response.status());
                    assert!(tokens.token_type.eq_ignore_ascii_case("bearer") && !tokens.access_token.is_empty());
                }
                Err(Upstream::OAuth { error, description }) => {
                    assert!(!response.status().is_success() && !response.status().is_server_error());
                    assert!(
                        !error.is_empty() && error.len() <= 128 && error.chars().all(allowed),
                        "{error:?}"
                    );
                    let description = description.unwrap_or_default();
                    assert!(
                        description.chars().count() <= 300 && description.chars().all(allowed),
                        "{description:?}"
                    );
                }
                Err(Upstream::Unavailable) => assert!(response.status().is_server_error()),
                Err(Upstream::Malformed) => {}
            }
        }
        Input::Metadata(body) => {
            if let Ok(named) = fuzzing::metadata(&real.config, &render(&body, METADATA)) {
                assert_eq!(named[0], ISSUER);
                for url in &named[1..] {
                    let url = url::Url::parse(url).expect("a checked endpoint is a URL");
                    assert_eq!(url.scheme(), "https", "{url}");
                }
            }
        }
        Input::Jwks { body, kid, alg } => {
            if let Some(keys) = Keys::parse(&render(&body, &real.jwks)) {
                let alg = ALGS[usize::from(alg) % ALGS.len()];
                let found = keys.candidates(kid.as_deref(), alg);
                assert!(found.len() <= keys.len());
                if kid.is_some() {
                    assert!(found.iter().all(|k| *k == kid), "a key of another kid");
                }
                if matches!(alg, "HS256" | "none") {
                    assert!(found.is_empty(), "a key for {alg}");
                }
            }
        }
        Input::Backend {
            flow,
            endpoint,
            status,
            body,
        } => backend(flow, endpoint, status.code(), &body),
    }
});

/// A flow of the backend with one endpoint's answer substituted.
fn backend(flow: Flow, which: Which, status: u16, body: &Body) {
    let settings = [("BFF_USERINFO", "true")];
    let mut harness = Harness::new(&settings, false);
    let endpoint = match which {
        Which::Discovery => Endpoint::Discovery,
        Which::Jwks => Endpoint::Jwks,
        Which::Token => Endpoint::Token,
        Which::UserInfo => Endpoint::UserInfo,
        Which::Revocation => Endpoint::Revocation,
    };
    let csrf = [("x-csrf", "1")];
    let (jar, path, mut req) = match flow {
        Flow::Callback => {
            let mut browser = Browser::default();
            let redirect = block_on(harness.world.start_login(&mut browser, "", "alice"));
            let req = request(Method::GET, &redirect, &[], Vec::new());
            (Jar::of(&browser), "/bff/callback", req)
        }
        Flow::Refresh => {
            let browser = harness.signed_in("alice");
            harness.world.clock.advance(61);
            let path = "/.well-known/bff-token";
            (Jar::of(&browser), path, request(Method::GET, path, &csrf, Vec::new()))
        }
        Flow::Logout => {
            let browser = harness.signed_in("alice");
            let path = "/bff/logout";
            (Jar::of(&browser), path, request(Method::POST, path, &csrf, Vec::new()))
        }
    };
    // A new deployment: metadata and keys are fetched again, the substituted answer included.
    harness.world.redeploy(&settings);
    let world = &harness.world;
    if let Ok(value) = jar.header().parse() {
        req.headers_mut().insert(http::header::COOKIE, value);
    }
    let (replacement, written) = match body {
        Body::Raw(bytes) => (Replacement::Body(bytes.clone()), bytes.clone()),
        Body::Json(json) => {
            let bytes = json.render(8).to_string().into_bytes();
            (Replacement::Body(bytes.clone()), bytes)
        }
        Body::Edited(edits) => (Replacement::Edit(edits.clone()), json::written(edits)),
    };
    let fuzzed = Fuzzed::new(
        &world.provider,
        Some(Substitute {
            endpoint,
            status,
            body: replacement,
        }),
    );
    let mut secrets = Secrets::deployment();
    secrets.add_jar(&harness, &jar);
    let logged = world.log.lines().len();
    let answer = harness.send(&fuzzed, req);
    let logs = logs_since(world, logged);
    secrets.add_answer(&harness, &answer);
    let expect = Expect {
        path,
        input: &written,
        provider: Provider::Fuzzed,
        store: false,
        revoked: false,
    };
    check(&expect, &answer, &logs, &secrets);
}
