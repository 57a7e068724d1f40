//! Unit tests of the store's setup, signing of a call, and failure handling.

use super::*;
use bff_core::HttpError;

/// These tests build stores and sign calls; none is sent.
struct NothingSent;

impl HttpClient for NothingSent {
    async fn send(&self, _: http::Request<Vec<u8>>, _: Duration) -> Result<http::Response<Vec<u8>>, HttpError> {
        Err(HttpError::Unsent("these tests send nothing".into()))
    }

    async fn pause(&self, _: Duration) {}
}

struct Fixed;

impl Clock for Fixed {
    fn now(&self) -> UnixTime {
        UnixTime(1_767_605_412)
    }
}

fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<DynamoDb<NothingSent>>, SetupError> {
    DynamoDb::from_lookup(lookup, NothingSent, Fixed)
}

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
}

const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "secret"),
    ("AWS_REGION", "eu-west-1"),
];

#[test]
fn no_table_no_store() {
    assert!(from_lookup(env(&CREDENTIALS)).unwrap().is_none());
    assert!(from_lookup(env(&[(TABLE_VAR, " ")])).unwrap().is_none());
}

#[test]
fn endpoint_from_region_or_overrides() {
    static DEFAULT: [(&str, &str); 4] = [(TABLE_VAR, "t"), CREDENTIALS[0], CREDENTIALS[1], CREDENTIALS[2]];
    let store = from_lookup(env(&DEFAULT)).unwrap().unwrap();
    assert_eq!(store.endpoint.as_str(), "https://dynamodb.eu-west-1.amazonaws.com/");
    assert_eq!(
        (store.host.as_str(), store.table()),
        ("dynamodb.eu-west-1.amazonaws.com", "t")
    );

    static GENERAL: [(&str, &str); 5] = [
        (TABLE_VAR, "t"),
        CREDENTIALS[0],
        CREDENTIALS[1],
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", "http://localhost:4566"),
    ];
    let store = from_lookup(env(&GENERAL)).unwrap().unwrap();
    assert_eq!(
        (store.host.as_str(), store.region.as_str()),
        ("localhost:4566", "us-east-1")
    );

    static SPECIFIC: [(&str, &str); 6] = [
        (TABLE_VAR, "t"),
        CREDENTIALS[0],
        CREDENTIALS[1],
        CREDENTIALS[2],
        ("AWS_ENDPOINT_URL", "http://localhost:4566"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000/"),
    ];
    let store = from_lookup(env(&SPECIFIC)).unwrap().unwrap();
    assert_eq!(store.host, "127.0.0.1:8000");
}

#[test]
fn missing_settings_are_named() {
    let error = from_lookup(env(&[(TABLE_VAR, "t"), CREDENTIALS[0], CREDENTIALS[2]])).unwrap_err();
    assert_eq!(error, SetupError::Missing("AWS_SECRET_ACCESS_KEY"));
    assert_eq!(
        error.to_string(),
        "BFF_DYNAMODB_TABLE is set but AWS_SECRET_ACCESS_KEY is missing"
    );
    let error = from_lookup(env(&[(TABLE_VAR, "t"), CREDENTIALS[0], CREDENTIALS[1]])).unwrap_err();
    assert_eq!(error, SetupError::Missing("AWS_REGION"));
}

#[test]
fn endpoints_must_be_https_or_loopback() {
    for good in [
        "https://dynamodb.eu-west-1.amazonaws.com",
        "http://127.0.0.1:8000",
        "http://[::1]:1/",
    ] {
        assert!(parse_endpoint(good).is_some(), "{good}");
    }
    for bad in [
        "http://dynamodb.local:8000",
        "https://h/path",
        "https://h/?q",
        "https://u:p@h",
        "h:1",
        "",
    ] {
        assert!(parse_endpoint(bad).is_none(), "{bad}");
    }
}

#[test]
fn debug_redacts_secrets() {
    let credentials = Credentials::new("AKID", "secret-key", Some("token-value".into()));
    let shown = format!("{credentials:?}");
    assert!(shown.contains("AKID") && !shown.contains("secret-key") && !shown.contains("token-value"));
}

/// The same request signed by botocore 1.43 (`SigV4Auth(..., "dynamodb", "eu-west-1")` with
/// its clock fixed at 2026-01-05T09:30:12Z): temporary credentials, a host with a port.
#[test]
fn signs_a_call_as_botocore_does() {
    let credentials = Credentials::new(
        "ASIAEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token-example".into()),
    );
    let target = Target {
        endpoint: "http://127.0.0.1:8000",
        region: "eu-west-1",
        table: "bff-sessions",
        credentials,
    };
    let store = DynamoDb::new(target, NothingSent, Fixed).unwrap();
    let payload = br#"{"TableName":"bff-sessions","Key":{"pk":{"S":"k1"}},"ConsistentRead":true}"#;
    let headers = store.signed_headers(Operation::GetItem, payload);
    let header = |name| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("host"), Some("127.0.0.1:8000"));
    assert_eq!(header("x-amz-date"), Some("20260105T093012Z"));
    assert_eq!(header("x-amz-security-token"), Some("session-token-example"));
    assert_eq!(header("x-amz-target"), Some("DynamoDB_20120810.GetItem"));
    assert_eq!(
        header("authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20260105/eu-west-1/dynamodb/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, \
             Signature=85ee48752481641c98ca8062c89aed0e60ff058ba01c8d8854368c822739e01c"
        )
    );
}

#[test]
fn retry_rules() {
    let refused = |status, kind: &str| Failure::Refused {
        status,
        kind: kind.into(),
    };
    assert!(refused(400, "ThrottlingException").retryable(false));
    assert!(refused(500, "InternalServerError").retryable(true));
    assert!(!refused(500, "InternalServerError").retryable(false));
    assert!(!refused(400, "ValidationException").retryable(true));
    let lost = |sent| Failure::Transport {
        sent,
        message: String::new(),
    };
    assert!(lost(false).retryable(false) && lost(true).retryable(true) && !lost(true).retryable(false));
    assert_eq!(
        error_kind(&json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"})),
        Some("ConditionalCheckFailedException".into())
    );
}
