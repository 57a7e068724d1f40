//! The scripted provider's token endpoint: the authorization code grant with PKCE, and refresh
//! grants that rotate, omit or echo the refresh token and revoke a grant on reuse.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::wire::{form, header, reply};
use super::{CLIENT_ID, DpopPolicy, ISSUER, RefreshPolicy, State};
use crate::oidc::id_token::unverified_claim;

impl State {
    pub(super) fn token(&mut self, request: &http::Request<Vec<u8>>, now: u64) -> http::Response<Vec<u8>> {
        let proof = header(request, "dpop").map(str::to_owned);
        let mut response = self.grant(request.body(), proof.as_deref(), now);
        if let DpopPolicy::Nonce(nonce) = self.dpop {
            response
                .headers_mut()
                .insert("dpop-nonce", http::HeaderValue::from_static(nonce));
        }
        response
    }

    fn grant(&mut self, body: &[u8], proof: Option<&str>, now: u64) -> http::Response<Vec<u8>> {
        let form = form(body);
        let get = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        let error = |code: &str| reply(400, json!({ "error": code }).to_string().into_bytes());
        let bound = match (self.dpop, proof) {
            (DpopPolicy::NotOffered, _) | (_, None) => false,
            (DpopPolicy::Offered, Some(proof)) => {
                self.dpop_proofs.push(proof.to_owned());
                true
            }
            (DpopPolicy::Nonce(nonce), Some(proof)) => {
                self.dpop_proofs.push(proof.to_owned());
                if unverified_claim(proof, "nonce")
                    .and_then(|n| n.as_str().map(str::to_owned))
                    .as_deref()
                    != Some(nonce)
                {
                    return error("use_dpop_nonce");
                }
                true
            }
        };
        match get("grant_type") {
            "authorization_code" => {
                let Some(code) = self.codes.remove(get("code")) else {
                    return error("invalid_grant");
                };
                let verifier_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
                if verifier_hash != code.challenge {
                    return error("invalid_grant");
                }
                let scope = self.grants[code.grant].scope.clone();
                self.issue(code.grant, Some(&code.nonce), &scope, None, bound, now)
            }
            "refresh_token" => {
                let presented = get("refresh_token").to_owned();
                let Some((grant, usable)) = self.refresh_tokens.get(&presented).copied() else {
                    return error("invalid_grant");
                };
                if !usable {
                    // Reuse of a rotated token: the whole grant is revoked (RFC 9700 §4.14.2).
                    self.reuse_detected += 1;
                    self.grants[grant].revoked = true;
                    return error("invalid_grant");
                }
                if self.grants[grant].revoked {
                    return error("invalid_grant");
                }
                let granted = self.grants[grant].scope.clone();
                let scope = form.get("scope").cloned().unwrap_or_else(|| granted.clone());
                if !scope.split(' ').all(|s| granted.split(' ').any(|g| g == s)) {
                    return error("invalid_scope");
                }
                if let Some(resource) = form.get("resource")
                    && !self.grants[grant].resources.contains(resource)
                {
                    return error("invalid_target");
                }
                self.refreshes += 1;
                let keep = match self.policy {
                    RefreshPolicy::Rotate => {
                        self.refresh_tokens.insert(presented, (grant, false));
                        None
                    }
                    RefreshPolicy::Omit | RefreshPolicy::Echo => Some(presented),
                };
                let mut response = self.issue(grant, None, &scope, keep.as_deref(), bound, now);
                if self.policy == RefreshPolicy::Omit {
                    let mut body: Map<String, Value> = serde_json::from_slice(response.body()).unwrap_or_default();
                    body.remove("refresh_token");
                    *response.body_mut() = Value::Object(body).to_string().into_bytes();
                }
                response
            }
            _ => error("unsupported_grant_type"),
        }
    }

    /// A token response for `grant`; `keep` is the refresh token to answer with instead of a new one.
    fn issue(
        &mut self,
        grant: usize,
        nonce: Option<&str>,
        scope: &str,
        keep: Option<&str>,
        bound: bool,
        now: u64,
    ) -> http::Response<Vec<u8>> {
        self.issued += 1;
        let n = self.issued;
        let refresh_token = match keep {
            Some(token) => token.to_owned(),
            None => {
                let token = format!("rt-{n}");
                self.refresh_tokens.insert(token.clone(), (grant, true));
                token
            }
        };
        let g = &self.grants[grant];
        let mut custom = Map::new();
        custom.insert("sid".into(), json!(g.sid));
        custom.insert("auth_time".into(), json!(g.auth_time));
        custom.insert("name".into(), json!(format!("User {}", g.sub)));
        custom.insert("email".into(), json!(format!("{}@example.com", g.sub)));
        let mut claims = JWTClaims {
            issued_at: Some(UnixTimeStamp::from_secs(now)),
            expires_at: Some(UnixTimeStamp::from_secs(now + 300)),
            invalid_before: None,
            issuer: Some(ISSUER.into()),
            subject: Some(g.sub.clone()),
            audiences: Some(Audiences::AsString(CLIENT_ID.into())),
            jwt_id: None,
            nonce: nonce.map(str::to_owned),
            custom,
        };
        let edit = if nonce.is_none() {
            self.refresh_claims
        } else {
            self.code_claims
        };
        if let Some(edit) = edit {
            edit(&mut claims);
        }
        let id_token = self.keys[self.signing].sign(claims).unwrap_or_default();
        let mut body = json!({
            "access_token": format!("at-{n}"),
            "token_type": if bound { "DPoP" } else { "Bearer" },
            "id_token": id_token,
            "scope": scope,
        });
        // A code exchange yields a refresh token when `offline_access` was asked for; a refresh
        // (no nonce) keeps yielding one whatever narrower scope it asked for, since the grant
        // still has offline access (RFC 6749 §6: a rotated token is always handed out).
        let offline = if nonce.is_some() { scope } else { g.scope.as_str() };
        if offline.split(' ').any(|s| s == "offline_access") {
            body["refresh_token"] = json!(refresh_token);
        }
        if let Some(expires_in) = &self.expires_in {
            body["expires_in"] = expires_in.clone();
        }
        if let (Some(edit), Some(object)) = (self.token_edit, body.as_object_mut()) {
            edit(object);
        }
        reply(200, body.to_string().into_bytes())
    }
}
