//! What a target must never log: tokens, the client secret, cookie keys, sealed cookie values.

use crate::provider::CLIENT_SECRET;
use crate::target::COOKIE_KEYS;

/// Text that marks a secret whatever its value: a JWT's encoded header (an ID token, a JWT access
/// token, a client assertion), a sealed cookie or store value, the cookie key, the client secret.
fn patterns() -> Vec<(&'static str, String)> {
    let key = COOKIE_KEYS.split_once(':').map_or(COOKIE_KEYS, |(_, key)| key);
    vec![
        ("a JWT", "eyJ".to_owned()),
        ("a sealed value", "v1.k1.".to_owned()),
        ("the cookie key", key.to_owned()),
        ("the client secret", CLIENT_SECRET.to_owned()),
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
