//! Token mediation in depth (TMI-BFF draft-01 §4, §6.3; RFC 8707): two APIs with their own
//! audiences and scopes issuing JWT access tokens, down-scoping, incremental consent, errors
//! passed through, single flight, the cookie budget, the provider's signing-key rotation, and the stronger client
//! authentication methods (`private_key_jwt`: in process and on the Worker with an EC PEM, on the
//! Lambda with an RSA JWK; the parity test runs RSA on both deployed targets, and the store worlds
//! run `client_secret_post` on every target).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_tests::browser::{Browser, sessioninfo, token};
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use bff_tests::{free_port, repo_root};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cases::{SESSION, browser_with, copy_jar, encode, login, start_login};
use crate::{ACCESS_TOKEN_TTL, World};

const API_ONE: &str = "https://api-one.test/";
const API_TWO: &str = "https://api-two.test/";

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
        settings.retain(|(key, _)| !self.settings.iter().any(|(own, _)| own == key));
        settings.extend(self.settings.into_iter().map(|(key, value)| (key.to_owned(), value)));
    }
}

/// Whether the provider hands out a new refresh token with every refresh.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshTokens {
    Rotating,
    /// The client is registered with the harness's `rotate_refresh_tokens: false`: the provider
    /// hands back the same refresh token.
    NonRotating,
}

/// A mediation world whose provider treats refresh tokens as `refresh_tokens` says.
async fn world(kind: Kind, refresh_tokens: RefreshTokens) -> World {
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
    client["rotate_refresh_tokens"] = json!(refresh_tokens == RefreshTokens::Rotating);
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

fn session_bytes(browser: &mut Browser, target: &Target) -> usize {
    browser
        .jar(&target.origin)
        .iter()
        .filter(|(name, _)| name.starts_with(SESSION))
        .map(|(name, cookie)| name.len() + 1 + cookie.value.len())
        .sum()
}

pub async fn run(kind: Kind) {
    if !crate::enabled(kind) {
        return;
    }
    let cases: &[(&str, crate::Case)] = &[
        ("down_scoping", |world| Box::pin(down_scoping(world))),
        ("incremental_consent", |world| Box::pin(incremental_consent(world))),
        ("single_flight", |world| Box::pin(single_flight(world))),
        ("cookie_budget", |world| Box::pin(cookie_budget(world))),
        ("signing_key_rotation", |world| Box::pin(signing_key_rotation(world))),
    ];
    let label = format!("{} mediation", kind.name());
    let mut failures = crate::run_cases(&label, world(kind, RefreshTokens::Rotating).await, cases).await;
    // The same mediation against a provider that does not rotate refresh tokens: a refresh
    // remembered for 30 s must not stand in for the next, different, refresh with that token.
    let non_rotating: &[(&str, crate::Case)] = &[
        ("non_rotating_refresh", |world| Box::pin(non_rotating_refresh(world))),
        ("down_scoping", |world| Box::pin(down_scoping(world))),
        ("incremental_consent", |world| Box::pin(incremental_consent(world))),
        ("cookie_budget", |world| Box::pin(cookie_budget(world))),
    ];
    let label = format!("{} mediation, non-rotating", kind.name());
    failures.extend(crate::run_cases(&label, world(kind, RefreshTokens::NonRotating).await, non_rotating).await);
    assert!(
        failures.is_empty(),
        "{} mediation: failed cases: {failures:?}",
        kind.name()
    );
}

/// The refresh tokens the provider holds for `user`: (value, consumed, revoked).
async fn refresh_tokens_of(provider: &Provider, user: &str) -> Vec<(String, bool, bool)> {
    provider
        .refresh_tokens()
        .await
        .iter()
        .filter(|entry| entry["account_id"] == user)
        .map(|entry| {
            (
                entry["value"].as_str().unwrap_or_default().to_owned(),
                entry["consumed"].as_bool().unwrap_or(true),
                entry["revoked"].as_bool().unwrap_or(true),
            )
        })
        .collect()
}

/// A provider that does not rotate (`rotate_refresh_tokens: false`): every refresh with the one
/// refresh token is a real refresh, within 30 s of each other too: two APIs, a forced refresh
/// after a `rejected_token`, then other (resource, scope) pairs. The refresh token is never
/// consumed and never replaced.
async fn non_rotating_refresh(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut browser = login(target, "sami").await;
    let callback = start_login(
        &mut browser,
        target,
        &format!("?resource={}&scope=api2%3Aread", encode(API_TWO)),
        "sami",
    )
    .await;
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let held = refresh_tokens_of(provider, "sami").await;
    let errors = provider.count("grant_error").await;
    let refreshes = provider.count("refresh_token").await;
    let api_two = format!("?resource={}&scope=api2%3Aread", encode(API_TWO));

    // Both APIs: API_ONE's token came with the code, API_TWO's is the first refresh.
    let one = token(&mut browser, target, "").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    let one = one.json();
    assert_eq!(jwt_claims(one["access_token"].as_str().unwrap())["aud"], API_ONE);
    let two = token(&mut browser, target, &api_two).await;
    assert_eq!(two.status, StatusCode::OK, "{}", two.body);
    let two = two.json();
    let claims = jwt_claims(two["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_TWO);
    assert_eq!(scopes(&claims["scope"]), ["api2:read"]);
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1
    );

    // API_ONE's token rejected, seconds after that refresh with the same refresh token: a real
    // refresh again, and a new token.
    let current = one["access_token"].as_str().unwrap();
    let forced = token(&mut browser, target, &format!("?rejected_token={current}")).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    let forced = forced.json();
    assert_ne!(
        forced["access_token"], one["access_token"],
        "not the rejected token again"
    );
    let claims = jwt_claims(forced["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(scopes(&claims["scope"]), ["api1:read", "api1:write"]);
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 2).await,
        refreshes + 2
    );
    assert_eq!(
        token(&mut browser, target, "").await.json()["access_token"],
        forced["access_token"],
        "cached"
    );

    // Another (resource, scope) within 30 s: down-scoped, a third refresh.
    let narrow = token(
        &mut browser,
        target,
        &format!("?resource={}&scope=api1%3Aread", encode(API_ONE)),
    )
    .await;
    assert_eq!(narrow.status, StatusCode::OK, "{}", narrow.body);
    let narrow = narrow.json();
    let claims = jwt_claims(narrow["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(scopes(&claims["scope"]), ["api1:read"]);
    assert_ne!(narrow["access_token"], forced["access_token"]);
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 3).await,
        refreshes + 3
    );

    // Everything cached answers without the provider; API_TWO's token is still its own.
    assert_eq!(
        token(&mut browser, target, &api_two).await.json()["access_token"],
        two["access_token"]
    );
    assert_eq!(
        token(&mut browser, target, "").await.json()["access_token"],
        forced["access_token"]
    );
    assert_eq!(provider.count("refresh_token").await, refreshes + 3);
    assert_eq!(provider.count("grant_error").await, errors, "no refresh failed");
    // The provider never rotated: the same refresh tokens, none consumed or revoked.
    let after = refresh_tokens_of(provider, "sami").await;
    assert_eq!(after, held, "no refresh token issued, consumed or revoked");
    assert!(
        after.iter().all(|(_, consumed, revoked)| !consumed && !revoked),
        "{after:?}"
    );
}

/// A narrower request never gets a wider token: `scope=api1:read` is refreshed down and cached
/// apart from the default token (draft-01 §6.3; RFC 10017 §6.2.2.3).
async fn down_scoping(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut browser = login(target, "mona").await;
    let wide = token(&mut browser, target, "").await;
    assert_eq!(wide.status, StatusCode::OK, "{}", wide.body);
    let wide = wide.json();
    let claims = jwt_claims(wide["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(scopes(&claims["scope"]), ["api1:read", "api1:write"]);

    let refreshes = provider.count("refresh_token").await;
    let narrow = token(&mut browser, target, "?scope=api1%3Aread").await;
    assert_eq!(narrow.status, StatusCode::OK, "{}", narrow.body);
    let narrow = narrow.json();
    let claims = jwt_claims(narrow["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_ONE);
    assert_eq!(
        scopes(&claims["scope"]),
        ["api1:read"],
        "the narrow token does not carry api1:write"
    );
    assert_eq!(narrow["scope"], "api1:read");
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1
    );
    // Both are cached, each for its own request.
    assert_eq!(
        token(&mut browser, target, "?scope=api1%3Aread").await.json()["access_token"],
        narrow["access_token"]
    );
    assert_eq!(
        token(&mut browser, target, "").await.json()["access_token"],
        wide["access_token"]
    );
    assert_eq!(
        token(
            &mut browser,
            target,
            &format!("?resource={}&scope=api1%3Aread", encode(API_ONE))
        )
        .await
        .json()["access_token"],
        narrow["access_token"]
    );
    assert_eq!(provider.count("refresh_token").await, refreshes + 1);
    // Scopes compare as sets.
    let reordered = token(
        &mut browser,
        target,
        "?scope=api1%3Awrite%20api1%3Aread%20openid%20profile%20email%20offline_access",
    )
    .await
    .json();
    assert_eq!(reordered["access_token"], wide["access_token"]);
}

/// An ungranted resource gets `backend_not_ready` with a `login_url`; that login asks for the
/// union, and afterwards both grants work. A provider error on refresh passes through.
async fn incremental_consent(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut browser = login(target, "nina").await;
    let not_ready = token(
        &mut browser,
        target,
        &format!("?resource={}&scope=api2%3Aread", encode(API_TWO)),
    )
    .await;
    assert_eq!(not_ready.status, StatusCode::BAD_REQUEST);
    let not_ready = not_ready.json();
    assert_eq!(not_ready["error"], "backend_not_ready");
    let login_url = not_ready["login_url"].as_str().unwrap().to_owned();
    assert_eq!(
        login_url,
        format!("/bff/login?scope=api2%3Aread&resource={}", encode(API_TWO))
    );

    let answer = browser
        .get(&format!("{}{login_url}&return_to=/again", target.origin))
        .await;
    let authorize = answer.location().unwrap();
    let params = world.provider.authorization_params(&authorize).await;
    let resources: Vec<&str> = params
        .iter()
        .filter(|(key, _)| key == "resource")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(resources, [API_ONE, API_TWO], "the union of earlier and new resources");
    let scope = &params.iter().find(|(key, _)| key == "scope").unwrap().1;
    assert!(scope.contains("api1:write") && scope.contains("api2:read"), "{scope}");
    let callback = browser.sign_in_at_provider(authorize, "nina", &target.origin).await;
    let done = browser.visit_callback(&callback).await;
    assert_eq!(done.header("location"), Some("/again"), "{}", done.body);

    let two = token(
        &mut browser,
        target,
        &format!("?resource={}&scope=api2%3Aread", encode(API_TWO)),
    )
    .await;
    assert_eq!(two.status, StatusCode::OK, "{}", two.body);
    let two = two.json();
    let claims = jwt_claims(two["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], API_TWO);
    assert_eq!(scopes(&claims["scope"]), ["api2:read"]);
    let one = token(&mut browser, target, "").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    let one = one.json();
    assert_eq!(
        jwt_claims(one["access_token"].as_str().unwrap())["aud"],
        API_ONE,
        "the earlier grant is kept"
    );

    // A scope the provider silently left out of the grant: asking for it on refresh gets the
    // provider's own error, unchanged, and the refresh token survives.
    let callback = start_login(&mut browser, target, "?scope=ghost", "nina").await;
    assert_eq!(browser.visit_callback(&callback).await.status, StatusCode::FOUND);
    let errors = provider.count("grant_error").await;
    let refused = token(
        &mut browser,
        target,
        &format!("?resource={}&scope=ghost", encode(API_ONE)),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let refused = refused.json();
    assert_eq!(refused["error"], "invalid_scope", "{refused}");
    assert_eq!(provider.count_settled("grant_error", errors + 1).await, errors + 1);
    let narrow = token(
        &mut browser,
        target,
        &format!("?resource={}&scope=api1%3Aread", encode(API_ONE)),
    )
    .await;
    assert_eq!(narrow.status, StatusCode::OK, "the session still works");

    // A resource the provider does not know: its error is shown, whether it refuses the pushed
    // request (RFC 9126 §2.3) or answers at the authorization endpoint.
    let mut other = Browser::new();
    let mut next = other
        .get(&target.url(&format!("/bff/login?resource={}", encode("https://unknown.test/"))))
        .await;
    for _ in 0..6 {
        let Some(location) = next.location() else { break };
        if location.origin().ascii_serialization() == target.origin {
            next = other.visit_callback(&location).await;
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
async fn single_flight(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut olga = login(target, "olga").await;
    let first = token(&mut olga, target, "").await.json();
    let current = first["access_token"].as_str().unwrap().to_owned();
    let jar = copy_jar(&mut olga, target);
    let refreshes = provider.count("refresh_token").await;
    let errors = provider.count("grant_error").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (jar, url) = (
            jar.clone(),
            target.url(&format!("/.well-known/bff-token?rejected_token={current}")),
        );
        let origin = target.origin.clone();
        tasks.push(tokio::spawn(async move {
            let mut browser = Browser::new();
            browser.jar(&origin).extend(jar);
            let answer = browser.api(Method::GET, &url, None).await;
            let cookie = answer
                .set_cookies()
                .into_iter()
                .find(|cookie| cookie.starts_with(SESSION) && !cookie.contains("Max-Age=0"));
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
        tokens.iter().all(|issued| *issued == tokens[0] && *issued != current),
        "one new token for all"
    );
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1,
        "one refresh at the provider"
    );
    assert_eq!(provider.count("grant_error").await, errors, "no refresh failed");
    // The old cookie again (an out-of-order response lost): answered from the rotation.
    let mut late = browser_with(target, &jar);
    let replayed = token(&mut late, target, &format!("?rejected_token={current}")).await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.body);
    assert_eq!(replayed.json()["access_token"], tokens[0].as_str());
    assert_eq!(provider.count("refresh_token").await, refreshes + 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(provider.count("grant_error").await, errors);
}

/// However many (resource, scope) pairs a frontend asks for, the session stays in the cookie
/// budget: the least recently obtained tokens go first.
async fn cookie_budget(world: Arc<World>) {
    let target = &world.target;
    let mut browser = login(target, "pia").await;
    let callback = start_login(
        &mut browser,
        target,
        &format!("?resource={}&scope=api2%3Aread", encode(API_TWO)),
        "pia",
    )
    .await;
    browser.visit_callback(&callback).await;
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
        let answer = token(&mut browser, target, query).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
        let size = session_bytes(&mut browser, target);
        assert!(size <= 7000, "{query}: {size} bytes");
        largest = largest.max(size);
    }
    eprintln!(
        "[{}] largest session measured: {largest} bytes of session cookies",
        target.kind.name()
    );
}

/// The provider rotates its signing key: a new login validates after one JWKS refetch.
async fn signing_key_rotation(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let _ = login(target, "quin").await;
    let rotated = provider.rotate_keys().await;
    assert!(rotated["kid"].is_string());
    // The backend refetches for an unknown kid at most every 5 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut browser = login(target, "rhea").await;
    assert_eq!(sessioninfo(&mut browser, target).await.json()["sub"], "rhea");
    // Refreshes now return ID tokens signed with the new key too.
    let first = token(&mut browser, target, "").await.json();
    let current = first["access_token"].as_str().unwrap();
    let refreshed = token(&mut browser, target, &format!("?rejected_token={current}")).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
}
