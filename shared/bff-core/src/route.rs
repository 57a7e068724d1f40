//! (method, path) → the endpoint, under the base path `B` (http-api.md: Endpoints).

use http::Method;

/// The endpoints, in the order of http-api.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Token,
    SessionInfo,
    Configuration,
    Login,
    Callback,
    Logout,
    BackchannelLogout,
}

/// Why no route matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// A known path with another method; carries the `Allow` value.
    Method(&'static str),
    NotFound,
}

impl Route {
    /// Whether the route needs the CSRF checks (http-api.md: Rules for every request): every JSON endpoint a page calls
    /// with the session, not the navigations, the metadata or the provider's back channel.
    pub(crate) fn needs_csrf(self) -> bool {
        matches!(self, Self::Token | Self::SessionInfo | Self::Logout)
    }

    /// The route's name in log lines (http-api.md: Logs).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Token => "bff-token",
            Self::SessionInfo => "bff-sessioninfo",
            Self::Configuration => "bff-configuration",
            Self::Login => "login",
            Self::Callback => "callback",
            Self::Logout => "logout",
            Self::BackchannelLogout => "backchannel-logout",
        }
    }

    /// Resolves `path` (without query) under `base`.
    pub(crate) fn resolve(method: &Method, path: &str, base: &str) -> Result<Self, Miss> {
        let Some(rest) = path.strip_prefix(base) else {
            return Err(Miss::NotFound);
        };
        let (route, allow): (Self, &'static str) = match rest {
            "/.well-known/bff-token" => (Self::Token, "GET, POST"),
            "/.well-known/bff-sessioninfo" => (Self::SessionInfo, "GET"),
            "/.well-known/bff-configuration" => (Self::Configuration, "GET"),
            "/bff/login" => (Self::Login, "GET"),
            "/bff/callback" => (Self::Callback, "GET"),
            "/bff/logout" => (Self::Logout, "POST"),
            "/bff/backchannel-logout" => (Self::BackchannelLogout, "POST"),
            _ => return Err(Miss::NotFound),
        };
        let allowed = match route {
            Self::Token => *method == Method::GET || *method == Method::POST,
            Self::Logout | Self::BackchannelLogout => *method == Method::POST,
            _ => *method == Method::GET,
        };
        if allowed { Ok(route) } else { Err(Miss::Method(allow)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let get = Method::GET;
        assert_eq!(Route::resolve(&get, "/.well-known/bff-token", ""), Ok(Route::Token));
        assert_eq!(
            Route::resolve(&Method::POST, "/.well-known/bff-token", ""),
            Ok(Route::Token)
        );
        assert_eq!(Route::resolve(&get, "/app/bff/login", "/app"), Ok(Route::Login));
        assert_eq!(Route::resolve(&get, "/bff/login", "/app"), Err(Miss::NotFound));
        assert_eq!(Route::resolve(&get, "/appx/bff/login", "/app"), Err(Miss::NotFound));
        assert_eq!(
            Route::resolve(&Method::OPTIONS, "/.well-known/bff-token", ""),
            Err(Miss::Method("GET, POST"))
        );
        assert_eq!(Route::resolve(&get, "/bff/logout", ""), Err(Miss::Method("POST")));
        assert_eq!(Route::resolve(&get, "/nope", ""), Err(Miss::NotFound));
        assert_eq!(
            Route::resolve(&Method::POST, "/bff/backchannel-logout", ""),
            Ok(Route::BackchannelLogout)
        );
    }
}
