// Unit tests of the client's DPoP mode (RFC 9449) against fakes: `cd sdk && npm test`. Proofs are
// checked with jose (a devDependency of the repository root), never with the client's own code.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';

import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';

import { createClient } from '../dist/tmi-bff.js';
import { fakeBackend, fakeChannels, fakeClock, fakeIndexedDB, fakeLocks, json, settle, withLocation } from './fakes.mjs';

const AS_TOKEN = 'https://op.test/token';
const KEY_NAME = 'http://localhost'; // <origin><base path> outside a browser
let clock;
beforeEach(() => { clock = fakeClock(); });
afterEach(() => clock.restore());

/** A client of a DPoP backend with fake locks, channels and IndexedDB unless given. */
function client(backend, options = {}) {
  return createClient({
    fetch: backend.fetch, locks: fakeLocks(), channel: fakeChannels(), indexedDB: fakeIndexedDB(), navigate: false, ...options,
  });
}

/**
 * Verifies a DPoP proof as a server would (RFC 9449 4.3): signature by the embedded key, typ,
 * alg ES256, a jwk with the public members only; resolves to its claims and its key's thumbprint.
 */
async function verifyProof(proof) {
  assert.equal(typeof proof, 'string', 'a DPoP header');
  const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] });
  assert.deepEqual(Object.keys(protectedHeader).sort(), ['alg', 'jwk', 'typ']);
  assert.deepEqual(Object.keys(protectedHeader.jwk), ['crv', 'kty', 'x', 'y'], 'no private member, RFC 7638 order');
  assert.equal(protectedHeader.jwk.crv, 'P-256');
  assert.equal(protectedHeader.jwk.kty, 'EC');
  assert.match(payload.jti, /^[A-Za-z0-9_-]{16,}$/, 'jti: at least 96 random bits, base64url');
  assert.ok(Number.isInteger(payload.iat) && payload.iat <= Date.now() / 1000 && payload.iat > Date.now() / 1000 - 60, 'iat: now');
  return { claims: payload, jkt: await calculateJwkThumbprint(protectedHeader.jwk, 'sha256') };
}

const sha256 = async (text) => Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))).toString('base64url');

/** An API that wants a DPoP nonce: 401 use_dpop_nonce until a proof carries `nonce`. */
function nonceApi(nonce) {
  return async (call) => {
    const { payload } = await jwtVerify(call.headers.get('dpop'), EmbeddedJWK, { typ: 'dpop+jwt' });
    if (payload.nonce === nonce) return json(200, { ok: true }, { 'DPoP-Nonce': nonce });
    return json(401, { error: 'use_dpop_nonce' }, {
      'WWW-Authenticate': 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
      'DPoP-Nonce': nonce,
    });
  };
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' };
const jktOf = async (publicKey) => calculateJwkThumbprint(await crypto.subtle.exportKey('jwk', publicKey), 'sha256');
const loginJkt = async (c) => new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt');

/**
 * A DPoP backend that pins the session to `dpop_jkt` like the real one: `signIn(url)` completes
 * the login of a URL from `login()`; the token endpoint answers invalid_dpop_proof to a proof of
 * another key and invalid_session without a session. `hold`: a promise sessioninfo answers wait
 * for (the answer is what the session was when the request arrived).
 */
function pinningBackend() {
  const state = { pinned: null, hold: null };
  let issued = 0;
  const backend = fakeBackend({
    dpop: AS_TOKEN,
    session: () => {
      const answer = state.pinned
        ? json(200, { iss: 'https://op', sub: 'alice', exp: 2_000_000_000 })
        : json(400, { error: 'invalid_session' });
      return state.hold ? state.hold.then(() => answer) : answer;
    },
    token: async (call) => {
      if (!state.pinned) return json(400, { error: 'invalid_session' });
      const { jkt } = await verifyProof(call.headers.get('dpop'));
      if (jkt !== state.pinned) return json(400, { error: 'invalid_dpop_proof', error_description: 'not the pinned key' });
      issued += 1;
      return json(200, { access_token: `tok-${issued}`, token_type: 'DPoP', expires_in: 10 });
    },
  });
  const signIn = (url) => {
    state.pinned = new URL(url, 'http://localhost').searchParams.get('dpop_jkt');
    return state.pinned;
  };
  return { backend, state, signIn };
}

/** Two tabs (clients sharing IndexedDB, locks and channels) and the sessionend reasons of each. */
function twoTabs(backend, options = {}) {
  const shared = { indexedDB: fakeIndexedDB(), locks: fakeLocks(), channel: fakeChannels(), ...options };
  const ends = { a: [], b: [] };
  const a = client(backend, shared);
  const b = client(backend, shared);
  a.addEventListener('sessionend', (e) => ends.a.push(e.detail.reason));
  b.addEventListener('sessionend', (e) => ends.b.push(e.detail.reason));
  return { a, b, ends, indexedDB: shared.indexedDB };
}

describe('DPoP: the key', () => {
  test('login adds dpop_jkt, the RFC 7638 thumbprint of the key that signs the proofs', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN });
    const c = client(backend);
    const url = new URL(await c.login({ returnTo: '/x' }), 'http://localhost');
    assert.equal(url.pathname, '/bff/login');
    const jkt = url.searchParams.get('dpop_jkt');
    assert.match(jkt, /^[A-Za-z0-9_-]{43}$/);
    await c.getToken();
    const { jkt: signer } = await verifyProof(backend.of('token')[0].headers.get('dpop'));
    assert.equal(jkt, signer);
    // the loginUrl of backend_not_ready gets it too
    const again = new URL(await c.login({ loginUrl: '/bff/login?scope=api%3Awrite' }), 'http://localhost');
    assert.equal(again.searchParams.get('dpop_jkt'), jkt);
    assert.equal(again.searchParams.get('scope'), 'api:write');
  });

  test('one non-extractable P-256 pair, made under a Web Lock, stored in IndexedDB and reused', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN });
    const indexedDB = fakeIndexedDB();
    const locks = fakeLocks();
    const tab = client(backend, { indexedDB, locks });
    const jkt = new URL(await tab.login(), 'http://localhost').searchParams.get('dpop_jkt');
    assert.deepEqual(locks.names, [`tmi-bff-dpop:${KEY_NAME}`]);
    assert.deepEqual(indexedDB.keys(), [KEY_NAME]);
    const { privateKey, publicKey } = indexedDB.value(KEY_NAME);
    assert.equal(privateKey.extractable, false);
    assert.deepEqual(privateKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
    await assert.rejects(crypto.subtle.exportKey('jwk', privateKey));
    assert.equal(await calculateJwkThumbprint(await crypto.subtle.exportKey('jwk', publicKey)), jkt);

    // A reload or another tab (another client on the same IndexedDB) finds it: no lock, no new key.
    const other = client(backend, { indexedDB, locks });
    await other.getToken();
    assert.equal((await verifyProof(backend.of('token')[0].headers.get('dpop'))).jkt, jkt);
    assert.deepEqual(locks.names.filter((n) => n.startsWith('tmi-bff-dpop:')), [`tmi-bff-dpop:${KEY_NAME}`]);
    assert.equal(indexedDB.ops.filter(([, op]) => op === 'put').length, 1);
  });

  test('two tabs starting at once make one key: the second looks again inside the lock', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN });
    const indexedDB = fakeIndexedDB();
    const locks = fakeLocks();
    const tabs = [1, 2, 3].map(() => client(backend, { indexedDB, locks }));
    const urls = await Promise.all(tabs.map((t) => t.login()));
    const jkts = urls.map((u) => new URL(u, 'http://localhost').searchParams.get('dpop_jkt'));
    assert.equal(new Set(jkts).size, 1, jkts.join(' '));
    assert.equal(indexedDB.ops.filter(([, op]) => op === 'put').length, 1);
  });

  test('a base path has its own key', async () => {
    const indexedDB = fakeIndexedDB();
    const root = client(fakeBackend({ dpop: AS_TOKEN }), { indexedDB });
    const app = client(fakeBackend({ dpop: AS_TOKEN, base: '/app' }), { indexedDB, basePath: '/app' });
    const jkt = async (c) => new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt');
    assert.notEqual(await jkt(root), await jkt(app));
    assert.deepEqual(indexedDB.keys(), [KEY_NAME, `${KEY_NAME}/app`]);
  });

  test('logout deletes the key (IndexedDB and memory) before navigating; the next login pins a new one', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN });
    const indexedDB = fakeIndexedDB();
    const seen = [];
    const c = client(backend, { indexedDB, navigate: (url) => url.includes('/session/end') && seen.push(indexedDB.keys().length) });
    const first = new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt');
    await c.getToken();
    await c.logout();
    assert.deepEqual(seen, [0], 'deleted before the navigation');
    assert.deepEqual(indexedDB.keys(), []);
    const second = new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt');
    assert.notEqual(second, first);
    assert.deepEqual(indexedDB.keys(), [KEY_NAME]);
  });

  test('a stored pair that is not a non-extractable P-256 signing pair is replaced, never pinned', async () => {
    // What a one-off script injected into the page could leave behind to have later logins pin a
    // key it holds: an extractable pair (its private JWK kept), or anything else under the name.
    const extractable = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']);
    const p384 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']);
    const ecdh = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const good = await crypto.subtle.generateKey(EC, false, ['sign', 'verify']);
    const lockedPublic = {
      privateKey: good.privateKey,
      publicKey: await crypto.subtle.importKey('jwk', await crypto.subtle.exportKey('jwk', good.publicKey), EC, false, ['verify']),
    };
    const planted = [
      ['an extractable P-256 pair', extractable],
      ['a P-384 pair', p384],
      ['an ECDH pair', ecdh],
      ['a pair whose public key cannot be exported', lockedPublic],
      ['private and public swapped', { privateKey: good.publicKey, publicKey: good.privateKey }],
      ['JWKs instead of CryptoKeys', {
        privateKey: await crypto.subtle.exportKey('jwk', extractable.privateKey),
        publicKey: await crypto.subtle.exportKey('jwk', extractable.publicKey),
      }],
      ['a string', 'key'],
      ['null', null],
    ];
    for (const [what, value] of planted) {
      const indexedDB = fakeIndexedDB();
      const locks = fakeLocks();
      indexedDB.plant(KEY_NAME, value);
      const backend = fakeBackend({ dpop: AS_TOKEN });
      const c = client(backend, { indexedDB, locks });
      const jkt = await loginJkt(c);
      if (value?.publicKey instanceof CryptoKey && value.publicKey.extractable) {
        assert.notEqual(jkt, await jktOf(value.publicKey), what);
      }
      const stored = indexedDB.value(KEY_NAME);
      assert.equal(stored.privateKey.extractable, false, what);
      assert.deepEqual(stored.privateKey.algorithm, EC, what);
      assert.equal(await jktOf(stored.publicKey), jkt, `${what}: the new pair is stored`);
      assert.deepEqual(locks.names, [`tmi-bff-dpop:${KEY_NAME}`], `${what}: made under the lock`);
      await c.getToken();
      assert.equal((await verifyProof(backend.of('token')[0].headers.get('dpop'))).jkt, jkt, what);
    }
  });

  test('without Web Locks two tabs starting at once still make one key: IndexedDB decides', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN });
    const indexedDB = fakeIndexedDB();
    const tabs = [1, 2, 3].map(() => client(backend, { indexedDB, locks: null }));
    const jkts = await Promise.all(tabs.map(loginJkt));
    assert.equal(new Set(jkts).size, 1, jkts.join(' '));
    assert.equal(await jktOf(indexedDB.value(KEY_NAME).publicKey), jkts[0]);
    for (const tab of tabs) await tab.getToken();
    const signers = await Promise.all(backend.of('token').map(async (x) => (await verifyProof(x.headers.get('dpop'))).jkt));
    assert.deepEqual(signers, [jkts[0], jkts[0], jkts[0]]);
  });

  test('a stale tab\'s sessionend does not delete the key another tab has just pinned', async () => {
    const { backend, state, signIn } = pinningBackend();
    const { a, b, ends, indexedDB } = twoTabs(backend);
    const k1 = signIn(await a.login());
    await a.getToken();
    await b.getToken();
    state.pinned = null; // the session ends at the backend
    let release;
    state.hold = new Promise((resolve) => { release = resolve; });
    const late = b.getSession(); // asked now, answered (no session) only after A's new login
    await settle();
    state.hold = null;
    assert.equal(await a.getSession(), null);
    const k2 = signIn(await a.login());
    assert.notEqual(k2, k1);
    assert.equal(await jktOf(indexedDB.value(KEY_NAME).publicKey), k2);
    release();
    assert.equal(await late, null);
    assert.deepEqual(ends, { a: ['invalid_session'], b: ['invalid_session'] });
    assert.equal(await loginJkt(b), k2, 'B waited for its deletion, which left K2 alone');
    assert.equal(await jktOf(indexedDB.value(KEY_NAME).publicKey), k2);
    clock.advance(20_000);
    assert.match(await a.getToken(), /^tok-/);
    assert.deepEqual(ends.a, ['invalid_session']);
  });

  test('logout deletes the stored key even when it is not the one this tab knew', async () => {
    const { backend, signIn } = pinningBackend();
    const { a, b, indexedDB } = twoTabs(backend);
    signIn(await a.login());
    await b.getToken();
    indexedDB.plant(KEY_NAME, await crypto.subtle.generateKey(EC, false, ['sign', 'verify']));
    await b.logout();
    assert.deepEqual(indexedDB.keys(), []);
  });

  test('sessionend (invalid_session) deletes the key too', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN });
    const indexedDB = fakeIndexedDB();
    const c = client(backend, { indexedDB });
    const ends = [];
    c.addEventListener('sessionend', (e) => ends.push(e.detail.reason));
    await c.getToken();
    assert.deepEqual(indexedDB.keys(), [KEY_NAME]);
    backend.state.session = false;
    assert.equal(await c.getSession(), null);
    assert.deepEqual(ends, ['invalid_session']);
    await c.login(); // a key operation waits for the deletion
    assert.equal(indexedDB.ops.filter(([, op]) => op === 'delete').length, 1);
  });

  test('without IndexedDB (or when it fails) the key lives in memory: same key until logout', async () => {
    for (const indexedDB of [null, fakeIndexedDB({ fail: true })]) {
      const backend = fakeBackend({ dpop: AS_TOKEN });
      const c = client(backend, { indexedDB });
      const jkt = new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt');
      await c.getToken();
      assert.equal((await verifyProof(backend.of('token')[0].headers.get('dpop'))).jkt, jkt);
      await c.logout();
      assert.notEqual(new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt'), jkt);
    }
  });

  test('dpop: false changes nothing: Bearer, no proof, no dpop_jkt, no IndexedDB', async () => {
    const backend = fakeBackend();
    const indexedDB = fakeIndexedDB();
    const locks = fakeLocks();
    const c = client(backend, { indexedDB, locks });
    await c.fetch('https://api.test/x');
    const url = new URL(await c.login(), 'http://localhost');
    await c.logout();
    assert.equal(url.searchParams.has('dpop_jkt'), false);
    assert.equal(backend.api()[0].headers.get('authorization'), 'Bearer tok-1');
    assert.ok(backend.calls.every((call) => !call.headers.has('dpop')));
    assert.deepEqual(indexedDB.ops, []);
    assert.ok(locks.names.every((n) => !n.startsWith('tmi-bff-dpop')));
  });

  test('"dpop": true without dpop_token_endpoint is a configuration_error', async () => {
    const backend = fakeBackend({ configuration: () => json(200, { dpop: true }) });
    await assert.rejects(client(backend).getToken(), { code: 'configuration_error' });
  });
});

describe('DPoP: getToken', () => {
  test('the token request carries a proof for POST at the authorization server\'s token endpoint', async () => {
    const backend = fakeBackend({
      dpop: AS_TOKEN,
      token: () => json(200, { access_token: 'dpop-tok', token_type: 'DPoP', expires_in: 60, scope: 'openid' }),
    });
    const c = client(backend);
    assert.equal(await c.getToken(), 'dpop-tok');
    const [call] = backend.of('token');
    const { claims } = await verifyProof(call.headers.get('dpop'));
    assert.deepEqual(Object.keys(claims).sort(), ['htm', 'htu', 'iat', 'jti']);
    assert.equal(claims.htm, 'POST');
    assert.equal(claims.htu, AS_TOKEN);
    assert.equal(call.headers.get('x-csrf'), '1');
  });

  test('use_dpop_nonce: once more with the nonce; the newest nonce goes into later proofs', async () => {
    const nonces = [];
    let asked = 0;
    const backend = fakeBackend({
      dpop: AS_TOKEN,
      expiresIn: 10,
      token: async (call) => {
        const { payload } = await jwtVerify(call.headers.get('dpop'), EmbeddedJWK, { typ: 'dpop+jwt' });
        nonces.push(payload.nonce);
        asked += 1;
        if (asked === 1) return json(400, { error: 'use_dpop_nonce', error_description: 'nonce' }, { 'DPoP-Nonce': 'n-1' });
        return json(200, { access_token: `tok-${asked}`, token_type: 'DPoP', expires_in: 10 }, { 'DPoP-Nonce': `n-${asked}` });
      },
    });
    const c = client(backend);
    assert.equal(await c.getToken(), 'tok-2');
    clock.advance(20_000);
    assert.equal(await c.getToken(), 'tok-3');
    assert.deepEqual(nonces, [undefined, 'n-1', 'n-2']);
    const jtis = await Promise.all(backend.of('token').map(async (x) => (await verifyProof(x.headers.get('dpop'))).claims.jti));
    assert.equal(new Set(jtis).size, 3, 'a new proof every time');
  });

  test('a second use_dpop_nonce goes to the caller: one retry, never a loop', async () => {
    let n = 0;
    const backend = fakeBackend({
      dpop: AS_TOKEN,
      token: () => json(400, { error: 'use_dpop_nonce' }, { 'DPoP-Nonce': `n-${++n}` }),
    });
    await assert.rejects(client(backend).getToken(), { code: 'use_dpop_nonce', status: 400 });
    assert.equal(backend.of('token').length, 2);
  });

  test('invalid_dpop_proof (the stored key is not the session\'s) ends the session like invalid_session', async () => {
    let broken = false;
    const backend = fakeBackend({
      dpop: AS_TOKEN,
      token: () => (broken ? json(400, { error: 'invalid_dpop_proof', error_description: 'key mismatch' })
        : json(200, { access_token: 'ok', token_type: 'DPoP', expires_in: 10 })),
    });
    const indexedDB = fakeIndexedDB();
    const c = client(backend, { indexedDB });
    const ends = [];
    c.addEventListener('sessionend', (e) => ends.push(e.detail.reason));
    const before = new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt');
    await c.getToken();
    broken = true;
    clock.advance(20_000);
    await assert.rejects(c.getToken(), { code: 'invalid_dpop_proof', status: 400 });
    assert.deepEqual(ends, ['invalid_session']);
    assert.equal(backend.of('token').length, 2, 'the stored key is the one refused: no retry');
    const after = new URL(await c.login(), 'http://localhost').searchParams.get('dpop_jkt');
    assert.notEqual(after, before, 'the key was deleted: the next login pins a new one');
  });

  test('invalid_dpop_proof from a stale tab: the key another tab just pinned is found, the session survives', async () => {
    // Tabs A and B hold K1; the session ends; A logs in again with a new key K2; B wakes up and
    // signs with K1: the backend refuses it, B finds K2 in IndexedDB and gets its token with it.
    const { backend, state, signIn } = pinningBackend();
    const { a, b, ends, indexedDB } = twoTabs(backend);
    const k1 = signIn(await a.login());
    await a.getToken();
    await b.getToken();
    state.pinned = null;
    assert.equal(await a.getSession(), null);
    const k2 = signIn(await a.login());
    assert.notEqual(k2, k1);
    await a.getToken();
    clock.advance(20_000);
    assert.match(await b.getToken(), /^tok-/);
    assert.deepEqual(ends, { a: ['invalid_session'], b: [] });
    const last = await Promise.all(backend.of('token').slice(-2).map(async (x) => (await verifyProof(x.headers.get('dpop'))).jkt));
    assert.deepEqual(last, [k1, k2], 'one refused proof with K1, then one with K2');
    assert.equal(await jktOf(indexedDB.value(KEY_NAME).publicKey), k2, 'K2 is still stored');
    assert.match(await a.getToken(), /^tok-/);
    const fetched = await b.fetch('https://api.test/x');
    assert.equal(fetched.status, 200);
    assert.equal((await verifyProof(backend.api()[0].headers.get('dpop'))).jkt, k2, 'B signs with K2 from now on');
  });

  test('invalid_dpop_proof again with the other stored key: sessionend after one retry, never a loop', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN, token: () => json(400, { error: 'invalid_dpop_proof' }) });
    const indexedDB = fakeIndexedDB();
    const c = client(backend, { indexedDB });
    const ends = [];
    c.addEventListener('sessionend', (e) => ends.push(e.detail.reason));
    await c.getSession();
    const first = await loginJkt(c);
    const other = await crypto.subtle.generateKey(EC, false, ['sign', 'verify']);
    indexedDB.plant(KEY_NAME, other);
    await assert.rejects(c.getToken(), { code: 'invalid_dpop_proof' });
    const signers = await Promise.all(backend.of('token').map(async (x) => (await verifyProof(x.headers.get('dpop'))).jkt));
    assert.deepEqual(signers, [first, await jktOf(other.publicKey)]);
    assert.deepEqual(ends, ['invalid_session']);
    assert.notEqual(await loginJkt(c), await jktOf(other.publicKey), 'the key it knew last was deleted');
  });

  test('an intermediary\'s 503 retried at once gets a new proof (a proof is used once)', async () => {
    let answers = [new Response('restarted', { status: 503, headers: { 'content-type': 'text/plain', 'Retry-After': '0' } })];
    const backend = fakeBackend({ dpop: AS_TOKEN, token: () => answers.shift() ?? json(200, { access_token: 'ok', expires_in: 60 }) });
    assert.equal(await client(backend).getToken(), 'ok');
    const proofs = backend.of('token').map((x) => x.headers.get('dpop'));
    assert.equal(proofs.length, 2);
    assert.notEqual((await verifyProof(proofs[0])).claims.jti, (await verifyProof(proofs[1])).claims.jti);
    answers = [];
  });
});

describe('DPoP: fetch', () => {
  test('Authorization: DPoP and a proof of this request: htm, htu without query and fragment, ath', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN });
    const c = client(backend);
    const res = await c.fetch('https://api.test/items/7?x=1#top', {
      method: 'PUT', headers: { 'content-type': 'text/plain', 'x-a': '1' }, body: 'hello',
    });
    assert.equal(res.status, 200);
    const [call] = backend.api();
    assert.equal(call.headers.get('authorization'), 'DPoP tok-1');
    assert.equal(call.headers.get('x-a'), '1');
    assert.equal(call.body, 'hello');
    const { claims, jkt } = await verifyProof(call.headers.get('dpop'));
    assert.deepEqual(Object.keys(claims).sort(), ['ath', 'htm', 'htu', 'iat', 'jti']);
    assert.equal(claims.htm, 'PUT');
    assert.equal(claims.htu, 'https://api.test/items/7');
    assert.equal(claims.ath, await sha256('tok-1'));
    assert.equal(jkt, (await verifyProof(backend.of('token')[0].headers.get('dpop'))).jkt);
  });

  test('an API asking for a nonce: one more try with it (body sent again); the nonce is kept per origin', async () => {
    const rs = nonceApi('rs-1');
    const backend = fakeBackend({ dpop: AS_TOKEN, api: (call) => (call.url.startsWith('https://api.test/') ? rs(call) : json(200, {})) });
    const c = client(backend);
    const res = await c.fetch('https://api.test/x', { method: 'POST', body: 'payload' });
    assert.equal(res.status, 200);
    const proofs = await Promise.all(backend.api().map(async (x) => [(await verifyProof(x.headers.get('dpop'))).claims, x.body]));
    assert.deepEqual(proofs.map(([claims, body]) => [claims.nonce, claims.htm, body]), [
      [undefined, 'POST', 'payload'], ['rs-1', 'POST', 'payload'],
    ]);
    assert.notEqual(proofs[0][0].jti, proofs[1][0].jti);
    assert.equal(backend.of('token').length, 1, 'not a rejected token: no rejected_token request');
    // the next request to that origin carries the nonce at once; another origin's does not,
    // and neither does the token request (the authorization server has its own)
    await c.fetch('https://api.test/y');
    await c.fetch('https://other.test/y');
    const later = await Promise.all(backend.api().slice(2).map(async (x) => (await verifyProof(x.headers.get('dpop'))).claims));
    assert.deepEqual(later.map((claims) => [claims.htu, claims.nonce]), [
      ['https://api.test/y', 'rs-1'], ['https://other.test/y', undefined],
    ]);
    assert.equal((await verifyProof(backend.of('token')[0].headers.get('dpop'))).claims.nonce, undefined);
  });

  test('use_dpop_nonce in a 400 (RFC 9449 9) is retried the same way', async () => {
    let n = 0;
    const backend = fakeBackend({
      dpop: AS_TOKEN,
      api: () => (++n === 1
        ? json(400, {}, { 'WWW-Authenticate': 'DPoP error="use_dpop_nonce"', 'DPoP-Nonce': 'rs-9' })
        : json(200, {})),
    });
    assert.equal((await client(backend).fetch('https://api.test/x')).status, 200);
    assert.equal((await verifyProof(backend.api()[1].headers.get('dpop'))).claims.nonce, 'rs-9');
  });

  test('a 401 that is not use_dpop_nonce: rejected_token and one retry with a new token and proof', async () => {
    const backend = fakeBackend({
      dpop: AS_TOKEN,
      api: (call) => (call.headers.get('authorization') === 'DPoP tok-1'
        ? json(401, {}, { 'WWW-Authenticate': 'DPoP error="invalid_token"' }) : json(200, {})),
    });
    const res = await client(backend).fetch('https://api.test/x', { method: 'DELETE' });
    assert.equal(res.status, 200);
    assert.equal(backend.of('token')[1].form.get('rejected_token'), 'tok-1');
    const claims = await Promise.all(backend.api().map(async (x) => (await verifyProof(x.headers.get('dpop'))).claims));
    assert.deepEqual(claims.map((x) => [x.htm, x.ath]), [['DELETE', await sha256('tok-1')], ['DELETE', await sha256('tok-2')]]);
  });

  test('a use_dpop_nonce answer without DPoP-Nonce is returned as it is', async () => {
    const backend = fakeBackend({
      dpop: AS_TOKEN,
      token: () => json(200, { access_token: 'same', expires_in: 60 }),
      api: () => json(401, {}, { 'WWW-Authenticate': 'DPoP error="use_dpop_nonce"' }),
    });
    const res = await client(backend).fetch('https://api.test/x');
    assert.equal(res.status, 401);
    assert.equal(backend.api().length, 1);
  });
});

describe('DPoP in a page', () => {
  test('the key name is the page\'s origin and the base path', async () => {
    const backend = fakeBackend({ dpop: AS_TOKEN, base: '/app' });
    const indexedDB = fakeIndexedDB();
    await withLocation('http://app.test/app/page', async () => {
      const url = await client(backend, { indexedDB, basePath: '/app' }).login();
      assert.match(url, /^\/app\/bff\/login\?return_to=%2Fapp%2Fpage&dpop_jkt=[A-Za-z0-9_-]{43}$/);
    });
    assert.deepEqual(indexedDB.keys(), ['http://app.test/app']);
  });
});
