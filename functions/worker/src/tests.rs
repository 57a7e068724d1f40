//! Host-side tests of the pure conversions.
#![allow(clippy::unwrap_used)]

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

#[test]
fn latin1_values_round_trip_and_invalid_pairs_are_skipped() {
    let map = header_map(pairs(&[("x-a", "caf\u{e9}"), ("bad name", "v"), ("x-b", "\u{2603}")]));
    assert_eq!(map.len(), 1);
    assert_eq!(map.get("x-a").unwrap().as_bytes(), b"caf\xe9");
    assert_eq!(header_pairs(&map).next().unwrap().1, "caf\u{e9}");
}

#[test]
fn core_request_carries_everything() {
    let headers = header_map(pairs(&[("content-type", "application/x-www-form-urlencoded")]));
    let req = core_request("POST", "/bff/logout?x=1", headers, b"a=b".to_vec()).unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(req.uri().path_and_query().unwrap().as_str(), "/bff/logout?x=1");
    assert_eq!(req.headers().len(), 1);
    assert_eq!(req.body(), b"a=b");
    assert!(core_request("POST", "not a target", HeaderMap::new(), Vec::new()).is_err());
}

#[test]
fn every_url_target_is_a_valid_uri() {
    // The URL parser leaves `|^`{}` raw in queries and `|^` in paths; `http` must accept them.
    let url = Url::parse("https://a.example/p|^a`{}\"<>/x?q=|^`{}\"<>'&r=%zz").unwrap();
    let target = origin_form(&url);
    assert!(core_request("GET", &target, HeaderMap::new(), Vec::new()).is_ok());
}
