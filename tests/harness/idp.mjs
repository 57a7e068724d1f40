#!/usr/bin/env node
// Test OpenID provider (oidc-provider) behind a fault-injecting proxy, plus a control API.
//
//   node tests/harness/idp.mjs --config <file.json>
//   node tests/harness/idp.mjs --port 41000
//
// See tests/harness/README.md for the configuration keys, the control API and the
// login sequence.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import { HarnessStore } from './lib/store.mjs';
import { buildProvider, generateSigningKey, normalizeClient } from './lib/provider.mjs';
import { FaultProxy, faultControl } from './lib/proxy.mjs';

const started = Date.now();

// stdout carries exactly one line (READY); oidc-provider prints notices with console.info.
const log = (msg) => process.stderr.write(`[idp] ${msg}\n`);
console.log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
console.info = console.log;

function fail(msg) {
  process.stderr.write(`[idp] fatal: ${msg}\n`);
  process.exit(2);
}

function readConfig() {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
    },
  });
  let raw = {};
  if (values.config) {
    const text = fs.readFileSync(values.config, 'utf8');
    try {
      raw = JSON.parse(text);
    } catch (err) {
      // tolerate "// comments" after whitespace, as in the documentation example
      try {
        raw = JSON.parse(text.replace(/(^|\s)\/\/.*$/gm, '$1'));
      } catch {
        fail(`cannot parse ${values.config}: ${err.message}`);
      }
    }
  }
  if (values.port !== undefined) raw.port = Number(values.port);
  if (!Number.isInteger(raw.port) || raw.port <= 0) fail('a "port" (config key or --port) is required');

  for (const key of ['dpop', 'dpop_nonce', 'par', 'par_required']) {
    if (raw[key] !== undefined && typeof raw[key] !== 'boolean') fail(`"${key}" must be true or false`);
  }
  if (raw.dpop === false && raw.dpop_nonce === true) fail('"dpop_nonce": true needs DPoP on (drop "dpop": false)');
  if (raw.par === false && raw.par_required === true) fail('"par_required": true needs PAR on (drop "par": false)');

  const port = raw.port;
  const cfg = {
    ...raw,
    port,
    provider_port: raw.provider_port ?? port + 1,
    control_port: raw.control_port ?? port + 2,
    access_token_ttl: raw.access_token_ttl ?? 10,
    id_token_ttl: raw.id_token_ttl ?? 3600,
    refresh_token_ttl: raw.refresh_token_ttl ?? 86400,
    session_ttl: raw.session_ttl ?? 86400,
    issuer: `http://127.0.0.1:${port}`,
    resources: raw.resources ?? null,
    scopes: raw.scopes ?? [],
    clients: raw.clients ?? [{
      client_id: 'bff',
      client_secret: 'bff-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: ['http://127.0.0.1:8787/bff/callback'],
      post_logout_redirect_uris: ['http://127.0.0.1:8787/'],
    }],
  };
  return cfg;
}

const cfg = readConfig();

const newCounts = () => ({
  authorization_code: 0,
  refresh_token: 0,
  grant_error: 0,
  revocation: 0,
  backchannel_success: 0,
  backchannel_error: 0,
  pushed_authorization_request: 0,
});

const state = {
  store: new HarnessStore(),
  counts: newCounts(),
  keys: [generateSigningKey('RSA'), generateSigningKey('EC')],
  clients: [...cfg.clients],
  handler: null,
};

// Builds a provider instance, checks every client's metadata (oidc-provider validates
// static clients lazily, on first use), then makes it the one that answers requests.
async function rebuild() {
  const provider = buildProvider({
    cfg,
    store: state.store,
    keys: state.keys,
    clients: state.clients,
    counts: state.counts,
    log,
  });
  for (const client of state.clients) {
    try {
      await provider.Client.find(client.client_id);
    } catch (err) {
      const detail = err.error_description ?? err.message;
      throw new Error(`client ${JSON.stringify(client.client_id)}: ${detail}`);
    }
  }
  state.provider = provider;
  state.handler = provider.callback();
}

try {
  await rebuild();
} catch (err) {
  fail(`provider configuration rejected: ${err.message}`);
}

// ---- the real provider (loopback only) -----------------------------------------------
const providerServer = http.createServer((req, res) => state.handler(req, res));

// ---- the fault proxy (public port) ---------------------------------------------------
const proxy = new FaultProxy({ port: cfg.port, targetPort: cfg.provider_port, log });

// ---- control API ---------------------------------------------------------------------
const faults = faultControl(proxy);

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text ? JSON.parse(text) : {};
}

async function control(req, res) {
  const url = new URL(req.url, 'http://control');
  const route = `${req.method} ${url.pathname.replace(/\/+$/, '') || '/'}`;
  if (await faults(req, res, url, route)) return undefined;
  switch (route) {
    case 'GET /health':
      return send(res, 200, { status: 'ok', mode: proxy.mode });
    case 'GET /counts':
      return send(res, 200, state.counts);
    case 'POST /counts/reset':
      Object.assign(state.counts, newCounts());
      return send(res, 200, state.counts);
    case 'GET /refresh-tokens':
      return send(res, 200, state.store.refreshTokens());
    case 'GET /pushed-requests':
      return send(res, 200, state.store.pushedRequests());
    case 'POST /rotate-keys': {
      const key = generateSigningKey('RSA');
      state.keys = [key, ...state.keys];
      await rebuild();
      log(`rotated keys: new ${key.kid} first`);
      return send(res, 200, { kid: key.kid, kids: state.keys.map((k) => k.kid) });
    }
    case 'POST /sign': {
      // Test-only: signs arbitrary claims with the provider's current key, for logout tokens a
      // real provider would never send (wrong aud, a nonce, no events, expired, ...).
      let body;
      try {
        body = await readJson(req);
      } catch (err) {
        return send(res, 400, { error: 'invalid_json', error_description: err.message });
      }
      const key = state.keys[0];
      const header = { alg: key.alg, kid: key.kid, typ: body.typ ?? 'logout+jwt' };
      const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${part(header)}.${part(body.claims ?? {})}`;
      const privateKey = crypto.createPrivateKey({ key, format: 'jwk' });
      const signature = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
      return send(res, 200, { jwt: `${input}.${signature}` });
    }
    case 'GET /clients':
      return send(res, 200, state.clients);
    case 'POST /clients': {
      let client;
      try {
        client = await readJson(req);
      } catch (err) {
        return send(res, 400, { error: 'invalid_json', error_description: err.message });
      }
      if (!client.client_id) return send(res, 400, { error: 'client_id required' });
      const previous = state.clients;
      state.clients = [...previous.filter((c) => c.client_id !== client.client_id), client];
      try {
        await rebuild();
      } catch (err) {
        state.clients = previous;
        return send(res, 400, { error: 'invalid_client_metadata', error_description: err.message });
      }
      return send(res, 200, normalizeClient(client));
    }
    default:
      return send(res, 404, { error: 'not_found', route });
  }
}

const controlServer = http.createServer((req, res) => {
  control(req, res).catch((err) => {
    log(`control error: ${err.stack ?? err}`);
    if (!res.headersSent) send(res, 500, { error: 'control_error', error_description: err.message });
  });
});
// As the proxy: idle keep-alive connections stay a minute, so a pooled client never races a close.
controlServer.keepAliveTimeout = 60_000;
controlServer.headersTimeout = 65_000;

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

// ---- lifecycle -----------------------------------------------------------------------
let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: shutting down`);
  const force = setTimeout(() => process.exit(0), 2000);
  force.unref();
  proxy.releaseHanging();
  await Promise.allSettled([
    proxy.stop(),
    new Promise((r) => { providerServer.close(r); providerServer.closeAllConnections(); }),
    new Promise((r) => { controlServer.close(r); controlServer.closeAllConnections(); }),
  ]);
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

try {
  await listen(providerServer, cfg.provider_port);
  await proxy.start();
  await listen(controlServer, cfg.control_port);
} catch (err) {
  fail(`cannot listen: ${err.message}`);
}

process.stdout.write(`READY ${JSON.stringify({
  issuer: cfg.issuer,
  control: `http://127.0.0.1:${cfg.control_port}`,
})}\n`);
log(`issuer ${cfg.issuer}, provider on ${cfg.provider_port}, control on ${cfg.control_port}, `
  + `ready in ${Date.now() - started} ms`);
