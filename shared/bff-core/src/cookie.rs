//! Cookie parsing and `Set-Cookie` rendering, with the attribute policy in the types.
//!
//! Every cookie this backend sets is `__Host-` prefixed (RFC 6265bis §4.1.3.2): `Secure`,
//! `Path=/`, no `Domain`, and always `HttpOnly`. No builder here can produce anything else.

use http::HeaderMap;
use http::header::COOKIE;

use crate::config::SameSite;

/// Cookies larger than this are ignored when parsing (a browser never sends more than ~4 KiB).
const MAX_COOKIE_VALUE: usize = 8192;

/// The request's cookies as `(name, value)` pairs, in order. Accepts several `Cookie` headers
/// and `;` separators with or without a space (the Lambda runtime joins with `";"`), and `,`
/// (workerd joins repeated headers with `", "`; a cookie value never holds a comma, RFC 6265 §4.1.1).
pub(crate) fn parse(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split([';', ',']))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            (!name.is_empty() && value.len() <= MAX_COOKIE_VALUE).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The value of the first cookie called `name`.
pub(crate) fn find<'a>(cookies: &'a [(String, String)], name: &str) -> Option<&'a str> {
    cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
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

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn parses_both_separators_and_several_headers() {
        let cookies = parse(&headers(&["a=1; b=2;c=3", "d=\"4\""]));
        let joined = parse(&headers(&["a=1; b=2, c=3"]));
        assert_eq!(joined.len(), 3);
        let names: Vec<_> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(names, ["a=1", "b=2", "c=3", "d=4"]);
        assert_eq!(find(&cookies, "c"), Some("3"));
        assert_eq!(find(&cookies, "z"), None);
    }

    #[test]
    fn values_may_contain_equals() {
        let cookies = parse(&headers(&["x=a=b=="]));
        assert_eq!(find(&cookies, "x"), Some("a=b=="));
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
        let set = SetCookie::new("__Host-a", "v1.k.Zm9v_-", SameSite::Lax, 1);
        let header = set.render();
        let pair = header.split(';').next().unwrap();
        let cookies = parse(&headers(&[pair]));
        assert_eq!(find(&cookies, "__Host-a"), Some("v1.k.Zm9v_-"));
    }

    proptest! {
        #[test]
        fn never_panics(raw in "[ -~]{0,400}") {
            if let Ok(value) = HeaderValue::from_str(&raw) {
                let mut map = HeaderMap::new();
                map.insert(COOKIE, value);
                let _ = parse(&map);
            }
        }
    }
}
