//! The scripted provider's front channel: a user signing in at the authorization endpoint, and
//! the logout tokens it sends on the back channel.
#![allow(clippy::disallowed_methods)] // the scripted provider parses the URLs the backend built

use jwt_simple::prelude::*;
use serde_json::{Map, json};

use super::{CLIENT_ID, ClaimsEdit, Code, Grant, ISSUER, ScriptedProvider};
use crate::ports::Clock;

impl ScriptedProvider {
    /// The user signs in at the authorization endpoint: from the backend's authorization URL,
    /// the path and query of the redirect back (`code`, `state`, `iss`).
    pub fn authorize(&self, authorization_url: &str, user: &str) -> String {
        let url = url::Url::parse(authorization_url).unwrap_or_else(|e| panic!("authorization URL: {e}"));
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let resources = url
            .query_pairs()
            .filter(|(k, _)| k == "resource")
            .map(|(_, v)| v.into_owned())
            .collect();
        let redirect =
            url::Url::parse(&param("redirect_uri").unwrap_or_default()).unwrap_or_else(|e| panic!("redirect_uri: {e}"));
        let mut state = self.state();
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
        format!("{}?{query}", redirect.path())
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
