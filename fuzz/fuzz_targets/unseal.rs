//! The sealed envelope: arbitrary and mutated values must not open; whatever is sealed opens to
//! exactly itself, and a whole session sealed into cookies loads back unchanged.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bff_core::UnixTime;
use bff_core::fuzzing;
use bff_core::testing::{ISSUER, SeededRandom};
use bff_core_fuzz::json::{Json, Text};
use bff_core_fuzz::real::real;
use bff_core_fuzz::{SESSION, cookie_headers, raw};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
enum Input {
    Open {
        value: Envelope,
        name: CookieName,
        later: u32,
    },
    RoundTrip {
        payload: Vec<u8>,
        name: String,
        lifetime: u32,
        seed: u64,
    },
    Session {
        session: Box<Session>,
        seed: u64,
    },
}

#[derive(Arbitrary, Debug)]
enum CookieName {
    Session,
    Txn,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Envelope {
    Any(String),
    /// A real sealed session with a change.
    Real {
        which: bool,
        change: Change,
    },
}

#[derive(Arbitrary, Debug)]
enum Change {
    None,
    Flip { at: u16, bit: u8 },
    Cut(u16),
    Append(String),
    Insert { at: u16, text: String },
    Kid(String),
    Version(String),
}

#[derive(Arbitrary, Debug)]
struct Session {
    id: String,
    iss: Option<String>,
    sub: String,
    sid: Option<String>,
    auth_time: Option<u64>,
    created: u64,
    lifetime: u32,
    claims: Vec<(Text, Json)>,
    id_token: String,
    refresh_token: Option<String>,
    scope: String,
    resources: Vec<String>,
    tokens: Vec<Cached>,
    last_forced: Option<u64>,
}

#[derive(Arbitrary, Debug)]
struct Cached {
    resource: Option<String>,
    key: String,
    scope: String,
    token: String,
    obtained: u64,
    expires: u64,
    expires_known: bool,
}

fn envelope(value: &Envelope) -> (String, bool) {
    let Envelope::Real { which, change } = value else {
        let Envelope::Any(s) = value else { unreachable!() };
        return (s.clone(), false);
    };
    let real = &real().sealed[usize::from(*which)];
    let mut s = real.clone();
    match change {
        Change::None => {}
        Change::Flip { at, bit } => {
            let mut bytes = s.into_bytes();
            let i = usize::from(*at) % bytes.len();
            bytes[i] ^= 1 << (bit % 8);
            s = String::from_utf8_lossy(&bytes).into_owned();
        }
        Change::Cut(at) => s.truncate(usize::from(*at) % (s.len() + 1)),
        Change::Append(text) => s.push_str(text),
        Change::Insert { at, text } => s.insert_str(usize::from(*at) % (s.len() + 1), text),
        Change::Kid(kid) => s = s.replacen(".k1.", &format!(".{kid}."), 1),
        Change::Version(v) => s = s.replacen("v1.", &format!("{v}."), 1),
    }
    let intact = s == *real;
    (s, intact)
}

/// Floats compared by their text: JSON does not promise to round-trip the last bit.
fn normal(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => json!(format!("{:.9e}", n.as_f64().unwrap_or_default())),
        Value::Array(items) => Value::Array(items.iter().map(normal).collect()),
        Value::Object(members) => Value::Object(members.iter().map(|(k, v)| (k.clone(), normal(v))).collect()),
        other => other.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = match raw(data) {
        Some((mode, value)) => Input::Open {
            value: Envelope::Any(String::from_utf8_lossy(value).into_owned()),
            name: if mode == 0 {
                CookieName::Session
            } else {
                CookieName::Txn
            },
            later: 0,
        },
        None => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => input,
            Err(_) => return,
        },
    };
    let real = real();
    let config = &real.config;
    match input {
        Input::Open { value, name, later } => {
            let made_here = matches!(value, Envelope::Real { .. });
            let (value, intact) = envelope(&value);
            let name = match &name {
                CookieName::Session => SESSION,
                CookieName::Txn => "__Host-bff-txn",
                CookieName::Any(s) => s.as_str(),
            };
            let now = UnixTime(real.now.0 + u64::from(later));
            let opened = fuzzing::unseal(config, name, &value, now);
            // A changed seal never opens, nor one under another name. (Text the fuzzer wrote
            // may hold a seal from the seed corpus, sealed by another process: that one opens rightly.)
            if opened.is_ok() && made_here {
                assert!(intact && name == SESSION, "{value:?} opened under {name:?}");
            }
        }
        Input::RoundTrip {
            payload,
            name,
            lifetime,
            seed,
        } => {
            let random = SeededRandom::new(seed);
            let expires = UnixTime(real.now.0 + 1 + u64::from(lifetime));
            let sealed = fuzzing::seal(config, &name, &payload, expires, &random);
            assert_eq!(
                fuzzing::unseal(config, &name, &sealed, real.now).as_deref(),
                Ok(payload.as_slice())
            );
            assert!(
                fuzzing::unseal(config, &name, &sealed, expires).is_err(),
                "opened at its expiry"
            );
            let other = format!("{name}x");
            assert!(
                fuzzing::unseal(config, &other, &sealed, real.now).is_err(),
                "opened under another name"
            );
        }
        Input::Session { session, seed } => {
            let session = *session;
            let now = real.now.0;
            let value = json!({
                "id": session.id,
                "iss": session.iss.unwrap_or_else(|| ISSUER.to_owned()),
                "sub": session.sub,
                "sid": session.sid,
                "auth_time": session.auth_time,
                "created": session.created,
                "expires": now + 1 + u64::from(session.lifetime),
                "claims": Value::Object(session.claims.iter().map(|(k, v)| (k.render(), v.render(6))).collect()),
                "id_token": session.id_token,
                "refresh_token": session.refresh_token,
                "scope": session.scope,
                "resources": session.resources,
                "tokens": session.tokens.iter().map(|t| json!({
                    "resource": t.resource, "key": t.key, "scope": t.scope, "token": t.token,
                    "obtained": t.obtained, "expires": t.expires, "expires_known": t.expires_known,
                })).collect::<Vec<_>>(),
                "last_forced": session.last_forced,
            });
            let random = SeededRandom::new(seed);
            let saved = fuzzing::save_session(config, value.to_string().as_bytes(), &random, real.now)
                .expect("a well-formed session");
            let Ok((cookies, saved)) = saved else {
                // Too large even without cached tokens: then it never had room for them.
                return;
            };
            let pairs: Vec<(String, String)> = cookies
                .iter()
                .filter_map(|c| {
                    c.split(';')
                        .next()?
                        .split_once('=')
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                })
                .filter(|(_, v)| !v.is_empty())
                .collect();
            let size: usize = pairs.iter().map(|(n, v)| n.len() + 1 + v.len()).sum();
            assert!(size <= 7000, "{size} bytes of session cookies over the budget");
            assert!(pairs.iter().all(|(_, v)| v.len() <= 3800), "a chunk over 3800 bytes");
            let header = pairs
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let loaded = fuzzing::load_session(config, &cookie_headers(&header), real.now);
            if saved["iss"] == ISSUER {
                assert_eq!(
                    loaded.as_ref().map(normal),
                    Some(normal(&saved)),
                    "the session changed on its way"
                );
            } else {
                assert!(loaded.is_none(), "a session of another issuer loaded");
            }
        }
    }
});
