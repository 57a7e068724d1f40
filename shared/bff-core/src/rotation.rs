//! Refresh single flight and rotation memory, per isolate or Lambda container (http-api.md: bff-token).
//!
//! Rotating refresh tokens die when presented twice, and some providers (oidc-provider among
//! them) then revoke the whole grant. So every refresh with a given refresh token goes through
//! here: the first request refreshes, concurrent ones wait for it, and any request within 30 s
//! that still carries the used token is answered from the remembered rotation, including the new
//! refresh token, so an out-of-order response cannot bring a dead token back (the failure of
//! lua-resty-openidc#190). A refresh that returned no new refresh token (a provider that does not
//! rotate: Google, Okta, Auth0, Entra without rotation) is remembered only for the requests that
//! waited for it with the same cache key; later requests refresh on their own, since the same
//! token would otherwise keep pointing at that one answer. Only owned data is kept; waiting polls
//! through the platform's timer rather than parking wakers, so no request ever wakes another
//! request's task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::ports::{Deps, HttpClient, KvStore, UnixTime};
use crate::session::CachedToken;

/// A rotation is remembered this long.
pub(crate) const MEMORY_SECS: u64 = 30;
/// A refresh in flight longer than this (and than [`in_flight_limit`]) is presumed lost and taken
/// over.
const IN_FLIGHT_SECS: u64 = 20;

/// How long a refresh may take before waiters take it over: the cross-instance wait (the HTTP
/// timeout + 2 s) and up to three provider calls (metadata, token endpoint, JWKS), each bounded
/// by the HTTP timeout.
pub(crate) fn in_flight_limit(http_timeout: Duration) -> u64 {
    (http_timeout.as_secs() * 4 + 2).max(IN_FLIGHT_SECS)
}
/// How often a waiting request looks again.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// The outcome of one refresh, as later requests with the same old token need it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Rotation {
    /// The new refresh token, when the provider rotated it.
    pub(crate) refresh_token: Option<String>,
    /// A validated new ID token and the claims projected from it.
    pub(crate) id_token: Option<(String, Map<String, Value>)>,
    /// The access token obtained, cached as the requester asked for it.
    pub(crate) entry: CachedToken,
    /// When a `rejected_token` forced this refresh: a response built from an older copy of the
    /// session must not reopen the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) forced_at: Option<u64>,
}

impl Rotation {
    /// Whether this rotation's access token can answer a request for (`key`, `resource`) at
    /// `now`. A remembered rotation can be 30 s old: past its margin, the caller refreshes again
    /// with the new refresh token. A shared answer without one was just obtained.
    pub(crate) fn serves(&self, key: &str, resource: Option<&str>, now: UnixTime) -> bool {
        self.entry.answers(key, resource) && (self.entry.is_fresh(now) || self.refresh_token.is_none())
    }
}

enum Entry {
    /// A finished refresh; `rotated` when it brought a new refresh token.
    Done {
        at: u64,
        flight: u64,
        rotated: bool,
        rotation: Arc<Rotation>,
    },
    InFlight {
        since: u64,
        flight: u64,
    },
}

#[derive(Default)]
pub(crate) struct Rotations {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    flights: AtomicU64,
    /// Session id → when a `rejected_token` last forced a refresh here. The cookie says the same,
    /// but a client can send an older cookie.
    forced: Mutex<HashMap<String, u64>>,
}

/// What a request about to refresh should do.
pub(crate) enum Claim<'a> {
    /// Refresh, then report through the guard.
    Mine(Guard<'a>),
    /// Someone already rotated this token, or answered the refresh this request waited for: use
    /// the result.
    Rotated(Arc<Rotation>),
}

impl Rotations {
    /// Claims the right to refresh with `refresh_token` for (`key`, `resource`), waiting while
    /// another request does.
    pub(crate) async fn claim<H: HttpClient, K: KvStore>(
        &self,
        refresh_token: &str,
        key: &str,
        resource: Option<&str>,
        in_flight_secs: u64,
        deps: &Deps<'_, H, K>,
    ) -> Claim<'_> {
        let hash: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        let mut waited_for = None;
        loop {
            let now = deps.clock.now().0;
            {
                let Ok(mut entries) = self.entries.lock() else {
                    return Claim::Mine(Guard {
                        rotations: self,
                        hash,
                        done: true,
                    });
                };
                entries.retain(|_, e| match e {
                    Entry::Done { at, .. } => now.saturating_sub(*at) < MEMORY_SECS,
                    Entry::InFlight { since, .. } => now.saturating_sub(*since) < in_flight_secs,
                });
                match entries.get(&hash) {
                    Some(Entry::Done {
                        rotated: true,
                        rotation,
                        ..
                    }) => return Claim::Rotated(Arc::clone(rotation)),
                    // Not rotated: only a request that waited for this very refresh, for the
                    // same token, shares its answer.
                    Some(Entry::Done { flight, rotation, .. })
                        if waited_for == Some(*flight) && rotation.entry.answers(key, resource) =>
                    {
                        return Claim::Rotated(Arc::clone(rotation));
                    }
                    Some(Entry::InFlight { flight, .. }) => waited_for = Some(*flight),
                    None | Some(Entry::Done { .. }) => {
                        let flight = self.flights.fetch_add(1, Ordering::Relaxed);
                        entries.insert(hash, Entry::InFlight { since: now, flight });
                        return Claim::Mine(Guard {
                            rotations: self,
                            hash,
                            done: false,
                        });
                    }
                }
            }
            deps.http.pause(POLL).await;
        }
    }
}

impl Rotations {
    /// Whether session `id` may force a refresh at `now` (one per `window` seconds); if so, the
    /// window starts now, so concurrent requests cannot all pass.
    pub(crate) fn try_force(&self, id: &str, now: u64, window: u64) -> bool {
        // Sessions sealed before they had ids share "": the cookie's own record decides for them.
        if id.is_empty() {
            return true;
        }
        let Ok(mut forced) = self.forced.lock() else {
            return true;
        };
        forced.retain(|_, at| now.saturating_sub(*at) < window);
        if forced.contains_key(id) {
            return false;
        }
        forced.insert(id.to_owned(), now);
        true
    }

    /// The forced refresh session `id` started at `at` failed: the client's retry may force
    /// again (unless a later request has started a window of its own meanwhile).
    pub(crate) fn unforce(&self, id: &str, at: u64) {
        if let Ok(mut forced) = self.forced.lock()
            && forced.get(id) == Some(&at)
        {
            forced.remove(id);
        }
    }
}

impl Rotations {
    /// The answer of the forced refresh this instance made (or is making: then it waits) with
    /// `refresh_token` for (`key`, `resource`) in the last 30 s, while its access token is fresh
    /// and is neither `rejected` nor older than `held` (the session's own): what a request that
    /// may not force another refresh gets instead of the token it rejected.
    #[allow(clippy::too_many_arguments)] // one lookup, spelled out
    pub(crate) async fn latest<H: HttpClient, K: KvStore>(
        &self,
        refresh_token: &str,
        key: &str,
        resource: Option<&str>,
        rejected: &str,
        held: &CachedToken,
        in_flight_secs: u64,
        deps: &Deps<'_, H, K>,
    ) -> Option<Arc<Rotation>> {
        let hash: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        loop {
            let now = deps.clock.now();
            {
                let entries = self.entries.lock().ok()?;
                match entries.get(&hash) {
                    Some(Entry::Done { at, rotation, .. }) => {
                        let entry = &rotation.entry;
                        let usable = rotation.forced_at.is_some()
                            && now.0.saturating_sub(*at) < MEMORY_SECS
                            && entry.answers(key, resource)
                            && entry.is_fresh(now)
                            && entry.obtained >= held.obtained
                            && !crate::secret::constant_time_eq(entry.token.expose(), rejected);
                        return usable.then(|| Arc::clone(rotation));
                    }
                    Some(Entry::InFlight { since, .. }) if now.0.saturating_sub(*since) < in_flight_secs => {}
                    _ => return None,
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
    hash: [u8; 32],
    done: bool,
}

impl Guard<'_> {
    /// Records the refresh's outcome; `rotated` when it brought a new refresh token.
    pub(crate) fn complete(mut self, rotation: Rotation, rotated: bool, now: u64) {
        if let Ok(mut entries) = self.rotations.entries.lock() {
            let flight = match entries.get(&self.hash) {
                Some(Entry::InFlight { flight, .. }) => *flight,
                _ => u64::MAX,
            };
            entries.insert(
                self.hash,
                Entry::Done {
                    at: now,
                    flight,
                    rotated,
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
            entries.remove(&self.hash);
        }
    }
}
