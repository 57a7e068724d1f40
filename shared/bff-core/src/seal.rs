//! The sealed envelope: AES-256-GCM with a key ring (http-api.md: Cookies).
//!
//! Wire format: `v1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The plaintext is the expiry
//! (8 bytes, big-endian Unix seconds) followed by the payload. The associated data binds the
//! format version and the cookie's base name, so a value cannot be moved to another cookie (as
//! cookie-rs private cookies do), and the expiry inside is checked against the injected clock
//! because `Max-Age` is only advice to the browser. This is the only module that touches AES.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ports::{RandomError, SecureRandom, UnixTime};
use crate::secret::SealKey;

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a value did not unseal. Callers treat every case the same: no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SealError {
    /// Past the expiry sealed inside.
    Expired,
    /// Malformed, tampered, moved to another name, or sealed with an unknown key.
    Invalid,
}

/// Seals `payload` for the cookie (or record) named `name`, valid until `expires`.
pub(crate) fn seal(
    key: &SealKey,
    name: &str,
    payload: &[u8],
    expires: UnixTime,
    random: &dyn SecureRandom,
) -> Result<String, RandomError> {
    let mut nonce = [0u8; NONCE_LEN];
    random.fill(&mut nonce)?;
    Ok(seal_with_nonce(key, name, payload, expires, nonce))
}

fn seal_with_nonce(key: &SealKey, name: &str, payload: &[u8], expires: UnixTime, nonce: [u8; NONCE_LEN]) -> String {
    // One buffer holds nonce, ciphertext and tag, encrypted in place, so the only other
    // allocation is the text itself.
    let mut raw = Vec::with_capacity(NONCE_LEN + 8 + payload.len() + TAG_LEN);
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&expires.0.to_be_bytes());
    raw.extend_from_slice(payload);
    let cipher = Aes256Gcm::new(key.bytes().into());
    let aad = associated_data(name);
    let plaintext = &mut raw[NONCE_LEN..];
    // AES-GCM encryption only fails for inputs over 64 GiB.
    let Ok(tag) = cipher.encrypt_inout_detached(&Nonce::from(nonce), aad.as_bytes(), plaintext.into()) else {
        return String::new();
    };
    raw.extend_from_slice(&tag);
    let mut sealed = String::with_capacity(VERSION.len() + key.id.len() + 2 + (raw.len() * 4).div_ceil(3));
    sealed.push_str(VERSION);
    sealed.push('.');
    sealed.push_str(&key.id);
    sealed.push('.');
    URL_SAFE_NO_PAD.encode_string(&raw, &mut sealed);
    sealed
}

/// Opens a value sealed by [`seal`] with any key of `keys` (the key id picks it).
pub(crate) fn unseal(keys: &[SealKey], name: &str, value: &str, now: UnixTime) -> Result<Vec<u8>, SealError> {
    let mut parts = value.splitn(3, '.');
    let (Some(VERSION), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SealError::Invalid);
    };
    let key = keys.iter().find(|k| k.id == kid).ok_or(SealError::Invalid)?;
    // Decrypted where it was decoded, then the payload moved to the front: one allocation for a
    // value of a few kilobytes, which a request otherwise paid three times over.
    let mut raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Invalid)?;
    if raw.len() < NONCE_LEN + TAG_LEN + 8 {
        return Err(SealError::Invalid);
    }
    let (nonce, sealed) = raw.split_at_mut(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| SealError::Invalid)?;
    let (ciphertext, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
    let tag = Tag::try_from(&*tag).map_err(|_| SealError::Invalid)?;
    let cipher = Aes256Gcm::new(key.bytes().into());
    cipher
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            associated_data(name).as_bytes(),
            ciphertext.into(),
            &tag,
        )
        .map_err(|_| SealError::Invalid)?;
    let expiry: [u8; 8] = ciphertext
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(SealError::Invalid)?;
    if now.0 >= u64::from_be_bytes(expiry) {
        return Err(SealError::Expired);
    }
    let payload = NONCE_LEN + 8..raw.len() - TAG_LEN;
    let len = payload.len();
    raw.copy_within(payload, 0);
    raw.truncate(len);
    Ok(raw)
}

fn associated_data(name: &str) -> String {
    format!("{VERSION}|{name}")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::CounterRandom;

    fn key(id: &str, byte: u8) -> SealKey {
        SealKey::new(id.to_owned(), [byte; 32])
    }

    /// A known-answer vector: fixed key, nonce, name, expiry and payload give exactly this.
    const FROZEN: &str = "v1.k1.AAECAwQFBgcICQoLBd6R3cYZZgv1Yyh_vvF7SFfuvQPPJ6p2hbnL_nSkfJGmFT2CObg";

    #[test]
    fn known_answer() {
        let sealed = seal_with_nonce(
            &key("k1", 0x42),
            "__Host-bff-session",
            b"hello, session",
            UnixTime(2_000_000_000),
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        );
        assert_eq!(sealed, FROZEN);
    }

    #[test]
    fn frozen_envelope_always_opens() {
        // Guards the wire format: sessions sealed by earlier releases must keep working.
        let opened = unseal(
            &[key("k1", 0x42)],
            "__Host-bff-session",
            FROZEN,
            UnixTime(1_900_000_000),
        )
        .unwrap();
        assert_eq!(opened, b"hello, session");
    }

    #[test]
    fn expiry_is_checked() {
        let sealed = seal(&key("k1", 1), "n", b"x", UnixTime(100), &CounterRandom::default()).unwrap();
        assert_eq!(unseal(&[key("k1", 1)], "n", &sealed, UnixTime(99)).unwrap(), b"x");
        assert_eq!(
            unseal(&[key("k1", 1)], "n", &sealed, UnixTime(100)),
            Err(SealError::Expired)
        );
    }

    #[test]
    fn name_is_bound() {
        let sealed = seal(&key("k1", 1), "a", b"x", UnixTime(100), &CounterRandom::default()).unwrap();
        assert_eq!(
            unseal(&[key("k1", 1)], "b", &sealed, UnixTime(1)),
            Err(SealError::Invalid)
        );
    }

    #[test]
    fn key_rotation() {
        let old = key("old", 1);
        let sealed = seal(&old, "n", b"x", UnixTime(100), &CounterRandom::default()).unwrap();
        // A new key put first still opens values sealed with the old one.
        assert_eq!(
            unseal(&[key("new", 2), key("old", 1)], "n", &sealed, UnixTime(1)).unwrap(),
            b"x"
        );
        // Once the old key is removed, they no longer open.
        assert_eq!(
            unseal(&[key("new", 2)], "n", &sealed, UnixTime(1)),
            Err(SealError::Invalid)
        );
        // A different key under the same id fails authentication.
        assert_eq!(
            unseal(&[key("old", 9)], "n", &sealed, UnixTime(1)),
            Err(SealError::Invalid)
        );
    }

    #[test]
    fn nonces_differ() {
        let random = CounterRandom::default();
        let a = seal(&key("k", 1), "n", b"x", UnixTime(100), &random).unwrap();
        let b = seal(&key("k", 1), "n", b"x", UnixTime(100), &random).unwrap();
        assert_ne!(a, b);
    }

    proptest! {
        #[test]
        fn round_trip(payload in proptest::collection::vec(any::<u8>(), 0..600), seed in any::<u8>()) {
            let random = CounterRandom::starting_at(seed);
            let sealed = seal(&key("k", 3), "n", &payload, UnixTime(1000), &random).unwrap();
            prop_assert_eq!(unseal(&[key("k", 3)], "n", &sealed, UnixTime(999)).unwrap(), payload);
        }

        #[test]
        fn any_flipped_byte_fails(payload in proptest::collection::vec(any::<u8>(), 0..100), index in any::<usize>(), bit in 0u8..8) {
            let sealed = seal(&key("k", 3), "n", &payload, UnixTime(1000), &CounterRandom::default()).unwrap();
            let mut bytes = sealed.into_bytes();
            let i = index % bytes.len();
            bytes[i] ^= 1 << bit;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(unseal(&[key("k", 3)], "n", &tampered, UnixTime(1)).is_err());
        }

        #[test]
        fn garbage_never_panics(value in ".{0,300}") {
            let _ = unseal(&[key("k", 3)], "n", &value, UnixTime(1));
        }
    }
}
