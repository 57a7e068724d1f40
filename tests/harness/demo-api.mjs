#!/usr/bin/env node
// The demo's resource server: a tiny API on loopback that accepts RFC 9068 JWT access tokens
// from the test provider (tests/harness/idp.mjs with a `resources` entry for this API), as bearer
// tokens or, when bound to a key, as DPoP tokens (RFC 9449).
//
//   node tests/harness/demo-api.mjs --port 8790 --issuer http://127.0.0.1:9090 \
//        [--audience http://127.0.0.1:8790/] [--scope api:read] [--origin http://127.0.0.1:8787 ...] \
//        [--dpop-nonce]
//
// GET /hello with `Authorization: Bearer <JWT>` or `Authorization: DPoP <JWT>`: the signature is
// checked against the issuer's JWKS (from its discovery document), then `iss`, `aud` (= --audience,
// default this API's own URL, which is also its RFC 8707 resource indicator), `exp`, `typ: at+jwt`
// and the scope. 200 JSON with what the token says (plus `token_type`); 401 for a missing, invalid,
// expired or rejected token; 403 `insufficient_scope` without --scope.
//
// A token with `cnf.jkt` is DPoP-bound: accepted only as `Authorization: DPoP <JWT>` with exactly
// one `DPoP` header holding a proof (RFC 9449 §4.3, §7.1): typ dpop+jwt, ES256, a public `jwk` the
// signature verifies with, `htm` = the method, `htu` = http://127.0.0.1:<port><path> (query and
// fragment ignored), `iat` within 60 s, a `jti` not seen in that window, `ath` = base64url(SHA-256
// of the token), and the token's `cnf.jkt` = the jwk's RFC 7638 thumbprint. A bound token as Bearer,
// or an unbound one with the DPoP scheme, is refused. These 401s carry
// `WWW-Authenticate: DPoP realm="demo-api", algs="ES256", error="invalid_dpop_proof"` (or
// `invalid_token` for the token itself); the others `Bearer realm="demo-api", error="invalid_token"`.
// Without any token: both challenges, without an error code (RFC 6750 §3).
// With --dpop-nonce, proofs must also carry this API's current nonce (random, rotating every 60 s,
// the previous one still accepted): without it, 401 `DPoP error="use_dpop_nonce"` (RFC 9449 §9);
// every answer carries `DPoP-Nonce`.
// CORS for the --origin pages (they call this API from another port, with the Authorization and
// DPoP headers, and read WWW-Authenticate and DPoP-Nonce); the BFF itself never answers CORS,
// this is the API.
//
// Test-only controls (loopback, no CORS):
//   POST /__reject  {"token": "<jwt>"} rejects that token from now on; {"all": true} every token
//   POST /__reset   forget the rejections and the counts
//   GET  /__stats   {"requests", "accepted", "rejected"}, every 401 counted as rejected; once a
//                   DPoP request (the DPoP scheme, or a bound token) has come since the last reset,
//                   also "dpop_accepted", "dpop_rejected" (its 401s, nonce challenges included)
//                   and "dpop_nonce_challenges" (the use_dpop_nonce 401s among them)
//
// stdout: one line `READY {"url":"http://127.0.0.1:<port>/"}` once listening. SIGTERM/SIGINT stop it.

import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import {
  calculateJwkThumbprint, createRemoteJWKSet, EmbeddedJWK, errors, jwtVerify,
} from 'jose';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8790' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    scope: { type: 'string', default: 'api:read' },
    origin: { type: 'string', multiple: true, default: [] },
    'dpop-nonce': { type: 'boolean', default: false },
  },
});
const log = (msg) => process.stderr.write(`[demo-api] ${msg}\n`);
if (!values.issuer) {
  log('fatal: --issuer is required');
  process.exit(2);
}
const issuer = values.issuer.replace(/\/$/, '');
const origins = new Set(values.origin.flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean));
const DPOP_ALGS = ['ES256'];
// RFC 9449 §11.1 leaves the window to the server; the proof's iat may be this far either way.
const DPOP_WINDOW_S = 60;

const rejected = new Set();
let rejectAll = false;
const newStats = () => ({ requests: 0, accepted: 0, rejected: 0 });
const newDpopStats = () => ({ dpop_accepted: 0, dpop_rejected: 0, dpop_nonce_challenges: 0 });
const stats = newStats();
// Kept apart until DPoP is first used, so a bearer-only run shows the same /__stats as ever.
let dpopStats = null;
const dpopCount = (key) => {
  dpopStats ??= newDpopStats();
  dpopStats[key] += 1;
};

// Resource-server nonces (RFC 9449 §9): the previous one stays good, so a proof made just before
// a rotation is not refused.
const nonces = { current: crypto.randomBytes(16).toString('base64url'), previous: null };
if (values['dpop-nonce']) {
  setInterval(() => {
    nonces.previous = nonces.current;
    nonces.current = crypto.randomBytes(16).toString('base64url');
  }, 60_000).unref();
}

// jti -> when it may be forgotten. A proof older than the window is refused on its iat alone, so
// a jti need only be remembered that long; the cap bounds memory under a flood of proofs.
const seenJti = new Map();
const SEEN_JTI_MAX = 100_000;
function firstUse(jti, nowS) {
  for (const [old, until] of seenJti) {
    if (until > nowS && seenJti.size < SEEN_JTI_MAX) break;
    seenJti.delete(old);
  }
  if (seenJti.has(jti)) return false;
  seenJti.set(jti, nowS + 2 * DPOP_WINDOW_S);
  return true;
}

// The issuer's JWKS, found through discovery on first use (the provider may start after us).
let keySet;
async function jwks() {
  if (!keySet) {
    keySet = (async () => {
      const response = await fetch(`${issuer}/.well-known/openid-configuration`);
      if (!response.ok) throw new Error(`discovery answered ${response.status}`);
      const { jwks_uri: uri } = await response.json();
      return createRemoteJWKSet(new URL(uri), { cooldownDuration: 5_000 });
    })();
    keySet.catch(() => { keySet = undefined; });
  }
  return keySet;
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

// Headers every API answer carries: CORS for the demo's pages, and the current nonce.
function common(req) {
  const headers = { vary: 'Origin' };
  if (values['dpop-nonce']) headers['dpop-nonce'] = nonces.current;
  const origin = req.headers.origin;
  if (origin && origins.has(origin)) {
    headers['access-control-allow-origin'] = origin;
    headers['access-control-expose-headers'] = 'WWW-Authenticate, DPoP-Nonce';
  }
  return headers;
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text ? JSON.parse(text) : {};
}

const quoted = (text) => `"${String(text).replace(/["\\]/g, '')}"`;
const bearerChallenge = (error, description) => (error
  ? `Bearer realm="demo-api", error=${quoted(error)}, error_description=${quoted(description)}`
  : 'Bearer realm="demo-api"');
const dpopChallenge = (error, description) => (error
  ? `DPoP realm="demo-api", algs="${DPOP_ALGS.join(' ')}", error=${quoted(error)}, error_description=${quoted(description)}`
  : `DPoP realm="demo-api", algs="${DPOP_ALGS.join(' ')}"`);

function unauthorized(res, headers, challenge, error, description) {
  stats.rejected += 1;
  log(`401 ${error ?? '(no token)'}: ${description}`);
  return send(res, 401, { error: error ?? 'unauthorized', error_description: description }, {
    ...headers,
    'www-authenticate': challenge,
  });
}

// A DPoP-related 401 (`error` is invalid_dpop_proof, use_dpop_nonce or invalid_token).
function dpopUnauthorized(res, headers, error, description) {
  dpopCount('dpop_rejected');
  if (error === 'use_dpop_nonce') dpopCount('dpop_nonce_challenges');
  return unauthorized(res, headers, dpopChallenge(error, description), error, description);
}

class ProofError extends Error {
  constructor(message, error = 'invalid_dpop_proof') {
    super(message);
    this.error = error;
  }
}

// RFC 9449 §4.3 for a proof sent with `token` to `htu`; returns the proof key's thumbprint.
async function checkProof(req, token, htu) {
  const all = req.headersDistinct.dpop ?? [];
  if (all.length !== 1) throw new ProofError(all.length ? 'more than one DPoP header' : 'a DPoP proof header is required');
  const proof = all[0];
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(proof)) throw new ProofError('the DPoP proof is not a compact JWS');
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: DPOP_ALGS }));
  } catch (err) {
    if (err instanceof errors.JOSEError) throw new ProofError(`the DPoP proof does not verify: ${err.message}`);
    throw err;
  }
  const { jwk } = protectedHeader;
  if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((member) => member in jwk)) {
    throw new ProofError('the DPoP proof jwk holds a private key');
  }
  if (payload.htm !== req.method) throw new ProofError('DPoP proof htm mismatch');
  let claimed;
  try {
    claimed = new URL(payload.htu);
    claimed.search = '';
    claimed.hash = '';
  } catch {
    throw new ProofError('DPoP proof htu is not a URL');
  }
  if (typeof payload.htu !== 'string' || claimed.href !== htu) throw new ProofError('DPoP proof htu mismatch');
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > DPOP_WINDOW_S) {
    throw new ProofError('DPoP proof iat is not recent enough');
  }
  if (payload.ath !== crypto.createHash('sha256').update(token).digest('base64url')) {
    throw new ProofError('DPoP proof ath mismatch');
  }
  if (values['dpop-nonce'] && (typeof payload.nonce !== 'string'
      || (payload.nonce !== nonces.current && payload.nonce !== nonces.previous))) {
    throw new ProofError(payload.nonce === undefined ? 'a DPoP nonce is required' : 'the DPoP nonce is not current', 'use_dpop_nonce');
  }
  if (typeof payload.jti !== 'string' || !payload.jti) throw new ProofError('the DPoP proof has no jti');
  if (!firstUse(payload.jti, now)) throw new ProofError('DPoP proof replayed (jti already seen)');
  return calculateJwkThumbprint(jwk);
}

// The token's own checks: `{ payload }`, or `{ why }` for a 401 invalid_token.
async function verifyToken(token, audience) {
  if (rejectAll || rejected.has(token)) return { why: 'rejected by the test control' };
  try {
    const { payload } = await jwtVerify(token, await jwks(), {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['RS256', 'PS256', 'ES256'],
    });
    return { payload };
  } catch (err) {
    if (err instanceof errors.JOSEError) {
      log(`token: ${err.code}: ${err.message}`);
      return { why: err instanceof errors.JWTExpired ? 'the token has expired' : 'the token is not valid here' };
    }
    throw err;
  }
}

async function api(req, res, url, audience, self) {
  const headers = common(req);
  if (req.method === 'OPTIONS') {
    res.writeHead(204, {
      ...headers,
      ...(headers['access-control-allow-origin'] ? {
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': 'Authorization, Content-Type, DPoP',
        'access-control-max-age': '600',
      } : {}),
    });
    return res.end();
  }
  if (url.pathname !== '/hello' || req.method !== 'GET') {
    return send(res, 404, { error: 'not_found' }, headers);
  }
  stats.requests += 1;
  const match = /^(Bearer|DPoP) ([A-Za-z0-9._~+/-]+=*)$/i.exec(req.headers.authorization ?? '');
  if (!match) {
    const description = 'an access token is required';
    return unauthorized(res, headers, [bearerChallenge(), dpopChallenge()], undefined, description);
  }
  const token = match[2];
  const dpop = match[1].toLowerCase() === 'dpop';
  if (dpop) dpopStats ??= newDpopStats();

  let payload;
  if (dpop) {
    let thumbprint;
    try {
      thumbprint = await checkProof(req, token, new URL(url.pathname, self).href);
    } catch (err) {
      if (err instanceof ProofError) return dpopUnauthorized(res, headers, err.error, err.message);
      throw err;
    }
    const verified = await verifyToken(token, audience);
    if (!verified.payload) return dpopUnauthorized(res, headers, 'invalid_token', verified.why);
    payload = verified.payload;
    if (typeof payload.cnf?.jkt !== 'string') {
      return dpopUnauthorized(res, headers, 'invalid_token', 'the token is not bound to a DPoP key: send it as a bearer token');
    }
    if (payload.cnf.jkt !== thumbprint) {
      return dpopUnauthorized(res, headers, 'invalid_dpop_proof', 'the DPoP proof key is not the one the token is bound to');
    }
  } else {
    const verified = await verifyToken(token, audience);
    if (!verified.payload) {
      return unauthorized(res, headers, bearerChallenge('invalid_token', verified.why), 'invalid_token', verified.why);
    }
    payload = verified.payload;
    if (payload.cnf?.jkt !== undefined) {
      return dpopUnauthorized(res, headers, 'invalid_token', 'the token is bound to a DPoP key: send it with the DPoP scheme and a proof');
    }
  }

  const scopes = String(payload.scope ?? '').split(' ');
  if (values.scope && !scopes.includes(values.scope)) {
    const scheme = dpop ? `DPoP realm="demo-api", algs="${DPOP_ALGS.join(' ')}"` : 'Bearer realm="demo-api"';
    return send(res, 403, { error: 'insufficient_scope', scope: values.scope }, {
      ...headers,
      'www-authenticate': `${scheme}, error="insufficient_scope", scope="${values.scope}"`,
    });
  }
  stats.accepted += 1;
  if (dpop) dpopCount('dpop_accepted');
  const now = Math.floor(Date.now() / 1000);
  return send(res, 200, {
    message: `Hello, ${payload.sub}! The API accepted your access token${dpop ? ' and its DPoP proof' : ''}.`,
    sub: payload.sub,
    scope: payload.scope,
    aud: payload.aud,
    client_id: payload.client_id,
    jti: payload.jti,
    iat: payload.iat,
    exp: payload.exp,
    expires_in: payload.exp - now,
    token_type: dpop ? 'DPoP' : 'Bearer',
    ...(dpop ? { cnf: payload.cnf } : {}),
  }, headers);
}

async function control(req, res, url) {
  switch (`${req.method} ${url.pathname}`) {
    case 'POST /__reject': {
      const body = await readJson(req);
      if (body.all) rejectAll = true;
      if (typeof body.token === 'string') rejected.add(body.token);
      return send(res, 200, { rejected: rejected.size, all: rejectAll });
    }
    case 'POST /__reset':
      rejected.clear();
      rejectAll = false;
      Object.assign(stats, newStats());
      dpopStats = null;
      return send(res, 200, stats);
    case 'GET /__stats':
      return send(res, 200, { ...stats, ...dpopStats });
    default:
      return send(res, 404, { error: 'not_found' });
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://api');
  const port = server.address().port;
  const self = `http://127.0.0.1:${port}`;
  const audience = values.audience ?? `${self}/`;
  const handle = url.pathname.startsWith('/__') ? control(req, res, url) : api(req, res, url, audience, self);
  handle.catch((err) => {
    log(`error: ${err.stack ?? err}`);
    if (!res.headersSent) send(res, 500, { error: 'server_error' }, common(req));
  });
});

server.once('error', (err) => {
  log(`fatal: ${err.message}`);
  process.exit(2);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`READY ${JSON.stringify({ url: `http://127.0.0.1:${port}/` })}\n`);
  log(`listening on 127.0.0.1:${port}, issuer ${issuer}, origins ${[...origins].join(' ') || '(none)'}`
    + `${values['dpop-nonce'] ? ', DPoP nonces required' : ''}`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
