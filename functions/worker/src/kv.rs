//! The core's [`KvStore`] over the Workers KV binding `BFF_KV`, and over one session's
//! `BFF_COORDINATOR` Durable Object when that binding exists (coordinator.rs).

use bff_core::{KvError, KvStore};
use worker::durable::ObjectNamespace;

use crate::coordinator::{Coordinator, failed};

/// Workers KV keeps a value at least this long (it refuses a shorter `expirationTtl`).
const MIN_TTL_SECS: u64 = 60;

/// The bindings of the current request's `env`. Build one per request: workerd refuses to use an
/// I/O object (a binding's pending calls included) from another request's context.
pub(crate) enum WorkerKv {
    Kv(worker::kv::KvStore, Option<ObjectNamespace>),
    Coordinator(Coordinator),
}

impl KvStore for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            Self::Kv(kv, _) => kv.get(key).bytes().await.map_err(|e| failed_kv("get", &e)),
            Self::Coordinator(c) => {
                let mut response = c.call("get", key, &[], 0).await?;
                if response.status_code() == 404 {
                    return Ok(None);
                }
                response.bytes().await.map(Some).map_err(|e| failed("get", &e))
            }
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<(), KvError> {
        match self {
            Self::Kv(kv, _) => (kv.put_bytes(key, &value).map_err(|e| failed_kv("put", &e))?)
                .expiration_ttl(ttl_secs.max(MIN_TTL_SECS))
                .execute()
                .await
                .map_err(|e| failed_kv("put", &e)),
            Self::Coordinator(c) => c.call("put", key, &value, ttl_secs).await.map(drop),
        }
    }

    /// On KV a read, then a write. Workers KV has no compare-and-swap (and is eventually
    /// consistent across locations, up to 60 s), so two callers may both see nothing and both
    /// write: the last write wins and both get `true`: callers take `true` as best effort only.
    /// In a Durable Object it is atomic.
    async fn put_if_absent(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        match self {
            Self::Kv(..) if self.get(key).await?.is_some() => Ok(false),
            Self::Kv(..) => self.put(key, value, ttl_secs).await.map(|()| true),
            Self::Coordinator(c) => written(c, "put-if-absent", key, &value, ttl_secs).await,
        }
    }

    /// On KV a read, then a write: a delete landing in between is undone. The core does not
    /// rely on this for safety: a logout's revocation entry ends a session written back this way.
    async fn put_if_present(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        match self {
            Self::Kv(..) if self.get(key).await?.is_none() => Ok(false),
            Self::Kv(..) => self.put(key, value, ttl_secs).await.map(|()| true),
            Self::Coordinator(c) => written(c, "put-if-present", key, &value, ttl_secs).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        match self {
            Self::Kv(kv, _) => kv.delete(key).await.map_err(|e| failed_kv("delete", &e)),
            Self::Coordinator(c) => c.call("delete", key, &[], 0).await.map(drop),
        }
    }

    fn coordinator(&self, name: &str) -> Option<Self> {
        match self {
            Self::Kv(_, Some(namespace)) => namespace
                .get_by_name(name)
                .ok()
                .map(|stub| Self::Coordinator(Coordinator(stub))),
            _ => None,
        }
    }
}

/// A conditional write in the Durable Object: its answer says whether it wrote.
async fn written(c: &Coordinator, operation: &str, key: &str, value: &[u8], ttl: u64) -> Result<bool, KvError> {
    let mut response = c.call(operation, key, value, ttl).await?;
    match response.text().await.map_err(|e| failed(operation, &e))?.as_str() {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(failed(operation, &"an answer that is neither 0 nor 1")),
    }
}

/// The operation and the JS error; never the key or the value.
fn failed_kv(operation: &str, error: &worker::kv::KvError) -> KvError {
    KvError(format!("Workers KV {operation}: {error}"))
}
