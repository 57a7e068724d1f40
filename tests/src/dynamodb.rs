//! The local DynamoDB stand-in (dynalite, tests/harness/dynamodb.mjs), one per test world.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::repo_root;

/// A running stand-in with the session table; killed on drop.
pub struct StandIn {
    child: Child,
    /// What a backend needs to use its table.
    pub settings: Vec<(String, String)>,
}

impl StandIn {
    pub async fn start() -> StandIn {
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/harness/dynamodb.mjs"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("BFF_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run the DynamoDB stand-in");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(json) = line.strip_prefix("READY ") {
                    return serde_json::from_str::<Value>(json).ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the DynamoDB stand-in did not print READY");
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
