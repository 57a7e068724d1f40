//! With a store: sessions in KV mode (every case of the cookie suite again), and back-channel
//! logout end to end in both modes, the provider calling the backend when the user signs out
//! there (OpenID Connect Back-Channel Logout 1.0).

use std::sync::Arc;
use std::time::Duration;

use bff_tests::browser::{Browser, Site, StoredCookie, sessioninfo, token};
use bff_tests::free_port;
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cases::{self, browser_with, copy_jar, login};
use crate::{ACCESS_TOKEN_TTL, Case, World};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Where a store world keeps its sessions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// In the cookie, with the store beside it (revocations, back-channel logout).
    CookieAndStore,
    /// In the store (`BFF_SESSION_STORE=kv`); the cookie holds a sealed id.
    Kv,
}

async fn world(kind: Kind, sessions: Sessions) -> World {
    let kv = sessions == Sessions::Kv;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    // These worlds also authenticate with client_secret_post, so that method runs on every target.
    let client = json!({
        "backchannel_logout_uri": format!("{origin}/bff/backchannel-logout"),
        "backchannel_logout_session_required": true,
        "token_endpoint_auth_method": "client_secret_post",
    });
    let provider = Provider::start_with(&origin, "", ACCESS_TOKEN_TTL, json!({}), client).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    settings.extend(crate::userinfo_settings());
    settings.push(("BFF_CLIENT_AUTH".into(), "client_secret_post".into()));
    if kv {
        settings.push(("BFF_SESSION_STORE".into(), "kv".into()));
    }
    let stand_in = target::store_settings(kind).await;
    settings.extend(stand_in.iter().flat_map(|stand_in| stand_in.settings.clone()));
    let target = Target::start(kind, port, "", settings.clone()).await;
    World {
        provider,
        target,
        kv,
        settings,
        stand_in,
    }
}

pub async fn run(kind: Kind, sessions: Sessions) {
    if !crate::enabled(kind) {
        return;
    }
    let mode = match sessions {
        Sessions::Kv => "kv",
        Sessions::CookieAndStore => "cookie+store",
    };
    let mut all: Vec<(&'static str, Case)> = vec![
        ("backchannel_logout_end_to_end", |world| {
            Box::pin(backchannel_logout_end_to_end(world))
        }),
        ("bad_logout_tokens", |world| Box::pin(bad_logout_tokens(world))),
        ("logout_revokes_copied_cookie", |world| {
            Box::pin(logout_revokes_copied_cookie(world))
        }),
        ("logout_during_refresh", |world| Box::pin(logout_during_refresh(world))),
    ];
    // Across instances, refreshes are single flight through DynamoDB's conditional writes, and
    // on the Worker through the session's Durable Object (two wrangler dev processes; each has a
    // local KV of its own, so sessions kept in KV would not be found by the other).
    if kind != Kind::Worker || sessions == Sessions::CookieAndStore {
        all.push(("two_instances_one_refresh", |world| {
            Box::pin(two_instances_one_refresh(world))
        }));
        all.push(("two_instances_one_refresh_per_key", |world| {
            Box::pin(two_instances_one_refresh_per_key(world))
        }));
    }
    if sessions == Sessions::Kv {
        all.extend(cases::ALL.iter().copied());
    }
    let label = format!("{} {mode}", kind.name());
    let failures = crate::run_cases(&label, world(kind, sessions).await, &all).await;
    assert!(failures.is_empty(), "{label}: failed cases: {failures:?}");
}

/// The user signs out at the provider; the provider calls the backend; the session is gone.
async fn backchannel_logout_end_to_end(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut browser = login(target, "una").await;
    let info = sessioninfo(&mut browser, target).await;
    assert_eq!(info.status, StatusCode::OK);
    let info = info.json();
    assert!(info["sid"].is_string(), "the provider's sid is in the session: {info}");
    let calls = provider.count("backchannel_success").await;

    // End the session at the provider, as the user would on its logout page.
    let form = browser.get(&format!("{}/session/end", provider.issuer)).await;
    let xsrf = form
        .body
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the end-session form")
        .to_owned();
    let done = browser
        .send(
            Method::POST,
            &format!("{}/session/end/confirm", provider.issuer),
            &[],
            Some(format!("xsrf={xsrf}&logout=yes")),
            Site::Same,
        )
        .await;
    assert!(done.status.is_redirection(), "{}: {}", done.status, done.body);
    assert_eq!(
        provider.count_settled("backchannel_success", calls + 1).await,
        calls + 1,
        "the backend accepted the logout token"
    );

    let answer = sessioninfo(&mut browser, target).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_session");
    assert_eq!(token(&mut browser, target, "").await.json()["error"], "invalid_session");
    // The user can sign in again at once (sessions created after the logout are not ended).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut again = login(target, "una").await;
    assert_eq!(sessioninfo(&mut again, target).await.status, StatusCode::OK);
}

/// Bad logout tokens get 400 and end nothing (Back-Channel Logout 1.0 §2.6).
async fn bad_logout_tokens(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut browser = login(target, "vera").await;
    let info = sessioninfo(&mut browser, target).await.json();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let base = json!({
        "iss": provider.issuer, "aud": "bff", "iat": now, "exp": now + 120, "jti": format!("j-{now}-{}", free_port()),
        "sub": "vera", "sid": info["sid"], "events": {EVENT: {}},
    });
    let variant = |edit: &dyn Fn(&mut Value)| {
        let mut claims = base.clone();
        edit(&mut claims);
        claims
    };
    let cases: Vec<(&str, Value)> = vec![
        ("wrong aud", variant(&|claims| claims["aud"] = json!("someone-else"))),
        ("nonce present", variant(&|claims| claims["nonce"] = json!("n"))),
        (
            "no events",
            variant(&|claims| drop(claims.as_object_mut().unwrap().remove("events"))),
        ),
        (
            "expired",
            variant(&|claims| {
                claims["iat"] = json!(now - 900);
                claims["exp"] = json!(now - 600);
            }),
        ),
        (
            "wrong iss",
            variant(&|claims| claims["iss"] = json!("http://127.0.0.1:1")),
        ),
        (
            "no sub or sid",
            variant(&|claims| {
                let object = claims.as_object_mut().unwrap();
                object.remove("sub");
                object.remove("sid");
            }),
        ),
    ];
    let post = async |browser: &mut Browser, jwt: &str| {
        browser
            .send(
                Method::POST,
                &target.url("/bff/backchannel-logout"),
                &[],
                Some(format!("logout_token={jwt}")),
                Site::Same,
            )
            .await
    };
    for (name, claims) in cases {
        let jwt = provider.sign(&claims).await;
        let answer = post(&mut browser, &jwt).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}: {}", answer.body);
        assert_eq!(answer.json()["error"], "invalid_request", "{name}");
    }
    let valid = provider.sign(&base).await;
    let mut forged = valid.clone();
    forged.pop();
    forged.push(if valid.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        post(&mut browser, &forged).await.status,
        StatusCode::BAD_REQUEST,
        "bad signature"
    );
    assert_eq!(
        sessioninfo(&mut browser, target).await.status,
        StatusCode::OK,
        "no bad token ended the session"
    );

    // A valid one works once; the same jti again is a replay.
    let first = post(&mut browser, &valid).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.header("cache-control"), Some("no-store"));
    assert_eq!(
        post(&mut browser, &valid).await.status,
        StatusCode::BAD_REQUEST,
        "replayed jti"
    );
    assert_eq!(
        sessioninfo(&mut browser, target).await.json()["error"],
        "invalid_session",
        "the valid token ended it"
    );
}

/// Two instances of one deployment (two Lambda containers) get the same cookie at once: the
/// provider sees one refresh, and both answers carry the same new token.
async fn two_instances_one_refresh(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut wes = login(target, "wes").await;
    let first = token(&mut wes, target, "").await.json();
    let current = first["access_token"].as_str().unwrap().to_owned();
    let twin = twin(&world).await;
    let jar = copy_jar(&mut wes, target);
    let refreshes = provider.count("refresh_token").await;
    let errors = provider.count("grant_error").await;
    let mut tasks = Vec::new();
    for target_url in [target.url("/.well-known/bff-token"), twin.url("/.well-known/bff-token")] {
        let jar = jar.clone();
        let url = format!("{target_url}?rejected_token={current}");
        tasks.push(tokio::spawn(async move {
            let mut browser = Browser::new();
            let origin = url::Url::parse(&url).unwrap().origin().ascii_serialization();
            browser.jar(&origin).extend(jar);
            let answer = browser.api(Method::GET, &url, None).await;
            (answer.status, answer.json())
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    // Before any assertion: a failed one must not leave the twin's workerd running.
    twin.stop().await;
    let mut tokens = Vec::new();
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(tokens[0], tokens[1], "both instances answer with the one rotation");
    assert_ne!(tokens[0], current);
    assert_eq!(
        provider.count_settled("refresh_token", refreshes + 1).await,
        refreshes + 1,
        "one refresh at the provider"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(provider.count("grant_error").await, errors);
}

/// Another instance of the world's deployment, on a port of its own.
async fn twin(world: &World) -> Target {
    let twin_port = free_port();
    let mut settings = world.settings.clone();
    for (key, value) in settings.iter_mut() {
        if key == "BFF_PUBLIC_ORIGIN" {
            *value = format!("http://127.0.0.1:{twin_port}");
        }
    }
    world.target.start_twin(twin_port, settings).await
}

/// Two tabs asking for different (resource, scope) keys land on two instances (two Lambda
/// containers; on the Worker two isolates, whose only shared memory is the session's Durable
/// Object): 20 requests at once with one cookie, for four keys none of which is cached. Each
/// refresh must present the refresh token the previous one returned, so the provider sees
/// exactly one refresh per key and no refresh token twice.
async fn two_instances_one_refresh_per_key(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut xena = login(target, "xena").await;
    let twin = twin(&world).await;
    let jar = copy_jar(&mut xena, target);
    let before = provider.count("refresh_token").await;
    let errors = provider.count("grant_error").await;
    const KEYS: [&str; 4] = ["openid", "openid profile", "openid email", "openid profile email"];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let instance = if i % 2 == 0 { target } else { &twin };
        let url = format!(
            "{}?scope={}",
            instance.url("/.well-known/bff-token"),
            cases::encode(KEYS[i % KEYS.len()])
        );
        let jar = jar.clone();
        tasks.push(tokio::spawn(async move {
            let mut browser = Browser::new();
            let origin = url::Url::parse(&url).unwrap().origin().ascii_serialization();
            browser.jar(&origin).extend(jar);
            let answer = browser.api(Method::GET, &url, None).await;
            (i % KEYS.len(), answer.status, answer.json())
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    // Before any assertion: a failed one must not leave the twin's workerd running.
    twin.stop().await;
    let mut tokens: Vec<Vec<String>> = vec![Vec::new(); KEYS.len()];
    for (key, status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{}: {body}", KEYS[key]);
        tokens[key].push(body["access_token"].as_str().unwrap().to_owned());
    }
    for (key, answers) in tokens.iter().enumerate() {
        assert!(
            answers.iter().all(|t| t == &answers[0]),
            "{}: one token for all five requests",
            KEYS[key]
        );
    }
    let expected = before + u64::try_from(KEYS.len()).unwrap();
    assert_eq!(
        provider.count_settled("refresh_token", expected).await,
        expected,
        "one refresh per key at the provider"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(provider.count("grant_error").await, errors, "no invalid_grant");
}

/// Whatever `jar` holds answers `invalid_session` at sessioninfo and at the token endpoint (a
/// plain read, which a fresh cached token would otherwise answer without the provider).
async fn assert_dead(target: &Target, jar: &[(String, StoredCookie)], what: &str) {
    let mut browser = browser_with(target, jar);
    for path in ["/.well-known/bff-sessioninfo", "/.well-known/bff-token"] {
        let answer = browser.api(Method::GET, &target.url(path), None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {path}: {}",
            answer.body
        );
        assert_eq!(
            answer.json()["error"],
            "invalid_session",
            "{what}: {path}: {}",
            answer.body
        );
    }
}

/// A logout writes a revocation entry for the session: a cookie copied before it (a stolen
/// cookie, a second tab that missed the `Set-Cookie`) opens nothing afterwards, in cookie mode
/// too, where the cookie alone would still decrypt.
async fn logout_revokes_copied_cookie(world: Arc<World>) {
    let target = &world.target;
    let mut browser = login(target, "yuri").await;
    let fresh = token(&mut browser, target, "").await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let copied = copy_jar(&mut browser, target);
    // Another session of the same user, which this logout must leave alone.
    let mut other = login(target, "yuri").await;
    let logout = browser.api(Method::POST, &target.url("/bff/logout"), None).await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    assert_dead(target, &copied, "copied before logout").await;
    // Replayed once more: still dead (the first refusal's cleared cookies changed nothing).
    assert_dead(target, &copied, "replayed again").await;
    let info = sessioninfo(&mut other, target).await;
    assert_eq!(
        info.status,
        StatusCode::OK,
        "the user's other session lives: {}",
        info.body
    );
    let info = info.json();
    assert_eq!(info["sub"], "yuri");
}

/// `POST /bff/logout` while a refresh of the same session is under way: whichever finishes
/// first, the session stays ended. The refresh may answer (it started before the logout), but
/// neither the cookie copied before, nor whatever cookie the refresh handed out, opens anything
/// afterwards (KV mode: the refresh's write cannot bring the record back; cookie mode: the
/// revocation entry outlives the rotated cookie).
async fn logout_during_refresh(world: Arc<World>) {
    let (target, provider) = (&world.target, &world.provider);
    let mut refreshed = 0;
    // The logout starts this many milliseconds after the refresh (negative: before it).
    for lead in [0_i64, 15, 60, -10] {
        let mut browser = login(target, "xena").await;
        let first = token(&mut browser, target, "").await;
        let current = first.json()["access_token"].as_str().unwrap().to_owned();
        let copied = copy_jar(&mut browser, target);
        let refreshes = provider.count("refresh_token").await;
        // `rejected_token` makes the token need a refresh at once (no waiting for its expiry).
        let url = target.url(&format!("/.well-known/bff-token?rejected_token={current}"));
        let mut copy = browser_with(target, &copied);
        let refresh = tokio::spawn(async move {
            if lead < 0 {
                tokio::time::sleep(Duration::from_millis(lead.unsigned_abs())).await;
            }
            let answer = copy.api(Method::GET, &url, None).await;
            (answer, copy)
        });
        if lead > 0 {
            tokio::time::sleep(Duration::from_millis(lead.unsigned_abs())).await;
        }
        let logout = browser.api(Method::POST, &target.url("/bff/logout"), None).await;
        assert_eq!(logout.status, StatusCode::OK, "lead {lead}: {}", logout.body);
        let (answer, mut copy) = refresh.await.unwrap();
        match answer.status {
            StatusCode::OK => {
                assert_ne!(answer.json()["access_token"], current.as_str(), "lead {lead}");
                refreshed += 1;
            }
            StatusCode::BAD_REQUEST => {
                // Ended before the refresh loaded it, or the logout revoked the refresh token
                // at the provider first.
                let error = answer.json()["error"].clone();
                assert!(
                    error == "invalid_session" || error == "invalid_grant",
                    "lead {lead}: {}",
                    answer.body
                );
            }
            other => panic!("lead {lead}: {other}: {}", answer.body),
        }
        assert_dead(target, &copied, &format!("lead {lead}: copied before")).await;
        let after = copy_jar(&mut copy, target);
        assert_dead(target, &after, &format!("lead {lead}: what the refresh left")).await;
        assert_dead(
            target,
            &copy_jar(&mut browser, target),
            &format!("lead {lead}: the logged-out tab"),
        )
        .await;
        eprintln!(
            "[{} {}] logout {lead} ms after the refresh: refresh answered {}, {} refresh(es) at the provider",
            target.kind.name(),
            if world.kv { "kv" } else { "cookie+store" },
            answer.status.as_u16(),
            provider.count("refresh_token").await - refreshes,
        );
    }
    // Not a requirement, but the race is only a race if some refresh got through before the
    // logout ended the session: report it.
    eprintln!(
        "[{}] refreshes answered 200 in the race: {refreshed} of 4",
        target.kind.name()
    );
}
