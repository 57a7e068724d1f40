// Shared by the browser tests: where the stack is (scripts/browser-test.sh starts it and sets the
// BROWSER_TEST_* variables), Chromium through playwright-core, the provider's login pages, and
// the control APIs of the provider and the demo API.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests with scripts/browser-test.sh, which starts the servers`);
  }
  return value.replace(/\/$/, '');
}

export const env = {
  get app() { return need('BROWSER_TEST_APP'); },
  get sub() { return need('BROWSER_TEST_SUB'); },
  get api() { return `${need('BROWSER_TEST_API')}/`; },
  get issuer() { return need('BROWSER_TEST_ISSUER'); },
  get idpControl() { return need('BROWSER_TEST_IDP_CONTROL'); },
  // The DPoP stack: a Worker with BFF_DPOP=required, its provider (DPoP nonces required) and an
  // API started with --dpop-nonce.
  get dpopApp() { return need('BROWSER_TEST_DPOP_APP'); },
  get dpopApi() { return `${need('BROWSER_TEST_DPOP_API')}/`; },
  get dpopIssuer() { return need('BROWSER_TEST_DPOP_ISSUER'); },
  get dpopIdpControl() { return need('BROWSER_TEST_DPOP_IDP_CONTROL'); },
  get screenshot() { return process.env.BROWSER_TEST_SCREENSHOT || 'target/demo-logged-in.png'; },
};

/** Debian's Chromium, headless, with a fresh profile; no connection leaves loopback. */
export async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tmi-bff-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // The provider's pages link web fonts: every name but loopback fails without a lookup.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
    ],
    viewport: { width: 1000, height: 1100 },
  });
  const close = async () => {
    await browser.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context: browser, close };
}

/**
 * A fresh, isolated context (its own profile and cookies) in a browser of its own; `done`
 * registers its closing (`t.after` of a test, or `after` of a suite).
 */
export async function freshContext(done) {
  const { context, close } = await launch();
  done(close);
  const errors = [];
  context.on('weberror', (e) => errors.push(String(e.error())));
  traceRequests(context);
  return { context, errors };
}

// Every request of a context and how it ended, so that a page that does not load says why.
const traces = new WeakMap();
function traceRequests(context) {
  const pending = new Map();
  const t0 = Date.now();
  const at = () => `+${((Date.now() - t0) / 1000).toFixed(1)} s`;
  context.on('request', (r) => pending.set(r, `${at()} ${r.method()} ${r.url()}`));
  context.on('requestfinished', (r) => pending.delete(r));
  context.on('requestfailed', (r) => pending.set(r, `${pending.get(r)} failed at ${at()}: ${r.failure()?.errorText}`));
  traces.set(context, () => [...pending.values()]);
}

/** Runs `step`; if it throws, the error lists the requests of the page's context still open. */
async function traced(page, step) {
  try {
    return await step();
  } catch (error) {
    const open = traces.get(page.context())?.() ?? [];
    error.message += `\nrequests not finished (${open.length}): ${open.join('; ') || 'none'}`;
    throw error;
  }
}

/** Text of `selector` once it contains `text`. */
export async function waitText(page, selector, text, timeout = 15_000) {
  const locator = page.locator(selector).filter({ hasText: text });
  await locator.first().waitFor({ timeout });
  return page.locator(selector).first().textContent();
}

/** Waits until the demo page has loaded the session (and, logged in, the token): 'in' or 'out'. */
export async function loaded(page, state) {
  await traced(page, () => page.locator(`body[data-state="${state}"]`).waitFor({ timeout: 15_000 }));
}

/** Opens `url` and waits until the demo page has loaded ('in' or 'out'). */
export async function open(page, url, state) {
  await traced(page, () => page.goto(url, { waitUntil: 'domcontentloaded', timeout: 15_000 }));
  await loaded(page, state);
}

/**
 * The demo page at `url` (not logged in) → Log in → the provider's login form (at `issuer`) →
 * its consent form → back on the page, logged in.
 */
export async function logIn(page, url, user = 'alice', issuer = env.issuer) {
  await open(page, url, 'out');
  await page.click('#login');
  await page.waitForURL((u) => u.href.startsWith(issuer));
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'secret');
  await page.click('button[type=submit]');
  await page.locator('button[type=submit]', { hasText: 'Continue' }).click();
  await page.waitForURL((u) => u.href.startsWith(url));
  await loaded(page, 'in');
}

/** Clicks the demo's "Call the API" and waits for the answer it shows: `HTTP <status>\n<body>`. */
export async function callApi(page) {
  await page.evaluate(() => { document.getElementById('api').dataset.state = ''; });
  await page.click('#call');
  await page.locator('#api[data-state="done"]').waitFor({ timeout: 15_000 });
  return page.textContent('#api');
}

/** Requests the page's JS makes to the backend's token endpoint, with their form bodies. */
export function recordTokenRequests(target) {
  const seen = [];
  target.on('request', (request) => {
    if (request.url().includes('/.well-known/bff-token')) {
      seen.push({ url: request.url(), form: new URLSearchParams(request.postData() ?? '') });
    }
  });
  return seen;
}

async function call(url, method = 'GET', body) {
  const response = await fetch(url, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.equal(response.status, 200, `${method} ${url}`);
  return response.json();
}

const idpAt = (control) => ({
  counts: () => call(`${control()}/counts`),
  resetCounts: () => call(`${control()}/counts/reset`, 'POST'),
  refreshTokens: () => call(`${control()}/refresh-tokens`),
});
export const idp = idpAt(() => env.idpControl);
export const dpopIdp = idpAt(() => env.dpopIdpControl);

const apiAt = (url) => ({
  reject: (body) => call(`${url()}__reject`, 'POST', body),
  reset: () => call(`${url()}__reset`, 'POST'),
  stats: () => call(`${url()}__stats`),
});
export const api = apiAt(() => env.api);
export const dpopApi = apiAt(() => env.dpopApi);

/** The payload of a JWT. */
export function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The page client's token, with at least 6 s before the client would replace it (it does so
 * about 4 s before `exp`), so that a step right after this one uses the very same token.
 */
export async function steadyToken(page) {
  for (;;) {
    const token = await page.evaluate(() => window.bff.getToken());
    const left = claimsOf(token).exp * 1000 - Date.now();
    if (left > 6_000) return token;
    await sleep(left - 3_500);
  }
}
