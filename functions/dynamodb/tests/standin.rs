//! The DynamoDB store against the local stand-in (`tests/harness/dynamodb.mjs`: dynalite on
//! loopback, from the root `node_modules`; run `npm ci` first). Each test starts its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step is a failed test

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bff_core::{Clock, KvStore, UnixTime};
use bff_dynamodb::{Credentials, DynamoDb, Target};
use bff_lambda::ReqwestHttp;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running stand-in; killed when dropped.
struct StandIn {
    _child: Child,
    endpoint: String,
    table: String,
}

impl StandIn {
    async fn start() -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut child = Command::new("node")
            .args(["tests/harness/dynamodb.mjs", "--port", "0"])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/harness/dynamodb.mjs");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("the stand-in prints READY within 20 s")
            .expect("the stand-in's stdout is readable");
        let ready = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("no READY line: {line:?}"));
        let ready: serde_json::Value = serde_json::from_str(ready).expect("READY carries JSON");
        Self {
            _child: child,
            endpoint: ready["endpoint"].as_str().expect("endpoint").to_owned(),
            table: ready["table"].as_str().expect("table").to_owned(),
        }
    }

    /// A store as a Lambda container would build it (dummy credentials: the stand-in checks none).
    fn store(&self, clock: &TestClock) -> DynamoDb<ReqwestHttp> {
        self.store_for(&self.table, clock)
    }

    fn store_for(&self, table: &str, clock: &TestClock) -> DynamoDb<ReqwestHttp> {
        let target = Target {
            endpoint: &self.endpoint,
            region: "us-east-1",
            table,
            credentials: Credentials::new("test", "test", Some("token".into())),
        };
        let http = ReqwestHttp::new().expect("reqwest client");
        DynamoDb::new(target, http, clock.clone()).expect("store")
    }
}

/// A clock the test moves; starts at the real time.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        Self(Arc::new(AtomicU64::new(now)))
    }

    fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn put_get_overwrite_delete() {
    let stand_in = StandIn::start().await;
    let store = stand_in.store(&TestClock::new());
    let every_byte: Vec<u8> = (0..=255).collect();

    assert_eq!(store.get("session:a").await.unwrap(), None);
    store.put("session:a", every_byte.clone(), 3600).await.unwrap();
    assert_eq!(store.get("session:a").await.unwrap(), Some(every_byte));
    store.put("session:a", b"second".to_vec(), 3600).await.unwrap();
    assert_eq!(store.get("session:a").await.unwrap(), Some(b"second".to_vec()));
    store
        .put("session:empty", Vec::new(), 3600)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.get("session:empty").await.unwrap(), Some(Vec::new()));

    store.delete("session:a").await.unwrap();
    assert_eq!(store.get("session:a").await.unwrap(), None);
    store.delete("session:a").await.expect("deleting an absent key is fine");
}

#[tokio::test]
async fn put_if_absent_wins_once() {
    let stand_in = StandIn::start().await;
    let store = stand_in.store(&TestClock::new());

    assert!(store.put_if_absent("jti:1", b"first".to_vec(), 600).await.unwrap());
    assert!(!store.put_if_absent("jti:1", b"second".to_vec(), 600).await.unwrap());
    assert_eq!(store.get("jti:1").await.unwrap(), Some(b"first".to_vec()));
    store.delete("jti:1").await.unwrap();
    assert!(store.put_if_absent("jti:1", b"third".to_vec(), 600).await.unwrap());
}

/// A session record is replaced only while it exists: a refresh cannot write back a record a
/// logout deleted, nor one that has expired.
#[tokio::test]
async fn put_if_present_never_resurrects() {
    let stand_in = StandIn::start().await;
    let clock = TestClock::new();
    let store = stand_in.store(&clock);

    assert!(!store.put_if_present("session:a", b"ghost".to_vec(), 600).await.unwrap());
    assert_eq!(store.get("session:a").await.unwrap(), None);
    store.put("session:a", b"v1".to_vec(), 600).await.unwrap();
    assert!(store.put_if_present("session:a", b"v2".to_vec(), 600).await.unwrap());
    assert_eq!(store.get("session:a").await.unwrap(), Some(b"v2".to_vec()));
    store.delete("session:a").await.unwrap();
    assert!(!store.put_if_present("session:a", b"v3".to_vec(), 600).await.unwrap());
    assert_eq!(store.get("session:a").await.unwrap(), None);

    store.put("session:b", b"v1".to_vec(), 10).await.unwrap();
    clock.advance(10);
    assert!(!store.put_if_present("session:b", b"late".to_vec(), 600).await.unwrap());
}

/// Ten containers (each its own client and connection pool) race for one key: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_if_absent_has_one_winner_among_concurrent_callers() {
    let stand_in = StandIn::start().await;
    let clock = TestClock::new();
    for round in 0..3 {
        let key = format!("rotation:{round}");
        let racers: Vec<_> = (0..10u8)
            .map(|caller| {
                let store = stand_in.store(&clock);
                let key = key.clone();
                tokio::spawn(async move { (caller, store.put_if_absent(&key, vec![caller], 60).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            let (caller, outcome) = racer.await.expect("task");
            if outcome.unwrap_or_else(|e| panic!("caller {caller}: {e}")) {
                winners.push(caller);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = stand_in.store(&clock).get(&key).await.unwrap();
        assert_eq!(stored, Some(winners));
    }
}

/// DynamoDB deletes expired items late; until then they must read as absent and must not block a
/// conditional write. (The stand-in never deletes them, which shows exactly that case.)
#[tokio::test]
async fn expired_items_are_ignored() {
    let stand_in = StandIn::start().await;
    let clock = TestClock::new();
    let store = stand_in.store(&clock);

    store.put("session:old", b"v".to_vec(), 10).await.unwrap();
    assert!(store.put_if_absent("logout:sid", b"v".to_vec(), 10).await.unwrap());
    clock.advance(9);
    assert_eq!(store.get("session:old").await.unwrap(), Some(b"v".to_vec()));
    assert!(!store.put_if_absent("logout:sid", b"again".to_vec(), 10).await.unwrap());

    clock.advance(1);
    assert_eq!(store.get("session:old").await.unwrap(), None);
    assert!(store.put_if_absent("logout:sid", b"new".to_vec(), 10).await.unwrap());
    assert_eq!(store.get("logout:sid").await.unwrap(), Some(b"new".to_vec()));
}

#[tokio::test]
async fn failures_name_the_operation_not_the_key() {
    let stand_in = StandIn::start().await;
    let clock = TestClock::new();

    let missing = stand_in.store_for("no-such-table", &clock);
    let error = missing.get("secret-session-id").await.unwrap_err();
    assert!(
        error.0.contains("GetItem") && error.0.contains("ResourceNotFoundException"),
        "{error}"
    );
    assert!(!error.to_string().contains("secret-session-id"));
    let error = missing
        .put_if_absent("secret-session-id", vec![1], 60)
        .await
        .unwrap_err();
    assert!(error.0.contains("PutItem"), "{error}");

    // Nothing listens on the stand-in's port once it is gone: a connection error, quickly.
    let endpoint = stand_in.endpoint.clone();
    drop(stand_in);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let target = Target {
        endpoint: &endpoint,
        region: "us-east-1",
        table: "t",
        credentials: Credentials::new("test", "test", None),
    };
    let gone = DynamoDb::new(target, ReqwestHttp::new().unwrap(), clock.clone()).unwrap();
    let error = gone.delete("secret-session-id").await.unwrap_err();
    assert!(error.0.starts_with("DynamoDB DeleteItem: "), "{error}");
    assert!(!error.to_string().contains("secret-session-id"));
}
