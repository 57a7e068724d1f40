//! The real OpenID provider (`oidc-provider`, tests/harness) behind its fault proxy.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Child;
use url::Url;

use crate::free_port;

pub const CLIENT_ID: &str = "bff";
pub const CLIENT_SECRET: &str = "bff-secret";

/// A running provider; killed on drop.
pub struct Provider {
    pub issuer: String,
    pub control: String,
    child: Child,
    http: reqwest::Client,
}

impl Provider {
    /// Starts a provider whose client `bff` may redirect to `origin` + `base` + `/bff/callback`.
    pub async fn start(origin: &str, base: &str, access_token_ttl: u64) -> Provider {
        Self::start_with(origin, base, access_token_ttl, json!({}), json!({})).await
    }

    /// Like [`Provider::start`], with extra provider configuration (`resources`, ...) and extra
    /// client metadata (`token_endpoint_auth_method`, `jwks`, ...) merged in.
    pub async fn start_with(origin: &str, base: &str, access_token_ttl: u64, extra: Value, client: Value) -> Provider {
        let dir = std::env::temp_dir().join(format!("bff-idp-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("idp.json");
        let port = free_port();
        let body = json!({
            "port": port,
            "provider_port": free_port(),
            "control_port": free_port(),
            "access_token_ttl": access_token_ttl,
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "token_endpoint_auth_method": "client_secret_basic",
                "redirect_uris": [format!("{origin}{base}/bff/callback")],
                "post_logout_redirect_uris": [format!("{origin}{base}/")],
            }],
        });
        let mut body = body;
        for (key, value) in extra.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        for (key, value) in client.as_object().into_iter().flatten() {
            body["clients"][0][key] = value.clone();
        }
        std::fs::write(&config, body.to_string()).unwrap();
        let (child, ready) = crate::spawn_ready("idp.mjs", &["--config".as_ref(), config.as_os_str()]).await;
        Provider {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            control: ready["control"].as_str().unwrap().to_owned(),
            child,
            http: crate::http_client(reqwest::Client::builder()),
        }
    }

    /// `{"authorization_code": n, "refresh_token": n, "grant_error": n, "revocation": n, ...}`.
    pub async fn counts(&self) -> Value {
        self.control(reqwest::Method::GET, "/counts", None).await
    }

    /// A call to the harness's control API; its JSON answer.
    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.control));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "control {path}: {}", response.status());
        response.json().await.unwrap()
    }

    pub async fn count(&self, name: &str) -> u64 {
        self.counts().await[name].as_u64().unwrap_or(0)
    }

    /// The count once it reaches `expected` or two seconds pass: the provider counts from its
    /// events, which may trail the response a client has already read.
    pub async fn count_settled(&self, name: &str, expected: u64) -> u64 {
        for _ in 0..20 {
            let count = self.count(name).await;
            if count >= expected {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.count(name).await
    }

    /// `pass`, `refuse`, `500` or `hang`.
    pub async fn fault(&self, mode: &str) {
        self.control(reqwest::Method::POST, &format!("/fault?mode={mode}"), None)
            .await;
    }

    /// A fault with its scope and shape as query parameters (`mode=500&path=/jwks`, ...; see
    /// tests/harness/README.md); returns what `GET /fault` then shows.
    pub async fn fault_where(&self, query: &str) -> Value {
        self.control(reqwest::Method::POST, &format!("/fault?{query}"), None)
            .await
    }

    /// `GET /fault`: the fault in effect, with `hits` (requests it acted on) and `requests`.
    pub async fn fault_state(&self) -> Value {
        self.control(reqwest::Method::GET, "/fault", None).await
    }

    /// `POST /clients`: adds or replaces a client at runtime.
    pub async fn set_client(&self, metadata: &Value) -> Value {
        self.control(reqwest::Method::POST, "/clients", Some(metadata.clone()))
            .await
    }

    /// `GET /clients`.
    pub async fn clients(&self) -> Value {
        self.control(reqwest::Method::GET, "/clients", None).await
    }

    /// `GET /refresh-tokens`: every refresh token the provider stored, in issue order, each
    /// `{"value", "consumed", "revoked", "expired", "account_id", "grant_id", ...}`.
    pub async fn refresh_tokens(&self) -> Vec<Value> {
        let list = self.control(reqwest::Method::GET, "/refresh-tokens", None).await;
        list.as_array().cloned().unwrap_or_default()
    }

    /// `GET /pushed-requests`: every pushed authorization request (RFC 9126) the provider took,
    /// in order, each `{"request_uri", "params"}`.
    pub async fn pushed_requests(&self) -> Vec<Value> {
        let list = self.control(reqwest::Method::GET, "/pushed-requests", None).await;
        list.as_array().cloned().unwrap_or_default()
    }

    /// The authorization request a backend's redirect to `authorize` stands for: the URL's own
    /// query, or for a pushed request (RFC 9126 §4: `client_id` and `request_uri` only) the
    /// parameters pushed under that `request_uri`, a repeated one once per value.
    pub async fn authorization_params(&self, authorize: &Url) -> Vec<(String, String)> {
        let query: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
        let Some((_, request_uri)) = query.iter().find(|(name, _)| name == "request_uri") else {
            return query;
        };
        let pushed = self.pushed_requests().await;
        let entry = pushed
            .iter()
            .find(|entry| entry["request_uri"] == request_uri.as_str())
            .unwrap_or_else(|| panic!("no pushed request {request_uri}"));
        let mut params = Vec::new();
        for (name, value) in entry["params"].as_object().into_iter().flatten() {
            let values = value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
            for value in values {
                let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                params.push((name.clone(), text));
            }
        }
        params
    }

    /// The newest refresh token the provider issued.
    pub async fn newest_refresh_token(&self) -> String {
        let list = self.control(reqwest::Method::GET, "/refresh-tokens", None).await;
        list.as_array()
            .and_then(|a| a.last())
            .and_then(|t| t["value"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// RFC 7662 introspection at the provider itself: is this token active?
    pub async fn is_active(&self, token: &str) -> bool {
        let response: Value = self
            .http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["active"].as_bool().unwrap_or(false)
    }

    /// Test-only `POST /sign`: `claims` signed with the provider's current key, for logout
    /// tokens a real provider would never send.
    pub async fn sign(&self, claims: &Value) -> String {
        let answer = self
            .control(reqwest::Method::POST, "/sign", Some(json!({ "claims": claims })))
            .await;
        answer["jwt"].as_str().unwrap().to_owned()
    }

    /// `POST /rotate-keys`: a new signing key first in the JWKS.
    pub async fn rotate_keys(&self) -> Value {
        self.control(reqwest::Method::POST, "/rotate-keys", None).await
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
