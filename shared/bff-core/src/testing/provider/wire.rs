//! What the scripted provider sends: its metadata, its keys, and answers.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde_json::{Value, json};

use super::{ISSUER, ParPolicy};

pub(super) fn discovery(dpop: bool, par: ParPolicy) -> Value {
    let mut metadata = json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/authorize"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "userinfo_endpoint": format!("{ISSUER}/userinfo"),
        "revocation_endpoint": format!("{ISSUER}/revoke"),
        "end_session_endpoint": format!("{ISSUER}/logout"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "authorization_response_iss_parameter_supported": true,
    });
    if dpop {
        metadata["dpop_signing_alg_values_supported"] = json!(["ES256", "EdDSA"]);
    }
    if par != ParPolicy::Off {
        metadata["pushed_authorization_request_endpoint"] = json!(format!("{ISSUER}/par"));
        metadata["require_pushed_authorization_requests"] = json!(par == ParPolicy::Required);
    }
    metadata
}

pub(super) fn jwk(key: &ES256KeyPair) -> Value {
    let point = key.public_key().public_key().to_bytes_uncompressed();
    json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
        "kid": key.key_id().clone().unwrap_or_default(),
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    })
}

pub(super) fn reply(status: u16, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

pub(super) fn header<'a>(request: &'a http::Request<Vec<u8>>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}
