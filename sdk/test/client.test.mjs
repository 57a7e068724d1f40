// Unit tests of the JS client (dist/tmi-bff.js) against fakes: `cd sdk && npm test`.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';

import { createClient, TmiBffError } from '../dist/tmi-bff.js';
import {
  fakeBackend, fakeChannels, fakeClock, fakeLocks, json, settle, stall, tick, track, withLocation, withMetaBase,
} from './fakes.mjs';

let clock;
beforeEach(() => { clock = fakeClock(); });
afterEach(() => clock.restore());

/** A client on `backend` with fake locks and channels unless given. */
function client(backend, options = {}) {
  return createClient({ fetch: backend.fetch, locks: fakeLocks(), channel: fakeChannels(), navigate: false, ...options });
}

function sessionEnds(c) {
  const reasons = [];
  c.addEventListener('sessionend', (e) => reasons.push(e.detail.reason));
  return reasons;
}

describe('base path and configuration', () => {
  test('origin root by default; endpoint paths from bff-configuration', async () => {
    const backend = fakeBackend();
    const c = client(backend);
    assert.equal(c.basePath, '');
    assert.equal(await c.getToken(), 'tok-1');
    assert.deepEqual(backend.calls.map((x) => x.url), ['/.well-known/bff-configuration', '/.well-known/bff-token']);
  });

  test('the explicit option wins over the meta tag', async () => {
    const backend = fakeBackend({ base: '/app' });
    await withMetaBase('/other', async () => {
      const c = client(backend, { basePath: '/app/' });
      assert.equal(c.basePath, '/app');
      assert.equal((await c.getSession()).sub, 'alice');
    });
    assert.equal(backend.calls[0].url, '/app/.well-known/bff-configuration');
    assert.equal(backend.calls[1].url, '/app/.well-known/bff-sessioninfo');
  });

  test('the meta tag tmi-bff-base, else the root', async () => {
    await withMetaBase('/app', async () => {
      assert.equal(client(fakeBackend()).basePath, '/app');
    });
    await withMetaBase(null, async () => {
      assert.equal(client(fakeBackend()).basePath, '');
    });
  });

  test('the configuration is read once, and again after a failure', async () => {
    let fail = true;
    const backend = fakeBackend({
      configuration: () => (fail ? json(500, { error: 'server_error' }) : json(200, {
        bff_token_endpoint: '/t', bff_sessioninfo_endpoint: '/s', login_endpoint: '/l', logout_endpoint: '/o',
      })),
    });
    const c = client(backend);
    await assert.rejects(c.getToken(), (e) => e instanceof TmiBffError && e.code === 'configuration_error' && e.status === 500);
    fail = false;
    await c.getSession().catch(() => {});
    await c.getSession().catch(() => {});
    assert.deepEqual(backend.calls.map((x) => x.url), [
      '/.well-known/bff-configuration', '/.well-known/bff-configuration', '/s', '/s',
    ]);
  });

  test('every backend request carries X-CSRF: 1, same-origin credentials', async () => {
    const backend = fakeBackend();
    const c = client(backend);
    await c.getSession();
    await c.getToken();
    await c.logout();
    assert.equal(backend.calls.length, 4);
    for (const call of backend.calls) {
      assert.equal(call.headers.get('x-csrf'), '1', call.url);
      assert.equal(call.credentials, 'same-origin');
    }
    assert.equal(backend.of('logout')[0].method, 'POST');
  });
});

describe('getSession', () => {
  test('the sessioninfo object, or null without a session (no sessionend then)', async () => {
    const backend = fakeBackend({ loggedIn: false });
    const c = client(backend);
    const ends = sessionEnds(c);
    assert.equal(await c.getSession(), null);
    await assert.rejects(c.getToken(), { code: 'invalid_session', status: 400 });
    await tick();
    assert.deepEqual(ends, []);
  });

  test('a session seen, then invalid_session: sessionend once', async () => {
    const backend = fakeBackend();
    const c = client(backend);
    const ends = sessionEnds(c);
    assert.equal((await c.getSession()).name, 'Alice');
    backend.state.session = false;
    assert.equal(await c.getSession(), null);
    assert.equal(await c.getSession(), null);
    assert.deepEqual(ends, ['invalid_session']);
  });

  test('other errors reject with a TmiBffError', async () => {
    const c = client(fakeBackend({ session: () => new Response('<h1>oops</h1>', { status: 502 }) }));
    await assert.rejects(c.getSession(), (e) => e instanceof TmiBffError && e.code === 'unexpected_response' && e.status === 502);
  });
});

describe('getToken', () => {
  test('cached in memory until shortly before expires_in', async () => {
    const backend = fakeBackend({ expiresIn: 10 });
    const c = client(backend);
    assert.equal(await c.getToken(), 'tok-1');
    clock.advance(5_900);
    assert.equal(await c.getToken(), 'tok-1');
    // the backend refreshes below 5 s left; the client asks again a second before that
    clock.advance(200);
    assert.equal(await c.getToken(), 'tok-2');
    assert.equal(backend.of('token').length, 2);
  });

  test('long-lived tokens are kept until a minute before their end', async () => {
    const backend = fakeBackend({ expiresIn: 3600 });
    const c = client(backend);
    await c.getToken();
    clock.advance(3540_000);
    assert.equal(await c.getToken(), 'tok-1');
    clock.advance(2_000);
    assert.equal(await c.getToken(), 'tok-2');
  });

  test('without expires_in a token is kept for 30 s', async () => {
    let n = 0;
    const backend = fakeBackend({ token: () => json(200, { access_token: `opaque-${++n}`, token_type: 'Bearer' }) });
    const c = client(backend);
    assert.equal(await c.getToken(), 'opaque-1');
    clock.advance(29_000);
    assert.equal(await c.getToken(), 'opaque-1');
    clock.advance(2_000);
    assert.equal(await c.getToken(), 'opaque-2');
  });

  test('single flight per (resource, scope); scope compares as a set', async () => {
    const backend = fakeBackend();
    backend.state.delay = 20;
    const c = client(backend);
    const all = await Promise.all([
      c.getToken(), c.getToken(), c.getToken({ scope: 'b a' }), c.getToken({ scope: 'a  b a' }),
      c.getToken({ resource: 'https://api/' }), c.getToken({ resource: 'https://api/' }),
    ]);
    assert.equal(backend.of('token').length, 3);
    assert.equal(all[0], all[1]);
    assert.equal(all[2], all[3]);
    assert.equal(all[4], all[5]);
    const forms = backend.of('token').map((x) => Object.fromEntries(x.form));
    assert.deepEqual(forms, [{}, { scope: 'a b' }, { resource: 'https://api/' }]);
    assert.ok(backend.of('token').every((x) => x.method === 'POST'));
  });

  test('a failed flight rejects every waiter and is not cached', async () => {
    let fail = true;
    const backend = fakeBackend({
      token: () => (fail ? json(503, { error: 'temporarily_unavailable' }, { 'Retry-After': '3' })
        : json(200, { access_token: 'ok', expires_in: 60 })),
    });
    const c = client(backend);
    const results = await Promise.allSettled([c.getToken(), c.getToken()]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    assert.equal(results[0].reason.code, 'temporarily_unavailable');
    assert.equal(results[0].reason.status, 503);
    assert.equal(results[0].reason.retryAfter, 3);
    assert.equal(backend.of('token').length, 1);
    fail = false;
    assert.equal(await c.getToken(), 'ok');
  });

  test('backend_not_ready carries loginUrl; login() goes there with return_to', async () => {
    const backend = fakeBackend({
      token: () => json(400, {
        error: 'backend_not_ready',
        error_description: 'consent needed',
        login_url: '/bff/login?scope=api%3Awrite',
      }),
    });
    const c = client(backend, { navigate: undefined });
    const error = await c.getToken({ scope: 'api:write' }).catch((e) => e);
    assert.ok(error instanceof TmiBffError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'TmiBffError');
    assert.equal(error.code, 'backend_not_ready');
    assert.equal(error.loginUrl, '/bff/login?scope=api%3Awrite');
    assert.match(error.message, /consent needed/);
    await withLocation('http://app.test/orders?id=7#top', async (assigned) => {
      const url = await c.login({ loginUrl: error.loginUrl });
      assert.deepEqual(assigned, [url]);
      const parsed = new URL(url, 'http://app.test');
      assert.equal(parsed.pathname, '/bff/login');
      assert.equal(parsed.searchParams.get('scope'), 'api:write');
      assert.equal(parsed.searchParams.get('return_to'), '/orders?id=7#top');
    });
  });

  test('an intermediary\'s 503 asking for a retry now (not the backend\'s JSON) is retried once', async () => {
    const proxy503 = (after) => new Response('Your worker restarted mid-request.', {
      status: 503, headers: { 'content-type': 'text/plain', 'Retry-After': after },
    });
    let answers = [proxy503('0')];
    const backend = fakeBackend({ token: () => answers.shift() ?? json(200, { access_token: 'ok', expires_in: 60 }) });
    const c = client(backend);
    assert.equal(await c.getToken(), 'ok');
    const forms = backend.of('token').map((x) => Object.fromEntries(x.form));
    assert.deepEqual(forms, [{}, {}], 'the same POST sent twice');

    // A second such answer goes to the caller: one retry, never a loop.
    answers = [proxy503('0'), proxy503('0')];
    const again = client(fakeBackend({ token: () => answers.shift() ?? json(200, { access_token: 'late' }) }));
    const error = await again.getToken().catch((e) => e);
    assert.equal(error.code, 'unexpected_response');
    assert.equal(error.status, 503);
    assert.equal(answers.length, 0);

    // Asked to come back later: the caller decides.
    answers = [proxy503('30')];
    const later = fakeBackend({ token: () => answers.shift() ?? json(200, { access_token: 'late' }) });
    assert.equal((await client(later).getToken().catch((e) => e)).retryAfter, 30);
    assert.equal(later.of('token').length, 1);
  });

  test('network failures reject with network_error', async () => {
    const c = client({ fetch: async () => { throw new TypeError('Failed to fetch'); } });
    await assert.rejects(c.getToken(), (e) => e.code === 'network_error' && e.cause instanceof TypeError);
  });

  test('cross-tab: every backend ask holds the Web Lock of its key', async () => {
    const backend = fakeBackend();
    const locks = fakeLocks();
    const c = client(backend, { locks, basePath: '' });
    await c.getToken();
    await c.getToken({ resource: 'https://api/', scope: 'x' });
    await c.getToken(); // cached: no lock
    assert.deepEqual(locks.names, ['tmi-bff:| ', 'tmi-bff:|https://api/ x']);
  });

  test('cross-tab: tabs sharing a lock ask one at a time; the second gets the refreshed token', async () => {
    // A backend whose "cookie" holds one token; it refreshes when that token is stale.
    let version = 1;
    let issuedAt = Date.now();
    let refreshes = 0;
    const backend = fakeBackend({
      token: async () => {
        await new Promise((r) => setTimeout(r, 10));
        if (Date.now() - issuedAt >= 5_000) {
          refreshes += 1;
          version += 1;
          issuedAt = Date.now();
        }
        return json(200, { access_token: `v${version}`, expires_in: Math.round(10 - (Date.now() - issuedAt) / 1000) });
      },
    });
    const locks = fakeLocks();
    const tabs = [1, 2, 3, 4, 5].map(() => client(backend, { locks }));
    assert.deepEqual(await Promise.all(tabs.map((t) => t.getToken())), ['v1', 'v1', 'v1', 'v1', 'v1']);
    assert.equal(backend.state.maxInFlight, 1);
    clock.advance(7_000);
    assert.deepEqual(await Promise.all(tabs.map((t) => t.getToken())), ['v2', 'v2', 'v2', 'v2', 'v2']);
    assert.equal(refreshes, 1);
    assert.equal(backend.state.maxInFlight, 1);
  });

  test('without Web Locks it still works (in-tab single flight only)', async () => {
    const backend = fakeBackend();
    backend.state.delay = 10;
    const saved = globalThis.navigator;
    const c = client(backend, { locks: undefined });
    const tabB = client(backend, { locks: null });
    assert.equal(globalThis.navigator?.locks, saved?.locks);
    const tokens = await Promise.all([c.getToken(), c.getToken(), tabB.getToken()]);
    assert.deepEqual(tokens, ['tok-1', 'tok-1', 'tok-2']);
  });
});

describe('fetch', () => {
  test('adds the bearer token; keeps method, headers and body', async () => {
    const backend = fakeBackend();
    const c = client(backend);
    const res = await c.fetch('https://api.test/items', {
      method: 'PUT', headers: { 'content-type': 'text/plain', 'x-a': '1' }, body: 'hello',
    });
    assert.equal(res.status, 200);
    const [call] = backend.api();
    assert.equal(call.headers.get('authorization'), 'Bearer tok-1');
    assert.equal(call.headers.get('x-a'), '1');
    assert.equal(call.method, 'PUT');
    assert.equal(call.body, 'hello');
  });

  test('a 401: asks with rejected_token, retries once with the new token', async () => {
    const backend = fakeBackend({
      api: (call) => (call.headers.get('authorization') === 'Bearer tok-1' ? json(401, {}) : json(200, { ok: 1 })),
    });
    const c = client(backend);
    const res = await c.fetch('https://api.test/x', { method: 'POST', body: 'payload' });
    assert.equal(res.status, 200);
    const tokens = backend.of('token');
    assert.equal(tokens.length, 2);
    assert.equal(tokens[1].form.get('rejected_token'), 'tok-1');
    assert.equal(tokens[1].method, 'POST');
    assert.ok(!tokens[1].url.includes('tok-1'), 'the rejected token is not in the URL');
    assert.deepEqual(backend.api().map((x) => [x.headers.get('authorization'), x.body]), [
      ['Bearer tok-1', 'payload'], ['Bearer tok-2', 'payload'],
    ]);
    // the replacement is cached
    assert.equal(await c.getToken(), 'tok-2');
    assert.equal(backend.of('token').length, 2);
  });

  test('a second 401 is returned as it is: no loop', async () => {
    const backend = fakeBackend({ api: () => json(401, { error: 'invalid_token' }) });
    const c = client(backend);
    const res = await c.fetch('https://api.test/x');
    assert.equal(res.status, 401);
    assert.equal(backend.api().length, 2);
    assert.equal(backend.of('token').length, 2);
  });

  test('the backend answering the same token again: no retry', async () => {
    const backend = fakeBackend({
      token: () => json(200, { access_token: 'same', expires_in: 60 }),
      api: () => json(401, {}),
    });
    const c = client(backend);
    const res = await c.fetch('https://api.test/x');
    assert.equal(res.status, 401);
    assert.equal(backend.api().length, 1);
    assert.equal(backend.of('token').length, 2);
  });

  test('concurrent 401s with the same token share one rejected_token request', async () => {
    const backend = fakeBackend({
      api: (call) => (call.headers.get('authorization') === 'Bearer tok-1' ? json(401, {}) : json(200, {})),
    });
    backend.state.delay = 5;
    const c = client(backend);
    const results = await Promise.all([1, 2, 3].map(() => c.fetch('https://api.test/x')));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
    assert.equal(backend.of('token').filter((x) => x.form.has('rejected_token')).length, 1);
  });

  test('by default no token for this page\'s own origin: origin_not_allowed, nothing sent', async () => {
    const backend = fakeBackend();
    const c = client(backend);
    await withLocation('http://app.test/page', async () => {
      for (const url of ['http://app.test/api/items', 'http://app.test/.well-known/bff-token']) {
        await assert.rejects(c.fetch(url), (e) => e instanceof TmiBffError && e.code === 'origin_not_allowed', url);
      }
      assert.equal(backend.calls.length, 0, 'no token asked for, no request sent');
      assert.equal((await c.fetch('https://api.test/items')).status, 200);
      assert.equal((await c.fetch('http://app.test:8080/items')).status, 200, 'another port is another origin');
    });
    assert.deepEqual(backend.api().map((x) => x.url), ['https://api.test/items', 'http://app.test:8080/items']);
  });

  test('tokenOrigins: a list of origins, or a test of the URL; other URLs get origin_not_allowed', async () => {
    const backend = fakeBackend();
    await withLocation('http://app.test/page', async () => {
      const listed = client(backend, { tokenOrigins: ['http://app.test', 'https://api.test/'] });
      assert.equal((await listed.fetch('http://app.test/api/items')).status, 200);
      assert.equal((await listed.fetch('https://api.test/x')).status, 200);
      for (const url of ['https://other.test/x', 'https://api.test:444/x', 'http://api.test/x']) {
        await assert.rejects(listed.fetch(url), { code: 'origin_not_allowed' }, url);
      }
      const tested = client(backend, { tokenOrigins: (url) => url.pathname.startsWith('/api/') });
      assert.equal((await tested.fetch('http://app.test/api/y')).status, 200);
      await assert.rejects(tested.fetch('https://api.test/x'), { code: 'origin_not_allowed' });
    });
    assert.deepEqual(backend.api().map((x) => [x.url, x.headers.get('authorization')]), [
      ['http://app.test/api/items', 'Bearer tok-1'], ['https://api.test/x', 'Bearer tok-1'], ['http://app.test/api/y', 'Bearer tok-2'],
    ]);
  });

  test('token options pass through', async () => {
    const backend = fakeBackend();
    const c = client(backend);
    await c.fetch('https://api.test/x', undefined, { resource: 'https://api.test/', scope: 'api:read' });
    assert.deepEqual(Object.fromEntries(backend.of('token')[0].form), { resource: 'https://api.test/', scope: 'api:read' });
  });
});

describe('login and logout', () => {
  test('login() builds B/bff/login with return_to, scope, resource, prompt', async () => {
    const backend = fakeBackend({ base: '/app' });
    const navigated = [];
    const c = client(backend, { basePath: '/app', navigate: (u) => navigated.push(u) });
    await withLocation('http://app.test/app/page', async () => {
      const url = await c.login({ scope: 'api:read', resource: ['https://a/', 'https://b/'], prompt: 'login' });
      assert.deepEqual(navigated, [url]);
      const parsed = new URL(url, 'http://app.test');
      assert.equal(parsed.pathname, '/app/bff/login');
      assert.equal(parsed.searchParams.get('return_to'), '/app/page');
      assert.equal(parsed.searchParams.get('scope'), 'api:read');
      assert.deepEqual(parsed.searchParams.getAll('resource'), ['https://a/', 'https://b/']);
      assert.equal(parsed.searchParams.get('prompt'), 'login');
      const explicit = new URL(await c.login({ returnTo: '/app/x' }), 'http://app.test');
      assert.equal(explicit.searchParams.get('return_to'), '/app/x');
    });
  });

  test('login({loginUrl}) only goes to the backend\'s login endpoint on this origin, else invalid_login_url', async () => {
    const backend = fakeBackend({ base: '/app' });
    const c = client(backend, { basePath: '/app', navigate: undefined });
    await withLocation('http://app.test/app/page', async (assigned) => {
      for (const loginUrl of [
        'https://evil.test/app/bff/login', '//evil.test/app/bff/login', 'http://app.test:8080/app/bff/login',
        'https://app.test/app/bff/login', 'http://app.test/app/other?scope=x', '/bff/login', 'javascript:alert(1)',
      ]) {
        await assert.rejects(c.login({ loginUrl }), (e) => e instanceof TmiBffError && e.code === 'invalid_login_url', loginUrl);
      }
      assert.deepEqual(assigned, [], 'never navigated');
      // The backend's relative login_url, the same URL absolute, and one relative to the page.
      const urls = [
        await c.login({ loginUrl: '/app/bff/login?scope=api%3Awrite' }),
        await c.login({ loginUrl: 'http://app.test/app/bff/login?scope=x' }),
        await c.login({ loginUrl: 'bff/login' }),
      ];
      assert.deepEqual(assigned, urls);
      assert.deepEqual(urls, [
        '/app/bff/login?scope=api%3Awrite&return_to=%2Fapp%2Fpage',
        '/app/bff/login?scope=x&return_to=%2Fapp%2Fpage',
        '/app/bff/login?return_to=%2Fapp%2Fpage',
      ]);
    });
  });

  test('logout(): POST, sessionend here and in the other tab, then navigate to logout_url', async () => {
    const backend = fakeBackend();
    const channel = fakeChannels();
    const navigated = [];
    const here = client(backend, { channel, navigate: (u) => navigated.push(u) });
    const other = client(backend, { channel });
    const neverSawOne = client(backend, { channel });
    const endsHere = sessionEnds(here);
    const endsThere = sessionEnds(other);
    const endsNever = sessionEnds(neverSawOne);
    await here.getSession();
    assert.equal(await other.getToken(), 'tok-1');
    const order = [];
    here.addEventListener('sessionend', () => order.push(`event, navigated ${navigated.length}`));
    assert.equal(await here.logout(), 'https://op/session/end?client_id=bff');
    assert.deepEqual(navigated, ['https://op/session/end?client_id=bff']);
    assert.deepEqual(order, ['event, navigated 0']);
    await tick();
    assert.deepEqual(endsHere, ['logout']);
    assert.deepEqual(endsThere, ['other-tab']);
    assert.deepEqual(endsNever, []);
    // the other tab forgot its token: its next getToken asks the backend and fails
    await assert.rejects(other.getToken(), { code: 'invalid_session' });
    assert.deepEqual(endsThere, ['other-tab']);
  });

  test('logout without a session: no sessionend; a failed logout rejects', async () => {
    const c = client(fakeBackend({ loggedIn: false }));
    const ends = sessionEnds(c);
    await c.logout();
    assert.deepEqual(ends, []);
    const broken = client(fakeBackend({ logout: () => json(400, { error: 'invalid_request' }) }));
    await assert.rejects(broken.logout(), { code: 'invalid_request' });
  });

  test('invalid_grant from the token endpoint ends the session', async () => {
    let dead = false;
    const backend = fakeBackend({
      token: () => (dead ? json(400, { error: 'invalid_grant' }) : json(200, { access_token: 'a', expires_in: 10 })),
    });
    const c = client(backend);
    const ends = sessionEnds(c);
    await c.getToken();
    dead = true;
    clock.advance(20_000);
    await assert.rejects(c.getToken(), { code: 'invalid_grant' });
    assert.deepEqual(ends, ['invalid_grant']);
  });

  test('a token that arrives after the session ended is not cached', async () => {
    let release;
    const gate = new Promise((r) => { release = r; });
    let calls = 0;
    const backend = fakeBackend({
      token: async () => {
        calls += 1;
        if (calls > 1) return json(400, { error: 'invalid_session' });
        await gate;
        return json(200, { access_token: 'late', expires_in: 60 });
      },
    });
    const channel = fakeChannels();
    const c = client(backend, { channel });
    const other = client(backend, { channel });
    const ends = sessionEnds(c);
    await c.getSession();
    const pending = c.getToken();
    await tick();
    await other.logout();
    await tick();
    assert.deepEqual(ends, ['other-tab']);
    release();
    assert.equal(await pending, 'late');
    await assert.rejects(c.getToken(), { code: 'invalid_session' });
    assert.deepEqual(ends, ['other-tab'], 'no second sessionend: no session was seen since');
  });
});

describe('timeouts', () => {
  test('a stalled backend call fails with timeout after 10 s by default; the next call proceeds', async () => {
    clock.useTimers();
    let stalled = true;
    const backend = fakeBackend({
      token: (call) => (stalled ? stall(call) : json(200, { access_token: 'ok', expires_in: 60 })),
    });
    const c = client(backend);
    const first = track(c.getToken());
    await settle();
    assert.equal(backend.of('token').length, 1);
    clock.advance(9_999);
    await settle();
    assert.equal(first.status, 'pending');
    clock.advance(1);
    await settle();
    assert.equal(first.status, 'rejected', 'rejected after 10 s');
    assert.ok(first.reason instanceof TmiBffError);
    assert.equal(first.reason.code, 'timeout');
    assert.equal(first.reason.status, 0);
    assert.ok(backend.of('token')[0].signal.aborted, 'the request was aborted');
    stalled = false;
    assert.equal(await c.getToken(), 'ok');
    assert.equal(clock.pending(), 0, 'no timer left behind');
  });

  test('timeoutMs: a stalled token request releases the cross-tab lock; the tab waiting behind it proceeds', async () => {
    clock.useTimers();
    let asked = 0;
    const backend = fakeBackend({
      token: (call) => (++asked === 1 ? stall(call) : json(200, { access_token: `t${asked}`, expires_in: 60 })),
    });
    const locks = fakeLocks();
    const tabA = client(backend, { locks, timeoutMs: 2_000 });
    const tabB = client(backend, { locks, timeoutMs: 2_000 });
    const a = track(tabA.getToken());
    await settle();
    const b = track(tabB.getToken());
    await settle();
    assert.equal(backend.of('token').length, 1, 'B waits for the lock A holds');
    assert.equal(b.status, 'pending');
    clock.advance(2_000);
    await settle();
    assert.equal(a.status, 'rejected');
    assert.equal(a.reason.code, 'timeout');
    assert.deepEqual([b.status, b.value], ['fulfilled', 't2']);
    assert.equal(await tabA.getToken(), 't3');
  });

  test('every backend call has the timeout: configuration, sessioninfo, token, logout', async () => {
    clock.useTimers();
    for (const route of ['configuration', 'session', 'token', 'logout']) {
      const backend = fakeBackend({ [route]: stall });
      const c = client(backend, { timeoutMs: 500 });
      const pending = track(route === 'session' ? c.getSession() : route === 'logout' ? c.logout() : c.getToken());
      await settle();
      assert.equal(backend.of(route).length, 1, route);
      clock.advance(499);
      await settle();
      assert.equal(pending.status, 'pending', route);
      clock.advance(1);
      await settle();
      assert.equal(pending.status, 'rejected', route);
      assert.equal(pending.reason.code, 'timeout', route);
    }
  });
});
