//! One request's view of the store. Once a call has hung until the client's deadline, the rest of
//! the request does not ask the store again: each call would cost the same wait, and together
//! they put the answer past the frontend's own timeout (a refresh in KV mode makes four writes).
//! Every caller already copes with a failed call, so failing the later ones at once changes only
//! how long the answer takes. A fast failure (a refusal, a throttle on one key) says nothing
//! about the next call and does not trip it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::ports::{Clock, KvError, KvStore};

/// A failed call that took at least this long (by the injected clock, in whole seconds) hung.
const HUNG_SECS: u64 = 2;

pub(crate) struct StoreBreaker<'a, K> {
    store: &'a K,
    clock: &'a dyn Clock,
    hung: AtomicBool,
}

impl<'a, K: KvStore> StoreBreaker<'a, K> {
    pub(crate) fn new(store: &'a K, clock: &'a dyn Clock) -> Self {
        Self {
            store,
            clock,
            hung: AtomicBool::new(false),
        }
    }

    async fn call<T>(&self, operation: &str, call: impl Future<Output = Result<T, KvError>>) -> Result<T, KvError> {
        if self.hung.load(Ordering::Relaxed) {
            return Err(KvError(format!(
                "{operation} not tried: the store hung earlier in this request"
            )));
        }
        let started = self.clock.now().0;
        let outcome = call.await;
        if outcome.is_err() && self.clock.now().0.saturating_sub(started) >= HUNG_SECS {
            self.hung.store(true, Ordering::Relaxed);
        }
        outcome
    }
}

impl<K: KvStore> KvStore for StoreBreaker<'_, K> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.call("get", self.store.get(key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<(), KvError> {
        self.call("put", self.store.put(key, value, ttl_secs)).await
    }

    async fn put_if_absent(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.call("put_if_absent", self.store.put_if_absent(key, value, ttl_secs))
            .await
    }

    async fn put_if_present(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.call("put_if_present", self.store.put_if_present(key, value, ttl_secs))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.call("delete", self.store.delete(key)).await
    }
}
