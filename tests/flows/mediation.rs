//! Token mediation in depth (TMI-BFF draft-01 §4, §6.3; RFC 8707): two APIs with their own
//! audiences and scopes issuing JWT access tokens, down-scoping, incremental consent, errors
//! passed through, single flight, the cookie budget, key rotation, and the stronger client
//! authentication methods (`private_key_jwt`: in process and on the Worker with an EC PEM, on the
//! Lambda with an RSA JWK; the parity test runs RSA on both deployed targets, and the store worlds
//! run `client_secret_post` on every target).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_tests::browser::{Browser, StoredCookie};
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use bff_tests::{free_port, repo_root};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cases::{login, start_login};
use crate::{ACCESS_TOKEN_TTL, World};

const API_ONE: &str = "https://api-one.test/";
const API_TWO: &str = "https://api-two.test/";
const SESSION: &str = "__Host-bff-session";

/// A `private_key_jwt` client key: RSA as a JWK, or EC P-256 as a PEM.
#[derive(Clone, Copy)]
pub(crate) enum ClientKey {
    Rsa,
    Ec,
}

/// Fresh client keys for `private_key_jwt` (RFC 7523): the client metadata to register at the
/// provider, and the settings that make a target use the private key and no secret.
pub(crate) struct ClientAuth {
    pub(crate) metadata: Value,
    settings: Vec<(&'static str, String)>,
}

impl ClientAuth {
    pub(crate) fn private_key_jwt(key: ClientKey) -> Self {
        let output = std::process::Command::new("node")
            .arg(repo_root().join("tests/harness/keys.mjs"))
            .output()
            .unwrap();
        let keys: Value = serde_json::from_slice(&output.stdout).unwrap();
        let (public, private) = match key {
            ClientKey::Rsa => (&keys["rsa"]["public_jwk"], keys["rsa"]["private_jwk"].to_string()),
            ClientKey::Ec => (
                &keys["ec"]["public_jwk"],
                keys["ec"]["private_pem"].as_str().unwrap().to_owned(),
            ),
        };
        Self {
            metadata: json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}),
            settings: vec![
                ("BFF_CLIENT_AUTH", "private_key_jwt".to_owned()),
                ("BFF_CLIENT_PRIVATE_KEY", private),
                ("BFF_CLIENT_SECRET", String::new()),
            ],
        }
    }

    /// Replaces the client authentication settings in `settings`.
    pub(crate) fn apply(self, settings: &mut Vec<(String, String)>) {
        settings.retain(|(k, _)| !self.settings.iter().any(|(a, _)| a == k));
        settings.extend(self.settings.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
}

/// A mediation world; `rotating: false` registers the client with the harness's
/// `rotate_refresh_tokens: false` (a provider that hands back the same refresh token).
async fn world(kind: Kind, rotating: bool) -> World {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let resources = json!({"resources": {
        API_ONE: {"scope": "api1:read api1:write", "jwt": true},
        API_TWO: {"scope": "api2:read", "jwt": true},
    }});
    // Native code signs with ES256 in process and RS256 on the Lambda; the Worker's wasm signs
    // with ES256 here and RS256 in the parity test.
    let auth = ClientAuth::private_key_jwt(match kind {
        Kind::InProcess | Kind::Worker => ClientKey::Ec,
        Kind::Lambda => ClientKey::Rsa,
    });
    let mut client = auth.metadata.clone();
    client["rotate_refresh_tokens"] = json!(rotating);
    let provider = Provider::start_with(&origin, "", ACCESS_TOKEN_TTL, resources, client).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    auth.apply(&mut settings);
    settings.push((
        "BFF_SCOPES".into(),
        "openid profile email offline_access api1:read api1:write".into(),
    ));
    settings.push(("BFF_DEFAULT_RESOURCE".into(), API_ONE.into()));
    let target = Target::start(kind, port, "", settings).await;
    World {
        provider,
        target,
        kv: false,
        settings: Vec::new(),
        stand_in: None,
    }
}

async fn token(b: &mut Browser, t: &Target, query: &str) -> (StatusCode, Value) {
    let answer = b
        .api(Method::GET, &t.url(&format!("/.well-known/bff-token{query}")), None)
        .await;
    (answer.status, answer.json())
}

/// The claims of a JWT access token (read, not verified: the provider signed it).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT access token");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn scopes(value: &Value) -> Vec<String> {
    let mut list: Vec<String> = value
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect();
    list.sort();
    list
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn session_bytes(b: &mut Browser, t: &Target) -> usize {
    b.jar(&t.origin)
        .iter()
        .filter(|(n, _)| n.starts_with(SESSION))
        .map(|(n, c)| n.len() + 1 + c.value.len())
        .sum()
}

pub async fn run(kind: Kind) {
    if !crate::enabled(kind) {
        return;
    }
    let cases: &[(&str, crate::Case)] = &[
        ("down_scoping", |w| Box::pin(down_scoping(w))),
        ("incremental_consent", |w| Box::pin(incremental_consent(w))),
        ("single_flight", |w| Box::pin(single_flight(w))),
        ("cookie_budget", |w| Box::pin(cookie_budget(w))),
        ("key_rotation", |w| Box::pin(key_rotation(w))),
    ];
    let label = format!("{} mediation", kind.name());
    let mut failures = crate::run_cases(&label, world(kind, true).await, cases).await;
    // The same mediation against a provider that does not rotate refresh tokens: a refresh
    // remembered for 30 s must not stand in for the next, different, refresh with that token.
    let non_rotating: &[(&str, crate::Case)] = &[
        ("non_rotating_refresh", |w| Box::pin(non_rotating_refresh(w))),
        ("down_scoping", |w| Box::pin(down_scoping(w))),
        ("incremental_consent", |w| Box::pin(incremental_consent(w))),
        ("cookie_budget", |w| Box::pin(cookie_budget(w))),
    ];
    let label = format!("{} mediation, non-rotating", kind.name());
    failures.extend(crate::run_cases(&label, world(kind, false).await, non_rotating).await);
    assert!(
        failures.is_empty(),
        "{} mediation: failed cases: {failures:?}",
        kind.name()
    );
}

/// The refresh tokens the provider holds for `user`: (value, consumed, revoked).
async fn refresh_tokens_of(p: &Provider, user: &str) -> Vec<(String, bool, bool)> {
    p.refresh_tokens()
        .await
        .iter()
        .filter(|t| t["account_id"] == user)
        .map(|t| {
            (
                t["value"].as_str().unwrap_or_default().to_owned(),
                t["consumed"].as_bool().unwrap_or(true),
                t["revoked"].as_bool().unwrap_or(true),
            )
        })
        .collect()
}

/// A provider that does not rotate (`rotate_refresh_tokens: false`): every refresh with the one
/// refresh token is a real refresh, within 30 s of each other too: two APIs, a forced refresh
/// after a `rejected_token`, then other (resource, scope) pairs. The refresh token is never
/// consumed and never replaced.
async fn non_rotating_refresh(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let mut b = login(t, "sami").await;
    let callback = start_login(
        &mut b,
        t,
        &format!("?resource={}&scope=api2%3Aread", encode(API_TWO)),
        "sami",
    )
    .await;
    let done = b.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let held = refresh_tokens_of(p, "sami").await;
    let errors = p.count("grant_error").await;
    let refreshes = p.count("refresh_token").await;
    let api_two = format!("?resource={}&scope=api2%3Aread", encode(API_TWO));

    // Both APIs: API_ONE's token came with the code, API_TWO's is the first refresh.
    let (status, one) = token(&mut b, t, "").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(jwt_claims(one["access_token"].as_str().unwrap())["aud"], API_ONE);
    let (status, two) = token(&mut b, t, &api_two).await;
    assert_eq!(status, StatusCode::OK, "{two}");
    let claims = jwt_claims(two["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_TWO);
    assert_eq!(scopes(&claims["scope"]), ["api2:read"]);
    assert_eq!(p.count_settled("refresh_token", refreshes + 1).await, refreshes + 1);

    // API_ONE's token rejected, seconds after that refresh with the same refresh token: a real
    // refresh again, and a new token.
    let current = one["access_token"].as_str().unwrap();
    let (status, forced) = token(&mut b, t, &format!("?rejected_token={current}")).await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    assert_ne!(
        forced["access_token"], one["access_token"],
        "not the rejected token again"
    );
    let claims = jwt_claims(forced["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(scopes(&claims["scope"]), ["api1:read", "api1:write"]);
    assert_eq!(p.count_settled("refresh_token", refreshes + 2).await, refreshes + 2);
    assert_eq!(
        token(&mut b, t, "").await.1["access_token"],
        forced["access_token"],
        "cached"
    );

    // Another (resource, scope) within 30 s: down-scoped, a third refresh.
    let (status, narrow) = token(&mut b, t, &format!("?resource={}&scope=api1%3Aread", encode(API_ONE))).await;
    assert_eq!(status, StatusCode::OK, "{narrow}");
    let claims = jwt_claims(narrow["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(scopes(&claims["scope"]), ["api1:read"]);
    assert_ne!(narrow["access_token"], forced["access_token"]);
    assert_eq!(p.count_settled("refresh_token", refreshes + 3).await, refreshes + 3);

    // Everything cached answers without the provider; API_TWO's token is still its own.
    assert_eq!(token(&mut b, t, &api_two).await.1["access_token"], two["access_token"]);
    assert_eq!(token(&mut b, t, "").await.1["access_token"], forced["access_token"]);
    assert_eq!(p.count("refresh_token").await, refreshes + 3);
    assert_eq!(p.count("grant_error").await, errors, "no refresh failed");
    // The provider never rotated: the same refresh tokens, none consumed or revoked.
    let after = refresh_tokens_of(p, "sami").await;
    assert_eq!(after, held, "no refresh token issued, consumed or revoked");
    assert!(
        after.iter().all(|(_, consumed, revoked)| !consumed && !revoked),
        "{after:?}"
    );
}

/// A narrower request never gets a wider token: `scope=api1:read` is refreshed down and cached
/// apart from the default token (draft-01 §6.3; RFC 10017 §6.2.2.3).
async fn down_scoping(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let mut b = login(t, "mona").await;
    let (status, wide) = token(&mut b, t, "").await;
    assert_eq!(status, StatusCode::OK, "{wide}");
    let claims = jwt_claims(wide["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(scopes(&claims["scope"]), ["api1:read", "api1:write"]);

    let refreshes = p.count("refresh_token").await;
    let (status, narrow) = token(&mut b, t, "?scope=api1%3Aread").await;
    assert_eq!(status, StatusCode::OK, "{narrow}");
    let claims = jwt_claims(narrow["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(
        scopes(&claims["scope"]),
        ["api1:read"],
        "the narrow token does not carry api1:write"
    );
    assert_eq!(narrow["scope"], "api1:read");
    assert_eq!(p.count_settled("refresh_token", refreshes + 1).await, refreshes + 1);
    // Both are cached, each for its own request.
    assert_eq!(
        token(&mut b, t, "?scope=api1%3Aread").await.1["access_token"],
        narrow["access_token"]
    );
    assert_eq!(token(&mut b, t, "").await.1["access_token"], wide["access_token"]);
    assert_eq!(
        token(&mut b, t, &format!("?resource={}&scope=api1%3Aread", encode(API_ONE)))
            .await
            .1["access_token"],
        narrow["access_token"]
    );
    assert_eq!(p.count("refresh_token").await, refreshes + 1);
    // Scopes compare as sets.
    let (_, reordered) = token(
        &mut b,
        t,
        "?scope=api1%3Awrite%20api1%3Aread%20openid%20profile%20email%20offline_access",
    )
    .await;
    assert_eq!(reordered["access_token"], wide["access_token"]);
}

/// An ungranted resource gets `backend_not_ready` with a `login_url`; that login asks for the
/// union, and afterwards both grants work. A provider error on refresh passes through.
async fn incremental_consent(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let mut b = login(t, "nina").await;
    let (status, body) = token(&mut b, t, &format!("?resource={}&scope=api2%3Aread", encode(API_TWO))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "backend_not_ready");
    let login_url = body["login_url"].as_str().unwrap().to_owned();
    assert_eq!(
        login_url,
        format!("/bff/login?scope=api2%3Aread&resource={}", encode(API_TWO))
    );

    let answer = b.get(&format!("{}{login_url}&return_to=/again", t.origin)).await;
    let authorize = answer.location().unwrap();
    let params: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let resources: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "resource")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(resources, [API_ONE, API_TWO], "the union of earlier and new resources");
    let scope = &params.iter().find(|(k, _)| k == "scope").unwrap().1;
    assert!(scope.contains("api1:write") && scope.contains("api2:read"), "{scope}");
    let callback = b.sign_in_at_provider(authorize, "nina", &t.origin).await;
    let done = b.send(Method::GET, callback.as_str(), &[], None, true).await;
    assert_eq!(done.header("location"), Some("/again"), "{}", done.body);

    let (status, two) = token(&mut b, t, &format!("?resource={}&scope=api2%3Aread", encode(API_TWO))).await;
    assert_eq!(status, StatusCode::OK, "{two}");
    let claims = jwt_claims(two["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_TWO);
    assert_eq!(scopes(&claims["scope"]), ["api2:read"]);
    let (status, one) = token(&mut b, t, "").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(
        jwt_claims(one["access_token"].as_str().unwrap())["aud"],
        API_ONE,
        "the earlier grant is kept"
    );

    // A scope the provider silently left out of the grant: asking for it on refresh gets the
    // provider's own error, unchanged, and the refresh token survives.
    let callback = start_login(&mut b, t, "?scope=ghost", "nina").await;
    assert_eq!(
        b.send(Method::GET, callback.as_str(), &[], None, true).await.status,
        StatusCode::FOUND
    );
    let errors = p.count("grant_error").await;
    let (status, refused) = token(&mut b, t, &format!("?resource={}&scope=ghost", encode(API_ONE))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"], "invalid_scope", "{refused}");
    assert_eq!(p.count_settled("grant_error", errors + 1).await, errors + 1);
    let (status, _) = token(&mut b, t, &format!("?resource={}&scope=api1%3Aread", encode(API_ONE))).await;
    assert_eq!(status, StatusCode::OK, "the session still works");

    // A resource the provider does not know: its error at the authorization endpoint is shown.
    let mut other = Browser::new();
    let answer = other
        .get(&t.url(&format!("/bff/login?resource={}", encode("https://unknown.test/"))))
        .await;
    let mut next = other.get(answer.location().unwrap().as_str()).await;
    for _ in 0..5 {
        let Some(location) = next.location() else { break };
        if location.origin().ascii_serialization() == t.origin {
            next = other.send(Method::GET, location.as_str(), &[], None, true).await;
            break;
        }
        next = other.get(location.as_str()).await;
    }
    assert_eq!(next.status, StatusCode::BAD_REQUEST, "{}", next.body);
    assert!(next.body.contains("invalid_target"), "{}", next.body);
}

/// 20 parallel requests that all need the same refresh: the provider sees one, all get the same
/// token and the rotated refresh token; a replay of the old cookie within 30 s is answered from
/// the rotation instead of killing the grant.
async fn single_flight(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let mut b = login(t, "olga").await;
    let (_, first) = token(&mut b, t, "").await;
    let current = first["access_token"].as_str().unwrap().to_owned();
    let jar: Vec<(String, StoredCookie)> = b.jar(&t.origin).iter().map(|(n, c)| (n.clone(), c.clone())).collect();
    let refreshes = p.count("refresh_token").await;
    let errors = p.count("grant_error").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (jar, url) = (
            jar.clone(),
            t.url(&format!("/.well-known/bff-token?rejected_token={current}")),
        );
        let origin = t.origin.clone();
        tasks.push(tokio::spawn(async move {
            let mut browser = Browser::new();
            browser.jar(&origin).extend(jar);
            let answer = browser.api(Method::GET, &url, None).await;
            let cookie = answer
                .set_cookies()
                .into_iter()
                .find(|c| c.starts_with(SESSION) && !c.contains("Max-Age=0"));
            (answer.status, answer.json(), cookie)
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        let (status, body, cookie) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(cookie.is_some(), "every response carries the rotated refresh token");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    assert!(
        tokens.iter().all(|t| *t == tokens[0] && *t != current),
        "one new token for all"
    );
    assert_eq!(
        p.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1,
        "one refresh at the provider"
    );
    assert_eq!(p.count("grant_error").await, errors, "no refresh failed");
    // The old cookie again (an out-of-order response lost): answered from the rotation.
    let mut late = Browser::new();
    late.jar(&t.origin).extend(jar);
    let (status, body) = token(&mut late, t, &format!("?rejected_token={current}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access_token"], tokens[0].as_str());
    assert_eq!(p.count("refresh_token").await, refreshes + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(p.count("grant_error").await, errors);
}

/// However many (resource, scope) pairs a frontend asks for, the session stays in the cookie
/// budget: the least recently obtained tokens go first.
async fn cookie_budget(w: Arc<World>) {
    let t = &w.target;
    let mut b = login(t, "pia").await;
    let callback = start_login(
        &mut b,
        t,
        &format!("?resource={}&scope=api2%3Aread", encode(API_TWO)),
        "pia",
    )
    .await;
    b.send(Method::GET, callback.as_str(), &[], None, true).await;
    let requests = [
        format!("?resource={}&scope=api1%3Aread", encode(API_ONE)),
        format!("?resource={}&scope=api1%3Awrite", encode(API_ONE)),
        format!("?resource={}&scope=api2%3Aread", encode(API_TWO)),
        format!("?resource={}", encode(API_ONE)),
        format!("?resource={}&scope=api1%3Aread%20api1%3Awrite", encode(API_ONE)),
        format!("?resource={}&scope=api2%3Aread%20openid", encode(API_TWO)),
    ];
    let mut largest = 0;
    for query in requests.iter().chain(requests.iter()) {
        let (status, body) = token(&mut b, t, query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let size = session_bytes(&mut b, t);
        assert!(size <= 7000, "{query}: {size} bytes");
        largest = largest.max(size);
    }
    eprintln!(
        "[{}] largest session measured: {largest} bytes of session cookies",
        t.kind.name()
    );
}

/// The provider rotates its signing key: a new login validates after one JWKS refetch.
async fn key_rotation(w: Arc<World>) {
    let (t, p) = (&w.target, &w.provider);
    let _ = login(t, "quin").await;
    let rotated = p.rotate_keys().await;
    assert!(rotated["kid"].is_string());
    // The backend refetches for an unknown kid at most every 5 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut b = login(t, "rhea").await;
    assert_eq!(
        b.api(Method::GET, &t.url("/.well-known/bff-sessioninfo"), None)
            .await
            .json()["sub"],
        "rhea"
    );
    // Refreshes now return ID tokens signed with the new key too.
    let (_, first) = token(&mut b, t, "").await;
    let current = first["access_token"].as_str().unwrap();
    let (status, body) = token(&mut b, t, &format!("?rejected_token={current}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
