//! The local DynamoDB stand-in (dynalite, tests/harness/dynamodb.mjs), one per test world.

use tokio::process::Child;

/// A running stand-in with the session table; killed on drop.
pub struct StandIn {
    child: Child,
    /// What a backend needs to use its table.
    pub settings: Vec<(String, String)>,
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
        StandIn { child, settings }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
