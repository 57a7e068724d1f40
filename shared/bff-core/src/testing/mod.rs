//! The test kit: deterministic ports (a clock that only moves when told, counter and seeded
//! randomness, a log kept in memory), a scripted authorization server and an in-memory store
//! behind the real ports, and a driver that lets a flow test read like a story.

mod dpop;
mod provider;
mod store;
mod world;

pub use dpop::{BrowserKey, TOKEN_ENDPOINT};
pub use provider::{
    BodyEdit, CLIENT_ID, CLIENT_SECRET, ClaimsEdit, DpopPolicy, Endpoint, Fault, ISSUER, ParPolicy, RefreshPolicy,
    ScriptedProvider,
};
pub use store::MemoryStore;
pub use world::{Answer, Browser, COOKIE_KEYS, ORIGIN, START, Site, World, request};

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::ports::{Clock, Level, Log, RandomError, SecureRandom, UnixTime};

/// A clock that stands still until [`FixedClock::advance`].
#[derive(Debug)]
pub struct FixedClock(AtomicU64);

impl FixedClock {
    /// A clock showing `now` (Unix seconds).
    pub fn at(now: u64) -> Self {
        Self(AtomicU64::new(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

/// "Randomness" that counts up, so sealed values and URLs are reproducible.
#[derive(Debug, Default)]
pub struct CounterRandom(AtomicU8);

impl CounterRandom {
    /// Starts counting at `seed`.
    pub fn starting_at(seed: u8) -> Self {
        Self(AtomicU8::new(seed))
    }
}

impl SecureRandom for CounterRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        for byte in buf {
            *byte = self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Reproducible randomness that does not repeat (SplitMix64), for ids that must differ.
#[derive(Debug)]
pub struct SeededRandom(AtomicU64);

impl SeededRandom {
    /// Starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        for chunk in buf.chunks_mut(8) {
            let mut z = self
                .0
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// Keeps log lines (the core's JSON lines) for assertions.
#[derive(Debug, Default)]
pub struct MemoryLog(Mutex<Vec<String>>);

impl MemoryLog {
    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The lines logged so far, parsed (`Null` for a line that is not JSON).
    pub fn records(&self) -> Vec<serde_json::Value> {
        let parse = |line: &String| serde_json::from_str(line).unwrap_or(serde_json::Value::Null);
        self.lines().iter().map(parse).collect()
    }

    /// The parsed request lines (`"type":"request"`), in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let records = self.records().into_iter();
        records.filter(|record| record["type"] == "request").collect()
    }
}

impl Log for MemoryLog {
    fn line(&self, _level: Level, message: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(message.to_owned());
        }
    }
}
