//! OpenID Connect and OAuth 2.0 client pieces: pure builders and parsers, no I/O.

pub(crate) mod algorithms;
pub(crate) mod client_auth;
pub(crate) mod der;
pub(crate) mod discovery;
pub(crate) mod dpop;
pub(crate) mod id_token;
pub(crate) mod jws;
pub(crate) mod logout_token;
pub(crate) mod par;
pub(crate) mod pkce;
pub(crate) mod token;
