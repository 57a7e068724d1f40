//! Sizes the backend never goes past, whatever a browser or a provider sends.

/// The largest request body the backend reads (16 KiB); a larger one is answered 413 before any
/// work. An adapter need not read more than one byte past it.
pub const MAX_REQUEST_BODY: usize = 16 * 1024;

/// The largest response the backend accepts from the authorization server (1 MiB); a larger one
/// is a provider failure. An adapter should stop reading one byte past it.
pub const MAX_PROVIDER_RESPONSE: usize = 1024 * 1024;
