//! Real values from a test-kit sign-in, made once per fuzz process: sealed sessions (one cookie
//! and chunked), a transaction cookie and the provider's keys.

use std::sync::OnceLock;

use bff_core::fuzzing::{self, Config};
use bff_core::testing::{Browser, START};
use bff_core::{HttpClient, UnixTime};

use crate::{Harness, Jar, SESSION, block_on, config};

/// What the targets mutate and compare against.
pub struct Real {
    /// The configuration every value here was sealed under.
    pub config: Config,
    /// `Cookie` header pairs of a signed-in browser with a one-cookie session.
    pub single: Vec<(String, String)>,
    /// The same for a session sealed into several chunks.
    pub chunked: Vec<(String, String)>,
    /// A login transaction cookie (name, value).
    pub txn: (String, String),
    /// Every sealed session value here, whole (chunks joined).
    pub sealed: Vec<String>,
    /// The scripted provider's JWKS.
    pub jwks: Vec<u8>,
    /// When they were made.
    pub now: UnixTime,
}

/// The values, made on first use.
pub fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(make)
}

fn make() -> Real {
    let harness = Harness::new(&[], false);
    let browser = harness.signed_in("alice");
    let single: Vec<(String, String)> = Jar::of(&browser).0.into_iter().collect();

    let mut login = Browser::default();
    block_on(harness.world.start_login(&mut login, "", "bob"));
    let txn = Jar::of(&login).0.into_iter().next().expect("a transaction cookie");

    // The same session with enough cached tokens to need two chunks.
    let mut session = harness
        .session(&Jar::of(&browser).header())
        .expect("the signed-in session");
    let token = session["tokens"][0].clone();
    let tokens: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            let mut t = token.clone();
            t["key"] = format!("scope-{i}").into();
            t["token"] = format!("at-padding-{i}-{}", "x".repeat(200)).into();
            t
        })
        .collect();
    session["tokens"] = tokens.into();
    let random = bff_core::testing::SeededRandom::new(3);
    let (cookies, _) = fuzzing::save_session(&harness.config, session.to_string().as_bytes(), &random, harness.now())
        .expect("a session")
        .expect("within the budget");
    let chunked: Vec<(String, String)> = cookies
        .iter()
        .filter_map(|c| {
            c.split(';')
                .next()?
                .split_once('=')
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert!(chunked.len() > 1, "the padded session fits one cookie");

    let joined = |pairs: &[(String, String)]| -> String {
        pairs
            .iter()
            .filter(|(n, _)| n.starts_with(SESSION))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let sealed = vec![joined(&single), joined(&chunked)];

    let request = http::Request::get(format!("{}/jwks", bff_core::testing::ISSUER))
        .body(Vec::new())
        .expect("a request");
    let jwks = block_on(harness.world.provider.send(request, std::time::Duration::from_secs(5)))
        .expect("the JWKS")
        .into_body();
    crate::jwt::check_key(&jwks, START);
    Real {
        config: config(&[]),
        single,
        chunked,
        txn,
        sealed,
        jwks,
        now: UnixTime(START),
    }
}
