#!/usr/bin/env node
// The demo's resource server: a tiny API on loopback that accepts RFC 9068 JWT access tokens
// from the test provider (tests/harness/idp.mjs with a `resources` entry for this API).
//
//   node tests/harness/demo-api.mjs --port 8790 --issuer http://127.0.0.1:9090 \
//        [--audience http://127.0.0.1:8790/] [--scope api:read] [--origin http://127.0.0.1:8787 ...]
//
// GET /hello with `Authorization: Bearer <JWT>`: the signature is checked against the issuer's
// JWKS (from its discovery document), then `iss`, `aud` (= --audience, default this API's own
// URL, which is also its RFC 8707 resource indicator), `exp`, `typ: at+jwt` and the scope.
// 200 JSON with what the token says; 401 `WWW-Authenticate: Bearer error="invalid_token"` for a
// missing, invalid, expired or rejected token; 403 `insufficient_scope` without --scope.
// CORS for the --origin pages (they call this API from another port, with the Authorization
// header); the BFF itself never answers CORS, this is the API.
//
// Test-only controls (loopback, no CORS):
//   POST /__reject  {"token": "<jwt>"} rejects that token from now on; {"all": true} every token
//   POST /__reset   forget the rejections and the counts
//   GET  /__stats   {"requests", "accepted", "rejected"}
//
// stdout: one line `READY {"url":"http://127.0.0.1:<port>/"}` once listening. SIGTERM/SIGINT stop it.

import http from 'node:http';
import { parseArgs } from 'node:util';

import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8790' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    scope: { type: 'string', default: 'api:read' },
    origin: { type: 'string', multiple: true, default: [] },
  },
});
const log = (msg) => process.stderr.write(`[demo-api] ${msg}\n`);
if (!values.issuer) {
  log('fatal: --issuer is required');
  process.exit(2);
}
const issuer = values.issuer.replace(/\/$/, '');
const origins = new Set(values.origin.flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean));

const rejected = new Set();
let rejectAll = false;
const stats = { requests: 0, accepted: 0, rejected: 0 };

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

function cors(req) {
  const origin = req.headers.origin;
  if (!origin || !origins.has(origin)) return { vary: 'Origin' };
  return {
    vary: 'Origin',
    'access-control-allow-origin': origin,
    'access-control-expose-headers': 'WWW-Authenticate',
  };
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text ? JSON.parse(text) : {};
}

// RFC 6750 §3: no error code when the request carried no token at all.
function unauthorized(res, headers, error, description) {
  stats.rejected += 1;
  const challenge = error
    ? `Bearer realm="demo-api", error="${error}", error_description="${description}"`
    : 'Bearer realm="demo-api"';
  return send(res, 401, { error: error ?? 'unauthorized', error_description: description }, {
    ...headers,
    'www-authenticate': challenge,
  });
}

async function api(req, res, url, audience) {
  const headers = cors(req);
  if (req.method === 'OPTIONS') {
    res.writeHead(204, {
      ...headers,
      ...(headers['access-control-allow-origin'] ? {
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': 'Authorization, Content-Type',
        'access-control-max-age': '600',
      } : {}),
    });
    return res.end();
  }
  if (url.pathname !== '/hello' || req.method !== 'GET') {
    return send(res, 404, { error: 'not_found' }, headers);
  }
  stats.requests += 1;
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(req.headers.authorization ?? '');
  if (!match) return unauthorized(res, headers, undefined, 'a bearer token is required');
  const token = match[1];
  if (rejectAll || rejected.has(token)) {
    return unauthorized(res, headers, 'invalid_token', 'rejected by the test control');
  }
  let payload;
  try {
    ({ payload } = await jwtVerify(token, await jwks(), {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['RS256', 'PS256', 'ES256'],
    }));
  } catch (err) {
    if (err instanceof errors.JOSEError) {
      const why = err instanceof errors.JWTExpired ? 'the token has expired' : 'the token is not valid here';
      log(`401: ${err.code}: ${err.message}`);
      return unauthorized(res, headers, 'invalid_token', why);
    }
    throw err;
  }
  const scopes = String(payload.scope ?? '').split(' ');
  if (values.scope && !scopes.includes(values.scope)) {
    return send(res, 403, { error: 'insufficient_scope', scope: values.scope }, {
      ...headers,
      'www-authenticate': `Bearer realm="demo-api", error="insufficient_scope", scope="${values.scope}"`,
    });
  }
  stats.accepted += 1;
  const now = Math.floor(Date.now() / 1000);
  return send(res, 200, {
    message: `Hello, ${payload.sub}! The API accepted your access token.`,
    sub: payload.sub,
    scope: payload.scope,
    aud: payload.aud,
    client_id: payload.client_id,
    jti: payload.jti,
    iat: payload.iat,
    exp: payload.exp,
    expires_in: payload.exp - now,
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
      Object.assign(stats, { requests: 0, accepted: 0, rejected: 0 });
      return send(res, 200, stats);
    case 'GET /__stats':
      return send(res, 200, stats);
    default:
      return send(res, 404, { error: 'not_found' });
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://api');
  const port = server.address().port;
  const audience = values.audience ?? `http://127.0.0.1:${port}/`;
  const handle = url.pathname.startsWith('/__') ? control(req, res, url) : api(req, res, url, audience);
  handle.catch((err) => {
    log(`error: ${err.stack ?? err}`);
    if (!res.headersSent) send(res, 500, { error: 'server_error' }, cors(req));
  });
});

server.once('error', (err) => {
  log(`fatal: ${err.message}`);
  process.exit(2);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`READY ${JSON.stringify({ url: `http://127.0.0.1:${port}/` })}\n`);
  log(`listening on 127.0.0.1:${port}, issuer ${issuer}, origins ${[...origins].join(' ') || '(none)'}`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
