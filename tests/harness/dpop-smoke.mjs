#!/usr/bin/env node
// DPoP (RFC 9449) end-to-end check of the test provider and the demo API, no browser, no backend:
//   node tests/harness/dpop-smoke.mjs [PORT]     (default 41200; uses PORT..PORT+10)
// Starts three providers (default, `dpop_nonce: true`, `dpop: false`) and two demo APIs (plain,
// --dpop-nonce), logs in, binds access tokens to a P-256 key through refresh grants carrying a
// proof, and has the APIs accept and refuse proofs; then stops everything.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BASE = Number(process.argv[2] ?? 41200);
const REDIRECT = 'http://127.0.0.1:8787/bff/callback';
const BASIC = `Basic ${Buffer.from('bff:bff-secret').toString('base64')}`;
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'dpop-smoke-'));
const children = [];

const ok = (msg) => console.log(`  ok   ${msg}`);
function fail(msg) {
  console.error(`  FAIL ${msg}`);
  for (const child of children) {
    console.error(`--- ${child.name} stderr:\n${fs.readFileSync(child.errFile, 'utf8')}`);
  }
  stopAll();
  process.exit(1);
}
const check = (cond, msg) => { if (!cond) fail(msg); };

function stopAll() {
  for (const child of children) child.kill('SIGTERM');
  fs.rmSync(WORK, { recursive: true, force: true });
}

// Starts a harness script and waits for its READY line.
function start(name, args) {
  const errFile = path.join(WORK, `${name}.err`);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', fs.openSync(errFile, 'w')] });
  Object.assign(child, { name, errFile });
  children.push(child);
  return new Promise((resolve) => {
    let out = '';
    const early = (code) => fail(`${name} exited (${code}) before READY`);
    child.once('exit', early);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const line = /^READY (.*)$/m.exec(out);
      if (line) {
        child.off('exit', early);
        resolve(JSON.parse(line[1]));
      }
    });
  });
}

async function provider(name, port, extra) {
  const file = path.join(WORK, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({
    port,
    resources: { [`http://127.0.0.1:${BASE + 9}/`]: { scope: 'api:read', jwt: true } },
    ...extra,
  }));
  const ready = await start(name, [path.join(HERE, 'idp.mjs'), '--config', file]);
  return ready.issuer;
}

// The provider's dev login and consent, one request at a time with a cookie jar keyed by name;
// returns the code exchange's answer (bearer tokens, a refresh token).
async function login(iss, api, who) {
  const jar = new Map();
  const step = async (url, init = {}) => {
    const response = await fetch(new URL(url, iss), {
      ...init,
      redirect: 'manual',
      headers: { ...init.headers, cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const at = pair.indexOf('=');
      if (/expires=Thu, 01 Jan 1970/i.test(cookie)) jar.delete(pair.slice(0, at));
      else jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    return response.headers.get('location');
  };
  const form = (fields) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
  });
  const verifier = crypto.randomBytes(32).toString('base64url');
  const auth = new URL('/auth', iss);
  auth.search = new URLSearchParams({
    client_id: 'bff', response_type: 'code', scope: 'openid offline_access api:read', prompt: 'consent',
    redirect_uri: REDIRECT, state: 's', nonce: 'n', resource: api,
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  });
  let loc = await step(auth);
  loc = await step(loc, form({ prompt: 'login', login: who, password: 'x' }));
  loc = await step(loc);
  loc = await step(loc, form({ prompt: 'consent' }));
  loc = await step(loc);
  check(loc?.startsWith(`${REDIRECT}?`), `login ended at ${loc}`);
  const code = new URL(loc).searchParams.get('code');
  const answer = await token(iss, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
  check(answer.status === 200, `code exchange: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

async function token(iss, fields, proof) {
  const response = await fetch(`${iss}/token`, {
    method: 'POST',
    headers: { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded', ...(proof ? { dpop: proof } : {}) },
    body: new URLSearchParams(fields),
  });
  return { status: response.status, body: await response.json(), nonce: response.headers.get('dpop-nonce') };
}

async function newKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

function proofFor(key, htm, htu, { accessToken, nonce, iat, jti } = {}) {
  return new SignJWT({
    htm,
    htu,
    jti: jti ?? crypto.randomUUID(),
    ...(accessToken ? { ath: crypto.createHash('sha256').update(accessToken).digest('base64url') } : {}),
    ...(nonce ? { nonce } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .setIssuedAt(iat)
    .sign(key.privateKey);
}

async function call(api, headers, url = `${api}hello`) {
  const response = await fetch(url, { headers });
  return {
    status: response.status,
    challenge: response.headers.get('www-authenticate') ?? '',
    nonce: response.headers.get('dpop-nonce'),
    body: await response.json(),
  };
}

// fetch folds repeated headers into one; node:http sends an array as separate header lines.
function rawCall(url, headers) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (response) => {
      let text = '';
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => resolve({
        status: response.statusCode,
        challenge: response.headers['www-authenticate'] ?? '',
        body: JSON.parse(text),
      }));
    }).on('error', reject);
  });
}

process.on('SIGINT', () => { stopAll(); process.exit(130); });

try {
  const apiPort = BASE + 9;
  const api = `http://127.0.0.1:${apiPort}/`;
  const apiNoncePort = BASE + 10;
  const apiNonce = `http://127.0.0.1:${apiNoncePort}/`;

  console.log('== start');
  const [iss, issNonce, issOff] = await Promise.all([
    provider('idp', BASE, {}),
    provider('idp-nonce', BASE + 3, { dpop_nonce: true }),
    provider('idp-off', BASE + 6, { dpop: false }),
  ]);
  // The nonce API trusts the nonce provider; both accept tokens whose audience is `api`.
  await Promise.all([
    start('api', [path.join(HERE, 'demo-api.mjs'), '--port', String(apiPort), '--issuer', iss]),
    start('api-nonce', [path.join(HERE, 'demo-api.mjs'), '--port', String(apiNoncePort), '--issuer', issNonce,
      '--audience', api, '--dpop-nonce']),
  ]);
  ok(`providers ${iss} (default), ${issNonce} (dpop_nonce), ${issOff} (dpop: false); APIs ${api}, ${apiNonce} (--dpop-nonce)`);

  console.log('== discovery');
  const discovery = async (i) => (await fetch(`${i}/.well-known/openid-configuration`)).json();
  const algs = (await discovery(iss)).dpop_signing_alg_values_supported;
  check(Array.isArray(algs) && algs.includes('ES256'), `dpop algs ${algs}`);
  ok(`dpop_signing_alg_values_supported ${JSON.stringify(algs)}`);
  check(!('dpop_signing_alg_values_supported' in await discovery(issOff)), 'dpop: false still lists DPoP algs');
  ok('"dpop": false: no dpop_signing_alg_values_supported');

  console.log('== refresh with a proof binds the access token (default provider)');
  const key = await newKey();
  let tokens = await login(iss, api, 'alice');
  check(tokens.token_type === 'Bearer' && decodeJwt(tokens.access_token).cnf === undefined, 'code exchange without a proof is bearer');
  const bearer = tokens.access_token;
  let answer = await token(iss, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
    await proofFor(key, 'POST', `${iss}/token`));
  check(answer.status === 200, `refresh with proof: ${answer.status} ${JSON.stringify(answer.body)}`);
  check(answer.body.token_type === 'DPoP', `token_type ${answer.body.token_type}`);
  const bound = answer.body.access_token;
  const reused = await proofFor(key, 'POST', `${iss}/token`);
  answer = await token(iss, { grant_type: 'refresh_token', refresh_token: answer.body.refresh_token }, reused);
  check(answer.status === 200, `second refresh: ${answer.status} ${JSON.stringify(answer.body)}`);
  const rt = answer.body.refresh_token;
  answer = await token(iss, { grant_type: 'refresh_token', refresh_token: rt }, reused);
  check(answer.status === 400 && answer.body.error === 'invalid_grant', `replayed proof at /token: ${answer.status} ${JSON.stringify(answer.body)}`);
  answer = await token(iss, { grant_type: 'refresh_token', refresh_token: rt }, await proofFor(key, 'POST', `${iss}/token`));
  check(answer.status === 200, `refresh after the replay: ${answer.status} ${JSON.stringify(answer.body)}`);
  ok('a proof used twice at /token -> 400 invalid_grant; the refresh token survives it');
  check(decodeJwt(bound).cnf?.jkt === key.jkt, `cnf ${JSON.stringify(decodeJwt(bound).cnf)}`);
  ok(`token_type DPoP, cnf.jkt = the key's thumbprint ${key.jkt}`);

  console.log('== the demo API');
  const htu = `${api}hello`;
  const dpopCall = async (tok, proof, target = api) => call(target, { authorization: `DPoP ${tok}`, dpop: proof });
  let r = await call(api, { authorization: `Bearer ${bearer}` });
  check(r.status === 200 && r.body.token_type === 'Bearer', `unbound bearer: ${r.status}`);
  ok('unbound token as Bearer -> 200');
  r = await dpopCall(bound, await proofFor(key, 'GET', htu, { accessToken: bound }));
  check(r.status === 200 && r.body.token_type === 'DPoP', `good proof: ${r.status} ${JSON.stringify(r.body)}`);
  ok('bound token + good proof -> 200');
  r = await dpopCall(bound, await proofFor(key, 'GET', `${htu}?x=1#f`, { accessToken: bound }));
  check(r.status === 200, `htu with query: ${r.status} ${JSON.stringify(r.body)}`);
  ok('htu with a query and fragment -> 200 (ignored)');
  const refused = async (what, result, error) => {
    check(result.status === 401, `${what}: ${result.status} ${JSON.stringify(result.body)}`);
    check(result.challenge.startsWith('DPoP ') && result.challenge.includes('algs="ES256"')
      && result.challenge.includes(`error="${error}"`), `${what}: WWW-Authenticate ${result.challenge}`);
    ok(`${what} -> 401 ${error} (${result.body.error_description})`);
  };
  await refused('bound token as Bearer', await call(api, { authorization: `Bearer ${bound}` }), 'invalid_token');
  await refused('unbound token with the DPoP scheme', await dpopCall(bearer, await proofFor(key, 'GET', htu, { accessToken: bearer })), 'invalid_token');
  await refused('no DPoP header', await call(api, { authorization: `DPoP ${bound}` }), 'invalid_dpop_proof');
  const other = await newKey();
  await refused('proof from another key', await dpopCall(bound, await proofFor(other, 'GET', htu, { accessToken: bound })), 'invalid_dpop_proof');
  const once = await proofFor(key, 'GET', htu, { accessToken: bound });
  check((await dpopCall(bound, once)).status === 200, 'first use of a proof');
  await refused('replayed proof (same jti)', await dpopCall(bound, once), 'invalid_dpop_proof');
  await refused('wrong ath', await dpopCall(bound, await proofFor(key, 'GET', htu, { accessToken: bearer })), 'invalid_dpop_proof');
  await refused('wrong htu', await dpopCall(bound, await proofFor(key, 'GET', `${api}other`, { accessToken: bound })), 'invalid_dpop_proof');
  await refused('wrong htm', await dpopCall(bound, await proofFor(key, 'POST', htu, { accessToken: bound })), 'invalid_dpop_proof');
  const stale = Math.floor(Date.now() / 1000) - 300;
  await refused('iat 5 min old', await dpopCall(bound, await proofFor(key, 'GET', htu, { accessToken: bound, iat: stale })), 'invalid_dpop_proof');
  const hs = await new SignJWT({ htm: 'GET', htu, jti: crypto.randomUUID(), ath: crypto.createHash('sha256').update(bound).digest('base64url') })
    .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt' }).setIssuedAt().sign(crypto.randomBytes(32));
  await refused('HS256 proof', await dpopCall(bound, hs), 'invalid_dpop_proof');
  const twice = [await proofFor(key, 'GET', htu, { accessToken: bound }), await proofFor(key, 'GET', htu, { accessToken: bound })];
  await refused('two DPoP headers', await rawCall(htu, { authorization: `DPoP ${bound}`, dpop: twice }), 'invalid_dpop_proof');
  r = await call(api, {});
  check(r.status === 401 && /Bearer realm/.test(r.challenge) && /DPoP realm="demo-api", algs="ES256"/.test(r.challenge), `no token: ${r.challenge}`);
  ok(`no token -> 401 ${r.challenge}`);
  const stats = await (await fetch(`${api}__stats`)).json();
  check(stats.dpop_accepted === 3 && stats.accepted === 4 && stats.dpop_rejected === 11 && stats.rejected === 12,
    `stats ${JSON.stringify(stats)}`);
  ok(`stats ${JSON.stringify(stats)}`);

  console.log('== provider nonces ("dpop_nonce": true) and API nonces (--dpop-nonce)');
  tokens = await login(issNonce, api, 'bob');
  answer = await token(issNonce, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
    await proofFor(key, 'POST', `${issNonce}/token`));
  check(answer.status === 400 && answer.body.error === 'use_dpop_nonce' && answer.nonce, `first refresh: ${answer.status} ${JSON.stringify(answer.body)}`);
  const counts = await (await fetch(`http://127.0.0.1:${BASE + 5}/counts`)).json();
  check(counts.grant_error === 1 && counts.refresh_token === 0, `counts ${JSON.stringify(counts)}`);
  ok(`refresh without a nonce -> 400 use_dpop_nonce (a grant_error in /counts), DPoP-Nonce ${answer.nonce}`);
  answer = await token(issNonce, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
    await proofFor(key, 'POST', `${issNonce}/token`, { nonce: answer.nonce }));
  check(answer.status === 200 && answer.body.token_type === 'DPoP', `retry: ${answer.status} ${JSON.stringify(answer.body)}`);
  check(decodeJwt(answer.body.access_token).cnf?.jkt === key.jkt, 'cnf after nonce retry');
  ok('retry with it (same refresh token, not consumed by the challenge) -> 200 DPoP, cnf.jkt bound');
  const boundN = answer.body.access_token;
  const htuN = `${apiNonce}hello`;
  r = await dpopCall(boundN, await proofFor(key, 'GET', htuN, { accessToken: boundN }), apiNonce);
  check(r.nonce, 'API answer without DPoP-Nonce');
  await refused('API: proof without a nonce', r, 'use_dpop_nonce');
  r = await dpopCall(boundN, await proofFor(key, 'GET', htuN, { accessToken: boundN, nonce: 'stale' }), apiNonce);
  await refused('API: unknown nonce', r, 'use_dpop_nonce');
  r = await dpopCall(boundN, await proofFor(key, 'GET', htuN, { accessToken: boundN, nonce: r.nonce }), apiNonce);
  check(r.status === 200 && r.nonce, `API retry with nonce: ${r.status} ${JSON.stringify(r.body)}`);
  ok('API: retry with its DPoP-Nonce -> 200 (DPoP-Nonce on the answer too)');
  const statsN = await (await fetch(`${apiNonce}__stats`)).json();
  check(statsN.dpop_nonce_challenges === 2 && statsN.dpop_accepted === 1, `stats ${JSON.stringify(statsN)}`);
  ok(`stats ${JSON.stringify(statsN)}`);

  console.log('== "dpop": false');
  tokens = await login(issOff, api, 'carol');
  answer = await token(issOff, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
    await proofFor(key, 'POST', `${issOff}/token`));
  check(answer.status === 200 && answer.body.token_type === 'Bearer' && !decodeJwt(answer.body.access_token).cnf,
    `refresh: ${answer.status} ${JSON.stringify(answer.body)}`);
  ok('a proof is ignored: token_type Bearer, no cnf');
} catch (err) {
  fail(err.stack ?? String(err));
}
stopAll();
console.log('ALL OK');
