// The backend mounted under /app (BFF_BASE_PATH=/app): the page at /app/ carries
// <meta name="tmi-bff-base" content="/app">, and the client finds every endpoint under /app.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { api, callApi, env, freshContext, loaded, logIn } from './helpers.mjs';

test('a sub-path deployment (/app) works the same', { timeout: 120_000 }, async (t) => {
  const { context, errors } = await freshContext((close) => t.after(close));
  const backend = [];
  context.on('request', (r) => {
    const url = new URL(r.url());
    if (url.origin === env.sub && /\/(\.well-known\/bff-|bff\/)/.test(url.pathname)) backend.push(url.pathname);
  });
  const page = await context.newPage();
  const home = `${env.sub}/app/`;
  await logIn(page, home);
  assert.equal(await page.textContent('#base'), 'backend under /app');
  assert.equal(JSON.parse(await page.textContent('#session')).sub, 'alice');
  assert.equal(await page.evaluate(() => window.bff.basePath), '/app');

  await api.reset();
  assert.match(await callApi(page), /^HTTP 200/);
  assert.deepEqual(await api.stats(), { requests: 1, accepted: 1, rejected: 0 });

  // Every backend request went under /app (the login and callback navigations included).
  assert.ok(backend.length >= 5, backend.join(' '));
  assert.deepEqual(backend.filter((p) => !p.startsWith('/app/')), []);
  for (const p of ['/app/.well-known/bff-configuration', '/app/.well-known/bff-sessioninfo',
    '/app/.well-known/bff-token', '/app/bff/login', '/app/bff/callback']) {
    assert.ok(backend.includes(p), `${p} in ${backend.join(' ')}`);
  }

  // Logout comes back to /app/ (BFF_POST_LOGOUT_PATH defaults to B/).
  await page.click('#logout');
  await page.waitForURL((u) => u.href.startsWith(`${env.issuer}/session/end`));
  await page.locator('button', { hasText: 'Yes, sign me out' }).click();
  await page.waitForURL((u) => u.origin === env.sub && u.pathname === '/app/');
  await loaded(page, 'out');
  assert.deepEqual(errors, []);
});
