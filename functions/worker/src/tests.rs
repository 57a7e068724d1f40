//! Host-side tests of the pure conversions.
#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // tests read the URLs the adapter built with the plain parser

use super::*;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn origin_form_keeps_path_and_query_only() {
    let url = Url::parse("https://app.example.com:8443/bff/login?return_to=%2Fa&x=1#f").unwrap();
    assert_eq!(origin_form(&url), "/bff/login?return_to=%2Fa&x=1");
    let url = Url::parse("http://127.0.0.1:8787/.well-known/bff-configuration").unwrap();
    assert_eq!(origin_form(&url), "/.well-known/bff-configuration");
}

#[test]
fn repeated_headers_stay_separate_both_ways() {
    let map = header_map(pairs(&[
        ("cookie", "a=1"),
        ("Cookie", "b=2"),
        ("set-cookie", "__Host-s=x; Path=/; Secure; HttpOnly"),
        ("set-cookie", "__Host-t=; Max-Age=0"),
    ]));
    assert_eq!(map.get_all("cookie").iter().count(), 2);
    let out: Vec<_> = header_pairs(&map).filter(|(n, _)| *n == "set-cookie").collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].1, "__Host-t=; Max-Age=0");
}

/// workerd decodes header bytes as UTF-8: any text an app puts in a cookie (accents, a snowman,
/// the replacement character for a byte that was not UTF-8) comes back as its UTF-8 bytes and
/// never drops the whole `Cookie` header.
#[test]
fn utf8_values_arrive_as_their_bytes_and_invalid_names_are_skipped() {
    let cookie = "app=caf\u{e9}; snow=\u{2603}; odd=\u{fffd}; __Host-bff-session=v1.k.x";
    let map = header_map(pairs(&[("cookie", cookie), ("bad name", "v")]));
    assert_eq!(map.len(), 1);
    assert_eq!(map.get("cookie").unwrap().as_bytes(), cookie.as_bytes());
    let out = header_map(pairs(&[("x-a", "ascii")]));
    assert_eq!(header_pairs(&out).next().unwrap().1, "ascii");
}

#[test]
fn core_request_carries_everything() {
    let headers = header_map(pairs(&[("content-type", "application/x-www-form-urlencoded")]));
    let req = core_request("POST", "/bff/logout?x=1", headers, b"a=b".to_vec()).unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(req.uri().path_and_query().unwrap().as_str(), "/bff/logout?x=1");
    assert_eq!(req.headers().len(), 1);
    assert_eq!(req.body(), b"a=b");
    assert!(req.extensions().get::<RequestId>().is_none());
    assert!(core_request("POST", "not a target", HeaderMap::new(), Vec::new()).is_err());
}

#[test]
fn cf_ray_is_the_request_id() {
    let headers = header_map(pairs(&[("cf-ray", "8e1f0a2b3c4d5e6f-AMS")]));
    let req = core_request("GET", "/.well-known/bff-token", headers, Vec::new()).unwrap();
    let id = req.extensions().get::<RequestId>().unwrap();
    assert_eq!(id, &RequestId("8e1f0a2b3c4d5e6f-AMS".to_owned()));
}

#[test]
fn every_url_target_is_a_valid_uri() {
    // The URL parser leaves `|^`{}` raw in queries and `|^` in paths; `http` must accept them.
    let url = Url::parse("https://a.example/p|^a`{}\"<>/x?q=|^`{}\"<>'&r=%zz").unwrap();
    let target = origin_form(&url);
    assert!(core_request("GET", &target, HeaderMap::new(), Vec::new()).is_ok());
}
