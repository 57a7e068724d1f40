//! `GET B/bff/callback` through `Backend::handle` with a real login transaction: the fuzzer
//! writes the query (`code`, `state`, `iss`, `error`, anything else) and may spoil the cookie.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bff_core::testing::{Browser, ISSUER, request};
use bff_core_fuzz::{Expect, Harness, Jar, Provider, SESSION, Secrets, block_on, check, logs_since, raw};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    query: Query,
    cookie: Cookie,
    /// Signed in before this login (an incremental login).
    signed_in: bool,
    /// BFF_USERINFO=true.
    userinfo: bool,
    /// Seconds between the login and the callback.
    wait: u16,
}

#[derive(Arbitrary, Debug)]
enum Query {
    Params(Vec<(Name, Value)>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Name {
    Code,
    State,
    Iss,
    Error,
    ErrorDescription,
    SessionState,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    /// The value the provider's redirect carried for this name (code, state, iss).
    Real,
    Empty,
    Issuer,
    Any(String),
    /// The real value with text appended.
    RealPlus(String),
}

#[derive(Arbitrary, Debug)]
enum Cookie {
    Keep,
    Drop,
    Twice,
    Flip {
        at: u16,
    },
    /// The transaction cookie of another login (another `state`).
    Other,
}

fuzz_target!(|data: &[u8]| {
    let input = match raw(data) {
        Some((_, query)) => Input {
            query: Query::Raw(String::from_utf8_lossy(query).into_owned()),
            cookie: Cookie::Keep,
            signed_in: false,
            userinfo: false,
            wait: 0,
        },
        None => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => input,
            Err(_) => return,
        },
    };
    let settings: &[(&str, &str)] = if input.userinfo {
        &[("BFF_USERINFO", "true")]
    } else {
        &[]
    };
    let harness = Harness::new(settings, false);
    let world = &harness.world;
    let mut browser = if input.signed_in {
        harness.signed_in("alice")
    } else {
        Browser::default()
    };
    let redirect = block_on(world.start_login(&mut browser, "", "alice"));
    let mut other = Browser::default();
    block_on(world.start_login(&mut other, "", "mallory"));
    world.clock.advance(u64::from(input.wait % 900));

    let real: Vec<(String, String)> = url::Url::parse(&format!("https://x{redirect}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let real_of = |name: &str| {
        real.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };

    let query = match &input.query {
        Query::Raw(raw) => raw.clone(),
        Query::Params(params) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in params {
                let name = match name {
                    Name::Code => "code".to_owned(),
                    Name::State => "state".to_owned(),
                    Name::Iss => "iss".to_owned(),
                    Name::Error => "error".to_owned(),
                    Name::ErrorDescription => "error_description".to_owned(),
                    Name::SessionState => "session_state".to_owned(),
                    Name::Any(s) => s.clone(),
                };
                let value = match value {
                    Value::Real => real_of(&name),
                    Value::Empty => String::new(),
                    Value::Issuer => ISSUER.to_owned(),
                    Value::Any(s) => s.clone(),
                    Value::RealPlus(s) => format!("{}{s}", real_of(&name)),
                };
                form.append_pair(&name, &value);
            }
            form.finish()
        }
    };

    let mut jar = Jar::of(&browser);
    let txn: Vec<String> = jar
        .0
        .keys()
        .filter(|n| n.starts_with("__Host-bff-txn."))
        .cloned()
        .collect();
    let txn_name = txn.first().cloned().unwrap_or_default();
    match input.cookie {
        Cookie::Keep => {}
        Cookie::Drop => {
            jar.0.remove(&txn_name);
        }
        Cookie::Twice | Cookie::Other => {}
        Cookie::Flip { at } => {
            if let Some(value) = jar.0.get_mut(&txn_name) {
                let mut bytes = value.clone().into_bytes();
                let i = usize::from(at) % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(i) {
                    *b = if *b == b'A' { b'B' } else { b'A' };
                }
                *value = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
    }
    // The callback is a cross-site navigation: the Strict session cookie stays home.
    let mut header: Vec<String> = jar
        .0
        .iter()
        .filter(|(n, _)| !n.starts_with(SESSION))
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    match input.cookie {
        Cookie::Twice => header.push(format!(
            "{txn_name}={}",
            jar.0.get(&txn_name).cloned().unwrap_or_default()
        )),
        Cookie::Other => header.extend(Jar::of(&other).0.iter().map(|(n, v)| format!("{n}={v}"))),
        _ => {}
    }
    let header = header.join("; ");

    let mut secrets = Secrets::deployment();
    secrets.add_jar(&harness, &jar);
    secrets.add_jar(&harness, &Jar::of(&other));
    let path = format!("/bff/callback?{query}");
    let mut request = request(Method::GET, &path, &[], Vec::new());
    if let Ok(value) = header.parse() {
        request.headers_mut().insert(http::header::COOKIE, value);
    }
    if request.uri().path() != "/bff/callback" {
        // A raw query with characters that end the path early; not a callback.
        return;
    }
    // What reaches the backend: the URI ends its query at a `#`.
    let query = request.uri().query().unwrap_or_default().to_owned();
    let logged = world.log.lines().len();
    let answer = harness.send(&world.provider, request);
    let logs = logs_since(world, logged);
    secrets.add_answer(&harness, &answer);
    let expect = Expect {
        path: "/bff/callback",
        input: query.as_bytes(),
        provider: Provider::Working,
        store: false,
        revoked: false,
    };
    check(&expect, &answer, &logs, &secrets);

    assert!(
        answer.status == StatusCode::FOUND || answer.status == StatusCode::BAD_REQUEST,
        "callback answered {}: {}",
        answer.status,
        answer.text()
    );
    if answer.status == StatusCode::FOUND {
        // Only the provider's own redirect signs in: this code and state, the right issuer, no error.
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let only = |name: &str| {
            let mut values = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
            let first = values.next();
            if values.next().is_some() { None } else { first }
        };
        assert_eq!(
            only("code"),
            Some(real_of("code").as_str()),
            "signed in with another code: {query}"
        );
        assert_eq!(
            only("state"),
            Some(real_of("state").as_str()),
            "signed in with another state: {query}"
        );
        assert!(
            only("iss").is_none_or(|iss| iss == ISSUER),
            "signed in with another issuer: {query}"
        );
        assert!(
            !params.iter().any(|(k, _)| k == "error"),
            "signed in despite an error parameter: {query}"
        );
        assert!(input.wait % 900 < 600, "signed in with an expired transaction");
        assert!(
            matches!(input.cookie, Cookie::Keep | Cookie::Other),
            "signed in without its transaction cookie"
        );
        let mut after = Jar::default();
        after.store(&answer);
        let session = harness.session(&after.header()).expect("a session after the callback");
        assert_eq!(session["sub"], "alice");
    }
});
