//! The core's synchronous ports with Workers APIs: the clock, randomness and the log.

use bff_core::{Clock, Level, Log, RandomError, SecureRandom, UnixTime};
use worker::{Date, console_error, console_log, console_warn};

/// `Date.now()`: in workerd it advances only across I/O, which is all the core needs.
pub(crate) struct WorkerClock;

impl Clock for WorkerClock {
    fn now(&self) -> UnixTime {
        UnixTime(Date::now().as_millis() / 1000)
    }

    fn now_millis(&self) -> u64 {
        Date::now().as_millis()
    }
}

/// `crypto.getRandomValues` through getrandom's `wasm_js` backend.
pub(crate) struct WorkerRandom;

impl SecureRandom for WorkerRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|_| RandomError)
    }
}

/// The core's JSON lines, as they are, on the Workers console at their level (Workers Logs with
/// `[observability]`, `wrangler tail`).
pub(crate) struct Console;

impl Log for Console {
    fn line(&self, level: Level, line: &str) {
        match level {
            Level::Error => console_error!("{line}"),
            Level::Warn => console_warn!("{line}"),
            Level::Info => console_log!("{line}"),
        }
    }
}
