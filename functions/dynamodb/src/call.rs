//! One DynamoDB call as the store sees it: which operation, and how it failed (whether it may be
//! repeated, and what the core is told).

use bff_core::{HttpError, KvError};
use serde_json::Value;

/// DynamoDB's error types that mean "slow down, nothing was done".
const THROTTLED: [&str; 3] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    GetItem,
    PutItem,
    PutItemIf,
    DeleteItem,
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::GetItem => "GetItem",
            Self::PutItem | Self::PutItemIf => "PutItem",
            Self::DeleteItem => "DeleteItem",
        }
    }

    /// Whether repeating the call after an unknown outcome is harmless. A conditional put is not:
    /// if the first attempt was applied, the repeat could report the caller's own write as a loss.
    pub(crate) fn idempotent(self) -> bool {
        self != Self::PutItemIf
    }
}

/// A call that did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// DynamoDB answered with an error: its status and short error type (`…#Type` → `Type`).
    Refused { status: u16, kind: String },
    /// No answer. `sent` is false when the connection was never made, so nothing was applied.
    Transport { sent: bool, message: String },
}

impl Failure {
    pub(crate) fn retryable(&self, idempotent: bool) -> bool {
        match self {
            Self::Refused { status, kind } => THROTTLED.contains(&kind.as_str()) || (idempotent && *status >= 500),
            Self::Transport { sent, .. } => !sent || idempotent,
        }
    }

    pub(crate) fn into_kv(self, operation: Operation) -> KvError {
        let operation = operation.name();
        KvError(match self {
            Self::Refused { status, kind } if kind.is_empty() => format!("DynamoDB {operation}: HTTP {status}"),
            Self::Refused { status, kind } => format!("DynamoDB {operation}: {kind} (HTTP {status})"),
            Self::Transport { message, .. } => format!("DynamoDB {operation}: {message}"),
        })
    }
}

/// The short error type of an error reply (`com.amazonaws.dynamodb.v20120810#Type` → `Type`).
pub(crate) fn error_kind(reply: &Value) -> Option<String> {
    let kind = reply.get("__type")?.as_str()?;
    Some(kind.rsplit('#').next().unwrap_or(kind).to_owned())
}

/// A transport failure, as the HTTP client described it (never with the URL).
pub(crate) fn transport(error: HttpError) -> Failure {
    let sent = !matches!(error, HttpError::Unsent(_));
    Failure::Transport {
        sent,
        message: error.to_string(),
    }
}
