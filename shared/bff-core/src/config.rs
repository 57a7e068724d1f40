//! Configuration (http-api.md: Configuration), parsed once per isolate or container from a lookup function.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use crate::cookie::SameSite;
use crate::keys::ClientKey;
use crate::oidc::algorithms::is_supported_alg;
use crate::oidc::client_auth::parse_private_key;
use crate::oidc::par::ParMode;
use crate::ports::Level;
use crate::secret::{ClientSecret, SealKey};
use crate::urls::{is_https_or_loopback, is_local_path, is_resource_uri, parse_url};

/// How the backend authenticates at the token endpoint (RFC 6749 §2.3, RFC 7523).
#[derive(Debug)]
pub(crate) enum ClientAuth {
    PrivateKeyJwt(ClientKey),
    SecretBasic,
    SecretPost,
}

/// Where sessions live (http-api.md: Cookies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionMode {
    /// Sealed into the session cookie itself.
    Cookie,
    /// In the deployment's store; the cookie holds only a sealed session id.
    Kv,
}

/// The parsed configuration. Secrets redact themselves in `Debug`.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<ClientSecret>,
    pub(crate) client_auth: ClientAuth,
    /// `scheme://host[:port]`, no trailing slash.
    pub(crate) public_origin: String,
    /// Empty or `/segment[/segment…]`, no trailing slash.
    pub(crate) base_path: String,
    /// First key seals, every key unseals.
    pub(crate) keys: Vec<SealKey>,
    pub(crate) scopes: Vec<String>,
    pub(crate) authorization_params: Vec<(String, String)>,
    pub(crate) default_resource: Option<String>,
    pub(crate) session_store: SessionMode,
    pub(crate) session_max_age: u64,
    pub(crate) sessioninfo_claims: Vec<String>,
    pub(crate) userinfo: bool,
    pub(crate) post_logout_path: String,
    pub(crate) same_site: SameSite,
    pub(crate) cookie_budget: usize,
    pub(crate) allow_insecure_issuer: bool,
    pub(crate) id_token_algs: Option<Vec<String>>,
    pub(crate) http_timeout: Duration,
    /// `BFF_DPOP=required`: every access token handed out is bound to the browser's key (RFC 9449).
    pub(crate) dpop: bool,
    /// `BFF_PAR`: whether authorization requests are pushed first (RFC 9126).
    pub(crate) par: ParMode,
    /// `BFF_LOG_LEVEL`: the least severe log line written (http-api.md: Logs).
    pub(crate) log_level: Level,
}

/// A setting is missing or malformed. The message names the setting, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    problem: String,
}

impl ConfigError {
    fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }

    /// The name of the offending setting.
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

const DEFAULT_SCOPES: &str = "openid profile email offline_access";
const DEFAULT_CLAIMS: &str = "name given_name family_name preferred_username email email_verified picture locale";

impl Config {
    /// Reads every setting through `lookup`; an empty value counts as unset (SAM parameters
    /// default to the empty string).
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or_else(|| ConfigError::new(name, "missing"));

        let allow_insecure_issuer = parse_bool(get("BFF_ALLOW_INSECURE_ISSUER"), "BFF_ALLOW_INSECURE_ISSUER", false)?;
        let issuer = required("BFF_ISSUER")?;
        check_https_url(&issuer, allow_insecure_issuer, "BFF_ISSUER")?;

        let client_id = required("BFF_CLIENT_ID")?;
        let (client_auth, client_secret) = parse_client_auth(get("BFF_CLIENT_AUTH"), &required)?;

        let base_path = parse_base_path(get("BFF_BASE_PATH"))?;
        let cookie_budget = parse_number(get("BFF_COOKIE_BUDGET"), "BFF_COOKIE_BUDGET", 7000, 1000)?;
        let same_site = get("BFF_COOKIE_SAMESITE").map(|v| v.to_ascii_lowercase());
        let session_modes = [("cookie", SessionMode::Cookie), ("kv", SessionMode::Kv)];
        Ok(Self {
            issuer,
            client_id,
            client_secret,
            client_auth,
            public_origin: parse_origin(&required("BFF_PUBLIC_ORIGIN")?)?,
            post_logout_path: parse_post_logout_path(get("BFF_POST_LOGOUT_PATH"), &base_path)?,
            base_path,
            keys: parse_keys(&required("BFF_COOKIE_KEYS")?)?,
            scopes: parse_scopes(get("BFF_SCOPES"))?,
            authorization_params: parse_authorization_params(get("BFF_AUTHORIZATION_PARAMS"))?,
            default_resource: parse_default_resource(get("BFF_DEFAULT_RESOURCE"))?,
            session_store: parse_choice(get("BFF_SESSION_STORE"), "BFF_SESSION_STORE", &session_modes)?,
            session_max_age: parse_number(get("BFF_SESSION_MAX_AGE"), "BFF_SESSION_MAX_AGE", 86_400, 1)?,
            sessioninfo_claims: words(get("BFF_SESSIONINFO_CLAIMS").as_deref().unwrap_or(DEFAULT_CLAIMS)),
            userinfo: parse_bool(get("BFF_USERINFO"), "BFF_USERINFO", false)?,
            same_site: parse_choice(
                same_site,
                "BFF_COOKIE_SAMESITE",
                &[("strict", SameSite::Strict), ("lax", SameSite::Lax)],
            )?,
            cookie_budget: usize::try_from(cookie_budget)
                .map_err(|_| ConfigError::new("BFF_COOKIE_BUDGET", "too large"))?,
            allow_insecure_issuer,
            id_token_algs: parse_id_token_algs(get("BFF_ID_TOKEN_ALGS"))?,
            http_timeout: parse_http_timeout(get("BFF_HTTP_TIMEOUT"))?,
            dpop: parse_choice(get("BFF_DPOP"), "BFF_DPOP", &[("off", false), ("required", true)])?,
            par: parse_choice(get("BFF_PAR"), "BFF_PAR", ParMode::CHOICES)?,
            log_level: parse_choice(
                get("BFF_LOG_LEVEL").map(|v| v.to_ascii_lowercase()),
                "BFF_LOG_LEVEL",
                &[("info", Level::Info), ("warn", Level::Warn), ("error", Level::Error)],
            )?,
        })
    }

    /// `B/bff/login`, where "sign in again" leads.
    pub(crate) fn login_path(&self) -> String {
        format!("{}/bff/login", self.base_path)
    }

    /// The OAuth `redirect_uri` (http-api.md: login).
    pub(crate) fn redirect_uri(&self) -> String {
        format!("{}{}/bff/callback", self.public_origin, self.base_path)
    }

    /// Whether `url` may be called: https, or http on loopback when insecure issuers are allowed.
    pub(crate) fn endpoint_allowed(&self, url: &Url) -> bool {
        if self.allow_insecure_issuer {
            is_https_or_loopback(url)
        } else {
            url.scheme() == "https"
        }
    }
}

/// `client_secret_basic` (the default), `client_secret_post` or `private_key_jwt`, with the
/// secret or key each needs.
fn parse_client_auth(
    method: Option<String>,
    required: &impl Fn(&'static str) -> Result<String, ConfigError>,
) -> Result<(ClientAuth, Option<ClientSecret>), ConfigError> {
    match method.as_deref() {
        None | Some("client_secret_basic") => Ok((
            ClientAuth::SecretBasic,
            Some(ClientSecret::new(required("BFF_CLIENT_SECRET")?)),
        )),
        Some("client_secret_post") => Ok((
            ClientAuth::SecretPost,
            Some(ClientSecret::new(required("BFF_CLIENT_SECRET")?)),
        )),
        Some("private_key_jwt") => {
            let key = parse_private_key(&required("BFF_CLIENT_PRIVATE_KEY")?)
                .map_err(|why| ConfigError::new("BFF_CLIENT_PRIVATE_KEY", why))?;
            Ok((ClientAuth::PrivateKeyJwt(key), None))
        }
        Some(_) => Err(ConfigError::new(
            "BFF_CLIENT_AUTH",
            "must be client_secret_basic, client_secret_post or private_key_jwt",
        )),
    }
}

fn words(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

fn parse_scopes(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let scopes = words(value.as_deref().unwrap_or(DEFAULT_SCOPES));
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError::new("BFF_SCOPES", "must contain openid"));
    }
    Ok(scopes)
}

fn parse_default_resource(value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(r) if !is_resource_uri(&r) => Err(ConfigError::new(
            "BFF_DEFAULT_RESOURCE",
            "must be an absolute URI without fragment",
        )),
        other => Ok(other),
    }
}

fn parse_post_logout_path(value: Option<String>, base_path: &str) -> Result<String, ConfigError> {
    match value {
        None => Ok(format!("{base_path}/")),
        Some(p) if is_local_path(&p) => Ok(p),
        Some(_) => Err(ConfigError::new(
            "BFF_POST_LOGOUT_PATH",
            "must be a path on this origin",
        )),
    }
}

/// One of `choices` by name; unset means the first.
fn parse_choice<T: Copy>(value: Option<String>, name: &'static str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    match value {
        None => Ok(choices[0].1),
        Some(v) => choices
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, t)| *t)
            .ok_or_else(|| ConfigError::new(name, format!("must be {}", names.join(" or ")))),
    }
}

fn parse_id_token_algs(value: Option<String>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = value else { return Ok(None) };
    let algs: Vec<String> = list.split_whitespace().map(str::to_owned).collect();
    if !algs.iter().all(|a| is_supported_alg(a)) {
        return Err(ConfigError::new(
            "BFF_ID_TOKEN_ALGS",
            "only RS256-512, PS256-512, ES256, ES384 and EdDSA are accepted",
        ));
    }
    Ok(Some(algs))
}

fn parse_http_timeout(value: Option<String>) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_secs(5)),
        Some(v) => match v.parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs <= 60.0 => Ok(Duration::from_secs_f64(secs)),
            _ => Err(ConfigError::new("BFF_HTTP_TIMEOUT", "must be seconds between 0 and 60")),
        },
    }
}

fn parse_bool(value: Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match value.map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(_) => Err(ConfigError::new(name, "must be true or false")),
    }
}

fn parse_number(value: Option<String>, name: &'static str, default: u64, min: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(ConfigError::new(
                name,
                format!("must be a whole number of at least {min}"),
            )),
        },
    }
}

fn check_https_url(value: &str, allow_loopback_http: bool, name: &'static str) -> Result<Url, ConfigError> {
    let url = parse_url(value).ok_or_else(|| ConfigError::new(name, "must be an absolute URL"))?;
    let ok = if allow_loopback_http {
        is_https_or_loopback(&url)
    } else {
        url.scheme() == "https"
    };
    if !ok {
        return Err(ConfigError::new(
            name,
            "must use https (http only on loopback with BFF_ALLOW_INSECURE_ISSUER=true)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(name, "must not have a query or fragment"));
    }
    Ok(url)
}

fn parse_origin(value: &str) -> Result<String, ConfigError> {
    const NAME: &str = "BFF_PUBLIC_ORIGIN";
    let url =
        parse_url(value).ok_or_else(|| ConfigError::new(NAME, "must be an origin such as https://app.example.com"))?;
    let secure = is_https_or_loopback(&url);
    if !secure || url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(ConfigError::new(
            NAME,
            "must be scheme://host[:port] with https (http only for loopback)",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

fn parse_base_path(value: Option<String>) -> Result<String, ConfigError> {
    const NAME: &str = "BFF_BASE_PATH";
    let Some(path) = value else { return Ok(String::new()) };
    let path = path.trim_end_matches('/').to_owned();
    if path.is_empty() {
        return Ok(path);
    }
    let valid = path.starts_with('/')
        && !path.contains("//")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    if !valid {
        return Err(ConfigError::new(
            NAME,
            "must be a path starting with / (for example /shop)",
        ));
    }
    Ok(path)
}

fn parse_keys(value: &str) -> Result<Vec<SealKey>, ConfigError> {
    const NAME: &str = "BFF_COOKIE_KEYS";
    let mut keys = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, material) = entry
            .split_once(':')
            .ok_or_else(|| ConfigError::new(NAME, "each key must be kid:base64url(32 bytes)"))?;
        let id_ok =
            !id.is_empty() && id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(ConfigError::new(
                NAME,
                "a key id must be 1-16 characters of A-Z a-z 0-9 - _",
            ));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(material.trim_end_matches('='))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| ConfigError::new(NAME, "each key must be 32 bytes in base64url"))?;
        if keys.iter().any(|k: &SealKey| k.id == id) {
            return Err(ConfigError::new(NAME, "key ids must be unique"));
        }
        keys.push(SealKey::new(id.to_owned(), bytes));
    }
    if keys.is_empty() {
        return Err(ConfigError::new(NAME, "needs at least one key"));
    }
    Ok(keys)
}

/// Parameters the backend sets itself, and those that would turn the request into another kind
/// (a request object, a pushed request's reference: RFC 9126 §2.1 forbids `request_uri` in a
/// push), carry client credentials, or bind the code to a key (`dpop_jkt`, RFC 9449 §10), which
/// the code exchange cannot prove; configuration must not set them.
const RESERVED_PARAMS: &[&str] = &[
    "client_assertion",
    "client_assertion_type",
    "client_id",
    "client_secret",
    "code_challenge",
    "code_challenge_method",
    "dpop_jkt",
    "nonce",
    "redirect_uri",
    "request",
    "request_uri",
    "response_type",
    "scope",
    "state",
];

fn parse_authorization_params(value: Option<String>) -> Result<Vec<(String, String)>, ConfigError> {
    const NAME: &str = "BFF_AUTHORIZATION_PARAMS";
    let Some(value) = value else { return Ok(Vec::new()) };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(value.as_bytes()).into_owned().collect();
    if let Some((reserved, _)) = params.iter().find(|(k, _)| RESERVED_PARAMS.contains(&k.as_str())) {
        return Err(ConfigError::new(NAME, format!("must not set {reserved}")));
    }
    Ok(params)
}

#[cfg(test)]
#[path = "config_tests.rs"]
pub(crate) mod tests;
