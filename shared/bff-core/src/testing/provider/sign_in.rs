//! The scripted provider's front channel: a user signing in at the authorization endpoint, and
//! the logout tokens it sends on the back channel.
#![allow(clippy::disallowed_methods)] // the scripted provider parses the URLs the backend built

use jwt_simple::prelude::*;
use serde_json::{Map, json};

use super::{CLIENT_ID, ClaimsEdit, Code, Grant, ISSUER, ScriptedProvider};
use crate::ports::Clock;

impl ScriptedProvider {
    /// The user signs in at the authorization endpoint: from the backend's authorization URL,
    /// the path and query of the redirect back (`code`, `state`, `iss`). Panics where
    /// [`ScriptedProvider::try_authorize`] refuses.
    pub fn authorize(&self, authorization_url: &str, user: &str) -> String {
        self.try_authorize(authorization_url, user)
            .unwrap_or_else(|why| panic!("the authorization endpoint refused: {why}"))
    }

    /// [`ScriptedProvider::authorize`], or why the authorization endpoint refuses the request: a
    /// `request_uri` that is unknown, used, expired or not alone with `client_id`, or a plain
    /// request where pushed ones are required (RFC 9126 §4, §5).
    pub fn try_authorize(&self, authorization_url: &str, user: &str) -> Result<String, String> {
        let url = url::Url::parse(authorization_url).map_err(|e| format!("authorization URL: {e}"))?;
        let mut state = self.state();
        let query = url.query_pairs().into_owned().collect();
        let params = state.resolve(query, self.clock.now().0).inspect_err(|why| {
            state.refusals.push(why.clone());
        })?;
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let resources = params
            .iter()
            .filter(|(k, _)| k == "resource")
            .map(|(_, v)| v.clone())
            .collect();
        let redirect =
            url::Url::parse(&param("redirect_uri").unwrap_or_default()).map_err(|e| format!("redirect_uri: {e}"))?;
        state.issued += 1;
        let n = state.issued;
        let code = format!("code-{n}");
        state.grants.push(Grant {
            sub: user.to_owned(),
            sid: format!("sid-{user}-{n}"),
            auth_time: self.clock.now().0,
            scope: param("scope").unwrap_or_default(),
            resources,
            revoked: false,
        });
        let grant = state.grants.len() - 1;
        state.codes.insert(
            code.clone(),
            Code {
                grant,
                nonce: param("nonce").unwrap_or_default(),
                challenge: param("code_challenge").unwrap_or_default(),
            },
        );
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &param("state").unwrap_or_default())
            .append_pair("iss", ISSUER)
            .finish();
        Ok(format!("{}?{query}", redirect.path()))
    }

    /// A signed logout token (Back-Channel Logout 1.0 §2.4) for `sub` and/or `sid`.
    pub fn logout_token(&self, sub: Option<&str>, sid: Option<&str>, jti: &str, iat: u64) -> String {
        self.logout_token_with(sub, sid, jti, iat, |_| {})
    }

    /// [`ScriptedProvider::logout_token`] with its claims rewritten by `edit` before signing.
    pub fn logout_token_with(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
        jti: &str,
        iat: u64,
        edit: ClaimsEdit,
    ) -> String {
        let mut custom = Map::new();
        custom.insert(
            "events".into(),
            json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
        );
        if let Some(sid) = sid {
            custom.insert("sid".into(), json!(sid));
        }
        let mut claims = JWTClaims {
            issued_at: Some(UnixTimeStamp::from_secs(iat)),
            expires_at: Some(UnixTimeStamp::from_secs(iat + 120)),
            invalid_before: None,
            issuer: Some(ISSUER.into()),
            subject: sub.map(str::to_owned),
            audiences: Some(Audiences::AsString(CLIENT_ID.into())),
            jwt_id: Some(jti.into()),
            nonce: None,
            custom,
        };
        edit(&mut claims);
        let state = self.state();
        state.keys[state.signing].sign(claims).unwrap_or_default()
    }

    /// The `sid` of the newest sign-in of `user`.
    pub fn sid_of(&self, user: &str) -> Option<String> {
        self.state()
            .grants
            .iter()
            .rev()
            .find(|g| g.sub == user)
            .map(|g| g.sid.clone())
    }
}
