//! One request's view of the store. Once a call has hung until the client's deadline, the rest of
//! the request skips the calls that only coordinate refreshes across instances (the shared
//! rotation records: looking one up, claiming, publishing, releasing), which are best effort by
//! design and each cost the same wait; together they put a refresh past the frontend's own
//! timeout. Every other call (session records, revocation entries, logout-token `jti`s) is always
//! tried: a rotated refresh token must be saved, a logout must reach the store. A fast failure (a
//! refusal, a throttle on one key) says nothing about the next call and does not trip it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ports::{Clock, KvError, KvStore};

/// A failed call that took at least this long (by the injected clock, in whole seconds) hung.
const HUNG_SECS: u64 = 2;

/// Whether a store call (or calls) started at `started` (Unix seconds) and failing now hung until
/// a deadline rather than failing fast.
pub(crate) fn hung_since(clock: &dyn Clock, started: u64) -> bool {
    clock.now().0.saturating_sub(started) >= HUNG_SECS
}

/// The records that only coordinate refreshes across instances (`records::shared_keys`).
const SKIPPABLE: [&str; 2] = ["rotation:", "rotating:"];

pub(crate) struct StoreBreaker<'a, K> {
    store: Store<'a, K>,
    clock: &'a dyn Clock,
    /// Shared with the session coordinators this breaker hands out: one hung call is enough.
    hung: Arc<AtomicBool>,
}

enum Store<'a, K> {
    Deployment(&'a K),
    /// A session's coordinator ([`KvStore::coordinator`]).
    Coordinator(K),
}

impl<'a, K: KvStore> StoreBreaker<'a, K> {
    pub(crate) fn new(store: &'a K, clock: &'a dyn Clock) -> Self {
        Self {
            store: Store::Deployment(store),
            clock,
            hung: Arc::new(AtomicBool::new(false)),
        }
    }

    fn store(&self) -> &K {
        match &self.store {
            Store::Deployment(store) => store,
            Store::Coordinator(store) => store,
        }
    }

    async fn call<T>(
        &self,
        operation: &str,
        key: &str,
        call: impl Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        if self.hung.load(Ordering::Relaxed) && SKIPPABLE.iter().any(|prefix| key.starts_with(prefix)) {
            return Err(KvError(format!(
                "{operation} not tried: the store hung earlier in this request"
            )));
        }
        let started = self.clock.now().0;
        let outcome = call.await;
        if outcome.is_err() && hung_since(self.clock, started) {
            self.hung.store(true, Ordering::Relaxed);
        }
        outcome
    }
}

impl<K: KvStore> KvStore for StoreBreaker<'_, K> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.call("get", key, self.store().get(key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<(), KvError> {
        self.call("put", key, self.store().put(key, value, ttl_secs)).await
    }

    async fn put_if_absent(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.call("put_if_absent", key, self.store().put_if_absent(key, value, ttl_secs))
            .await
    }

    async fn put_if_present(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.call("put_if_present", key, self.store().put_if_present(key, value, ttl_secs))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.call("delete", key, self.store().delete(key)).await
    }

    fn coordinator(&self, name: &str) -> Option<Self> {
        Some(Self {
            store: Store::Coordinator(self.store().coordinator(name)?),
            clock: self.clock,
            hung: Arc::clone(&self.hung),
        })
    }
}
