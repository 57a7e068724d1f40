//! The scripted provider's pushed authorization requests (RFC 9126): the `/par` endpoint with
//! client authentication, and the authorization endpoint's side, which resolves a `request_uri`
//! once, within its 60 seconds, and refuses anything mixed in with it.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jwt_simple::prelude::*;
use serde_json::json;

use super::wire::{header, reply};
use super::{CLIENT_ID, CLIENT_SECRET, ISSUER, ParPolicy, State};

/// A pushed request is good this long (RFC 9126 §2.2 suggests 5 to 600 seconds).
const LIFETIME: u64 = 60;
/// RFC 7523 §2.2.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The parameters that authenticate the client; they are not part of the authorization request.
const AUTHENTICATION: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];

/// A pushed authorization request, kept under its `request_uri`.
pub(super) struct Pushed {
    params: Vec<(String, String)>,
    expires: u64,
}

impl State {
    /// `POST /par` (RFC 9126 §2).
    pub(super) fn push(&mut self, request: &http::Request<Vec<u8>>, now: u64) -> http::Response<Vec<u8>> {
        let error = |status: u16, code: &str| reply(status, json!({ "error": code }).to_string().into_bytes());
        let form: Vec<(String, String)> = url::form_urlencoded::parse(request.body()).into_owned().collect();
        if let Err(why) = self.authenticate(request, &form, now) {
            self.refusals.push(why);
            return error(401, "invalid_client");
        }
        let mut seen = HashSet::new();
        let repeated = form
            .iter()
            .any(|(name, _)| name != "resource" && !seen.insert(name.as_str()));
        // §2.1: a pushed request cannot itself point at another one.
        if repeated || seen.contains("request_uri") || seen.contains("request") {
            self.refusals
                .push("a parameter repeated, or request_uri or request pushed".into());
            return error(400, "invalid_request");
        }
        let params: Vec<(String, String)> = form
            .into_iter()
            .filter(|(name, _)| !AUTHENTICATION.contains(&name.as_str()))
            .collect();
        self.pushes.push(params.clone());
        self.issued += 1;
        let request_uri = format!("urn:ietf:params:oauth:request_uri:pushed-{}", self.issued);
        self.pushed.insert(
            request_uri.clone(),
            Pushed {
                params,
                expires: now + LIFETIME,
            },
        );
        let mut body = json!({ "request_uri": request_uri, "expires_in": LIFETIME });
        if let (Some(edit), Some(object)) = (self.par_edit, body.as_object_mut()) {
            edit(object);
        }
        reply(201, body.to_string().into_bytes())
    }

    /// Exactly one client authentication method, and it must hold (RFC 6749 §2.3, RFC 7523 §3,
    /// RFC 9126 §2: the issuer identifier is a good audience for an assertion).
    fn authenticate(
        &mut self,
        request: &http::Request<Vec<u8>>,
        form: &[(String, String)],
        now: u64,
    ) -> Result<(), String> {
        let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if get("client_id") != Some(CLIENT_ID) {
            return Err(format!("client_id is {:?}", get("client_id")));
        }
        let basic = header(request, "authorization").and_then(|h| h.strip_prefix("Basic "));
        match (
            basic,
            get("client_secret"),
            get("client_assertion_type"),
            get("client_assertion"),
        ) {
            (Some(credentials), None, None, None) => {
                let decoded = STANDARD.decode(credentials).map_err(|_| "Basic is not base64")?;
                let expected = format!("{CLIENT_ID}:{CLIENT_SECRET}");
                if decoded != expected.as_bytes() {
                    return Err("wrong Basic credentials".into());
                }
                Ok(())
            }
            (None, Some(secret), None, None) if secret == CLIENT_SECRET => Ok(()),
            (None, None, Some(JWT_BEARER), Some(assertion)) => {
                let key = self.client_key.as_ref().ok_or("no client key registered")?;
                let options = VerificationOptions {
                    artificial_time: Some(UnixTimeStamp::from_secs(now)),
                    time_tolerance: Some(Duration::from_secs(0)),
                    allowed_issuers: Some(HashSet::from([CLIENT_ID.to_owned()])),
                    allowed_audiences: Some(HashSet::from([ISSUER.to_owned()])),
                    required_subject: Some(CLIENT_ID.to_owned()),
                    ..Default::default()
                };
                let claims = key
                    .verify_token::<NoCustomClaims>(assertion, Some(options))
                    .map_err(|e| format!("client assertion: {e}"))?;
                let jti = claims.jwt_id.ok_or("client assertion without jti")?;
                if !self.assertion_ids.insert(jti) {
                    return Err("client assertion replayed".into());
                }
                Ok(())
            }
            _ => Err("not exactly one valid client authentication".into()),
        }
    }

    /// The authorization request the URL's `query` stands for: itself, or the pushed request its
    /// `request_uri` names (RFC 9126 §4), used up by this.
    pub(super) fn resolve(&mut self, query: Vec<(String, String)>, now: u64) -> Result<Vec<(String, String)>, String> {
        let Some((_, request_uri)) = query.iter().find(|(name, _)| name == "request_uri") else {
            if self.par == ParPolicy::Required {
                return Err("this client must push its authorization requests".into());
            }
            return Ok(query);
        };
        if self.par == ParPolicy::Off {
            return Err("request_uri is not supported".into());
        }
        let names: Vec<&str> = query.iter().map(|(name, _)| name.as_str()).collect();
        if names.len() != 2 || !names.contains(&"client_id") {
            return Err(format!(
                "a pushed request is named by client_id and request_uri only, not {names:?}"
            ));
        }
        let pushed = self
            .pushed
            .remove(request_uri)
            .ok_or("request_uri unknown or already used")?;
        if now >= pushed.expires {
            return Err("request_uri expired".into());
        }
        let client = |params: &[(String, String)]| {
            params
                .iter()
                .find(|(name, _)| name == "client_id")
                .map(|(_, id)| id.clone())
        };
        if client(&query) != client(&pushed.params) {
            return Err("client_id differs from the pushed request's".into());
        }
        Ok(pushed.params)
    }
}
