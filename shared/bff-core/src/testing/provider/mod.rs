//! `ScriptedProvider`: an authorization server in memory, served through the [`HttpClient`]
//! port. It signs real ES256 ID tokens and logout tokens, checks PKCE, rotates (or not) refresh
//! tokens and revokes a whole grant when a used refresh token comes back, as strict providers
//! do; it takes pushed authorization requests when told to; it counts what it was asked and can
//! be told to fail.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use jwt_simple::prelude::*;
use serde_json::{Map, Value, json};

use super::FixedClock;
use crate::ports::{Clock, HttpClient, HttpError};

mod par;
mod sign_in;
mod token_endpoint;
mod wire;

use wire::{discovery, form, header, jwk, reply};

/// Rewrites the claims of an ID token before it is signed.
pub type ClaimsEdit = fn(&mut JWTClaims<Map<String, Value>>);

/// Rewrites a JSON answer (a token response, a UserInfo answer) before it is sent.
pub type BodyEdit = fn(&mut Map<String, Value>);

/// The issuer every test configuration names.
pub const ISSUER: &str = "https://idp.example";
/// The client the backend is registered as.
pub const CLIENT_ID: &str = "bff";
/// The client's secret (`client_secret_basic` and `client_secret_post`).
pub const CLIENT_SECRET: &str = "s3cret";

/// The endpoints, for faults and counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`
    Discovery,
    /// `/jwks`
    Jwks,
    /// `/token`, every grant
    Token,
    /// `/userinfo`
    UserInfo,
    /// `/revoke`
    Revocation,
    /// `/par` (RFC 9126)
    Par,
}

/// How an endpoint fails until told otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The connection is refused.
    Refuse,
    /// No answer within the timeout.
    Hang,
    /// An HTTP status with an empty JSON object.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a body one byte over the backend's limit.
    Huge,
    /// An OAuth error answer (RFC 6749 §5.2) with this status and `error` code.
    OAuth(u16, &'static str),
}

impl Fault {
    /// Every fault, for tests that try each.
    pub const ALL: [Self; 5] = [Self::Refuse, Self::Hang, Self::Status(500), Self::Garbage, Self::Huge];
}

/// What the token endpoint does with DPoP proofs (RFC 9449).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpopPolicy {
    /// The metadata offers ES256; a request with a proof gets a bound token (`token_type: DPoP`).
    Offered,
    /// The metadata names no DPoP algorithm, and proofs are ignored.
    NotOffered,
    /// As `Offered`, and a proof without this nonce gets `use_dpop_nonce` with a `DPoP-Nonce`
    /// header (RFC 9449 §8); successful answers carry the header too.
    Nonce(&'static str),
}

/// Whether the provider takes pushed authorization requests (RFC 9126).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParPolicy {
    /// The metadata names no `/par` endpoint, and a `request_uri` at the authorization endpoint is
    /// refused.
    Off,
    /// `/par` is in the metadata; plain authorization requests work too.
    Offered,
    /// As `Offered`, and the metadata says `require_pushed_authorization_requests`: a plain
    /// authorization request is refused.
    Required,
}

/// What a refresh does with the refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// A new one on every use; the used one is dead, and presenting it again revokes the grant.
    Rotate,
    /// The same token stays valid; the response carries none.
    Omit,
    /// The same token stays valid; the response carries it again.
    Echo,
}

struct Grant {
    sub: String,
    sid: String,
    auth_time: u64,
    scope: String,
    resources: Vec<String>,
    revoked: bool,
}

struct Code {
    grant: usize,
    nonce: String,
    challenge: String,
}

struct State {
    keys: Vec<ES256KeyPair>,
    /// The key that signs; the JWKS lists keys `..=published`.
    signing: usize,
    published: usize,
    grants: Vec<Grant>,
    codes: HashMap<String, Code>,
    /// refresh token → (grant, still usable)
    refresh_tokens: HashMap<String, (usize, bool)>,
    policy: RefreshPolicy,
    /// `expires_in` as sent (any JSON, or absent).
    expires_in: Option<Value>,
    /// Rewrites the claims of ID tokens issued on refresh.
    refresh_claims: Option<ClaimsEdit>,
    /// Rewrites the claims of ID tokens issued for an authorization code.
    code_claims: Option<ClaimsEdit>,
    /// Rewrites successful token responses.
    token_edit: Option<BodyEdit>,
    /// Rewrites UserInfo answers.
    userinfo_edit: Option<BodyEdit>,
    faults: HashMap<Endpoint, Fault>,
    counts: HashMap<Endpoint, usize>,
    refreshes: usize,
    reuse_detected: usize,
    issued: u64,
    paused_ms: u64,
    dpop: DpopPolicy,
    /// Every `DPoP` header the token endpoint received, in order.
    dpop_proofs: Vec<String>,
    par: ParPolicy,
    /// Pushed requests not yet used, by `request_uri`.
    pushed: HashMap<String, par::Pushed>,
    /// Every accepted push's parameters (client authentication left out), in order.
    pushes: Vec<Vec<(String, String)>>,
    /// Why `/par` or the authorization endpoint refused a request, in order.
    refusals: Vec<String>,
    /// Rewrites successful push answers.
    par_edit: Option<BodyEdit>,
    /// The key `private_key_jwt` assertions must be signed with.
    client_key: Option<ES256PublicKey>,
    /// The `jti` of every client assertion accepted (each is good once).
    assertion_ids: HashSet<String>,
}

/// See the module documentation. Time comes from the shared [`FixedClock`]; waiting through
/// [`HttpClient::pause`] moves that clock, as real waiting would.
pub struct ScriptedProvider {
    clock: Arc<FixedClock>,
    state: Mutex<State>,
}

impl ScriptedProvider {
    /// A provider that rotates refresh tokens and issues 60 s access tokens.
    pub fn new(clock: Arc<FixedClock>) -> Self {
        let key = |seed: u8, kid: &str| {
            ES256KeyPair::from_bytes(&[seed; 32])
                .unwrap_or_else(|_| ES256KeyPair::generate())
                .with_key_id(kid)
        };
        Self {
            clock,
            state: Mutex::new(State {
                keys: vec![key(7, "k1"), key(9, "k2")],
                signing: 0,
                published: 0,
                grants: Vec::new(),
                codes: HashMap::new(),
                refresh_tokens: HashMap::new(),
                policy: RefreshPolicy::Rotate,
                expires_in: Some(json!(60)),
                refresh_claims: None,
                code_claims: None,
                token_edit: None,
                userinfo_edit: None,
                faults: HashMap::new(),
                counts: HashMap::new(),
                refreshes: 0,
                reuse_detected: 0,
                issued: 0,
                paused_ms: 0,
                dpop: DpopPolicy::Offered,
                dpop_proofs: Vec::new(),
                par: ParPolicy::Off,
                pushed: HashMap::new(),
                pushes: Vec::new(),
                refusals: Vec::new(),
                par_edit: None,
                client_key: None,
                assertion_ids: HashSet::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What refreshes do with the refresh token.
    pub fn set_refresh_policy(&self, policy: RefreshPolicy) {
        self.state().policy = policy;
    }

    /// `expires_in` of the next token responses, as JSON (`None`: left out).
    pub fn set_expires_in(&self, expires_in: Option<Value>) {
        self.state().expires_in = expires_in;
    }

    /// Rewrites the claims of ID tokens issued on refresh (`None`: as issued).
    pub fn set_refresh_claims(&self, edit: Option<ClaimsEdit>) {
        self.state().refresh_claims = edit;
    }

    /// Rewrites the claims of ID tokens issued for an authorization code (`None`: as issued),
    /// e.g. a wrong `nonce`.
    pub fn set_code_claims(&self, edit: Option<ClaimsEdit>) {
        self.state().code_claims = edit;
    }

    /// Rewrites the body of every successful token response (`None`: as issued), e.g. without
    /// an `id_token`.
    pub fn set_token_edit(&self, edit: Option<BodyEdit>) {
        self.state().token_edit = edit;
    }

    /// Rewrites the UserInfo answers (`None`: as issued), e.g. another `sub` or more claims.
    pub fn set_userinfo_edit(&self, edit: Option<BodyEdit>) {
        self.state().userinfo_edit = edit;
    }

    /// What the token endpoint does with DPoP proofs from now on.
    pub fn set_dpop(&self, policy: DpopPolicy) {
        self.state().dpop = policy;
    }

    /// Every `DPoP` header the token endpoint received, in order.
    pub fn dpop_proofs(&self) -> Vec<String> {
        self.state().dpop_proofs.clone()
    }

    /// Whether the provider takes pushed authorization requests from now on (off at first, so
    /// tests of the plain authorization request see it in the URL).
    pub fn set_par(&self, policy: ParPolicy) {
        self.state().par = policy;
    }

    /// Rewrites the body of every successful push answer (`None`: as issued), e.g. without a
    /// `request_uri`.
    pub fn set_par_edit(&self, edit: Option<BodyEdit>) {
        self.state().par_edit = edit;
    }

    /// Registers the client's `private_key_jwt` key (RFC 7523): `/par` checks assertions with it.
    pub fn register_client_key(&self, key: ES256PublicKey) {
        self.state().client_key = Some(key);
    }

    /// The parameters of every accepted push, in order, without the client authentication.
    pub fn pushed_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state().pushes.clone()
    }

    /// Why `/par` or the authorization endpoint refused requests, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.state().refusals.clone()
    }

    /// The user revokes every grant they gave the backend: their refresh tokens die.
    pub fn revoke_grants(&self, user: &str) {
        for grant in self.state().grants.iter_mut().filter(|g| g.sub == user) {
            grant.revoked = true;
        }
    }

    /// The user withdraws consent for `scope`: refreshes asking for it get `invalid_scope`.
    pub fn withdraw_scope(&self, user: &str, scope: &str) {
        for grant in self.state().grants.iter_mut().filter(|g| g.sub == user) {
            grant.scope = grant
                .scope
                .split(' ')
                .filter(|s| *s != scope)
                .collect::<Vec<_>>()
                .join(" ");
        }
    }

    /// `endpoint` fails this way until [`ScriptedProvider::heal`].
    pub fn fail(&self, endpoint: Endpoint, fault: Fault) {
        self.state().faults.insert(endpoint, fault);
    }

    /// `endpoint` answers properly again.
    pub fn heal(&self, endpoint: Endpoint) {
        self.state().faults.remove(&endpoint);
    }

    /// Signs with a second key; `publish` says whether the JWKS lists it yet.
    pub fn rotate_signing_key(&self, publish: bool) {
        let mut state = self.state();
        state.signing = 1;
        if publish {
            state.published = 1;
        }
    }

    /// Requests `endpoint` received (failed ones included).
    pub fn count(&self, endpoint: Endpoint) -> usize {
        self.state().counts.get(&endpoint).copied().unwrap_or(0)
    }

    /// Successful refresh-token grants.
    pub fn refreshes(&self) -> usize {
        self.state().refreshes
    }

    /// Times a used refresh token came back (each revoked its grant).
    pub fn reuse_detected(&self) -> usize {
        self.state().reuse_detected
    }

    fn answer(&self, request: &http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, HttpError> {
        let mut state = self.state();
        let endpoint = match request.uri().path() {
            "/.well-known/openid-configuration" => Endpoint::Discovery,
            "/jwks" => Endpoint::Jwks,
            "/token" => Endpoint::Token,
            "/userinfo" => Endpoint::UserInfo,
            "/revoke" => Endpoint::Revocation,
            "/par" if state.par != ParPolicy::Off => Endpoint::Par,
            other => panic!("the backend asked for {other}"),
        };
        *state.counts.entry(endpoint).or_default() += 1;
        match state.faults.get(&endpoint) {
            Some(Fault::Refuse) => return Err(HttpError::Connect("connection refused".into())),
            Some(Fault::Hang) => return Err(HttpError::Timeout),
            Some(Fault::Status(status)) => return Ok(reply(*status, json!({}).to_string().into_bytes())),
            Some(Fault::Garbage) => return Ok(reply(200, b"<html>not json".to_vec())),
            Some(Fault::Huge) => return Ok(reply(200, vec![b' '; crate::limits::MAX_PROVIDER_RESPONSE + 1])),
            Some(Fault::OAuth(status, error)) => {
                return Ok(reply(*status, json!({ "error": error }).to_string().into_bytes()));
            }
            None => {}
        }
        let now = self.clock.now().0;
        let body = match endpoint {
            Endpoint::Discovery => discovery(state.dpop != DpopPolicy::NotOffered, state.par),
            Endpoint::Jwks => {
                let keys: Vec<Value> = state.keys[..=state.published].iter().map(jwk).collect();
                json!({ "keys": keys })
            }
            Endpoint::Token => return Ok(state.token(request, now)),
            Endpoint::Par => return Ok(state.push(request, now)),
            Endpoint::UserInfo => {
                let bearer = header(request, "authorization").unwrap_or_default();
                let known = state.grants.last().filter(|_| bearer.starts_with("Bearer at-"));
                let mut answer = match known {
                    Some(grant) => json!({"sub": grant.sub, "email": format!("{}@example.com", grant.sub)}),
                    None => return Ok(reply(401, b"{}".to_vec())),
                };
                if let (Some(edit), Some(object)) = (state.userinfo_edit, answer.as_object_mut()) {
                    edit(object);
                }
                answer
            }
            Endpoint::Revocation => {
                let form = form(request.body());
                if let Some((grant, _)) = form.get("token").and_then(|t| state.refresh_tokens.get(t)).copied() {
                    state.grants[grant].revoked = true;
                }
                json!({})
            }
        };
        Ok(reply(200, body.to_string().into_bytes()))
    }
}

impl HttpClient for ScriptedProvider {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
        _timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        // The network: other requests of the same executor run meanwhile.
        YieldOnce(false).await;
        self.answer(&request)
    }

    async fn pause(&self, duration: Duration) {
        let whole = {
            let mut state = self.state();
            state.paused_ms += u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
            let whole = state.paused_ms / 1000;
            state.paused_ms %= 1000;
            whole
        };
        self.clock.advance(whole);
        YieldOnce(false).await;
    }
}

/// Gives the executor to the other futures once.
pub(crate) struct YieldOnce(pub(crate) bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
