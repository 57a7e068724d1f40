//! A DynamoDB table as the core's [`KvStore`]: the Lambda deployment's session store and
//! back-channel logout memory (http-api.md: backchannel-logout, Configuration).
//!
//! Four calls of DynamoDB's JSON API (`GetItem` with strongly consistent reads, `PutItem`,
//! `PutItem` with a condition, `DeleteItem`), signed with AWS Signature Version 4 ([`sigv4`]) and
//! sent through the core's [`HttpClient`] port (the Lambda's reqwest client: rustls with ring, no
//! redirects, a deadline per call). No AWS SDK. The clock, which dates signatures and decides
//! expiry, is injected too.
//!
//! Table: partition key `pk` (string), value `v` (binary), `ttl` (number, Unix seconds), the
//! table's time-to-live attribute. DynamoDB deletes expired items only eventually (typically
//! within days), so every read ignores items whose `ttl` has passed and a conditional write
//! treats them as absent.

mod call;
mod sigv4;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bff_core::{Clock, HttpClient, KvError, KvStore, UnixTime};

use crate::call::{Failure, Operation, error_kind, transport};
use serde_json::{Value, json};

/// The environment variable naming the table; unset or empty means no DynamoDB store.
pub const TABLE_VAR: &str = "BFF_DYNAMODB_TABLE";

/// Deadline for one call, connect to last byte (DynamoDB answers in milliseconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause before the one retry of a call that failed in a retryable way.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// AWS credentials: an access key pair and, for temporary credentials (Lambda's execution role),
/// a session token. `Debug` shows only the access key id.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: session_token.filter(|token| !token.is_empty()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A DynamoDB table used as a [`KvStore`], over the HTTP client `H`. Build one per container (its
/// client holds the connection pool) and lend it to every request.
pub struct DynamoDb<H> {
    http: H,
    endpoint: url::Url,
    /// `Host` as sent and signed: the endpoint's host, with its port when not the default.
    host: String,
    region: String,
    table: String,
    credentials: Credentials,
    clock: Box<dyn Clock>,
}

/// Where and as whom a store calls DynamoDB.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    /// e.g. `https://dynamodb.eu-west-1.amazonaws.com`, or a local stand-in such as
    /// `http://127.0.0.1:8000`.
    pub endpoint: &'a str,
    /// The region signatures are for.
    pub region: &'a str,
    /// The table.
    pub table: &'a str,
    /// Who signs.
    pub credentials: Credentials,
}

impl<H: HttpClient> DynamoDb<H> {
    /// A store for `target`, calling through `http`, dating signatures with `clock`.
    ///
    /// # Errors
    /// [`SetupError::Endpoint`] when the endpoint is not an `https://` URL with a host and no path
    /// (`http://` only for a loopback host).
    pub fn new(target: Target<'_>, http: H, clock: impl Clock + 'static) -> Result<Self, SetupError> {
        let Target {
            endpoint,
            region,
            table,
            credentials,
        } = target;
        let endpoint = parse_endpoint(endpoint).ok_or(SetupError::Endpoint)?;
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(SetupError::Endpoint),
        };
        Ok(Self {
            http,
            endpoint,
            host,
            region: region.to_owned(),
            table: table.to_owned(),
            credentials,
            clock: Box::new(clock),
        })
    }

    /// The store the environment (read through `lookup`) describes, as a Lambda container sees
    /// it: `None` when `BFF_DYNAMODB_TABLE` is unset or empty. Credentials from
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; region from
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`); endpoint from `AWS_ENDPOINT_URL_DYNAMODB`, else
    /// `AWS_ENDPOINT_URL`, else `https://dynamodb.<region>.amazonaws.com`.
    ///
    /// # Errors
    /// [`SetupError`] naming the missing or malformed variable (never its value).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        http: H,
        clock: impl Clock + 'static,
    ) -> Result<Option<Self>, SetupError> {
        let setting = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let Some(table) = setting(TABLE_VAR) else {
            return Ok(None);
        };
        let required = |name: &'static str| setting(name).ok_or(SetupError::Missing(name));
        let region = setting("AWS_REGION")
            .or_else(|| setting("AWS_DEFAULT_REGION"))
            .ok_or(SetupError::Missing("AWS_REGION"))?;
        let credentials = Credentials::new(
            required("AWS_ACCESS_KEY_ID")?,
            required("AWS_SECRET_ACCESS_KEY")?,
            setting("AWS_SESSION_TOKEN"),
        );
        let endpoint = (setting("AWS_ENDPOINT_URL_DYNAMODB"))
            .or_else(|| setting("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
        let target = Target {
            endpoint: &endpoint,
            region: &region,
            table: &table,
            credentials,
        };
        Self::new(target, http, clock).map(Some)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn now(&self) -> UnixTime {
        self.clock.now()
    }

    fn key(&self, key: &str) -> Value {
        json!({ "pk": { "S": key } })
    }

    fn item(&self, key: &str, value: &[u8], ttl_secs: u64) -> Value {
        json!({
            "pk": { "S": key },
            "v": { "B": BASE64.encode(value) },
            "ttl": { "N": self.now().plus(ttl_secs).0.to_string() },
        })
    }

    /// A `PutItem` under `condition` (over `pk` and `#ttl` against `:now`); `false` when the
    /// condition did not hold.
    async fn put_when(&self, key: &str, value: &[u8], ttl_secs: u64, condition: &str) -> Result<bool, KvError> {
        let operation = Operation::PutItemIf;
        let body = json!({
            "TableName": self.table,
            "Item": self.item(key, value, ttl_secs),
            // `ttl` is a reserved word in DynamoDB expressions, hence the placeholder.
            "ConditionExpression": condition,
            "ExpressionAttributeNames": { "#ttl": "ttl" },
            "ExpressionAttributeValues": { ":now": { "N": self.now().0.to_string() } },
        });
        match self.call(operation, &body).await {
            Ok(_) => Ok(true),
            Err(Failure::Refused { kind, .. }) if kind == "ConditionalCheckFailedException" => Ok(false),
            Err(failure) => Err(failure.into_kv(operation)),
        }
    }

    /// One call, retried once after a short pause when it failed in a way that allows it.
    async fn call(&self, operation: Operation, body: &Value) -> Result<Value, Failure> {
        let payload = body.to_string().into_bytes();
        match self.call_once(operation, &payload).await {
            Err(failure) if failure.retryable(operation.idempotent()) => {
                self.http.pause(RETRY_PAUSE).await;
                self.call_once(operation, &payload).await
            }
            outcome => outcome,
        }
    }

    async fn call_once(&self, operation: Operation, payload: &[u8]) -> Result<Value, Failure> {
        let mut request = http::Request::post(self.endpoint.as_str());
        for (name, value) in self.signed_headers(operation, payload) {
            request = request.header(name, value);
        }
        let request = request.body(payload.to_vec()).map_err(|e| Failure::Transport {
            sent: false,
            message: e.to_string(),
        })?;
        let response = self.http.send(request, CALL_TIMEOUT).await.map_err(transport)?;
        let status = response.status().as_u16();
        let parsed = serde_json::from_slice::<Value>(response.body()).ok();
        match parsed {
            Some(reply) if (200..300).contains(&status) => Ok(reply),
            _ => Err(Failure::Refused {
                status,
                kind: parsed.as_ref().and_then(error_kind).unwrap_or_default(),
            }),
        }
    }

    /// Every header of one call, signed now, `Host` included so that what is sent is what was
    /// signed, `Authorization` last.
    fn signed_headers(&self, operation: Operation, payload: &[u8]) -> Vec<(&'static str, String)> {
        let amz_date = sigv4::amz_date(self.now().0);
        let mut headers = vec![
            ("content-type", CONTENT_TYPE.to_owned()),
            ("host", self.host.clone()),
            ("x-amz-date", amz_date.clone()),
            ("x-amz-target", format!("DynamoDB_20120810.{}", operation.name())),
        ];
        if let Some(token) = &self.credentials.session_token {
            headers.push(("x-amz-security-token", token.clone()));
        }
        let signer = sigv4::Signer {
            access_key_id: &self.credentials.access_key_id,
            secret_access_key: &self.credentials.secret_access_key,
            region: &self.region,
            service: "dynamodb",
            amz_date: &amz_date,
        };
        let signed: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let authorization = signer.authorization(&sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &signed,
            payload,
        });
        headers.push(("authorization", authorization));
        headers
    }
}

impl<H> fmt::Debug for DynamoDb<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDb")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("table", &self.table)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> KvStore for DynamoDb<H> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let operation = Operation::GetItem;
        let body = json!({ "TableName": self.table, "Key": self.key(key), "ConsistentRead": true });
        let reply = self.call(operation, &body).await.map_err(|f| f.into_kv(operation))?;
        let Some(item) = reply.get("Item") else {
            return Ok(None);
        };
        let malformed = || KvError(format!("DynamoDB {}: malformed item", operation.name()));
        let expiry = item.pointer("/ttl/N").and_then(Value::as_str).map(str::parse::<u64>);
        match expiry {
            Some(Ok(expiry)) if expiry <= self.now().0 => return Ok(None),
            Some(Err(_)) => return Err(malformed()),
            _ => {}
        }
        let value = item.pointer("/v/B").and_then(Value::as_str).ok_or_else(malformed)?;
        BASE64.decode(value).map(Some).map_err(|_| malformed())
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<(), KvError> {
        let operation = Operation::PutItem;
        let body = json!({ "TableName": self.table, "Item": self.item(key, &value, ttl_secs) });
        self.call(operation, &body).await.map_err(|f| f.into_kv(operation))?;
        Ok(())
    }

    /// A conditional `PutItem`: DynamoDB applies the condition and the write atomically, so of
    /// several concurrent callers exactly one wins. An item whose `ttl` has passed (expired, not
    /// yet deleted by DynamoDB) counts as absent.
    async fn put_if_absent(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.put_when(key, &value, ttl_secs, "attribute_not_exists(pk) OR #ttl <= :now")
            .await
    }

    /// A conditional `PutItem` that only replaces a live item: a session record deleted by a
    /// logout stays deleted, whatever a racing refresh writes.
    async fn put_if_present(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.put_when(key, &value, ttl_secs, "attribute_exists(pk) AND #ttl > :now")
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let operation = Operation::DeleteItem;
        let body = json!({ "TableName": self.table, "Key": self.key(key) });
        self.call(operation, &body).await.map_err(|f| f.into_kv(operation))?;
        Ok(())
    }
}

/// Why a store could not be built; names a setting, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// A required environment variable is unset or empty.
    Missing(&'static str),
    /// The endpoint is not an `https://` URL with a host and no path (`http://` for loopback only).
    Endpoint,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(name) => write!(f, "{TABLE_VAR} is set but {name} is missing"),
            Self::Endpoint => f.write_str(
                "AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL is not an https:// URL without a path \
                 (http:// only for a loopback host)",
            ),
        }
    }
}

impl std::error::Error for SetupError {}

/// An `https://` URL with a host and no path, query or credentials; `http://` only for a
/// loopback host (a local stand-in).
fn parse_endpoint(text: &str) -> Option<url::Url> {
    let url = bff_core::parse_url(text.trim())?;
    let scheme_ok = bff_core::is_https_or_loopback(&url);
    let bare = url.path() == "/" && url.query().is_none() && url.username().is_empty() && url.password().is_none();
    (scheme_ok && bare).then_some(url)
}
