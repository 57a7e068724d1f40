//! Browser-bound access tokens (DPoP, RFC 9449) against the real provider and the demo API,
//! which validates DPoP as a resource server must (RFC 9449 §7). Once with a provider and an API
//! that require nonces, once with neither.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_core::testing::BrowserKey;
use bff_tests::browser::{Answer, Browser, Site};
use bff_tests::provider::Provider;
use bff_tests::target::{self, Kind, Target};
use bff_tests::{free_port, spawn_ready};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::ACCESS_TOKEN_TTL;
use crate::cases::{browser_with, copy_jar};

/// A navigation from the app's own page, as a browser describes it (Fetch Metadata).
const SAME_ORIGIN: [(&str, &str); 2] = [("sec-fetch-site", "same-origin"), ("sec-fetch-dest", "document")];
/// A link on another site.
const CROSS_SITE: [(&str, &str); 2] = [("sec-fetch-site", "cross-site"), ("sec-fetch-dest", "document")];

pub async fn run(kind: Kind) {
    if !crate::enabled(kind) {
        return;
    }
    for nonces in [false, true] {
        let label = format!("{} dpop{}", kind.name(), if nonces { ", nonces" } else { "" });
        let started = std::time::Instant::now();
        let world = DpopWorld::start(kind, nonces).await;
        world.bound_tokens_end_to_end().await;
        eprintln!(
            "[{label}] bound_tokens_end_to_end ... ok ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        world.stop().await;
    }
    if kind == Kind::InProcess {
        provider_without_dpop().await;
        eprintln!("[{} dpop] provider_without_dpop ... ok", kind.name());
    }
}

struct DpopWorld {
    provider: Provider,
    target: Target,
    api: tokio::process::Child,
    api_url: String,
    token_endpoint: String,
    nonces: bool,
}

impl DpopWorld {
    async fn start(kind: Kind, nonces: bool) -> Self {
        let port = free_port();
        let origin = format!("http://127.0.0.1:{port}");
        // The API needs the issuer and the provider the API's URL: the API's port comes first.
        let api_port = free_port();
        let api_url = format!("http://127.0.0.1:{api_port}/");
        let extra = json!({
            "resources": {api_url.clone(): {"scope": "api:read", "jwt": true}},
            "dpop_nonce": nonces,
        });
        let provider = Provider::start_with(&origin, "", ACCESS_TOKEN_TTL, extra, json!({})).await;
        let mut args = vec![
            "--port".to_owned(),
            api_port.to_string(),
            "--issuer".to_owned(),
            provider.issuer.clone(),
        ];
        if nonces {
            args.push("--dpop-nonce".to_owned());
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let (api, ready) = spawn_ready("demo-api.mjs", &args).await;
        assert_eq!(ready["url"], json!(api_url));
        let mut settings = target::settings(&provider.issuer, &origin, "");
        settings.extend([
            ("BFF_DPOP".to_owned(), "required".to_owned()),
            (
                "BFF_SCOPES".to_owned(),
                "openid profile email offline_access api:read".to_owned(),
            ),
            ("BFF_DEFAULT_RESOURCE".to_owned(), api_url.clone()),
        ]);
        let target = Target::start(kind, port, "", settings).await;
        let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", provider.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            token_endpoint: discovery["token_endpoint"].as_str().unwrap().to_owned(),
            provider,
            target,
            api,
            api_url,
            nonces,
        }
    }

    async fn stop(mut self) {
        let _ = self.api.kill().await;
        self.target.stop().await;
        self.provider.stop().await;
    }

    /// Login with a pinned key, a bound token, the API's checks, and a stolen cookie.
    async fn bound_tokens_end_to_end(&self) {
        let body = self.target_get("/.well-known/bff-configuration").await.json();
        assert_eq!(body["dpop"], json!(true), "{body}");
        assert_eq!(body["dpop_token_endpoint"], json!(self.token_endpoint));

        let key = BrowserKey::new(21);
        let mut browser = Browser::new();
        // A login without the key's thumbprint is refused before any redirect.
        let refused = browser.get(&self.target.url("/bff/login")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        let query = format!("?dpop_jkt={}", key.thumbprint());
        // Started from another site (or typed in), the login may not pin a key.
        let url = self.target.url(&format!("/bff/login{query}"));
        let cross = browser.send(Method::GET, &url, &CROSS_SITE, None, Site::Cross).await;
        assert_eq!(cross.status, StatusCode::BAD_REQUEST, "{}", cross.body);
        let answer = browser.send(Method::GET, &url, &SAME_ORIGIN, None, Site::Same).await;
        assert_eq!(answer.status, StatusCode::FOUND, "login: {}", answer.body);
        let callback = browser
            .sign_in_at_provider(answer.location().unwrap(), "alice", &self.target.origin)
            .await;
        assert!(!callback.as_str().contains("dpop_jkt"));
        let answer = browser.visit_callback(&callback).await;
        assert_eq!(answer.status, StatusCode::FOUND, "callback: {}", answer.body);

        // Without a proof: nothing, and the session stays.
        let none = self.token(&mut browser, &[]).await;
        assert_eq!(none.json()["error"], json!("invalid_dpop_proof"), "{}", none.body);
        assert!(none.set_cookies().is_empty());

        let (answer, nonce) = self.token_with_retry(&mut browser, &key).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let body = answer.json();
        assert_eq!(body["token_type"], json!("DPoP"));
        let token = body["access_token"].as_str().unwrap().to_owned();
        let claims = jwt_claims(&token);
        assert_eq!(
            claims["cnf"]["jkt"],
            json!(key.thumbprint()),
            "the token is bound to the browser's key"
        );
        assert_eq!(self.provider.count("refresh_token").await, 1);
        if self.nonces {
            assert!(nonce.is_some(), "the provider's nonce reached the browser");
        }

        // The API takes it with a proof from that key, and refuses it as a bearer token or with
        // a proof from any other key.
        let hello = format!("{}hello", self.api_url);
        let answer = self.call_api(&mut browser, &key, &token).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.json()["token_type"], json!("DPoP"));
        let bearer = browser
            .send(
                Method::GET,
                &hello,
                &[("authorization", &format!("Bearer {token}"))],
                None,
                Site::Same,
            )
            .await;
        assert_eq!(bearer.status, StatusCode::UNAUTHORIZED, "as a bearer token");
        let thief = BrowserKey::new(22);
        let other = self.call_api(&mut browser, &thief, &token).await;
        assert_eq!(other.status, StatusCode::UNAUTHORIZED, "with another key's proof");

        // A stolen session cookie with a proof by another key gets nothing, fresh token or not.
        let jar = copy_jar(&mut browser, &self.target);
        let mut attacker = browser_with(&self.target, &jar);
        let proof = self.proof(&thief, "POST", &self.token_endpoint.clone(), nonce.as_deref(), None);
        let stolen = self.token(&mut attacker, &[&proof]).await;
        assert_eq!(stolen.status, StatusCode::BAD_REQUEST, "{}", stolen.body);
        assert_eq!(stolen.json()["error"], json!("invalid_dpop_proof"));
        assert!(stolen.json().get("access_token").is_none());
        assert_eq!(
            self.provider.count("refresh_token").await,
            1,
            "the thief caused no refresh"
        );

        // After the token's lifetime, the next refresh forwards the next proof: bound again.
        tokio::time::sleep(std::time::Duration::from_secs(ACCESS_TOKEN_TTL - 3)).await;
        let (answer, _) = self.token_with_retry(&mut browser, &key).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let renewed = answer.json()["access_token"].as_str().unwrap().to_owned();
        assert_ne!(renewed, token);
        assert_eq!(jwt_claims(&renewed)["cnf"]["jkt"], json!(key.thumbprint()));
        assert_eq!(self.provider.count("refresh_token").await, 2);
    }

    async fn target_get(&self, path: &str) -> Answer {
        Browser::new().get(&self.target.url(path)).await
    }

    async fn token(&self, browser: &mut Browser, proofs: &[&str]) -> Answer {
        let mut headers = vec![("x-csrf", "1"), ("sec-fetch-site", "same-origin")];
        headers.extend(proofs.iter().map(|proof| ("dpop", *proof)));
        let url = self.target.url("/.well-known/bff-token");
        browser.send(Method::GET, &url, &headers, None, Site::Same).await
    }

    /// `bff-token` with a proof by `key`, retried once with the provider's nonce as the JS
    /// client does; the answer and the newest nonce seen.
    async fn token_with_retry(&self, browser: &mut Browser, key: &BrowserKey) -> (Answer, Option<String>) {
        let endpoint = self.token_endpoint.clone();
        let first = self
            .token(browser, &[&self.proof(key, "POST", &endpoint, None, None)])
            .await;
        let nonce = first.header("dpop-nonce").map(str::to_owned);
        if first.json()["error"] != json!("use_dpop_nonce") {
            return (first, nonce);
        }
        assert!(self.nonces, "a nonce was demanded: {}", first.body);
        assert!(first.set_cookies().is_empty(), "a nonce challenge spends nothing");
        let proof = self.proof(key, "POST", &endpoint, nonce.as_deref(), None);
        let second = self.token(browser, &[&proof]).await;
        let newest = second.header("dpop-nonce").map(str::to_owned).or(nonce);
        (second, newest)
    }

    /// `GET <api>/hello` with the DPoP scheme and a proof by `key`, retried once with the API's
    /// nonce (RFC 9449 §9).
    async fn call_api(&self, browser: &mut Browser, key: &BrowserKey, token: &str) -> Answer {
        let hello = format!("{}hello", self.api_url);
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        let authorization = format!("DPoP {token}");
        let mut nonce: Option<String> = None;
        for _ in 0..2 {
            let proof = self.proof(key, "GET", &hello, nonce.as_deref(), Some(&ath));
            let headers = [("authorization", authorization.as_str()), ("dpop", proof.as_str())];
            let answer = browser.send(Method::GET, &hello, &headers, None, Site::Same).await;
            let challenge = answer
                .header("www-authenticate")
                .is_some_and(|h| h.contains("use_dpop_nonce"));
            if !challenge {
                return answer;
            }
            assert!(self.nonces, "the API demanded a nonce");
            nonce = answer.header("dpop-nonce").map(str::to_owned);
        }
        panic!("the API demanded a nonce twice");
    }

    fn proof(&self, key: &BrowserKey, htm: &str, htu: &str, nonce: Option<&str>, ath: Option<&str>) -> String {
        static JTI: AtomicU64 = AtomicU64::new(0);
        let jti = format!("jti-{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        key.proof_with(now, &jti, nonce, |_, claims| {
            claims.insert("htm".into(), json!(htm));
            claims.insert("htu".into(), json!(htu));
            if let Some(ath) = ath {
                claims.insert("ath".into(), json!(ath));
            }
        })
    }
}

/// A provider whose metadata offers no DPoP: `login` and `bff-token` answer 500, and the log
/// names the setting.
async fn provider_without_dpop() {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let provider = Provider::start_with(&origin, "", ACCESS_TOKEN_TTL, json!({"dpop": false}), json!({})).await;
    let mut settings = target::settings(&provider.issuer, &origin, "");
    settings.push(("BFF_DPOP".to_owned(), "required".to_owned()));
    let target = Target::start(Kind::InProcess, port, "", settings).await;
    let key = BrowserKey::new(23);
    let mut browser = Browser::new();
    let url = target.url(&format!("/bff/login?dpop_jkt={}", key.thumbprint()));
    let login = browser.send(Method::GET, &url, &SAME_ORIGIN, None, Site::Same).await;
    assert_eq!(login.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", login.body);
    assert_eq!(login.json()["error"], json!("server_error"));
    assert!(target.logs().contains("BFF_DPOP"), "{}", target.logs());
    target.stop().await;
    provider.stop().await;
}

/// The claims of a JWT access token (read, not verified: the provider signed it).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT access token");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
