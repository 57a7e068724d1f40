//! The `Cookie` header parser and the session load on top of it: arbitrary bytes, and lists of
//! pairs with our names, chunk suffixes and real sealed values.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bff_core::fuzzing;
use bff_core_fuzz::raw;
use bff_core_fuzz::real::real;
use http::HeaderValue;
use http::header::COOKIE;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    /// Header fields as raw bytes (several fields: HTTP/2 cookie crumbs).
    Raw(Vec<Vec<u8>>),
    /// One field built from pairs.
    Pairs(Vec<Pair>),
}

#[derive(Arbitrary, Debug)]
struct Pair {
    name: Name,
    value: Value,
    /// Spaces around `=` and after `;`, and quotes: all allowed by the grammar the parser reads.
    padded: bool,
    quoted: bool,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Session,
    Chunk(u8),
    Txn,
    Other(String),
    /// A nameless cookie whose value looks like one of ours.
    Nameless,
}

#[derive(Arbitrary, Debug)]
enum Value {
    /// The whole sealed single-cookie session.
    Single,
    /// Chunk `i` of the chunked session.
    Chunk(u8),
    Txn,
    /// A real value cut at a position.
    Cut(u16),
    Any(String),
}

fn render_name(name: &Name) -> String {
    match name {
        Name::Session => "__Host-bff-session".into(),
        Name::Chunk(i) => format!("__Host-bff-session.{}", i % 5),
        Name::Txn => real().txn.0.clone(),
        Name::Other(s) => s.clone(),
        Name::Nameless => String::new(),
    }
}

fn render_value(value: &Value) -> String {
    let real = real();
    let chunks: Vec<&str> = real.chunked.iter().map(|(_, v)| v.as_str()).collect();
    match value {
        Value::Single => real.sealed[0].clone(),
        Value::Chunk(i) => chunks[usize::from(*i) % chunks.len()].to_owned(),
        Value::Txn => real.txn.1.clone(),
        Value::Cut(at) => {
            let whole = &real.sealed[0];
            whole[..usize::from(*at) % (whole.len() + 1)].to_owned()
        }
        Value::Any(s) => s.clone(),
    }
}

/// Whether the parser must hand `value` back exactly as written.
fn plain(value: &str) -> bool {
    value.len() <= 8192 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let input = match raw(data) {
        Some((_, header)) => Input::Raw(vec![header.to_vec()]),
        None => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => input,
            Err(_) => return,
        },
    };
    let real = real();
    let mut headers = http::HeaderMap::new();
    let mut written: Vec<(String, String)> = Vec::new();
    match &input {
        Input::Raw(fields) => {
            for field in fields {
                if let Ok(value) = HeaderValue::from_bytes(field) {
                    headers.append(COOKIE, value);
                }
            }
        }
        Input::Pairs(pairs) => {
            let mut header = String::new();
            for pair in pairs {
                let (name, value) = (render_name(&pair.name), render_value(&pair.value));
                let value = if matches!(pair.name, Name::Nameless) {
                    // What a browser sends for a nameless cookie whose value is `name=value`.
                    format!("{}={value}", render_name(&Name::Session))
                } else {
                    value
                };
                let (eq, sep) = if pair.padded { (" = ", ";  ") } else { ("=", "; ") };
                let quoted = pair.quoted && !matches!(pair.name, Name::Nameless);
                let shown = if quoted { format!("\"{value}\"") } else { value.clone() };
                if matches!(pair.name, Name::Nameless) {
                    header.push_str(&shown);
                    written.push((
                        "__Host-bff-session".into(),
                        value.split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default(),
                    ));
                } else {
                    header.push_str(&format!("{name}{eq}{shown}"));
                    written.push((name, value));
                }
                header.push_str(sep);
            }
            if let Ok(value) = HeaderValue::from_str(&header) {
                headers.insert(COOKIE, value);
            } else {
                written.clear();
            }
        }
    }

    let session = fuzzing::load_session(&real.config, &headers, real.now);
    let sealed = fuzzing::sealed_session(&real.config, &headers);
    if let Some(session) = &session {
        assert_eq!(session["iss"], bff_core::testing::ISSUER);
        // Values made of this process's seals (whole, chunks, cuts) open only when they are a
        // whole seal: no splice of chunks, no cut. (Text the fuzzer wrote may hold a seal from
        // the seed corpus, sealed by another process: that one opens rightly.)
        if let Input::Pairs(pairs) = &input
            && pairs.iter().all(|p| !matches!(p.value, Value::Any(_)))
        {
            let sealed = sealed.as_deref().unwrap_or_default();
            assert!(
                real.sealed.iter().any(|s| s == sealed),
                "a session from a value never sealed: {sealed:?}"
            );
        }
    }

    // Against what was written, when every pair is simple enough to predict.
    let predictable = !written.is_empty()
        && written.iter().all(|(n, v)| {
            n.bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b'=' && b != b'"')
                && plain(v)
        });
    if predictable {
        for (name, value) in &written {
            if !name.starts_with("__Host-bff-") {
                continue;
            }
            let times = written.iter().filter(|(n, _)| n == name).count();
            let got = fuzzing::cookie(&headers, name);
            if times > 1 {
                assert_eq!(got, None, "{name} sent {times} times was read");
            } else {
                assert_eq!(got.as_deref(), Some(value.as_str()), "{name} misread");
            }
        }
        let sessions = written
            .iter()
            .filter(|(n, _)| n.starts_with("__Host-bff-session"))
            .count();
        let twice = written
            .iter()
            .filter(|(n, _)| n.starts_with("__Host-bff-session"))
            .any(|(n, _)| written.iter().filter(|(m, _)| m == n).count() > 1);
        if twice || sessions == 0 {
            assert!(session.is_none(), "a session despite a repeated or missing name");
        }
    }
});
