// Five tabs of one browser share a session (one cookie jar). Each calls getToken in a loop for
// three access-token lifetimes; the Web Lock in the client lets one tab at a time ask the backend,
// so every expiry costs one refresh at the provider, and no refresh ever presents a used token.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { claimsOf, env, freshContext, idp, logIn, open, recordTokenRequests } from './helpers.mjs';

const TABS = 5;
const TTL = 10; // the provider's access_token_ttl in scripts/browser-test.sh
const LOOP_MS = (3 * TTL + 2) * 1000;

test('five tabs calling getToken across three expiries: one refresh per expiry, none fails', { timeout: 180_000 }, async (t) => {
  const { context, errors } = await freshContext((close) => t.after(close));
  const first = await context.newPage();
  await logIn(first, `${env.app}/`);
  const tabs = [first];
  for (let i = 1; i < TABS; i += 1) {
    const tab = await context.newPage();
    await open(tab, `${env.app}/`, 'in');
    tabs.push(tab);
  }
  assert.ok(await first.evaluate(() => 'locks' in navigator), 'Web Locks available');
  const tokenRequests = recordTokenRequests(context);
  await idp.resetCounts();
  const startedAt = Math.floor(Date.now() / 1000);

  const loops = tabs.map((tab) => tab.evaluate(async (ms) => {
    const seen = [];
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const token = await window.bff.getToken();
      if (seen.at(-1) !== token) seen.push(token);
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
    }
    return seen;
  }, LOOP_MS));
  const seen = await Promise.all(loops);

  const counts = await idp.counts();
  const distinct = new Set(seen.flat());
  // The refreshes of this session during the loop, from the provider's refresh-token store.
  const refreshes = (await idp.refreshTokens())
    .filter((r) => r.account_id === 'alice' && r.iat >= startedAt)
    .map((r) => r.iat);
  const gaps = refreshes.slice(1).map((iat, i) => iat - refreshes[i]);
  t.diagnostic(`refreshes ${counts.refresh_token} at +${refreshes.map((s) => s - startedAt).join(' s, +')} s; `
    + `${distinct.size} distinct tokens; ${tokenRequests.length} bff-token requests from ${TABS} tabs`);

  assert.equal(counts.grant_error, 0, 'no refresh failed at the provider');
  assert.ok(counts.refresh_token >= 3, `three expiries crossed: ${counts.refresh_token} refreshes`);
  // With 10 s tokens the backend refreshes once fewer than 5 s are left: at most one refresh
  // every 5 s, so 7 in 32 s; two tabs refreshing the same token would show up as a gap of 0.
  assert.ok(counts.refresh_token <= Math.ceil(LOOP_MS / 5000) + 1, `${counts.refresh_token} refreshes`);
  assert.equal(refreshes.length, counts.refresh_token);
  assert.ok(gaps.every((g) => g >= 4), `refreshes at least 4 s apart: gaps ${gaps.join(', ')}`);
  // Every refresh made a token some tab used.
  assert.ok(distinct.size >= counts.refresh_token, `${distinct.size} tokens`);
  for (const [i, tokens] of seen.entries()) {
    assert.ok(tokens.length >= 3, `tab ${i + 1} saw ${tokens.length} tokens`);
    for (const token of tokens) assert.equal(claimsOf(token).sub, 'alice');
  }
  // Tabs asked the backend only when their token was due: a handful of requests per expiry.
  assert.ok(tokenRequests.length <= (counts.refresh_token + 2) * TABS * 2, `${tokenRequests.length} requests`);
  assert.deepEqual(errors, []);
});
