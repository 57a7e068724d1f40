// DPoP (RFC 9449) in Chromium, against the DPoP stack of scripts/browser-test.sh: a Worker with
// BFF_DPOP=required, a provider that requires DPoP nonces at its token endpoint, and the demo API
// with --dpop-nonce. The JS client keeps one non-extractable P-256 key per origin and base path in
// IndexedDB; the login pins it, every token is bound to it, logout deletes it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose';

import {
  callApi, claimsOf, dpopApi, dpopIdp, env, freshContext, loaded, logIn, open, sleep,
} from './helpers.mjs';

/**
 * The client's key pair as the page's IndexedDB holds it (database `tmi-bff`, store `dpop`, key
 * `<origin><base path>`), or null: its public JWK and RFC 7638 thumbprint computed in the page,
 * and what the page can do with the private key.
 */
function storedKey(page) {
  return page.evaluate(async () => {
    const db = await new Promise((resolve) => {
      const request = indexedDB.open('tmi-bff');
      // Looking must not create the database (the client would then find no object store).
      request.onupgradeneeded = () => request.transaction.abort();
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => resolve(null);
    });
    if (!db) return null;
    try {
      if (!db.objectStoreNames.contains('dpop')) return null;
      const pair = await new Promise((resolve, reject) => {
        const get = db.transaction('dpop').objectStore('dpop').get(location.origin + window.bff.basePath);
        get.onsuccess = () => resolve(get.result);
        get.onerror = () => reject(get.error);
      });
      if (!pair) return null;
      const { crv, kty, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
      const jwk = { crv, kty, x, y };
      const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify(jwk)));
      const jkt = btoa(String.fromCharCode(...new Uint8Array(digest))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
      const exported = await crypto.subtle.exportKey('jwk', pair.privateKey).then(() => 'exported', (e) => e.name);
      const raw = await crypto.subtle.exportKey('pkcs8', pair.privateKey).then(() => 'exported', (e) => e.name);
      return {
        jwk, jkt, exported, raw,
        extractable: pair.privateKey.extractable,
        algorithm: { ...pair.privateKey.algorithm },
        usages: pair.privateKey.usages,
      };
    } finally {
      db.close();
    }
  });
}

/**
 * The token requests of a context's pages with their DPoP proof and answer, and the `dpop_jkt` of
 * every navigation to the backend's login.
 */
function recordDpop(context) {
  const tokens = [];
  const logins = [];
  context.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname === '/bff/login') logins.push(url.searchParams.get('dpop_jkt'));
    if (url.pathname !== '/.well-known/bff-token') return;
    const entry = { done: false };
    tokens.push(entry);
    (async () => {
      entry.proof = (await request.allHeaders()).dpop;
      const response = await request.response();
      entry.status = response?.status();
      entry.nonce = (await response?.allHeaders())?.['dpop-nonce'];
      entry.body = await response?.json().catch(() => null);
    })().catch((e) => { entry.failure = String(e); }).finally(() => { entry.done = true; });
  });
  const settled = async () => {
    for (let i = 0; i < 100 && !tokens.every((t) => t.done); i += 1) await sleep(50);
    return tokens;
  };
  return { tokens: settled, logins };
}

describe('DPoP (BFF_DPOP=required)', { timeout: 180_000 }, () => {
  let context;
  let errors;
  let page;
  let recorded;
  let first; // the key pinned by the first login
  const token = (p = page) => p.evaluate(() => window.bff.getToken());

  let close;
  before(async () => {
    ({ context, errors } = await freshContext((c) => { close = c; }));
    page = await context.newPage();
    recorded = recordDpop(context);
    await dpopIdp.resetCounts();
  });
  after(() => close?.());

  test('login pins the stored key; the token is bound to it (cnf.jkt); client.fetch to the API succeeds', async () => {
    await logIn(page, `${env.dpopApp}/`, 'alice', env.dpopIssuer);
    const config = await page.evaluate(() => fetch('/.well-known/bff-configuration').then((r) => r.json()));
    assert.equal(config.dpop, true);
    assert.ok(config.dpop_token_endpoint.startsWith(`${env.dpopIssuer}/`), config.dpop_token_endpoint);
    assert.deepEqual(config.dpop_signing_alg_values_supported, ['ES256']);

    first = await storedKey(page);
    assert.ok(first, 'a key pair in IndexedDB');
    assert.equal(first.jkt, await calculateJwkThumbprint(first.jwk, 'sha256'), 'the page computes RFC 7638 like jose');
    assert.deepEqual(recorded.logins, [first.jkt], 'the login carried dpop_jkt = the stored key\'s thumbprint');

    const claims = claimsOf(await token());
    assert.equal(claims.cnf?.jkt, first.jkt, 'the access token is bound to the stored key');
    assert.equal(claims.aud, env.dpopApi);
    assert.equal(claims.sub, 'alice');

    // Every token request carried a proof from that key for POST at the provider's token endpoint.
    const tokens = await recorded.tokens();
    assert.ok(tokens.length >= 1);
    for (const t of tokens) {
      const header = decodeProtectedHeader(t.proof);
      const proof = decodeJwt(t.proof);
      assert.equal(header.typ, 'dpop+jwt');
      assert.equal(header.alg, 'ES256');
      assert.equal(await calculateJwkThumbprint(header.jwk, 'sha256'), first.jkt);
      assert.equal(header.jwk.d, undefined);
      assert.equal(proof.htm, 'POST');
      assert.equal(proof.htu, config.dpop_token_endpoint);
    }

    await dpopApi.reset();
    const answer = await callApi(page);
    assert.match(answer, /^HTTP 200/);
    const body = JSON.parse(answer.replace(/^HTTP 200\n/, ''));
    assert.equal(body.sub, 'alice');
    const stats = await dpopApi.stats();
    assert.equal(stats.accepted, 1, JSON.stringify(stats));
    assert.equal(stats.dpop_accepted, 1, JSON.stringify(stats));
    // Tokens live in memory only; the key is in IndexedDB, nothing in the other storages.
    const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
    assert.deepEqual(stored, [0, 0, '']);
  });

  test('a second tab and a reload use the same key, without a second login', async () => {
    const other = await context.newPage();
    const navigations = [];
    other.on('framenavigated', (frame) => { if (frame === other.mainFrame()) navigations.push(frame.url()); });
    await open(other, `${env.dpopApp}/`, 'in');
    assert.equal((await storedKey(other)).jkt, first.jkt);
    assert.equal(claimsOf(await token(other)).cnf.jkt, first.jkt);
    assert.match(await callApi(other), /^HTTP 200/);
    assert.deepEqual(navigations, [`${env.dpopApp}/`], 'the second tab never went to the login');
    await other.close();

    await page.reload({ waitUntil: 'domcontentloaded' });
    await loaded(page, 'in');
    assert.equal((await storedKey(page)).jkt, first.jkt);
    assert.equal(claimsOf(await token()).cnf.jkt, first.jkt);
    assert.match(await callApi(page), /^HTTP 200/);

    assert.equal(recorded.logins.length, 1, 'one login');
    assert.equal((await dpopIdp.counts()).authorization_code, 1, 'one authorization code at the provider');
    const tokens = await recorded.tokens();
    assert.ok(tokens.every((t) => t.proof), 'every token request had a proof');
    for (const t of tokens) assert.equal(await calculateJwkThumbprint(decodeProtectedHeader(t.proof).jwk, 'sha256'), first.jkt);
  });

  test('the private key cannot be exported from the page', async () => {
    const key = await storedKey(page);
    assert.equal(key.extractable, false);
    assert.equal(key.exported, 'InvalidAccessError');
    assert.equal(key.raw, 'InvalidAccessError');
    assert.deepEqual(key.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
    assert.deepEqual(key.usages, ['sign']);
  });

  test('logout deletes the key; the next login pins a different one', async () => {
    await page.click('#logout');
    await page.waitForURL((u) => u.href.startsWith(`${env.dpopIssuer}/session/end`));
    await page.locator('button', { hasText: 'Yes, sign me out' }).click();
    await page.waitForURL((u) => u.origin === env.dpopApp && u.pathname === '/');
    await loaded(page, 'out');
    assert.equal(await storedKey(page), null, 'no key in IndexedDB after logout');

    await logIn(page, `${env.dpopApp}/`, 'alice', env.dpopIssuer);
    const second = await storedKey(page);
    assert.ok(second);
    assert.notEqual(second.jkt, first.jkt);
    assert.deepEqual(recorded.logins, [first.jkt, second.jkt]);
    assert.equal(claimsOf(await token()).cnf.jkt, second.jkt);
    assert.match(await callApi(page), /^HTTP 200/);
  });

  test('nonces: the token request retries once with the provider\'s nonce; client.fetch with the API\'s', async (t) => {
    // The provider wants its nonce in every proof: a page's first token request has none, gets
    // 400 use_dpop_nonce with DPoP-Nonce, and the retry carries it. Every login above made a new page.
    const tokens = await recorded.tokens();
    t.diagnostic(`token requests: ${tokens.map((x) => `${x.status}${x.body?.error ? ` ${x.body.error}` : ''}${decodeJwt(x.proof).nonce ? ' (nonce)' : ''}`).join(', ')}`);
    const challenges = tokens.filter((x) => x.status === 400);
    assert.ok(challenges.length >= 2, 'a challenge after each login');
    for (const challenge of challenges) {
      assert.equal(challenge.body?.error, 'use_dpop_nonce');
      assert.ok(challenge.nonce, 'with DPoP-Nonce');
      const retry = tokens[tokens.indexOf(challenge) + 1];
      assert.equal(retry?.status, 200, 'the retry succeeded');
      assert.equal(decodeJwt(retry.proof).nonce, challenge.nonce, 'the retry carried the nonce');
      assert.notEqual(decodeJwt(retry.proof).jti, decodeJwt(challenge.proof).jti);
    }
    assert.deepEqual(tokens.filter((x) => x.status !== 200 && x.status !== 400), [], 'no other failure');

    // A client with no nonce yet calls the API (--dpop-nonce): 401 use_dpop_nonce, one retry, 200.
    await dpopApi.reset();
    const result = await page.evaluate(async (url) => {
      const { createClient } = await import('/sdk/tmi-bff.js');
      const client = createClient({ navigate: false });
      const response = await client.fetch(new URL('hello', url), { headers: { accept: 'application/json' } });
      return { status: response.status, body: await response.json() };
    }, env.dpopApi);
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.equal(result.body.sub, 'alice');
    const stats = await dpopApi.stats();
    assert.equal(stats.requests, 2, JSON.stringify(stats));
    assert.equal(stats.dpop_nonce_challenges, 1, JSON.stringify(stats));
    assert.equal(stats.dpop_accepted, 1, JSON.stringify(stats));
    assert.deepEqual(errors, []);
  });

  // Last: it replaces the stored key of the session above.
  test('a pair planted by a script (extractable) is replaced, not pinned; without Web Locks three clients make one key', async () => {
    const inPage = (step) => page.evaluate(async (what) => {
      const { createClient } = await import('/sdk/tmi-bff.js');
      const name = location.origin + window.bff.basePath;
      const write = (op) => new Promise((resolve, reject) => {
        const open = indexedDB.open('tmi-bff');
        open.onsuccess = () => {
          const tx = open.result.transaction('dpop', 'readwrite');
          op(tx.objectStore('dpop'));
          tx.oncomplete = () => { open.result.close(); resolve(); };
          tx.onerror = () => reject(tx.error);
        };
        open.onerror = () => reject(open.error);
      });
      const jktOf = (url) => new URL(url, location.href).searchParams.get('dpop_jkt');
      if (what === 'plant') {
        const planted = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
        await write((store) => store.put(planted, name));
        const { crv, kty, x, y } = await crypto.subtle.exportKey('jwk', planted.publicKey);
        const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify({ crv, kty, x, y })));
        const plantedJkt = btoa(String.fromCharCode(...new Uint8Array(digest))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        return { planted: plantedJkt, pinned: jktOf(await createClient({ navigate: false }).login()) };
      }
      await write((store) => store.delete(name));
      const urls = await Promise.all([1, 2, 3].map(() => createClient({ navigate: false, locks: null }).login()));
      return urls.map(jktOf);
    }, step);

    const { planted, pinned } = await inPage('plant');
    assert.notEqual(pinned, planted, 'the login does not pin the planted key');
    const replaced = await storedKey(page);
    assert.equal(replaced.jkt, pinned);
    assert.equal(replaced.extractable, false);

    const raced = await inPage('race');
    assert.equal(new Set(raced).size, 1, raced.join(' '));
    assert.equal((await storedKey(page)).jkt, raced[0]);
    assert.deepEqual(errors, []);
  });
});
