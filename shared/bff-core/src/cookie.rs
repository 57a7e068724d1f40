//! Cookie parsing and `Set-Cookie` rendering, with the attribute policy in the types.
//!
//! Every cookie this backend sets is `__Host-` prefixed (RFC 6265bis §4.1.3.2): `Secure`,
//! `Path=/`, no `Domain`, and always `HttpOnly`. No builder here can produce anything else.

use http::HeaderMap;
use http::header::COOKIE;

/// `SameSite` of a cookie (RFC 6265bis §4.1.2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SameSite {
    Lax,
    Strict,
}

/// Every cookie this backend reads or writes starts with this; other names are skipped unread.
pub(crate) const OWN_PREFIX: &str = "__Host-bff-";

/// A value longer than this opens nothing (a browser never sends a cookie over ~4 KiB).
const MAX_VALUE: usize = 8192;

/// The request's cookies of ours (names starting with [`OWN_PREFIX`]), in order.
///
/// The `__Host-` prefix only protects a name the browser set itself; a sibling subdomain or a
/// plain-HTTP response can still plant a cookie whose *header* looks like ours. So a name of
/// ours that appears more than once is never trusted: [`Cookies::get`] answers `None` for it.
#[derive(Debug, Default)]
pub(crate) struct Cookies(Vec<(String, String)>);

impl Cookies {
    /// Parses every `Cookie` header field as RFC 6265 §5.4 (RFC 6265bis §5.7.4) writes them:
    /// `name=value` pairs separated by `;` only. A comma is an ordinary value byte, so
    /// `pref=x,__Host-bff-session=y` is one cookie named `pref`. Works on bytes: a pair that is
    /// not UTF-8 or has no `=` or no name (another app's cookie, `=novalue`, `flag`) is skipped
    /// and the rest still parse. Several header fields (HTTP/2 cookie crumbs) are read as one
    /// list; a runtime must hand them over as separate fields or joined with `; `.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut own = Vec::new();
        for field in headers.get_all(COOKIE) {
            let mut rest = field.as_bytes();
            while !rest.is_empty() {
                let pair;
                (pair, rest) = match find(rest, b';') {
                    Some(at) => (&rest[..at], &rest[at + 1..]),
                    None => (rest, &[][..]),
                };
                // Most pairs are other apps' cookies: passed over on their first bytes, so only
                // the `;` scan ever touches their values. A name that does not start with the
                // prefix is not ours wherever its `=` is, and the prefix holds no `=`.
                let pair = trim_start(pair);
                if !pair.starts_with(OWN_PREFIX.as_bytes()) {
                    continue;
                }
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let name = trim(&pair[..eq]);
                let value = trim(&pair[eq + 1..]);
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                // A name of ours with an unreadable value still counts, so that a duplicate
                // of it is seen; its value opens nothing.
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let value = if value.len() <= MAX_VALUE {
                    std::str::from_utf8(value).unwrap_or_default()
                } else {
                    ""
                };
                own.push((name.to_owned(), value.to_owned()));
            }
        }
        Self(own)
    }

    /// Cookies as a request would carry them, for tests.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(String, String)]) -> Self {
        let header = pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut map = HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&header) {
            map.insert(COOKIE, value);
        }
        Self::parse(&map)
    }

    /// The value of `name` when the request carried it exactly once.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let mut found = self.0.iter().filter(|(n, _)| n == name);
        let first = found.next()?;
        found.next().is_none().then_some(first.1.as_str())
    }

    /// Every distinct name starting with `prefix`, each with its value when it is not repeated.
    pub(crate) fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        self.0
            .iter()
            .enumerate()
            .filter(move |(i, (n, _))| n.starts_with(prefix) && !self.0[..*i].iter().any(|(m, _)| m == n))
            .map(|(_, (n, _))| (n.as_str(), self.get(n)))
    }
}

/// The first `needle` in `bytes`. A session value runs to kilobytes, so it is scanned a block at
/// a time, which compiles to vector compares, rather than byte by byte with a branch each.
fn find(bytes: &[u8], needle: u8) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut offset = 0;
    for block in bytes.chunks_exact(BLOCK) {
        if block.iter().fold(false, |seen, &b| seen | (b == needle)) {
            break;
        }
        offset += BLOCK;
    }
    bytes[offset..].iter().position(|&b| b == needle).map(|i| offset + i)
}

/// Strips the optional white space (SP and HTAB) before a name.
fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Strips the optional white space (SP and HTAB) around a name or value.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A `Set-Cookie` for a `__Host-` cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SetCookie {
    name: String,
    value: String,
    same_site: SameSite,
    max_age: u64,
}

impl SetCookie {
    /// Sets `name` (which must start with `__Host-`) for `max_age` seconds.
    pub(crate) fn new(name: impl Into<String>, value: impl Into<String>, same_site: SameSite, max_age: u64) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            same_site,
            max_age,
        }
    }

    /// Deletes `name`: the same attributes, an empty value and `Max-Age=0`.
    pub(crate) fn delete(name: impl Into<String>, same_site: SameSite) -> Self {
        Self::new(name, "", same_site, 0)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// What the browser sends back for it: `name=value`, in bytes.
    pub(crate) fn size(&self) -> usize {
        self.name.len() + 1 + self.value.len()
    }

    /// The header value.
    pub(crate) fn render(&self) -> String {
        let same_site = match self.same_site {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        };
        format!(
            "{}={}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={}",
            self.name, self.value, self.max_age
        )
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    const S: &str = "__Host-bff-session";

    #[test]
    fn semicolons_only_and_several_fields() {
        let cookies = Cookies::parse(&headers(&[
            b"__Host-bff-a=1; __Host-bff-b=2;__Host-bff-c=3",
            b"__Host-bff-d=\"4\"",
        ]));
        let pairs: Vec<_> = cookies.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(
            pairs,
            ["__Host-bff-a=1", "__Host-bff-b=2", "__Host-bff-c=3", "__Host-bff-d=4"]
        );
        assert_eq!(cookies.get("__Host-bff-c"), Some("3"));
        assert_eq!(cookies.get("__Host-bff-z"), None);
    }

    /// The review's high-severity finding: a comma is not a separator, so a planted
    /// `pref=x,__Host-bff-session=…` is a cookie named `pref` and the real session stays.
    #[test]
    fn a_comma_never_starts_a_cookie_of_ours() {
        let planted = format!("pref=x,{S}=attacker; {S}=victim");
        let cookies = Cookies::parse(&headers(&[planted.as_bytes()]));
        assert_eq!(cookies.get(S), Some("victim"));
        let first = format!("pref=x,{S}=attacker");
        assert_eq!(Cookies::parse(&headers(&[first.as_bytes()])).get(S), None);
    }

    #[test]
    fn a_name_of_ours_seen_twice_is_no_value() {
        let twice = format!("{S}=attacker; other=1; {S}=victim");
        assert_eq!(Cookies::parse(&headers(&[twice.as_bytes()])).get(S), None);
        let split = [format!("{S}=a").into_bytes(), format!("{S}=b").into_bytes()];
        let fields: Vec<&[u8]> = split.iter().map(Vec::as_slice).collect();
        assert_eq!(Cookies::parse(&headers(&fields)).get(S), None);
        let txns = Cookies::parse(&headers(&[
            b"__Host-bff-txn.a=1; __Host-bff-txn.b=2; __Host-bff-txn.a=3",
        ]));
        let listed: Vec<_> = txns.with_prefix("__Host-bff-txn.").collect();
        assert_eq!(listed, [("__Host-bff-txn.a", None), ("__Host-bff-txn.b", Some("2"))]);
    }

    /// One odd or non-UTF-8 pair of another app is skipped; ours still parse.
    #[test]
    fn odd_pairs_are_skipped_not_fatal() {
        let mut raw = b"app=caf\xc3\xa9; latin=\xe9t\xe9; =novalue; flag; ".to_vec();
        raw.extend_from_slice(format!("{S}=v1.k.abc").as_bytes());
        let cookies = Cookies::parse(&headers(&[&raw]));
        assert_eq!(cookies.get(S), Some("v1.k.abc"));
    }

    #[test]
    fn values_may_contain_equals() {
        let cookies = Cookies::parse(&headers(&[b"__Host-bff-x=a=b=="]));
        assert_eq!(cookies.get("__Host-bff-x"), Some("a=b=="));
    }

    #[test]
    fn renders_host_prefix_attributes() {
        let set = SetCookie::new("__Host-bff-session", "v1.k.abc", SameSite::Strict, 600);
        assert_eq!(
            set.render(),
            "__Host-bff-session=v1.k.abc; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=600"
        );
        let delete = SetCookie::delete("__Host-bff-txn.x", SameSite::Lax);
        assert_eq!(
            delete.render(),
            "__Host-bff-txn.x=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn render_then_parse_round_trips() {
        let set = SetCookie::new("__Host-bff-a", "v1.k.Zm9v_-", SameSite::Lax, 1);
        let header = set.render();
        let pair = header.split(';').next().unwrap();
        let cookies = Cookies::parse(&headers(&[pair.as_bytes()]));
        assert_eq!(cookies.get("__Host-bff-a"), Some("v1.k.Zm9v_-"));
    }

    /// The parser as first written, pair by pair: the faster one must agree with it on any input.
    fn reference(headers: &HeaderMap) -> Vec<(String, String)> {
        let mut own = Vec::new();
        for field in headers.get_all(COOKIE) {
            for pair in field.as_bytes().split(|&b| b == b';') {
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let name = trim(&pair[..eq]);
                if !name.starts_with(OWN_PREFIX.as_bytes()) {
                    continue;
                }
                let value = trim(&pair[eq + 1..]);
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                let (Ok(name), value) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
                    continue;
                };
                let value = value.ok().filter(|v| v.len() <= MAX_VALUE).unwrap_or_default();
                own.push((name.to_owned(), value.to_owned()));
            }
        }
        own
    }

    #[test]
    fn find_agrees_with_a_plain_scan() {
        for len in 0..100 {
            for at in 0..=len {
                let mut bytes = vec![b'a'; len];
                if at < len {
                    bytes[at] = b';';
                }
                assert_eq!(find(&bytes, b';'), bytes.iter().position(|&b| b == b';'));
            }
        }
    }

    #[test]
    fn long_values_and_the_size_bound() {
        let at_bound = format!(
            "{S}={}; __Host-bff-b={}",
            "v".repeat(MAX_VALUE),
            "w".repeat(MAX_VALUE + 1)
        );
        let cookies = Cookies::parse(&headers(&[at_bound.as_bytes()]));
        assert_eq!(cookies.get(S).map(str::len), Some(MAX_VALUE));
        assert_eq!(cookies.get("__Host-bff-b"), Some(""));
        assert_eq!(cookies.0, reference(&headers(&[at_bound.as_bytes()])));
    }

    /// Pieces that make the parser's decisions: separators, white space, quotes, our prefix,
    /// bytes that are not UTF-8, and runs long enough to cross the scanner's blocks.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b";".to_vec()),
            Just(b"=".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"\"".to_vec()),
            Just(b",".to_vec()),
            Just(b"__Host-bff-".to_vec()),
            Just(b"__Host-bff-session".to_vec()),
            Just(b"__Host-bff-session.0".to_vec()),
            Just(b"__Host-bf".to_vec()),
            Just(vec![0xe9]),
            Just(b"\xc3\xa9".to_vec()),
            proptest::collection::vec(b'a'..=b'z', 1..80),
        ]
    }

    fn field() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(piece(), 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(fields in proptest::collection::vec(field(), 1..4)) {
            let mut map = HeaderMap::new();
            for raw in &fields {
                if let Ok(value) = HeaderValue::from_bytes(raw) {
                    map.append(COOKIE, value);
                }
            }
            prop_assert_eq!(Cookies::parse(&map).0, reference(&map));
        }

        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(value) = HeaderValue::from_bytes(&raw) {
                let mut map = HeaderMap::new();
                map.insert(COOKIE, value);
                let cookies = Cookies::parse(&map);
                let _ = cookies.with_prefix("__Host-bff-txn.").count();
                let _ = cookies.get(S);
            }
        }
    }
}
