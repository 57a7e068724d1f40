//! Structure-aware JSON: a value tree the fuzzer builds, with member names and strings drawn
//! mostly from what the backend looks for, so inputs get past the JSON parser into the checks.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Value};

/// Names the backend reads in token, metadata, JWKS, UserInfo and JWT payloads.
pub const NAMES: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "id_token",
    "scope",
    "error",
    "error_description",
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "revocation_endpoint",
    "end_session_endpoint",
    "id_token_signing_alg_values_supported",
    "authorization_response_iss_parameter_supported",
    "keys",
    "kty",
    "kid",
    "alg",
    "use",
    "crv",
    "n",
    "e",
    "x",
    "y",
    "typ",
    "sub",
    "email",
    "name",
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "azp",
    "sid",
    "auth_time",
    "jti",
    "events",
    "http://schemas.openid.net/event/backchannel-logout",
];

/// Strings the backend compares against.
pub const STRINGS: &[&str] = &[
    "Bearer",
    "bearer",
    "DPoP",
    "https://idp.example",
    "https://idp.example/",
    "https://idp.example/token",
    "https://idp.example/jwks",
    "https://idp.example/authorize",
    "https://idp.example/userinfo",
    "http://idp.example/token",
    "http://127.0.0.1/x",
    "bff",
    "other",
    "alice",
    "EC",
    "RSA",
    "OKP",
    "P-256",
    "P-384",
    "Ed25519",
    "ES256",
    "ES384",
    "RS256",
    "PS256",
    "EdDSA",
    "HS256",
    "none",
    "sig",
    "enc",
    "k1",
    "k2",
    "AQAB",
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "invalid_scope",
    "openid profile email offline_access",
    "3600",
    "",
];

/// A JSON value as the fuzzer writes it.
#[derive(Arbitrary, Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Text(Text),
    Array(Vec<Json>),
    Object(Vec<(Text, Json)>),
}

/// A string: one the backend knows, or any.
#[derive(Arbitrary, Debug, Clone)]
pub enum Text {
    Name(u8),
    Known(u8),
    Any(String),
}

impl Text {
    /// The string.
    pub fn render(&self) -> String {
        match self {
            Self::Name(i) => NAMES[usize::from(*i) % NAMES.len()].to_owned(),
            Self::Known(i) => STRINGS[usize::from(*i) % STRINGS.len()].to_owned(),
            Self::Any(s) => s.clone(),
        }
    }
}

impl Json {
    /// The value, nested at most `depth` deep (deeper parts are `null`).
    pub fn render(&self, depth: usize) -> Value {
        if depth == 0 {
            return Value::Null;
        }
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::Unsigned(u) => Value::from(*u),
            Self::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Text(t) => Value::String(t.render()),
            Self::Array(items) => Value::Array(items.iter().map(|i| i.render(depth - 1)).collect()),
            Self::Object(members) => Value::Object(object(members, depth)),
        }
    }
}

fn object(members: &[(Text, Json)], depth: usize) -> Map<String, Value> {
    members.iter().map(|(k, v)| (k.render(), v.render(depth - 1))).collect()
}

/// Edits to a JSON object that starts out right: the fuzzer removes, replaces or adds members.
#[derive(Arbitrary, Debug, Clone)]
pub enum Edit {
    Remove(Text),
    Set(Text, Json),
    /// The member becomes a string of itself (a number sent as text, and so on).
    Stringify(Text),
}

/// Applies `edits` to `object`.
pub fn apply(object: &mut Map<String, Value>, edits: &[Edit]) {
    for edit in edits {
        match edit {
            Edit::Remove(name) => {
                object.remove(&name.render());
            }
            Edit::Set(name, value) => {
                object.insert(name.render(), value.render(6));
            }
            Edit::Stringify(name) => {
                let name = name.render();
                if let Some(value) = object.get(&name).cloned() {
                    let text = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    object.insert(name, Value::String(text));
                }
            }
        }
    }
}

/// The text an edit writes (what the fuzzer put in, as opposed to what it kept).
pub fn written(edits: &[Edit]) -> Vec<u8> {
    let mut text = Vec::new();
    for edit in edits {
        if let Edit::Set(name, value) = edit {
            text.extend_from_slice(name.render().as_bytes());
            text.push(b' ');
            text.extend_from_slice(value.render(6).to_string().as_bytes());
            text.push(b' ');
        }
    }
    text
}

/// An arbitrary value of `T`, or its default when the data has run out.
pub fn take<'a, T: Arbitrary<'a> + Default>(u: &mut Unstructured<'a>) -> T {
    T::arbitrary(u).unwrap_or_default()
}
