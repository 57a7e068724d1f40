//! Refresh single flight and rotation memory, per isolate or Lambda container (CONTRACT §2.2).
//!
//! Rotating refresh tokens die when presented twice, and some providers (oidc-provider among
//! them) then revoke the whole grant. So every refresh with a given refresh token goes through
//! here: the first request refreshes, concurrent ones wait for it, and any request within 30 s
//! that still carries the used token is answered from the remembered rotation, including the new
//! refresh token, so an out-of-order response cannot bring a dead token back (the failure of
//! lua-resty-openidc#190). Only owned data is kept; waiting polls through the platform's timer
//! rather than parking wakers, so no request ever wakes another request's task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::Deps;
use crate::ports::{HttpClient, KvStore};
use crate::session::CachedToken;

/// A rotation is remembered this long.
const MEMORY_SECS: u64 = 30;
/// A refresh in flight longer than this is presumed lost and taken over.
const IN_FLIGHT_SECS: u64 = 20;
/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(20);

/// The outcome of one refresh, as later requests with the same old token need it.
#[derive(Clone)]
pub(crate) struct Rotation {
    /// The new refresh token, when the provider rotated it.
    pub(crate) refresh_token: Option<String>,
    /// A validated new ID token and the claims projected from it.
    pub(crate) id_token: Option<(String, Map<String, Value>)>,
    /// The access token obtained, cached as the requester asked for it.
    pub(crate) entry: CachedToken,
}

enum Entry {
    Done { at: u64, rotation: Arc<Rotation> },
    InFlight { since: u64 },
}

#[derive(Default)]
pub(crate) struct Rotations {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

/// What a request about to refresh should do.
pub(crate) enum Claim<'a> {
    /// Refresh, then report through the guard.
    Mine(Guard<'a>),
    /// Someone already rotated this token: use the result.
    Rotated(Arc<Rotation>),
}

impl Rotations {
    /// Claims the right to refresh with `refresh_token`, waiting while another request does.
    pub(crate) async fn claim<H: HttpClient, K: KvStore>(
        &self,
        refresh_token: &str,
        deps: &Deps<'_, H, K>,
    ) -> Claim<'_> {
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        loop {
            let now = deps.clock.now().0;
            {
                let Ok(mut entries) = self.entries.lock() else {
                    return Claim::Mine(Guard {
                        rotations: self,
                        key,
                        done: true,
                    });
                };
                entries.retain(|_, e| match e {
                    Entry::Done { at, .. } => now.saturating_sub(*at) < MEMORY_SECS,
                    Entry::InFlight { since } => now.saturating_sub(*since) < IN_FLIGHT_SECS,
                });
                match entries.get(&key) {
                    Some(Entry::Done { rotation, .. }) => return Claim::Rotated(Arc::clone(rotation)),
                    Some(Entry::InFlight { .. }) => {}
                    None => {
                        entries.insert(key, Entry::InFlight { since: now });
                        return Claim::Mine(Guard {
                            rotations: self,
                            key,
                            done: false,
                        });
                    }
                }
            }
            deps.http.pause(POLL).await;
        }
    }
}

/// The right to refresh with one token. Dropped without [`Guard::complete`] (the refresh
/// failed), it lets the next waiter try.
pub(crate) struct Guard<'a> {
    rotations: &'a Rotations,
    key: [u8; 32],
    done: bool,
}

impl Guard<'_> {
    pub(crate) fn complete(mut self, rotation: Rotation, now: u64) {
        if let Ok(mut entries) = self.rotations.entries.lock() {
            entries.insert(
                self.key,
                Entry::Done {
                    at: now,
                    rotation: Arc::new(rotation),
                },
            );
        }
        self.done = true;
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Ok(mut entries) = self.rotations.entries.lock()
        {
            entries.remove(&self.key);
        }
    }
}
