//! What one request's flow works with: the configuration and caches of its backend, the
//! platform's ports, and the request itself.

use http::request::Parts;

use crate::config::Config;
use crate::cookie::Cookies;
use crate::ports::{Deps, Signatures, UnixTime};
use crate::provider::ProviderCache;
use crate::revocation_cache::RevocationCache;
use crate::rotation::Rotations;

/// Everything one request's flow works with.
pub(crate) struct Ctx<'a, H, K> {
    pub(crate) config: &'a Config,
    pub(crate) provider: &'a ProviderCache,
    pub(crate) rotations: &'a Rotations,
    /// Revocation entries this instance lately found absent.
    pub(crate) absent_revocations: &'a RevocationCache,
    pub(crate) deps: &'a Deps<'a, H, K>,
    /// The platform's public-key crypto.
    pub(crate) signatures: &'a dyn Signatures,
    pub(crate) parts: &'a Parts,
    pub(crate) body: &'a [u8],
    pub(crate) cookies: Cookies,
    pub(crate) now: UnixTime,
}

impl<H, K> Ctx<'_, H, K> {
    /// `B/bff/login`, where "sign in again" leads.
    pub(crate) fn login_path(&self) -> String {
        self.config.login_path()
    }
}
