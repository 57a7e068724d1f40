//! `MemoryStore`: the [`KvStore`] port in memory, either like DynamoDB (conditional writes are
//! atomic, reads are consistent) or like Workers KV (no conditional write, and a delete is not
//! seen by reads until [`MemoryStore::settle`]), optionally with per-session coordinators like
//! Durable Objects (consistent, atomic, one per name).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::FixedClock;
use super::provider::YieldOnce;
use crate::ports::{Clock, KvError, KvStore};

/// See the module documentation.
pub struct MemoryStore {
    clock: Arc<FixedClock>,
    /// Shared with the coordinators handed out, whose keys carry their name.
    items: Arc<Mutex<Items>>,
    eventually_consistent: bool,
    /// Whether [`KvStore::coordinator`] hands out coordinators.
    coordinated: bool,
    /// A coordinator's name and `|`; empty for the deployment's store.
    scope: String,
    /// Operations on keys starting with this fail. The faults and the count are shared with the
    /// coordinators handed out: a store's faults are its coordinators' too.
    failing: Arc<Mutex<Option<String>>>,
    /// Writes to keys starting with this fail (reads work).
    failing_writes: Arc<Mutex<Option<String>>>,
    /// Every call made, failed ones included.
    operations: Arc<std::sync::atomic::AtomicUsize>,
    /// How long a failing call takes, in clock seconds: a store that hangs until its deadline.
    failure_secs: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct Items {
    live: HashMap<String, (Vec<u8>, u64)>,
    /// Deleted, but still seen by reads (eventual consistency).
    ghosts: HashMap<String, (Vec<u8>, u64)>,
}

impl MemoryStore {
    /// Like DynamoDB: consistent reads, atomic conditional writes.
    pub fn consistent(clock: Arc<FixedClock>) -> Self {
        Self::new(clock, false)
    }

    /// Like Workers KV: conditional writes are a read then a write, and deletes show late.
    pub fn eventually_consistent(clock: Arc<FixedClock>) -> Self {
        Self::new(clock, true)
    }

    /// Like Workers KV with a `BFF_COORDINATOR` binding: each session's coordinator is
    /// consistent and its conditional writes atomic. Its keys show here as `<name>|<key>`.
    pub fn with_coordinators(clock: Arc<FixedClock>) -> Self {
        Self {
            coordinated: true,
            ..Self::new(clock, true)
        }
    }

    fn new(clock: Arc<FixedClock>, eventually_consistent: bool) -> Self {
        Self {
            clock,
            items: Arc::new(Mutex::new(Items::default())),
            eventually_consistent,
            coordinated: false,
            scope: String::new(),
            failing: Arc::new(Mutex::new(None)),
            failing_writes: Arc::new(Mutex::new(None)),
            operations: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            failure_secs: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn items(&self) -> MutexGuard<'_, Items> {
        self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every operation on a key starting with `prefix` fails (`Some("")`: all of them) until
    /// called with `None`.
    pub fn fail_keys(&self, prefix: Option<&str>) {
        *self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = prefix.map(str::to_owned);
    }

    /// Deletes become visible to reads.
    pub fn settle(&self) {
        self.items().ghosts.clear();
    }

    /// Whether a live (not deleted, not expired) value is stored under `key`.
    pub fn contains(&self, key: &str) -> bool {
        let now = self.clock.now().0;
        self.items().live.get(key).is_some_and(|(_, expires)| *expires > now)
    }

    /// The live keys starting with `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let now = self.clock.now().0;
        let mut keys: Vec<String> = (self.items().live.iter())
            .filter(|(k, (_, expires))| k.starts_with(prefix) && *expires > now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Writes (puts and deletes) to keys starting with `prefix` fail until called with `None`.
    pub fn fail_writes(&self, prefix: Option<&str>) {
        *self
            .failing_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = prefix.map(str::to_owned);
    }

    /// How many calls the store has had, failed ones included: each costs a request its full
    /// wait when the real store hangs.
    pub fn operations(&self) -> usize {
        self.operations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Each failing call advances the clock by `secs` before it fails, as a store that hangs
    /// until the client's deadline (0, the default: failures are immediate).
    pub fn fail_slowly(&self, secs: u64) {
        self.failure_secs.store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    fn check(&self, operation: &str, key: &str) -> Result<(), KvError> {
        self.operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = self.outcome(operation, key);
        if outcome.is_err() {
            self.clock
                .advance(self.failure_secs.load(std::sync::atomic::Ordering::Relaxed));
        }
        outcome
    }

    fn outcome(&self, operation: &str, key: &str) -> Result<(), KvError> {
        if operation != "get" {
            let writes = self
                .failing_writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if writes.as_deref().is_some_and(|prefix| key.starts_with(prefix)) {
                return Err(KvError(format!("memory store {operation}: failing on purpose")));
            }
        }
        let failing = self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failing.as_deref().is_some_and(|prefix| key.starts_with(prefix)) {
            Err(KvError(format!("memory store {operation}: failing on purpose")))
        } else {
            Ok(())
        }
    }

    fn scoped(&self, key: &str) -> String {
        format!("{}{key}", self.scope)
    }

    fn read(&self, key: &str) -> Option<Vec<u8>> {
        let now = self.clock.now().0;
        let key = &self.scoped(key);
        let items = self.items();
        let found = items.live.get(key).or_else(|| items.ghosts.get(key));
        found.filter(|(_, expires)| *expires > now).map(|(v, _)| v.clone())
    }

    fn write(&self, key: &str, value: Vec<u8>, ttl_secs: u64) {
        let expires = self.clock.now().0.saturating_add(ttl_secs);
        let key = self.scoped(key);
        let mut items = self.items();
        items.ghosts.remove(&key);
        items.live.insert(key, (value, expires));
    }
}

impl KvStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check("get", key)?;
        Ok(self.read(key))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<(), KvError> {
        self.check("put", key)?;
        self.write(key, value, ttl_secs);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.check("put", key)?;
        let present = if self.eventually_consistent {
            let present = self.read(key).is_some();
            // A read, then a write, each a round trip: others may read and write in between.
            YieldOnce(false).await;
            present
        } else {
            self.contains(&self.scoped(key))
        };
        if !present {
            self.write(key, value, ttl_secs);
        }
        Ok(!present)
    }

    async fn put_if_present(&self, key: &str, value: Vec<u8>, ttl_secs: u64) -> Result<bool, KvError> {
        self.check("put", key)?;
        let present = if self.eventually_consistent {
            let present = self.read(key).is_some();
            YieldOnce(false).await;
            present
        } else {
            self.contains(&self.scoped(key))
        };
        if present {
            self.write(key, value, ttl_secs);
        }
        Ok(present)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.check("delete", key)?;
        let key = self.scoped(key);
        let mut items = self.items();
        if let Some(item) = items.live.remove(&key)
            && self.eventually_consistent
        {
            items.ghosts.insert(key, item);
        }
        Ok(())
    }

    fn coordinator(&self, name: &str) -> Option<Self> {
        self.coordinated.then(|| Self {
            clock: Arc::clone(&self.clock),
            items: Arc::clone(&self.items),
            eventually_consistent: false,
            coordinated: false,
            scope: format!("{name}|"),
            failing: Arc::clone(&self.failing),
            failing_writes: Arc::clone(&self.failing_writes),
            operations: Arc::clone(&self.operations),
            failure_secs: Arc::clone(&self.failure_secs),
        })
    }
}
