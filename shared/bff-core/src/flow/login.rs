//! `GET B/bff/login`: start the authorization code flow (http-api.md: login; RFC 6749 §4.1.1,
//! RFC 7636, OpenID Connect Core §3.1.2.1, RFC 8707), pushing the request first where the issuer
//! offers it (RFC 9126).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Response;
use url::Url;

use crate::config::Config;
use crate::cookie::{SameSite, SetCookie};
use crate::ctx::Ctx;
use crate::error::PageError;
use crate::flow::{dpop_offered, query, single};
use crate::oidc::par::{self, Misconfigured};
use crate::oidc::{dpop, pkce, token};
use crate::ports::{HttpClient, KvStore, Level, RandomError, SecureRandom};
use crate::provider;
use crate::response;
use crate::session::LoginTxn;
use crate::session_cookie::{self, TXN_COOKIE_PREFIX};
use crate::session_store;
use crate::urls::{is_local_path, is_resource_uri, parse_url};

/// At most this many login transactions exist at a time (several tabs may log in at once).
const MAX_TXNS: usize = 5;
/// All transaction cookies together stay within this many bytes: a cross-site navigation can
/// plant them (`SameSite=Lax`) for 10 minutes, and beside a full session they must not push a
/// request past API Gateway's 10,240-byte header limit.
const TXN_BUDGET: usize = 2500;
const MAX_RETURN_TO: usize = 1024;
const MAX_RESOURCES: usize = 10;
const MAX_RESOURCE_LEN: usize = 512;
const MAX_EXTRA_SCOPE: usize = 1024;
/// OpenID Connect Core §3.1.2.1 `prompt` values.
const PROMPTS: &[&str] = &["none", "login", "consent", "select_account"];

pub(crate) async fn login<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Response<Vec<u8>> {
    let login_path = ctx.login_path();
    match start(ctx).await {
        Ok(response) => response,
        Err(error) => error.into_response(&login_path),
    }
}

async fn start<H: HttpClient, K: KvStore>(ctx: &Ctx<'_, H, K>) -> Result<Response<Vec<u8>>, PageError> {
    let config = ctx.config;
    if config.dpop && !same_origin_navigation(ctx) {
        return Err(PageError::BadRequest(
            "This sign-in must start from this site's own pages (browser-bound tokens).",
        ));
    }
    let params = query(ctx.parts);
    let request = LoginRequest::parse(config, &params)?;
    let metadata = ctx.provider.metadata(config, ctx.deps).await?;
    if let Err(error) = dpop_offered(ctx, &metadata) {
        return Ok(error.into_response());
    }
    let push_endpoint = par::push_endpoint(config.par, &metadata).map_err(|Misconfigured(why)| {
        ctx.deps.log.line(Level::Error, why);
        PageError::ServerError
    })?;
    // A push is an authenticated call to the provider, billed to this client: only a page load
    // may cause one, never an <img> or a fetch that any other site can make visitors' browsers
    // send in bulk (RFC 9126 §7.1). Without Fetch Metadata (old browsers, scripts) it is allowed.
    if push_endpoint.is_some() && !top_level_navigation(ctx) {
        return Err(PageError::BadRequest("This sign-in must be opened as a page."));
    }
    let authorization_endpoint = parse_url(&metadata.authorization_endpoint).ok_or(PageError::Unavailable)?;
    let (scope, resources) = grant_wanted(ctx, &request).await;
    let random = ctx.deps.random;
    let txn = LoginTxn {
        state: random_string(random, 16)?,
        nonce: random_string(random, 16)?,
        verifier: random_string(random, 32)?,
        return_to: request.return_to,
        created: ctx.now.0,
        scope,
        resources,
        dpop_jkt: request.dpop_jkt.map(str::to_owned),
    };
    let params = authorization_params(config, &txn, request.prompt);
    let new_txn = session_cookie::seal_txn(&txn, config, random)?;
    if new_txn.size() > TXN_BUDGET {
        return Err(PageError::BadRequest(
            "This sign-in asks for too much at once (return_to, scope and resource together).",
        ));
    }
    // Pushed only once the transaction is known to fit: a failed push sets no cookie.
    let url = match push_endpoint {
        Some(endpoint) => push(ctx, endpoint, authorization_endpoint, &params).await?,
        None => {
            let mut url = authorization_endpoint;
            url.query_pairs_mut().extend_pairs(&params);
            url
        }
    };
    let mut cookies = prune_txns(ctx, new_txn.size());
    cookies.push(new_txn);
    Ok(response::with_cookies(response::redirect(url.as_str()), &cookies))
}

/// What `login` was asked for, each part checked and bounded: another site can start a login
/// with a navigation, and what it asks for is sealed into a cookie (http-api.md: login).
struct LoginRequest<'a> {
    return_to: String,
    prompt: Option<&'a str>,
    scopes: Vec<&'a str>,
    resources: Vec<&'a str>,
    /// The browser's DPoP key thumbprint, in DPoP mode.
    dpop_jkt: Option<&'a str>,
}

impl<'a> LoginRequest<'a> {
    fn parse(config: &Config, params: &'a [(String, String)]) -> Result<Self, PageError> {
        let return_to = match single(params, "return_to") {
            Ok(Some(path)) if is_local_path(path) && path.len() <= MAX_RETURN_TO => path.to_owned(),
            Ok(None) => format!("{}/", config.base_path),
            _ => return Err(PageError::BadRequest("return_to must be a path on this site.")),
        };
        let Ok(prompt) = single(params, "prompt") else {
            return Err(PageError::BadRequest("prompt may be given once."));
        };
        if prompt.is_some_and(|p| !prompt_allowed(config, p)) {
            return Err(PageError::BadRequest(
                "prompt must be none, login, consent or select_account.",
            ));
        }
        let all = |name: &str| {
            params
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        let resources = all("resource");
        let bad_resource = |r: &&str| r.len() > MAX_RESOURCE_LEN || !is_resource_uri(r);
        if resources.len() > MAX_RESOURCES || resources.iter().any(bad_resource) {
            return Err(PageError::BadRequest(
                "resource must be at most 10 absolute URIs without a fragment, each at most 512 bytes.",
            ));
        }
        // Pinned in the session, never sent to the authorization server: its RFC 9449 §10 code
        // binding would want a proof on the code exchange, which the browser is not part of.
        let dpop_jkt = match single(params, "dpop_jkt") {
            _ if !config.dpop => None,
            Ok(Some(jkt)) if dpop::is_thumbprint(jkt) => Some(jkt),
            _ => {
                return Err(PageError::BadRequest(
                    "This sign-in needs the thumbprint of the browser's DPoP key (dpop_jkt), once.",
                ));
            }
        };
        let scopes = all("scope");
        if scopes.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_EXTRA_SCOPE + 1 {
            return Err(PageError::BadRequest("scope may be at most 1024 bytes."));
        }
        Ok(Self {
            return_to,
            prompt,
            scopes,
            resources,
            dpop_jkt,
        })
    }
}

/// The scope and resources to ask for: the configured ones, what the session already has, and
/// what is new. An incremental login asks for the union, so no earlier grant is lost (http-api.md
/// §2.2 `backend_not_ready`); the session cookie is visible here, in a same-site navigation.
async fn grant_wanted<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    request: &LoginRequest<'_>,
) -> (String, Vec<String>) {
    let config = ctx.config;
    let existing = match session_store::load(ctx).await {
        Ok(session_store::Lookup::Found(loaded)) => Some(loaded.session),
        _ => None,
    };
    let mut scopes: Vec<String> = config.scopes.clone();
    let granted = existing.as_ref().map(|s| s.scope.as_str()).unwrap_or_default();
    let extra = request.scopes.iter().flat_map(|s| s.split_whitespace());
    for scope in granted.split_whitespace().chain(extra) {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    let mut resources: Vec<String> = config.default_resource.iter().cloned().collect();
    let previous = existing.iter().flat_map(|s| s.resources.iter().map(String::as_str));
    for resource in previous.chain(request.resources.iter().copied()) {
        if !resources.iter().any(|r| r == resource) {
            resources.push(resource.to_owned());
        }
    }
    (scopes.join(" "), resources)
}

/// The authorization request's parameters (RFC 6749 §4.1.1, RFC 7636 §4.3, OpenID Connect Core
/// §3.1.2.1, RFC 8707 §2), for the URL or for the push; a `prompt` of the request replaces a
/// configured one.
fn authorization_params<'a>(config: &'a Config, txn: &LoginTxn, prompt: Option<&str>) -> Vec<(&'a str, String)> {
    let mut params = vec![
        ("response_type", "code".to_owned()),
        ("client_id", config.client_id.clone()),
        ("redirect_uri", config.redirect_uri()),
        ("scope", txn.scope.clone()),
        ("state", txn.state.clone()),
        ("nonce", txn.nonce.clone()),
        ("code_challenge", pkce::challenge(&txn.verifier)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    params.extend(txn.resources.iter().map(|resource| ("resource", resource.clone())));
    for (name, value) in &config.authorization_params {
        if !(name == "prompt" && prompt.is_some()) {
            params.push((name.as_str(), value.clone()));
        }
    }
    if let Some(prompt) = prompt {
        params.push(("prompt", prompt.to_owned()));
    }
    params
}

/// RFC 9126 §2: pushes `params` to `endpoint` with client authentication and returns the
/// front-channel URL that names the pushed request (§4). An OAuth error is the provider refusing
/// this request, shown as the callback shows one from the authorization endpoint (400 page), or
/// the deployment's credentials (500 page); any other failure is the provider being unusable
/// right now (503, try again). Each way one log line says what happened, never with a secret or
/// the body.
async fn push<H: HttpClient, K: KvStore>(
    ctx: &Ctx<'_, H, K>,
    endpoint: &str,
    authorization_endpoint: Url,
    params: &[(&str, String)],
) -> Result<Url, PageError> {
    let config = ctx.config;
    // §2: the PAR endpoint accepts the issuer identifier as the assertion's audience, as the token
    // endpoint does (RFC 7523 §3), so one kind of assertion serves both.
    let assertion = token::client_assertion(config, ctx.signatures, ctx.now, ctx.deps.random, ctx.deps.log).await?;
    let request = par::push_request(config, endpoint, params, assertion.as_deref());
    // A transport failure or an oversized body is logged by `send` itself.
    let response = provider::send(ctx.deps, config, request).await?;
    let pushed = par::parse_push_response(&response).map_err(|failure| {
        let line = format!("pushed authorization request failed: {failure}");
        match failure.refusal() {
            // The deployment's credentials, not the user's request: an operator must act.
            Some((error, _)) if error == "invalid_client" || error == "unauthorized_client" => {
                let hint = "check BFF_CLIENT_ID and the client credentials";
                ctx.deps.log.line(Level::Error, &format!("{line}: {hint}"));
                PageError::ServerError
            }
            Some((error, description)) => {
                ctx.deps.log.line(Level::Warn, &line);
                PageError::Provider { error, description }
            }
            None => {
                ctx.deps.log.line(Level::Warn, &line);
                PageError::Unavailable
            }
        }
    })?;
    Ok(par::authorization_redirect(
        authorization_endpoint,
        &config.client_id,
        &pushed.request_uri,
    ))
}

/// Whether the login is a top-level navigation from this origin's own pages (Fetch Metadata).
/// In DPoP mode the login pins the key named in `dpop_jkt`: a login another site starts (or a
/// hidden frame, even of this site) could otherwise pin a key of the attacker's choosing to the
/// user's next session. Browsers that sign proofs with non-extractable keys all send these headers.
fn same_origin_navigation<H, K>(ctx: &Ctx<'_, H, K>) -> bool {
    let header = |name: &str| ctx.parts.headers.get(name).map(|v| v.as_bytes());
    header("sec-fetch-site") == Some(b"same-origin") && header("sec-fetch-dest").is_none_or(|d| d == b"document")
}

/// Whether the request loads a page, as far as Fetch Metadata says: a browser's `<img>`, frame
/// or `fetch()` names another destination (an `<img>` "image", a `fetch()` "empty"). Only the
/// destination is read: a non-browser client (Node's fetch says `Sec-Fetch-Mode: cors` and no
/// destination) is not what this guards against.
fn top_level_navigation<H, K>(ctx: &Ctx<'_, H, K>) -> bool {
    let header = |name: &str| ctx.parts.headers.get(name).map(|v| v.as_bytes());
    header("sec-fetch-dest").is_none_or(|d| d == b"document")
}

/// Whether `prompt` is a space-separated list of OpenID Connect values, or the configured one.
fn prompt_allowed(config: &Config, prompt: &str) -> bool {
    let configured = config
        .authorization_params
        .iter()
        .any(|(name, value)| name == "prompt" && value == prompt);
    configured || (!prompt.is_empty() && prompt.split(' ').all(|p| PROMPTS.contains(&p)))
}

/// Deletes transaction cookies that do not open (or are sent twice), then the oldest ones until
/// a new one of `new_size` bytes fits under [`MAX_TXNS`] and [`TXN_BUDGET`].
fn prune_txns<H, K>(ctx: &Ctx<'_, H, K>, new_size: usize) -> Vec<SetCookie> {
    let mut deletes = Vec::new();
    let mut live: Vec<(u64, &str, usize)> = Vec::new();
    for (name, value) in ctx.cookies.with_prefix(TXN_COOKIE_PREFIX) {
        match value.map(|v| (v, session_cookie::open_txn(v, ctx.config, ctx.now))) {
            Some((value, Ok(txn))) => live.push((txn.created, name, name.len() + 1 + value.len())),
            _ => deletes.push(SetCookie::delete(name, SameSite::Lax)),
        }
    }
    // Newest first; keep while both limits hold, delete the rest (the oldest). Creation times are
    // whole seconds: among equals, the browser's order (older first) decides, so the sort is stable.
    live.sort_by_key(|t| t.0);
    let mut kept = (1, new_size);
    for (_, name, size) in live.into_iter().rev() {
        if kept.0 < MAX_TXNS && kept.1 + size <= TXN_BUDGET {
            kept = (kept.0 + 1, kept.1 + size);
        } else {
            deletes.push(SetCookie::delete(name, SameSite::Lax));
        }
    }
    deletes
}

/// `count` random bytes as base64url: state and nonce get 128 bits, the PKCE verifier 256 bits
/// (43 characters, RFC 7636 §4.1).
fn random_string(random: &dyn SecureRandom, count: usize) -> Result<String, RandomError> {
    let mut bytes = vec![0u8; count];
    random.fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}
