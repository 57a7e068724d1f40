//! The local DynamoDB stand-in (dynalite, tests/harness/dynamodb.mjs), one per test world.

use tokio::process::Child;

/// A running stand-in with the session table, behind a fault proxy; killed on drop.
pub struct StandIn {
    child: Child,
    /// What a backend needs to use its table.
    pub settings: Vec<(String, String)>,
    /// The fault proxy's control API.
    pub control: String,
}

impl StandIn {
    pub async fn start() -> StandIn {
        let (child, ready) = crate::spawn_ready("dynamodb.mjs", &["--port".as_ref(), "0".as_ref()]).await;
        let text = |key: &str| ready[key].as_str().unwrap_or_default().to_owned();
        let settings = vec![
            ("BFF_DYNAMODB_TABLE".to_owned(), text("table")),
            ("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), text("endpoint")),
            ("AWS_REGION".to_owned(), text("region")),
            ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ];
        StandIn {
            child,
            settings,
            control: text("control"),
        }
    }

    /// Sets the fault proxy in front of the table (`mode=hang`, `mode=dynamodb_error&type=...`;
    /// see tests/harness/README.md); returns what `GET /fault` then shows.
    pub async fn fault(&self, query: &str) -> serde_json::Value {
        self.control(reqwest::Method::POST, &format!("/fault?{query}")).await
    }

    /// `GET /fault`: the fault in effect, with `hits` (calls it acted on) and `requests`.
    pub async fn fault_state(&self) -> serde_json::Value {
        self.control(reqwest::Method::GET, "/fault").await
    }

    async fn control(&self, method: reqwest::Method, path: &str) -> serde_json::Value {
        let http = crate::http_client(reqwest::Client::builder());
        let response = http
            .request(method, format!("{}{path}", self.control))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "stand-in {path}: {}", response.status());
        response.json().await.unwrap()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
