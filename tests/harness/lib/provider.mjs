// Builds the oidc-provider instance used by the harness.
//
// buildProvider() may be called more than once over the harness's life (key rotation,
// clients added at runtime): every instance shares the same HarnessStore, cookie keys and
// counters, so sessions, grants and tokens survive the swap.

import crypto from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const COOKIE_KEYS = ['tmi-bff-harness-cookie-key-1', 'tmi-bff-harness-cookie-key-0'];

// One secret for the process: a nonce handed out before /rotate-keys or POST /clients rebuilds
// the provider must still be accepted after it.
const DPOP_NONCE_SECRET = crypto.randomBytes(32);

// `dpop: false` turns RFC 9449 off (discovery then has no dpop_signing_alg_values_supported);
// `dpop_nonce: true` makes every token request carrying a DPoP proof answer use_dpop_nonce until
// the proof has the current server nonce. Default: oidc-provider's own, DPoP on, no nonces.
function dpopFeature(cfg) {
  if (cfg.dpop === false) return { enabled: false };
  if (cfg.dpop_nonce === true) {
    return { enabled: true, nonceSecret: DPOP_NONCE_SECRET, requireNonce: () => true };
  }
  return { enabled: true };
}

// `par: false` turns pushed authorization requests (RFC 9126) off: discovery then has no
// pushed_authorization_request_endpoint and a request_uri is refused. `par_required: true` makes
// the whole provider take nothing but pushed requests (discovery says
// require_pushed_authorization_requests); a client can ask the same for itself with the client
// metadata `require_pushed_authorization_requests`. Default: oidc-provider's own, PAR on, optional.
function parFeature(cfg) {
  if (cfg.par === false) return { enabled: false };
  return { enabled: true, requirePushedAuthorizationRequests: cfg.par_required === true };
}

export function generateSigningKey(kind = 'RSA') {
  const kid = `${kind.toLowerCase()}-${crypto.randomBytes(6).toString('base64url')}`;
  if (kind === 'EC') {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'ES256' };
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
}

// "alice" -> "Alice"
const capitalize = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

// Deterministic, random-looking base64url text of exactly n characters.
const bigClaims = new Map();
function bigClaimFor(seed, n) {
  const key = `${seed}:${n}`;
  let value = bigClaims.get(key);
  if (value === undefined) {
    const parts = [];
    let len = 0;
    for (let i = 0; len < n; i += 1) {
      const chunk = crypto.createHash('sha256').update(`${seed}/${i}`).digest('base64url');
      parts.push(chunk);
      len += chunk.length;
    }
    value = parts.join('').slice(0, n);
    bigClaims.set(key, value);
  }
  return value;
}

const MAX_BIG_CLAIM = 4 * 1024 * 1024;

export function accountClaims(login, use) {
  const given = capitalize(login);
  const claims = {
    sub: login,
    name: `${given} Tester`,
    given_name: given,
    family_name: 'Tester',
    preferred_username: login,
    email: `${login}@example.test`,
    email_verified: true,
    locale: 'en',
  };
  const big = /^big-(\d+)$/.exec(login);
  if (big) {
    const n = Math.min(Number(big[1]), MAX_BIG_CLAIM);
    claims.big_claim = bigClaimFor(login, n);
  }
  if (use === 'userinfo') claims.userinfo_only = 'from-userinfo';
  return claims;
}

// Client keys the harness itself understands; they are taken out before the metadata reaches
// oidc-provider. `rotate_refresh_tokens: false` makes the provider answer a refresh with the
// same refresh token it was given (Google, Okta, Auth0, Entra ID without rotation).
const HARNESS_CLIENT_KEYS = ['rotate_refresh_tokens'];

export function normalizeClient(raw) {
  return {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    require_auth_time: true, // auth_time in every ID token, like Keycloak / Entra ID / Auth0
    rotate_refresh_tokens: true,
    ...raw,
  };
}

// The metadata oidc-provider gets: defaults applied, harness-only keys checked and removed.
function providerMetadata(raw) {
  const client = normalizeClient(raw);
  if (typeof client.rotate_refresh_tokens !== 'boolean') {
    throw new Error(`client ${JSON.stringify(client.client_id)}: rotate_refresh_tokens must be true or false`);
  }
  for (const key of HARNESS_CLIENT_KEYS) delete client[key];
  return client;
}

// Loopback-friendly fetch for outgoing requests (back-channel logout): oidc-provider's
// default sets an undici dispatcher that refuses special-use addresses such as 127.0.0.1.
function loopbackFetch(url, options) {
  const opts = { ...options };
  delete opts.dispatcher;
  return globalThis.fetch(url, opts);
}

export function buildProvider({ cfg, store, keys, clients, counts, log }) {
  const { resources } = cfg;
  const resourcesOn = resources && Object.keys(resources).length > 0;

  // Clients whose refresh tokens never rotate (`rotate_refresh_tokens: false`).
  const fixedRefreshTokens = new Set(
    clients.filter((c) => normalizeClient(c).rotate_refresh_tokens === false).map((c) => c.client_id),
  );

  const configuration = {
    adapter: store.adapterClass(),
    clients: clients.map(providerMetadata),
    jwks: { keys },
    cookies: {
      keys: COOKIE_KEYS,
      long: { httpOnly: true, sameSite: 'lax', secure: false, signed: true },
      short: { httpOnly: true, sameSite: 'lax', secure: false, signed: true },
    },
    claims: {
      openid: ['sub'],
      profile: [
        'name', 'given_name', 'family_name', 'preferred_username', 'locale',
        'big_claim', 'userinfo_only',
      ],
      email: ['email', 'email_verified'],
    },
    ...(cfg.scopes?.length ? { scopes: ['openid', 'offline_access', ...cfg.scopes] } : {}),
    responseTypes: ['code'],
    conformIdTokenClaims: false,
    allowOmittingSingleRegisteredRedirectUri: false,
    clientBasedCORS: () => false,
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims(use /* , scope, claims, rejected */) {
          return accountClaims(id, use);
        },
      };
    },
    pkce: { required: () => true },
    // Rotate on every use, unless the client has `rotate_refresh_tokens: false` (then the
    // refresh answer carries the very token presented, which stays valid). oidc-provider
    // 9.13.3 rotates (consumes the presented token and stores a successor) *before* it checks
    // the `resource` parameter, so a refresh asking for an ungranted or unknown resource would
    // answer invalid_target and silently burn the client's refresh token. Production servers
    // validate first; so do we, for every client.
    rotateRefreshToken(ctx) {
      const requested = ctx.oidc.params?.resource;
      if (resourcesOn && requested) {
        const granted = ctx.oidc.entities.RefreshToken?.resourceIndicators ?? new Set();
        const values = Array.isArray(requested) ? requested : [requested];
        if (values.length !== 1 || !granted.has(values[0]) || !resources[values[0]]) {
          throw new errors.InvalidTarget();
        }
      }
      return !fixedRefreshTokens.has(ctx.oidc.client?.clientId);
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || cfg.access_token_ttl,
      AuthorizationCode: 60,
      IdToken: cfg.id_token_ttl,
      RefreshToken: cfg.refresh_token_ttl,
      Session: cfg.session_ttl,
      Grant: Math.max(cfg.refresh_token_ttl, cfg.session_ttl),
      Interaction: 3600,
    },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true, allowedPolicy: revocationPolicy },
      introspection: { enabled: true, allowedPolicy: async () => true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      claimsParameter: { enabled: false },
      dPoP: dpopFeature(cfg),
      pushedAuthorizationRequests: parFeature(cfg),
      resourceIndicators: resourcesOn
        ? {
          enabled: true,
          defaultResource: async (_ctx, _client, oneOf) => oneOf ?? undefined,
          useGrantedResource: async () => true,
          async getResourceServerInfo(_ctx, indicator) {
            const rs = resources[indicator];
            if (!rs) throw new errors.InvalidTarget();
            const jwt = rs.jwt !== false;
            return {
              scope: rs.scope ?? '',
              audience: rs.audience ?? indicator,
              accessTokenTTL: rs.access_token_ttl ?? cfg.access_token_ttl,
              accessTokenFormat: jwt ? 'jwt' : 'opaque',
              ...(jwt ? { jwt: { sign: { alg: rs.alg ?? 'RS256' } } } : {}),
            };
          },
        }
        : { enabled: false },
    },
    fetch: loopbackFetch,
  };

  const provider = new Provider(cfg.issuer, configuration);

  // Count successful revocation responses (9.13.3 emits no revocation.success event).
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token/revocation' && ctx.status === 200) {
      counts.revocation += 1;
    }
  });

  // Each pushed authorization request as the client sent it (oidc-provider itself keeps only the
  // parameters it recognises), under the request_uri it got: GET /pushed-requests.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/request' && ctx.status === 201) {
      const params = { ...ctx.oidc?.body };
      for (const key of ['client_secret', 'client_assertion', 'client_assertion_type']) delete params[key];
      store.recordPush(ctx.body.request_uri, params);
    }
  });

  provider.on('pushed_authorization_request.success', () => {
    counts.pushed_authorization_request += 1;
  });
  provider.on('grant.success', (ctx) => {
    const gt = ctx.oidc.params?.grant_type;
    if (gt === 'authorization_code') counts.authorization_code += 1;
    else if (gt === 'refresh_token') counts.refresh_token += 1;
  });
  provider.on('grant.error', (ctx, err) => {
    counts.grant_error += 1;
    log(`grant.error grant_type=${ctx.oidc?.params?.grant_type} ${describe(err)}`);
  });
  provider.on('server_error', (ctx, err) => {
    if (ctx.oidc?.route === 'token') counts.grant_error += 1;
    log(`server_error ${ctx.method} ${ctx.path}: ${err?.stack ?? err}`);
  });
  provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
    counts.backchannel_success += 1;
    log(`backchannel.success client=${client.clientId} sub=${accountId} sid=${sid}`);
  });
  provider.on('backchannel.error', (_ctx, err, client, accountId, sid) => {
    counts.backchannel_error += 1;
    log(`backchannel.error client=${client?.clientId} sub=${accountId} sid=${sid} ${describe(err)}`);
  });
  for (const ev of [
    'authorization.error', 'introspection.error', 'revocation.error', 'userinfo.error',
    'end_session.error', 'end_session_confirm.error', 'jwks.error', 'discovery.error',
    'pushed_authorization_request.error',
  ]) {
    provider.on(ev, (_ctx, err) => log(`${ev} ${describe(err)}`));
  }

  return provider;
}

async function revocationPolicy(_ctx, client, token) {
  if (token.clientId !== client.clientId) {
    throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
  }
  return true;
}

function describe(err) {
  if (!err) return '';
  const parts = [err.error ?? err.name, err.error_description ?? err.message];
  if (err.error_detail) parts.push(`(${err.error_detail})`);
  return parts.filter(Boolean).join(': ');
}
