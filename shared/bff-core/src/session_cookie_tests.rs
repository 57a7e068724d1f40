use super::*;
use serde_json::{Map, Value};

use crate::config::tests::config;
use crate::cookie::Cookies;
use crate::oidc::token::TokenSet;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::session::{CachedToken, scope_covered, scope_key};
use crate::testing::CounterRandom;

fn session(claim_bytes: usize, tokens: usize) -> Session {
    let mut claims = Map::new();
    claims.insert("big".into(), Value::String("x".repeat(claim_bytes)));
    Session {
        id: "id-1".into(),
        iss: "https://idp.example".into(),
        sub: "alice".into(),
        sid: Some("sid-1".into()),
        auth_time: Some(1),
        created: 1000,
        expires: 1000 + 86_400,
        claims,
        id_token: IdToken::new("header.payload.signature"),
        refresh_token: Some(RefreshToken::new("refresh")),
        scope: "openid offline_access".into(),
        resources: vec![],
        tokens: (0..tokens)
            .map(|i| CachedToken {
                resource: Some(format!("https://api{i}.example/")),
                key: "openid".into(),
                scope: "openid".into(),
                token: AccessToken::new("a".repeat(800)),
                obtained: 1000,
                expires: 1060,
                expires_known: true,
                bound: false,
            })
            .collect(),
        last_forced: None,
        dpop_jkt: None,
    }
}

fn request_cookies(set: &[SetCookie]) -> Vec<(String, String)> {
    set.iter()
        .filter_map(|c| {
            let header = c.render();
            let pair = header.split(';').next()?.to_owned();
            let (name, value) = pair.split_once('=')?;
            (!value.is_empty()).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn small_session_is_one_cookie_and_round_trips() {
    let config = config(&[]);
    let mut s = session(10, 1);
    let set = save(&mut s, &config, &CounterRandom::default(), UnixTime(1000)).unwrap();
    assert!(set[0].render().starts_with("__Host-bff-session=v1.k1."));
    assert!(set[0].render().contains("Max-Age=86400"));
    // Every chunk name is deleted since the callback cannot know which ones exist.
    assert!(
        set[1..]
            .iter()
            .all(|c| c.render().contains("Max-Age=0") && c.name().starts_with("__Host-bff-session."))
    );
    let loaded = load(&Cookies::from_pairs(&request_cookies(&set)), &config, UnixTime(1001)).unwrap();
    assert_eq!(loaded.sub, "alice");
    assert_eq!(loaded.tokens.len(), 1);
    assert!(
        load(
            &Cookies::from_pairs(&request_cookies(&set)),
            &config,
            UnixTime(1000 + 86_400)
        )
        .is_none(),
        "expired"
    );
}

#[test]
fn large_session_is_chunked_and_stale_names_deleted() {
    let config = config(&[]);
    let mut s = session(4500, 0);
    let set = save(&mut s, &config, &CounterRandom::default(), UnixTime(1000)).unwrap();
    let live = request_cookies(&set);
    assert_eq!(live.len(), 2);
    assert_eq!(live[0].0, "__Host-bff-session.0");
    assert_eq!(live[1].0, "__Host-bff-session.1");
    assert!(live.iter().all(|(n, v)| n.len() + v.len() < 4000));
    assert!(
        set.iter()
            .any(|c| c.name() == "__Host-bff-session" && c.render().contains("Max-Age=0"))
    );
    assert_eq!(
        load(&Cookies::from_pairs(&live), &config, UnixTime(1001))
            .unwrap()
            .claims["big"]
            .as_str()
            .unwrap()
            .len(),
        4500
    );
}

#[test]
fn budget_drops_least_recently_used_tokens_then_refuses() {
    let config = config(&[]);
    let mut s = session(10, 12);
    let set = save(&mut s, &config, &CounterRandom::default(), UnixTime(1000)).unwrap();
    let size: usize = request_cookies(&set).iter().map(|(n, v)| n.len() + 1 + v.len()).sum();
    assert!(size <= 7000, "{size}");
    assert!(s.tokens.len() < 12 && !s.tokens.is_empty());
    assert_eq!(
        s.tokens.last().unwrap().resource.as_deref(),
        Some("https://api11.example/"),
        "newest kept"
    );
    let mut huge = session(9000, 0);
    assert!(matches!(
        save(&mut huge, &config, &CounterRandom::default(), UnixTime(1000)),
        Err(SaveError::TooLarge { .. })
    ));
}

#[test]
fn tampered_swapped_or_foreign_cookies_are_no_session() {
    let config = config(&[]);
    let mut s = session(10, 0);
    let set = save(&mut s, &config, &CounterRandom::default(), UnixTime(1000)).unwrap();
    let mut live = request_cookies(&set);
    let good = live[0].1.clone();
    live[0].1 = format!("{}A", &good[..good.len() - 1]);
    assert!(
        load(&Cookies::from_pairs(&live), &config, UnixTime(1001)).is_none(),
        "tampered"
    );
    live[0].1 = good[..good.len() / 2].to_owned();
    assert!(
        load(&Cookies::from_pairs(&live), &config, UnixTime(1001)).is_none(),
        "truncated"
    );
    // A transaction cookie's value moved into the session cookie fails its associated data.
    let txn = LoginTxn {
        state: "s".into(),
        nonce: "n".into(),
        verifier: "v".into(),
        return_to: "/".into(),
        created: 1000,
        scope: "openid".into(),
        resources: vec![],
        dpop_jkt: None,
    };
    let txn_cookie = seal_txn(&txn, &config, &CounterRandom::default()).unwrap();
    let moved = request_cookies(&[txn_cookie]).remove(0).1;
    assert!(
        load(
            &Cookies::from_pairs(&[(SESSION_COOKIE.into(), moved)]),
            &config,
            UnixTime(1001)
        )
        .is_none(),
        "swapped"
    );
}

#[test]
fn freshness_rule() {
    let entry = |obtained, expires| CachedToken {
        resource: None,
        key: String::new(),
        scope: String::new(),
        token: AccessToken::new("t"),
        obtained,
        expires,
        expires_known: true,
        bound: false,
    };
    // 10 s token: margin max(5, 2) = 5.
    assert!(entry(0, 10).is_fresh(UnixTime(5)));
    assert!(!entry(0, 10).is_fresh(UnixTime(6)));
    // 1 h token: margin min(60, 900) = 60.
    assert!(entry(0, 3600).is_fresh(UnixTime(3540)));
    assert!(!entry(0, 3600).is_fresh(UnixTime(3541)));
    // 100 s token: margin 25.
    assert!(!entry(0, 100).is_fresh(UnixTime(76)));
}

#[test]
fn scope_sets() {
    assert_eq!(scope_key("b a  b"), "a b");
    assert!(scope_covered("a", "openid a b"));
    assert!(!scope_covered("a c", "openid a b"));
    assert_eq!(txn_cookie_name("state").len(), TXN_COOKIE_PREFIX.len() + 12);
}

/// A chunk name sent twice (one may be planted) is no session, even though one of them is ours.
#[test]
fn a_repeated_chunk_is_no_session() {
    let config = config(&[]);
    let mut s = session(4500, 0);
    let set = save(&mut s, &config, &CounterRandom::default(), UnixTime(1000)).unwrap();
    let mut live = request_cookies(&set);
    assert!(load(&Cookies::from_pairs(&live), &config, UnixTime(1001)).is_some());
    live.insert(0, (live[1].0.clone(), "v1.k1.planted".into()));
    assert!(load(&Cookies::from_pairs(&live), &config, UnixTime(1001)).is_none());
    let mut single =
        request_cookies(&save(&mut session(10, 0), &config, &CounterRandom::default(), UnixTime(1000)).unwrap());
    single.push(single[0].clone());
    assert!(load(&Cookies::from_pairs(&single), &config, UnixTime(1001)).is_none());
}

fn token_response(body: Value) -> TokenSet {
    serde_json::from_value(body).unwrap()
}

#[test]
fn lifetimes_from_expires_in_or_exp() {
    let tokens = |at: &str, expires_in: Value| {
        token_response(serde_json::json!({"access_token": at, "token_type": "Bearer", "expires_in": expires_in}))
    };
    let entry = |t: &TokenSet| CachedToken::from_response(None, "openid".into(), t, 1000, 1_000_000);
    // expires_in wins.
    let e = entry(&tokens("opaque", Value::from(300)));
    assert_eq!((e.expires, e.expires_known), (1300, true));
    // A JWT's exp when expires_in is missing.
    let jwt = format!(
        "e30.{}.sig",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, br#"{"exp":1120}"#)
    );
    let e = entry(&tokens(&jwt, Value::Null));
    assert_eq!((e.expires, e.expires_known), (1120, true));
    // Otherwise at most 60 s, and expires_in is not claimed.
    let e = entry(&tokens("opaque", Value::Null));
    assert_eq!((e.expires, e.expires_known, e.scope.as_str()), (1060, false, "openid"));
}

/// `expires_in` as a string of digits is used; anything else is absent; every lifetime is capped
/// at a day and at the session's end.
#[test]
fn expires_in_is_lenient_and_capped() {
    let parse = |expires_in: Value| {
        token_response(serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": expires_in}))
            .expires_in
    };
    assert_eq!(parse(Value::from("3600")), Some(3600));
    assert_eq!(parse(Value::from(3600.7)), Some(3600));
    assert_eq!(parse(Value::from("soon")), None);
    assert_eq!(parse(Value::from("-5")), None);
    assert_eq!(parse(Value::from(-5)), None);
    assert_eq!(parse(serde_json::json!({"s": 1})), None);
    assert_eq!(parse(Value::from(u64::MAX)), Some(u64::MAX));
    let huge = token_response(serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 1e300}));
    let capped = CachedToken::from_response(None, "k".into(), &huge, 1000, 1_000_000);
    assert_eq!(capped.expires, 1000 + 86_400);
    let by_session = CachedToken::from_response(None, "k".into(), &huge, 1000, 5000);
    assert_eq!(by_session.expires, 5000);
}

/// The security review's finding: a planted base-name cookie beside a chunked session (a sibling
/// subdomain's nameless cookie can read `__Host-bff-session=<attacker's sealed session>`) must not
/// be taken instead of the chunks; neither may a gap or an extra chunk.
#[test]
fn session_names_must_be_exactly_the_single_cookie_or_contiguous_chunks() {
    let config = config(&[]);
    let mut victim = session(4500, 0);
    let chunks = request_cookies(&save(&mut victim, &config, &CounterRandom::default(), UnixTime(1000)).unwrap());
    assert_eq!(chunks.len(), 2);
    let mut attacker = session(10, 0);
    attacker.sub = "attacker".into();
    let single = request_cookies(&save(&mut attacker, &config, &CounterRandom::default(), UnixTime(1000)).unwrap());
    assert!(load(&Cookies::from_pairs(&single), &config, UnixTime(1001)).is_some());

    let mut planted = single;
    planted.extend(chunks.iter().cloned());
    assert!(
        load(&Cookies::from_pairs(&planted), &config, UnixTime(1001)).is_none(),
        "base beside chunks"
    );
    let mut extra = chunks.clone();
    extra.push(("__Host-bff-session.2".into(), "x".into()));
    assert!(
        load(&Cookies::from_pairs(&extra), &config, UnixTime(1001)).is_none(),
        "an extra chunk"
    );
    let gap = vec![chunks[1].clone()];
    assert!(
        load(&Cookies::from_pairs(&gap), &config, UnixTime(1001)).is_none(),
        "a gap"
    );
    assert_eq!(
        load(&Cookies::from_pairs(&chunks), &config, UnixTime(1001))
            .unwrap()
            .sub,
        "alice"
    );
}
