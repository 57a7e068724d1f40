//! What one isolate or container has lately seen absent from the store: revocation entries
//! (http-api.md: backchannel-logout). Every session check looks for up to three entries; in cookie
//! mode with a store bound that would be store reads on every token call, billed and on the hot
//! path. An absent entry is trusted for [`ABSENT_SECS`]: a logout or back-channel logout that
//! another instance records ends the session here within that bound (on Workers KV, whose reads
//! may lag writes by up to 60 s, the store's own delay is the larger one). An instance that writes
//! an entry forgets its own memory of that key at once. Owned data only.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ports::UnixTime;

/// How long an absent revocation entry is believed.
pub(crate) const ABSENT_SECS: u64 = 10;
/// At most this many keys are remembered (about 100 bytes each).
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub(crate) struct RevocationCache(Mutex<HashMap<String, UnixTime>>);

impl RevocationCache {
    /// Whether `key` was seen absent less than [`ABSENT_SECS`] ago.
    pub(crate) fn known_absent(&self, key: &str, now: UnixTime) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|keys| keys.get(key).copied())
            .is_some_and(|seen| seen <= now && seen.until(now) < ABSENT_SECS)
    }

    /// Remembers that the store had no entry under `key` at `now`.
    pub(crate) fn absent(&self, key: &str, now: UnixTime) {
        let Ok(mut keys) = self.0.lock() else { return };
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            keys.retain(|_, seen| seen.until(now) < ABSENT_SECS);
            if keys.len() >= MAX_KEYS {
                // Every entry is fresh: a flood of distinct sessions. Forgetting costs reads only.
                keys.clear();
            }
        }
        keys.insert(key.to_owned(), now);
    }

    /// Forgets `key`: this instance just wrote an entry there.
    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut keys) = self.0.lock() {
            keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absence_is_believed_for_a_bounded_time_and_forgotten_on_write() {
        let cache = RevocationCache::default();
        let t = UnixTime(1_000);
        assert!(!cache.known_absent("k", t));
        cache.absent("k", t);
        assert!(cache.known_absent("k", t.plus(ABSENT_SECS - 1)));
        assert!(!cache.known_absent("k", t.plus(ABSENT_SECS)));
        cache.absent("k", t);
        cache.forget("k");
        assert!(!cache.known_absent("k", t));
    }

    #[test]
    fn memory_is_bounded() {
        let cache = RevocationCache::default();
        for i in 0..(MAX_KEYS + 10) {
            cache.absent(&format!("k{i}"), UnixTime(1_000));
        }
        let held = cache.0.lock().map(|keys| keys.len()).unwrap_or_default();
        assert!(held <= MAX_KEYS, "{held}");
        // Stale entries make room first.
        cache.absent("new", UnixTime(1_000 + ABSENT_SECS));
        assert!(cache.known_absent("new", UnixTime(1_000 + ABSENT_SECS)));
    }
}
