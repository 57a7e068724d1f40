//! What a target must never log: tokens, the client secret, cookie keys, sealed cookie values;
//! and the shape of what it does log: one JSON object per line.

use base64::Engine as _;
use serde_json::Value;

use crate::provider::{CLIENT_ID, CLIENT_SECRET};
use crate::target::COOKIE_KEYS;

/// The start of every line the BFF writes; the emulators' own lines (wrangler's, cargo-lambda's)
/// never start so.
const OURS: &str = "{\"timestamp\"";

/// How `wrangler dev` shows what a Worker passes to `console.warn` and `console.error` (in colour,
/// which [`plain`] removes); `console.log` lines and every line in Workers Logs are as written.
const WRANGLER_LEVELS: [&str; 2] = ["\u{25b2} [WARNING] ", "\u{2718} [ERROR] "];

/// `line` without terminal colour codes (`ESC [ … m`) and without wrangler's level marker.
fn plain(line: &str) -> String {
    let mut text = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            text.push(c);
        }
    }
    match WRANGLER_LEVELS.iter().find_map(|marker| text.strip_prefix(marker)) {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// The records of every line of `logs` the BFF wrote. Panics when one of them is not a JSON
/// object with `timestamp` (RFC 3339, UTC, milliseconds), `level`, `request_id` and `type`, or
/// when a line carries a JSON line of ours after some prefix, or the BFF's old text format.
pub fn records(logs: &str, context: &str) -> Vec<Value> {
    let mut records = Vec::new();
    for line in logs.lines() {
        let line = plain(line);
        let line = line.trim_end();
        let misplaced = !line.starts_with(OURS) && line.contains(OURS);
        let old_text = line.starts_with("bff: ") || line.starts_with("bff INFO") || line.starts_with("bff WARN");
        assert!(
            !misplaced && !old_text,
            "{context}: a BFF line that is not one JSON object: {line}"
        );
        if !line.starts_with(OURS) {
            continue;
        }
        let record: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{context}: a BFF line that is not JSON ({e}): {line}"));
        let timestamp = record["timestamp"].as_str().unwrap_or_default();
        let rfc3339 = timestamp.len() == 24 && timestamp.ends_with('Z') && timestamp.as_bytes()[19] == b'.';
        assert!(rfc3339, "{context}: timestamp in {line}");
        assert!(
            ["ERROR", "WARN", "INFO"].contains(&record["level"].as_str().unwrap_or_default()),
            "{context}: level in {line}"
        );
        assert!(record.get("request_id").is_some(), "{context}: request_id in {line}");
        assert!(
            ["request", "event"].contains(&record["type"].as_str().unwrap_or_default()),
            "{context}: type in {line}"
        );
        records.push(record);
    }
    records
}

/// Text that marks a secret whatever its value: a JWT's encoded header (an ID token, a JWT access
/// token, a client assertion), a sealed cookie or store value, the cookie key, the client secret.
fn patterns() -> Vec<(&'static str, String)> {
    let key = COOKIE_KEYS.split_once(':').map_or(COOKIE_KEYS, |(_, key)| key);
    vec![
        ("a JWT", "eyJ".to_owned()),
        ("a sealed value", "v1.k1.".to_owned()),
        ("the cookie key", key.to_owned()),
        ("the client secret", CLIENT_SECRET.to_owned()),
        (
            "a Basic authorization header",
            base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")),
        ),
        ("a client_secret form field", "client_secret=".to_owned()),
    ]
}

/// Lines of `logs` carrying any of `secrets` (named, with their values) or any of the fixed
/// patterns. Values shorter than 16 characters are not looked for: they would match by chance.
pub fn leaks(logs: &str, secrets: &[(&str, String)]) -> Vec<String> {
    let fixed = patterns();
    let wanted = secrets
        .iter()
        .filter(|(_, value)| value.len() >= 16)
        .map(|(what, value)| (*what, value.as_str()))
        .chain(fixed.iter().map(|(what, value)| (*what, value.as_str())));
    let wanted: Vec<(&str, &str)> = wanted.collect();
    logs.lines()
        .flat_map(|line| {
            wanted
                .iter()
                .filter(move |(_, value)| line.contains(value))
                .map(move |(what, _)| format!("{what} in: {line}"))
        })
        .collect()
}

/// Panics naming every log line of `logs` that carries a secret.
pub fn assert_no_secrets(logs: &str, secrets: &[(&str, String)], context: &str) {
    let found = leaks(logs, secrets);
    assert!(
        found.is_empty(),
        "{context}: secrets in the logs:\n{}",
        found.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::leaks;

    #[test]
    fn reads_our_lines_and_skips_the_emulators() {
        let logs = "[wrangler:info] Ready on http://127.0.0.1:8787\n\
                    {\"timestamp\":\"2026-12-02T13:40:00.123Z\",\"level\":\"INFO\",\"request_id\":\"a\",\"type\":\"request\"}\n\
                    INFO [cargo_lambda_watch] starting";
        assert_eq!(super::records(logs, "test").len(), 1);
        let warning = "\u{1b}[33m\u{25b2} \u{1b}[43;33m[\u{1b}[43;30mWARNING\u{1b}[43;33m]\u{1b}[0m \u{1b}[1m\
                       {\"timestamp\":\"2026-12-02T13:40:00.123Z\",\"level\":\"WARN\",\"request_id\":\"a\",\"type\":\"event\"}\u{1b}[0m";
        assert_eq!(super::records(warning, "test")[0]["level"], "WARN");
        let error = "\u{1b}[31m\u{2718} \u{1b}[41;31m[\u{1b}[41;97mERROR\u{1b}[41;31m]\u{1b}[0m \u{1b}[1m\
                     {\"timestamp\":\"2026-12-02T13:40:00.123Z\",\"level\":\"ERROR\",\"request_id\":null,\"type\":\"event\"}\u{1b}[0m";
        assert_eq!(super::records(error, "test")[0]["level"], "ERROR");
    }

    #[test]
    #[should_panic(expected = "not one JSON object")]
    fn a_prefixed_line_of_ours_is_refused() {
        super::records("bff: something happened", "test");
    }

    #[test]
    fn finds_what_it_looks_for() {
        let logs = "bff WARN request to /token failed\nbff INFO token abcdefghijklmnopqrstuvwxyz here\n\
                    bff WARN eyJhbGciOiJSUzI1NiJ9.x.y\nbff INFO v1.k1.AAAA\nbff INFO short";
        let found = leaks(
            logs,
            &[
                ("a refresh token", "abcdefghijklmnopqrstuvwxyz".into()),
                ("tiny", "short".into()),
            ],
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("a refresh token in: "));
        assert!(found[1].starts_with("a JWT in: "));
        assert!(found[2].starts_with("a sealed value in: "));
        assert!(leaks("bff WARN nothing here", &[]).is_empty());
    }
}
