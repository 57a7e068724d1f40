// The demo page at the origin root, in Chromium: log in through the provider's pages, call the
// API, token expiry, a token the API rejects, logout seen by another tab.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  api, callApi, claimsOf, env, freshContext, loaded, logIn, open, recordTokenRequests, sleep, steadyToken, waitText,
} from './helpers.mjs';

describe('demo page at the origin root', { timeout: 180_000 }, () => {
  let context;
  let errors;
  let page;
  let tokenRequests;
  const token = () => page.evaluate(() => window.bff.getToken());

  let close;
  before(async () => {
    ({ context, errors } = await freshContext((c) => { close = c; }));
    page = await context.newPage();
    tokenRequests = recordTokenRequests(context);
  });
  after(() => close?.());

  test('logs in through the provider; session shown; the API call succeeds', async () => {
    await logIn(page, `${env.app}/`);
    const session = JSON.parse(await page.textContent('#session'));
    assert.equal(session.sub, 'alice');
    assert.equal(session.name, 'Alice Tester');
    assert.equal(session.iss, env.issuer);
    assert.equal(await page.textContent('#token-scope'), 'api:read');
    assert.equal(await page.textContent('#token-aud'), env.api);
    assert.match(await page.textContent('#token-exp'), /in \d+ s/);

    await api.reset();
    const answer = await callApi(page);
    assert.match(answer, /^HTTP 200/);
    const body = JSON.parse(answer.replace(/^HTTP 200\n/, ''));
    assert.equal(body.sub, 'alice');
    assert.equal(body.aud, env.api);
    assert.equal(body.scope, 'api:read');
    assert.deepEqual(await api.stats(), { requests: 1, accepted: 1, rejected: 0 });

    fs.mkdirSync(path.dirname(env.screenshot), { recursive: true });
    await page.screenshot({ path: env.screenshot, fullPage: true });
    // Nothing in the page's storage: tokens live in memory only.
    const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
    assert.deepEqual(stored, [0, 0, '']);
  });

  test('an expired access token is replaced transparently on the next call', async () => {
    const first = await token();
    const { exp } = claimsOf(first);
    await sleep(Math.max(0, exp * 1000 - Date.now()) + 500); // the token is now expired
    await api.reset();
    assert.match(await callApi(page), /^HTTP 200/);
    const second = await token();
    assert.notEqual(second, first);
    assert.ok(claimsOf(second).exp * 1000 > Date.now());
    // The client asked the backend before the call: the API never saw the expired token.
    assert.deepEqual(await api.stats(), { requests: 1, accepted: 1, rejected: 0 });
  });

  test('a token the API rejects: one rejected_token request, one retry, success', async () => {
    const rejected = await steadyToken(page);
    await api.reset();
    await api.reject({ token: rejected });
    const before = tokenRequests.length;
    assert.match(await callApi(page), /^HTTP 200/);
    const asked = tokenRequests.slice(before).filter((r) => r.form.has('rejected_token'));
    assert.equal(asked.length, 1);
    assert.equal(asked[0].form.get('rejected_token'), rejected);
    assert.deepEqual(await api.stats(), { requests: 2, accepted: 1, rejected: 1 });
    assert.notEqual(await token(), rejected);
  });

  test('a second rejection surfaces as an error, not a loop', async () => {
    await api.reset();
    await api.reject({ all: true });
    const before = tokenRequests.length;
    const answer = await callApi(page);
    assert.match(answer, /^HTTP 401/);
    assert.match(answer, /invalid_token/);
    await sleep(2000);
    const stats = await api.stats();
    // One call, then at most one retry: the backend forces a refresh at most once per 30 s per
    // token (the previous test used it), so it may hand back the same token, and the client then
    // does not retry with a token it knows is refused.
    assert.ok(stats.requests >= 1 && stats.requests <= 2, JSON.stringify(stats));
    assert.equal(stats.accepted, 0);
    const asked = tokenRequests.slice(before).filter((r) => r.form.has('rejected_token'));
    assert.equal(asked.length, 1);
    await api.reset();
  });

  test('a scope never granted: backend_not_ready with loginUrl; login() goes there with return_to', async () => {
    const [name, code, loginUrl, target] = await page.evaluate(async () => {
      const { createClient, TmiBffError } = await import('/sdk/tmi-bff.js');
      const client = createClient({ navigate: false });
      const error = await client.getToken({ scope: 'api:read api:write' }).then(() => null, (e) => e);
      return [error instanceof TmiBffError && error.name, error.code, error.loginUrl,
        await client.login({ loginUrl: error.loginUrl })];
    });
    assert.equal(name, 'TmiBffError');
    assert.equal(code, 'backend_not_ready');
    const login = new URL(loginUrl, env.app);
    assert.equal(login.pathname, '/bff/login');
    assert.equal(login.searchParams.get('scope'), 'api:write');
    const navigated = new URL(target, env.app);
    assert.equal(navigated.pathname, '/bff/login');
    assert.equal(navigated.searchParams.get('scope'), 'api:write');
    assert.equal(navigated.searchParams.get('return_to'), '/');
  });

  test('logout in one tab: the other tab gets sessionend, and its next getToken fails', async () => {
    const other = await context.newPage();
    await open(other, `${env.app}/`, 'in');
    await page.click('#logout');
    // This tab goes on to the provider's logout page ...
    await page.waitForURL((u) => u.href.startsWith(`${env.issuer}/session/end`));
    // ... and the other tab hears about it.
    await waitText(other, '#events li', 'sessionend (other-tab)');
    await waitText(other, '#who', 'logged out in another tab');
    const code = await other.evaluate(() => window.bff.getToken().then(() => 'a token', (e) => e.code));
    assert.equal(code, 'invalid_session');
    // Confirming at the provider brings this tab back to the demo, logged out.
    await page.locator('button', { hasText: 'Yes, sign me out' }).click();
    await page.waitForURL((u) => u.origin === env.app && u.pathname === '/');
    await loaded(page, 'out');
    assert.deepEqual(errors, []);
  });
});
