use std::collections::HashMap;

use super::*;

pub(crate) const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn settings(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = [
        ("BFF_ISSUER", "https://idp.example"),
        ("BFF_CLIENT_ID", "bff"),
        ("BFF_CLIENT_SECRET", "s3cret"),
        ("BFF_PUBLIC_ORIGIN", "https://app.example"),
        ("BFF_COOKIE_KEYS", KEY),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

fn parse(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map = settings(extra);
    Config::from_lookup(|name| map.get(name).cloned())
}

/// A valid configuration with `extra` settings on top.
pub(crate) fn config(extra: &[(&str, &str)]) -> Config {
    parse(extra).unwrap()
}

#[test]
fn defaults() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.redirect_uri(), "https://app.example/bff/callback");
    assert_eq!(config.scopes, ["openid", "profile", "email", "offline_access"]);
    assert_eq!(config.post_logout_path, "/");
    assert_eq!(config.cookie_budget, 7000);
    assert_eq!(config.session_max_age, 86_400);
    assert_eq!(config.http_timeout, Duration::from_secs(5));
    assert_eq!(config.same_site, SameSite::Strict);
    assert_eq!(config.par, ParMode::Auto);
    assert_eq!(config.log_level, Level::Info);
}

#[test]
fn log_levels() {
    for (value, level) in [
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("error", Level::Error),
        ("WARN", Level::Warn),
    ] {
        assert_eq!(parse(&[("BFF_LOG_LEVEL", value)]).unwrap().log_level, level, "{value}");
    }
    let err = parse(&[("BFF_LOG_LEVEL", "debug")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration error: BFF_LOG_LEVEL: must be info or warn or error"
    );
}

#[test]
fn par_modes() {
    for (value, mode) in [
        ("auto", ParMode::Auto),
        ("off", ParMode::Off),
        ("required", ParMode::Required),
    ] {
        assert_eq!(parse(&[("BFF_PAR", value)]).unwrap().par, mode, "{value}");
    }
    let err = parse(&[("BFF_PAR", "always")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration error: BFF_PAR: must be auto or off or required"
    );
}

#[test]
fn base_path_and_params() {
    let config = parse(&[
        ("BFF_BASE_PATH", "/app/"),
        ("BFF_AUTHORIZATION_PARAMS", "prompt=consent&audience=x"),
    ])
    .unwrap();
    assert_eq!(config.base_path, "/app");
    assert_eq!(config.post_logout_path, "/app/");
    assert_eq!(config.redirect_uri(), "https://app.example/app/bff/callback");
    assert_eq!(
        config.authorization_params[0],
        ("prompt".to_owned(), "consent".to_owned())
    );
}

#[test]
fn errors_name_the_setting_not_the_value() {
    let cases: &[(&str, &str)] = &[
        ("BFF_ISSUER", "http://idp.example"),
        ("BFF_PUBLIC_ORIGIN", "http://app.example"),
        ("BFF_PUBLIC_ORIGIN", "https://app.example/path"),
        ("BFF_COOKIE_KEYS", "k1:tooshort"),
        ("BFF_COOKIE_KEYS", "bad id:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
        ("BFF_BASE_PATH", "app"),
        ("BFF_SCOPES", "profile"),
        ("BFF_AUTHORIZATION_PARAMS", "state=x"),
        ("BFF_AUTHORIZATION_PARAMS", "prompt=consent&request_uri=urn:x"),
        ("BFF_AUTHORIZATION_PARAMS", "request=eyJ.x.y"),
        ("BFF_AUTHORIZATION_PARAMS", "client_secret=s3cret"),
        ("BFF_AUTHORIZATION_PARAMS", "client_assertion=x&client_assertion_type=y"),
        ("BFF_AUTHORIZATION_PARAMS", "dpop_jkt=abc"),
        ("BFF_COOKIE_SAMESITE", "none"),
        ("BFF_HTTP_TIMEOUT", "abc"),
        ("BFF_ID_TOKEN_ALGS", "HS256"),
        ("BFF_ID_TOKEN_ALGS", "none"),
        ("BFF_USERINFO", "maybe"),
        ("BFF_CLIENT_AUTH", "tls_client_auth"),
        ("BFF_COOKIE_BUDGET", "12"),
        ("BFF_PAR", "sometimes"),
        ("BFF_LOG_LEVEL", "verbose"),
    ];
    for (name, value) in cases {
        let err = parse(&[(name, value)]).unwrap_err();
        assert_eq!(err.setting(), *name, "{name}={value}");
        assert!(!err.to_string().contains(value), "{err}");
    }
    let map = settings(&[]);
    let err = Config::from_lookup(|n| if n == "BFF_ISSUER" { None } else { map.get(n).cloned() }).unwrap_err();
    assert_eq!(err.to_string(), "configuration error: BFF_ISSUER: missing");
}

#[test]
fn loopback_http_only_when_allowed() {
    assert!(parse(&[("BFF_ISSUER", "http://127.0.0.1:9000")]).is_err());
    assert!(
        parse(&[
            ("BFF_ISSUER", "http://127.0.0.1:9000"),
            ("BFF_ALLOW_INSECURE_ISSUER", "true")
        ])
        .is_ok()
    );
    assert!(parse(&[("BFF_ISSUER", "http://10.0.0.1"), ("BFF_ALLOW_INSECURE_ISSUER", "true")]).is_err());
    assert!(parse(&[("BFF_PUBLIC_ORIGIN", "http://127.0.0.1:8787")]).is_ok());
    let config = parse(&[("BFF_PUBLIC_ORIGIN", "http://localhost:8787/")]).unwrap();
    assert_eq!(config.public_origin, "http://localhost:8787");
}

#[test]
fn key_ring_order() {
    let two = format!("new:{},{KEY}", "Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA");
    let config = parse(&[("BFF_COOKIE_KEYS", &two)]).unwrap();
    assert_eq!(config.keys.len(), 2);
    assert_eq!(config.keys[0].id, "new");
}
