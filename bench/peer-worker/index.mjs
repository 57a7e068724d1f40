// The comparison Worker for scripts/bench-worker.sh: the hot path of `GET /.well-known/bff-token`
// done the way the common JS session libraries do it per request (a `dir`/`A256GCM` JWE session
// cookie opened with `jose`, JSON.parse, a look-up of the cached access token), with the same
// checks and the same answer as the project's Worker (docs/http-api.md: "Rules for every
// request", bff-token). It never refreshes: the benchmark only measures cached, fresh tokens, so
// a token that is due answers 503 and the benchmark's checks fail loudly instead of measuring
// something else.
//
// Settings (vars): PEER_SESSION_KEY (base64url, 32 bytes), PEER_ISSUER, PEER_PUBLIC_ORIGIN,
// PEER_DEFAULT_RESOURCE (optional). GET /.well-known/bff-constant answers a fixed token body
// with the same headers and no session work: the floor of a JS Worker under the same runtime.
import { compactDecrypt } from 'jose';

const COOKIE = '__Host-bff-session';

const JSON_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
  pragma: 'no-cache',
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'content-security-policy': 'sandbox',
};

const json = (status, body) => new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
const fail = (status, error, description) =>
  json(status, description ? { error, error_description: description } : { error });

// Importing the key is the costly part of a key's set-up, so it happens once per isolate, as a
// long-lived server would; the promise is kept so concurrent first requests share it.
let keyFor = null;
let keyPromise = null;
function sessionKey(env) {
  if (keyFor !== env.PEER_SESSION_KEY) {
    keyFor = env.PEER_SESSION_KEY;
    const raw = base64urlBytes(env.PEER_SESSION_KEY ?? '');
    keyPromise = raw.length === 32
      ? crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt'])
      : Promise.reject(new Error('PEER_SESSION_KEY must be 32 bytes, base64url'));
  }
  return keyPromise;
}

function base64urlBytes(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  try {
    return Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array();
  }
}

// The session cookie's value: the single cookie, or chunks `.0`, `.1`, ... joined (a large
// session is split across cookies, as the JS libraries do).
function sessionCookie(header) {
  if (!header) return null;
  const found = new Map();
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === COOKIE || name.startsWith(`${COOKIE}.`)) found.set(name, part.slice(eq + 1).trim());
  }
  if (found.has(COOKIE)) return found.size === 1 ? found.get(COOKIE) : null;
  let joined = '';
  for (let i = 0; i < found.size; i++) {
    const chunk = found.get(`${COOKIE}.${i}`);
    if (chunk === undefined) return null;
    joined += chunk;
  }
  return joined || null;
}

const scopeKey = (scope) => [...new Set(scope.split(/\s+/).filter(Boolean))].sort().join(' ');

// The same freshness rule as the backend: refresh when less than min(60, max(5, lifetime / 4))
// seconds remain.
function isFresh(token, now) {
  const lifetime = Math.max(0, token.expires - token.obtained);
  const margin = Math.max(1, Math.min(60, Math.max(5, Math.floor(lifetime / 4))));
  return token.expires - now >= margin;
}

const decoder = new TextDecoder();

async function token(request, env, url) {
  if (request.headers.get('x-csrf') !== '1') return fail(400, 'invalid_request', 'the X-CSRF: 1 header is required');
  const origin = request.headers.get('origin');
  if (origin !== null && origin !== env.PEER_PUBLIC_ORIGIN) return fail(400, 'invalid_request', 'cross-origin request');
  const site = request.headers.get('sec-fetch-site');
  if (site !== null && site !== 'same-origin') return fail(400, 'invalid_request', 'cross-site request');

  const resources = url.searchParams.getAll('resource');
  const scopes = url.searchParams.getAll('scope');
  if (resources.length > 1 || scopes.length > 1) return fail(400, 'invalid_request', 'repeated parameter');

  const jwe = sessionCookie(request.headers.get('cookie'));
  if (!jwe) return fail(401, 'invalid_session');
  let session;
  try {
    const { plaintext } = await compactDecrypt(jwe, await sessionKey(env), {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    session = JSON.parse(decoder.decode(plaintext));
  } catch {
    return fail(401, 'invalid_session');
  }
  const now = Math.floor(Date.now() / 1000);
  if (session.iss !== env.PEER_ISSUER || !(now < session.expires)) return fail(401, 'invalid_session');

  const resource = resources[0] ?? (env.PEER_DEFAULT_RESOURCE || undefined);
  const key = scopeKey(scopes[0] ?? session.scope);
  const cached = (session.tokens ?? []).find((t) => t.key === key && t.resource === resource);
  if (!cached || !isFresh(cached, now)) return fail(503, 'temporarily_unavailable', 'no fresh cached token (the peer does not refresh)');
  // The backend's member order, so both bodies are the same bytes.
  const answer = { access_token: cached.token };
  if (cached.expires_known) answer.expires_in = cached.expires - now;
  answer.scope = cached.scope;
  answer.token_type = 'Bearer';
  return json(200, answer);
}

const CONSTANT = JSON.stringify({ access_token: 'x'.repeat(64), expires_in: 3600, scope: 'openid', token_type: 'Bearer' });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/.well-known/bff-token') {
      if (request.method !== 'GET') return new Response(JSON.stringify({ error: 'method_not_allowed' }), { status: 405, headers: { ...JSON_HEADERS, allow: 'GET' } });
      return token(request, env, url);
    }
    if (url.pathname === '/.well-known/bff-constant') return new Response(CONSTANT, { headers: JSON_HEADERS });
    return fail(404, 'not_found');
  },
};
