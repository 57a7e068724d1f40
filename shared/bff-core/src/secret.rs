//! Values that must never reach a log: they redact themselves in `Debug` and have no `Display`.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Defines a string newtype whose `Debug` prints `Name([redacted])`.
macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself.
            ///
            /// # Security
            /// Never log or display the returned value.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                zeroize::Zeroize::zeroize(&mut self.0);
            }
        }
    };
}

secret_string!(
    /// The OAuth client secret.
    ClientSecret
);
secret_string!(
    /// An access token.
    AccessToken
);
secret_string!(
    /// A refresh token.
    RefreshToken
);
secret_string!(
    /// A signed ID token, kept for `id_token_hint` at logout.
    IdToken
);

/// A 256-bit AES key with its key id. Zeroized on drop; `Debug` shows the id only.
pub(crate) struct SealKey {
    pub(crate) id: String,
    bytes: [u8; 32],
}

impl SealKey {
    pub(crate) fn new(id: String, bytes: [u8; 32]) -> Self {
        Self { id, bytes }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({}, [redacted])", self.id)
    }
}

impl Drop for SealKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// Compares two secrets without leaking where they differ through timing.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        let secret = ClientSecret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
        let token = RefreshToken::new("rt-value");
        assert!(!format!("{token:?}").contains("rt-value"));
        let key = SealKey::new("k1".into(), [7; 32]);
        assert_eq!(format!("{key:?}"), "SealKey(k1, [redacted])");
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
