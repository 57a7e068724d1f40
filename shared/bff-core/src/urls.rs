//! URL rules shared by the configuration, the flows and the stores: what counts as a path on
//! this origin, as a resource indicator, and as a URL the backend may call.

use url::Url;

/// The schemes whose hosts the url crate maps through IDNA (WHATWG URL "special" schemes).
const SPECIAL_SCHEMES: &[&str] = &["http", "https", "ws", "wss", "ftp", "file"];

/// Parses an absolute URL from anywhere (configuration, the provider, a request): printable ASCII
/// only, and no percent-encoding in the authority of a special scheme. The url crate's IDNA
/// backend here is the ASCII-only one (Cargo.toml); such input is a URL only in its ASCII
/// (`xn--`) form anyway, and keeping it away from IDNA keeps that backend's debug assertion about
/// mixed-case input from ever firing. Every URL the core reads goes through here (clippy.toml).
pub fn parse_url(text: &str) -> Option<Url> {
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if let Some((scheme, rest)) = text.split_once(':')
        && SPECIAL_SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s))
    {
        let rest = rest.trim_start_matches(['/', '\\']);
        let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or_default();
        if authority.contains('%') {
            return None;
        }
    }
    #[allow(clippy::disallowed_methods)] // the one place: the checks above come first
    Url::parse(text).ok()
}

/// Whether `url` is `https`, or `http` to a loopback host (local development and tests only; the
/// caller decides whether that is allowed at all).
pub fn is_https_or_loopback(url: &Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// RFC 8707 §2: an absolute URI without a fragment.
pub(crate) fn is_resource_uri(value: &str) -> bool {
    parse_url(value).is_some_and(|u| u.fragment().is_none() && !value.contains('#'))
}

/// A path on this origin (http-api.md: login): one leading `/`, not `//` or `/\`, no scheme or host,
/// no control characters, and nothing a browser would read as another origin once decoded.
pub(crate) fn is_local_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || matches!(bytes.get(1), Some(b'/' | b'\\')) {
        return false;
    }
    if path.chars().any(|c| c.is_control() || c == '\\' || c.is_whitespace()) {
        return false;
    }
    // Encoded slashes or backslashes right after the first slash decode to `//` or `/\`.
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/%2f") || lower.starts_with("/%5c") {
        return false;
    }
    // Parsed against a dummy origin, the path must stay on that origin.
    parse_url("https://origin.invalid")
        .and_then(|base| base.join(path).ok())
        .is_some_and(|u| u.host_str() == Some("origin.invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ascii() {
        // The url crate's IDNA backend is the ASCII-only one (see Cargo.toml): a resource or
        // endpoint on an internationalised domain is written in its A-label (punycode) form.
        assert!(is_resource_uri("https://xn--bcher-kva.example/api"));
        assert!(is_resource_uri("https://API.Example/"));
        assert!(!is_resource_uri("https://bücher.example/api"));
        // Mixed case with percent-encoded or raw non-ASCII in the host never reaches IDNA.
        for text in [
            "https://A%C3%BC.example/",
            "https:A%C3%BC.example/",
            "HTTPS:\\\\%41%C3%BC.example/",
            "https://xZ%a0./p",
            "ht\ttps://A%C3%BC.example/",
            " https://A%C3%BC.example/",
            "https://api.WWW\u{fffd}2/",
        ] {
            assert!(parse_url(text).is_none(), "{text:?}");
        }
        // Percent-encoding stays fine outside the authority, and in non-special schemes.
        assert!(parse_url("https://api.example/a%20b?q=%41").is_some());
        assert!(parse_url("urn:example:%41").is_some());
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // the plain parser, to test the rule on its own
    fn loopback_rule() {
        for (url, ok) in [
            ("https://idp.example", true),
            ("http://127.0.0.1:8000", true),
            ("http://[::1]:8000", true),
            ("http://localhost", true),
            ("http://idp.example", false),
            ("http://127.0.0.1.evil.example", false),
            ("ftp://127.0.0.1", false),
        ] {
            assert_eq!(is_https_or_loopback(&Url::parse(url).unwrap()), ok, "{url}");
        }
    }

    #[test]
    fn return_to_table() {
        let good = ["/", "/app/", "/a/b?x=1#frag", "/path%20with%20space", "/%2e%2e/x"];
        let bad = [
            "",
            "app",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/%2fevil.example",
            "/%2F%2Fevil.example",
            "/%5cevil.example",
            "/\tevil",
            "/\n/evil.example",
            "\\\\evil.example",
            " /x",
            "/x y",
            "http:/evil.example",
            "%2f%2fevil.example",
            "/a\\b",
        ];
        for path in good {
            assert!(is_local_path(path), "{path} should be accepted");
        }
        for path in bad {
            assert!(!is_local_path(path), "{path} should be refused");
        }
    }
}
