//! The core's [`KvStore`] over the Workers KV binding `BFF_KV`.

use bff_core::{KvError, KvStore};

/// Workers KV keeps a value at least this long (it refuses a shorter `expirationTtl`).
const MIN_TTL_SECS: u64 = 60;

/// The `BFF_KV` namespace of the current request's `env`. Build one per request: workerd refuses
/// to use an I/O object (a binding's pending calls included) from another request's context.
pub(crate) struct WorkerKv(pub(crate) worker::kv::KvStore);

impl KvStore for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(key).bytes().await.map_err(|e| failed("get", &e))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<(), KvError> {
        (self.0.put_bytes(key, &value).map_err(|e| failed("put", &e))?)
            .expiration_ttl(ttl_secs.max(MIN_TTL_SECS))
            .execute()
            .await
            .map_err(|e| failed("put", &e))
    }

    /// A read, then a write. Workers KV has no compare-and-swap (and is eventually consistent
    /// across locations, up to 60 s), so two callers may both see nothing and both write: the
    /// last write wins and both get `true`: callers take `true` as best effort only.
    async fn put_if_absent(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        if self.get(key).await?.is_some() {
            return Ok(false);
        }
        self.put(key, value, ttl_secs).await.map(|()| true)
    }

    /// A read, then a write: a delete landing in between is undone. The core does not rely on
    /// this for safety: a logout's revocation entry ends a session written back this way.
    async fn put_if_present(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        if self.get(key).await?.is_none() {
            return Ok(false);
        }
        self.put(key, value, ttl_secs).await.map(|()| true)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.0.delete(key).await.map_err(|e| failed("delete", &e))
    }
}

/// The operation and the JS error; never the key or the value.
fn failed(operation: &str, error: &worker::kv::KvError) -> KvError {
    KvError(format!("Workers KV {operation}: {error}"))
}
