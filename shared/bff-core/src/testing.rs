//! Deterministic ports for tests: a clock that only moves when told, counter randomness.

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

/// Keeps log lines for assertions.
#[derive(Debug, Default)]
pub struct MemoryLog(Mutex<Vec<String>>);

impl MemoryLog {
    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Log for MemoryLog {
    fn line(&self, _level: Level, message: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(message.to_owned());
        }
    }
}
