//! The session and login transactions as cookies: sealing, chunking within the budget, loading,
//! clearing (http-api.md: Cookies).

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::config::Config;
use crate::cookie::{Cookies, SameSite, SetCookie};
use crate::error::SaveError;
use crate::ports::{RandomError, SecureRandom, UnixTime};
use crate::seal::{self, SealError};
use crate::session::{LoginTxn, Session, TXN_LIFETIME};

/// Base name of the session cookie; chunks are `<name>.0`, `<name>.1`, …
pub(crate) const SESSION_COOKIE: &str = "__Host-bff-session";
/// Prefix of the per-`state` login transaction cookies.
pub(crate) const TXN_COOKIE_PREFIX: &str = "__Host-bff-txn.";
/// Base name used as associated data for transaction cookies.
pub(crate) const TXN_COOKIE: &str = "__Host-bff-txn";
/// Longest value put in one cookie, so name, value and attributes stay under 4000 bytes.
const CHUNK: usize = 3800;

/// The transaction cookie name for `state`: a short digest, so names stay small.
pub(crate) fn txn_cookie_name(state: &str) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(state.as_bytes());
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9]);
    format!("{TXN_COOKIE_PREFIX}{id}")
}

/// The sealed session value the request carries: the single cookie, or the chunks `.0` to `.n`
/// joined. The session's names must be exactly one of those two sets, each name once: a base
/// name beside chunks, a gap, an extra chunk or a name sent twice can only be planted (a sibling
/// subdomain's nameless cookie can look like any of them), so it is no session.
pub(crate) fn sealed_value(cookies: &Cookies, config: &Config) -> Option<String> {
    sealed(cookies, config).map(Cow::into_owned)
}

/// [`sealed_value`], borrowed from the request when it is one cookie: the common case, whose
/// value is kilobytes that need not be copied again.
fn sealed<'a>(cookies: &'a Cookies, config: &Config) -> Option<Cow<'a, str>> {
    let names: Vec<&str> = cookies.with_prefix(SESSION_COOKIE).map(|(name, _)| name).collect();
    if names == [SESSION_COOKIE] {
        return cookies.get(SESSION_COOKIE).map(Cow::Borrowed);
    }
    if names.is_empty() || names.len() > max_chunks(config) {
        return None;
    }
    let mut joined = String::new();
    let mut name = String::with_capacity(SESSION_COOKIE.len() + 3);
    for i in 0..names.len() {
        name.clear();
        // Writing to a String cannot fail.
        let _ = write!(name, "{SESSION_COOKIE}.{i}");
        joined.push_str(cookies.get(&name)?);
    }
    Some(Cow::Owned(joined))
}

/// Reads the session from the request's cookies (see [`sealed_value`]). Anything that does not
/// unseal is no session.
pub(crate) fn load(cookies: &Cookies, config: &Config, now: UnixTime) -> Option<Session> {
    let sealed = sealed(cookies, config).filter(|s| !s.is_empty())?;
    let bytes = seal::unseal(&config.keys, SESSION_COOKIE, &sealed, now).ok()?;
    let session: Session = serde_json::from_slice(&bytes).ok()?;
    (session.iss == config.issuer && now.0 < session.expires).then_some(session)
}

/// Seals `session` into `Set-Cookie`s within the budget, dropping the least recently used cached
/// tokens first (http-api.md: Cookies), and deletes every other chunk name the session might have used.
pub(crate) fn save(
    session: &mut Session,
    config: &Config,
    random: &dyn SecureRandom,
    now: UnixTime,
) -> Result<Vec<SetCookie>, SaveError> {
    loop {
        let payload = serde_json::to_vec(&*session).unwrap_or_default();
        let sealed = seal::seal(
            &config.keys[0],
            SESSION_COOKIE,
            &payload,
            UnixTime(session.expires),
            random,
        )
        .map_err(SaveError::Random)?;
        let chunks = split(&sealed);
        let size: usize = chunks.iter().map(|(name, value)| name.len() + 1 + value.len()).sum();
        if size <= config.cookie_budget {
            let max_age = now.until(UnixTime(session.expires));
            let mut cookies: Vec<SetCookie> = chunks
                .into_iter()
                .map(|(name, value)| SetCookie::new(name, value, config.same_site, max_age))
                .collect();
            let set: Vec<String> = cookies.iter().map(|c| c.name().to_owned()).collect();
            cookies.extend(
                chunk_names(config)
                    .into_iter()
                    .filter(|n| !set.contains(n))
                    .map(|n| SetCookie::delete(n, config.same_site)),
            );
            return Ok(cookies);
        }
        if session.tokens.is_empty() {
            return Err(SaveError::TooLarge { bytes: size });
        }
        // Least recently used first: the vector is kept in use order.
        session.tokens.remove(0);
    }
}

/// Deletes every session chunk name.
pub(crate) fn clear(config: &Config) -> Vec<SetCookie> {
    chunk_names(config)
        .into_iter()
        .map(|n| SetCookie::delete(n, config.same_site))
        .collect()
}

/// Deletes every transaction cookie the request carried.
pub(crate) fn clear_txns(cookies: &Cookies) -> Vec<SetCookie> {
    cookies
        .with_prefix(TXN_COOKIE_PREFIX)
        .map(|(name, _)| SetCookie::delete(name, SameSite::Lax))
        .collect()
}

fn split(sealed: &str) -> Vec<(String, String)> {
    if sealed.len() <= CHUNK {
        return vec![(SESSION_COOKIE.to_owned(), sealed.to_owned())];
    }
    // The sealed text is ASCII, so byte chunks are character chunks.
    sealed
        .as_bytes()
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, part)| {
            (
                format!("{SESSION_COOKIE}.{i}"),
                String::from_utf8_lossy(part).into_owned(),
            )
        })
        .collect()
}

/// Every name a session could use within the budget: the callback cannot see the `Strict`
/// session cookie, so it deletes them all by name rather than by what the request carried.
fn chunk_names(config: &Config) -> Vec<String> {
    std::iter::once(SESSION_COOKIE.to_owned())
        .chain((0..max_chunks(config)).map(|i| format!("{SESSION_COOKIE}.{i}")))
        .collect()
}

/// How many chunks a session within the budget can have, plus one.
fn max_chunks(config: &Config) -> usize {
    config.cookie_budget.div_ceil(CHUNK) + 1
}

/// Seals a login transaction into its own cookie.
pub(crate) fn seal_txn(txn: &LoginTxn, config: &Config, random: &dyn SecureRandom) -> Result<SetCookie, RandomError> {
    let payload = serde_json::to_vec(txn).unwrap_or_default();
    let sealed = seal::seal(
        &config.keys[0],
        TXN_COOKIE,
        &payload,
        UnixTime(txn.created + TXN_LIFETIME),
        random,
    )?;
    Ok(SetCookie::new(
        txn_cookie_name(&txn.state),
        sealed,
        SameSite::Lax,
        TXN_LIFETIME,
    ))
}

/// Opens a transaction cookie value.
pub(crate) fn open_txn(value: &str, config: &Config, now: UnixTime) -> Result<LoginTxn, SealError> {
    let bytes = seal::unseal(&config.keys, TXN_COOKIE, value, now)?;
    serde_json::from_slice(&bytes).map_err(|_| SealError::Invalid)
}

#[cfg(test)]
#[path = "session_cookie_tests.rs"]
mod tests;
