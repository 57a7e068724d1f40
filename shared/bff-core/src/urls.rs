//! URL rules shared by the configuration, the flows and the stores: what counts as a path on
//! this origin, as a resource indicator, and as a URL the backend may call.

use url::Url;

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
    Url::parse(value).is_ok_and(|u| u.fragment().is_none() && !value.contains('#'))
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
    Url::parse("https://origin.invalid")
        .and_then(|base| base.join(path))
        .is_ok_and(|u| u.host_str() == Some("origin.invalid"))
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
    }

    #[test]
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
