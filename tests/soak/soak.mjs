// Soak: one Chromium, TABS tabs of the demo page sharing one session, each calling the demo API
// every 2-5 s for MINUTES through the page's JS client (window.bff: getToken, then fetch to
// <audience>/hello, as the demo's "Call the API" does), against access tokens that live TTL s at
// the provider and refresh tokens that rotate on every use. scripts/soak.sh starts the stack and
// runs this; it lives outside tests/browser so that the regular browser run never picks it up.
//
// Pass criteria (each asserted, all printed, the summary also written to SOAK_REPORT):
//   - every /hello answers 200, and the API rejected no token (no hidden 401 + retry);
//   - no logout: no `sessionend`, no invalid_session / invalid_grant / login_required /
//     backend_not_ready, every tab still shows the signed-in page and getSession() at the end;
//   - no refresh error at the provider (`grant_error` 0) and no refresh token presented twice
//     (no revoked refresh token; the rotation chain is linear: all but its newest consumed);
//   - refreshes <= P * (ceil(D / (TTL - M)) + 1), and consecutive refreshes >= TTL - M - 1 s
//     apart (see `bound` below for why);
//   - and that the run meant something: at least floor(D / TTL) refreshes, no tab crashed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { api, env, idp, launch, logIn, open, sleep } from '../browser/helpers.mjs';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const TABS = Number(process.env.SOAK_TABS ?? 10);
const TTL = Number(process.env.SOAK_TTL ?? 20); // the API resource's access_token_ttl in scripts/soak.sh
const REPORT = process.env.SOAK_REPORT ?? 'target/soak/report.md';
const PAUSE_MS = [2_000, 5_000];
const PROGRESS_MS = 30_000;
// The servers' logs (scripts/soak.sh writes them next to the report): what they say during the
// soak, beyond one line per request, goes into the report.
const LOGS = (process.env.SOAK_LOGS ?? ['worker', 'idp', 'api'].map((n) => path.join(path.dirname(REPORT), `${n}.log`)).join(' '))
  .split(' ').filter((f) => f && fs.existsSync(f));
const REQUEST_LINE = /^\[wrangler:info\] (GET|POST|OPTIONS|HEAD) /;
// Resident memory of the Worker's workerd processes (MiB), when scripts/soak.sh says where they are.
function workerRss() {
  const group = process.env.SOAK_WORKER_PGID;
  if (!group) return NaN;
  const rows = execFileSync('ps', ['-e', '-o', 'pgid=,rss=,comm='], { encoding: 'utf8' }).split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([pgid, , comm]) => pgid === group && comm === 'workerd');
  return rows.reduce((a, [, rss]) => a + Number(rss), 0) / 1024;
}
const sizes = () => new Map(LOGS.map((f) => [f, fs.statSync(f).size]));
function linesSince(offsets) {
  return LOGS.flatMap((f) => {
    const fd = fs.openSync(f, 'r');
    try {
      const from = offsets.get(f) ?? 0;
      const buffer = Buffer.alloc(Math.max(0, fs.fstatSync(fd).size - from));
      fs.readSync(fd, buffer, 0, buffer.length, from);
      return buffer.toString('utf8').split('\n')
        .filter((l) => l.trim() && !REQUEST_LINE.test(l))
        .map((l) => `${path.basename(f)}: ${l}`);
    } finally {
      fs.closeSync(fd);
    }
  });
}
// The backend refreshes a cached token once less than min(60 s, max(5 s, lifetime / 4)) is left
// (README, bff-token); the client keeps a token until a second less than that is left, so that
// its next request finds the backend ready to refresh.
const MARGIN = Math.min(60, Math.max(5, TTL / 4));
const SESSION_ENDING = new Set(['invalid_session', 'invalid_grant', 'login_required', 'backend_not_ready']);

if (!(MINUTES > 0) || !(TABS >= 1) || !(TTL > MARGIN)) {
  console.error(`bad parameters: SOAK_MINUTES=${MINUTES} SOAK_TABS=${TABS} SOAK_TTL=${TTL}`);
  process.exit(2);
}

const t0 = Date.now();
const log = (text) => console.log(`[soak +${((Date.now() - t0) / 1000).toFixed(0)} s] ${text}`);

/** Nearest-rank percentile of sorted numbers. */
function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const ms = (v) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ms` : '–');

// Runs inside each tab: the loop keeps its tallies on window.__soak so that the runner can read
// progress while it goes, and resolves window.__soak.done at the end.
function startLoop({ durationMs, pause, sessionEnding }) {
  const s = {
    calls: 0, ok: 0, failures: [], logouts: [], getTokenMs: [], fetchMs: [], tokens: 0, lastToken: null,
  };
  window.__soak = s;
  const stamp = () => new Date().toISOString().slice(11, 23);
  window.bff.addEventListener('sessionend', (event) => s.logouts.push(`${stamp()} sessionend (${event.detail.reason})`));
  const audienceOf = (token) => {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return [].concat(JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4))).aud ?? [])[0];
  };
  const end = Date.now() + durationMs;
  s.done = (async () => {
    for (;;) {
      await new Promise((r) => setTimeout(r, pause[0] + Math.random() * (pause[1] - pause[0])));
      if (Date.now() >= end) break;
      s.calls += 1;
      try {
        const started = performance.now();
        const token = await window.bff.getToken();
        s.getTokenMs.push(performance.now() - started);
        if (token !== s.lastToken) {
          s.tokens += 1;
          s.lastToken = token;
        }
        const sent = performance.now();
        const response = await window.bff.fetch(new URL('hello', audienceOf(token)), { headers: { accept: 'application/json' } });
        const body = await response.text();
        s.fetchMs.push(performance.now() - sent);
        if (response.status === 200) s.ok += 1;
        else s.failures.push(`${stamp()} /hello HTTP ${response.status} ${body.slice(0, 200)}`);
      } catch (error) {
        s.failures.push(`${stamp()} ${error?.code ?? error?.name}: ${error?.message}`);
        if (sessionEnding.includes(error?.code)) s.logouts.push(`${stamp()} ${error.code}`);
      }
      // The demo page's own view of the session: it shows "ended" after a sessionend.
      if (document.body.dataset.state !== 'in' || document.getElementById('who').classList.contains('ended')) {
        s.logouts.push(`${stamp()} the page shows signed out`);
        break;
      }
    }
  })();
}

async function main() {
  const durationMs = MINUTES * 60_000;
  const { context, close } = await launch();
  const consoleErrors = [];
  const tokenRequests = [];
  const tokenFailures = [];
  const crashes = [];
  try {
    // Errors while logging in (the signed-out page's 400 from sessioninfo, the provider's pages
    // reaching for web fonts off loopback) are kept apart from those of the soak itself.
    let phase = 'login';
    context.on('weberror', (e) => consoleErrors.push(`[${phase}] uncaught: ${e.error()}`));
    context.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`[${phase}] ${m.text()} (${m.location()?.url ?? ''})`);
    });
    context.on('request', (r) => {
      if (r.url().includes('/.well-known/bff-token')) {
        const form = new URLSearchParams(r.postData() ?? new URL(r.url()).search);
        tokenRequests.push(`resource ${form.get('resource') ?? '(default)'}, scope ${form.get('scope') ?? '(default)'}`);
      }
    });
    context.on('response', (r) => {
      if (r.url().includes('/.well-known/bff-token') && r.status() !== 200) {
        tokenFailures.push(`HTTP ${r.status()} at ${new Date().toISOString()}`);
      }
    });

    log(`logging in, opening ${TABS} tabs`);
    const first = context.pages()[0] ?? await context.newPage();
    await logIn(first, `${env.app}/`);
    const tabs = [first];
    for (let i = 1; i < TABS; i += 1) {
      const tab = await context.newPage();
      await open(tab, `${env.app}/`, 'in');
      tabs.push(tab);
    }
    tabs.forEach((tab, i) => tab.on('crash', () => crashes.push(`tab ${i + 1} crashed`)));
    const visibility = await Promise.all(tabs.map((tab) => tab.evaluate(() => document.visibilityState)));
    const loginCounts = await idp.counts();
    await idp.resetCounts();
    await api.reset();
    tokenRequests.length = 0;
    const startedAt = Date.now();
    phase = 'soak';
    const logOffsets = sizes();
    const rss = [workerRss()];

    log(`${TABS} tabs (${[...new Set(visibility)].join(', ')}), calling for ${MINUTES} min`);
    await Promise.all(tabs.map((tab) => tab.evaluate(startLoop, {
      durationMs, pause: PAUSE_MS, sessionEnding: [...SESSION_ENDING],
    })));
    const progress = async () => {
      const s = await Promise.all(tabs.map((tab) => tab.evaluate(() => ({
        calls: window.__soak.calls, failures: window.__soak.failures.length, logouts: window.__soak.logouts.length,
      }))));
      const c = await idp.counts();
      rss.push(workerRss());
      const sum = (k) => s.reduce((a, x) => a + x[k], 0);
      log(`calls ${sum('calls')}, failures ${sum('failures')}, logouts ${sum('logouts')}, `
        + `refreshes ${c.refresh_token}, grant errors ${c.grant_error}, Worker RSS ${rss.at(-1).toFixed(0)} MiB`);
    };
    const deadline = startedAt + durationMs;
    while (Date.now() + PROGRESS_MS < deadline) {
      await sleep(PROGRESS_MS);
      await progress();
    }
    const results = await Promise.all(tabs.map((tab) => tab.evaluate(async () => {
      const s = window.__soak;
      await s.done;
      let session;
      try {
        session = (await window.bff.getSession())?.sub ?? null;
      } catch (error) {
        session = `${error.code}: ${error.message}`;
      }
      return { ...s, done: undefined, lastToken: undefined, session, state: document.body.dataset.state };
    })));
    const endedAt = Date.now();
    const counts = await idp.counts();
    const refreshTokens = await idp.refreshTokens();
    const apiStats = await api.stats();
    const serverLines = linesSince(logOffsets);
    rss.push(workerRss());

    // ---- the criteria ------------------------------------------------------------------------
    const D = (endedAt - startedAt) / 1000;
    const calls = results.reduce((a, r) => a + r.calls, 0);
    const ok = results.reduce((a, r) => a + r.ok, 0);
    const failures = results.flatMap((r, i) => r.failures.map((f) => `tab ${i + 1}: ${f}`));
    const logouts = results.flatMap((r, i) => [
      ...r.logouts.map((f) => `tab ${i + 1}: ${f}`),
      ...(r.session === 'alice' ? [] : [`tab ${i + 1}: getSession() at the end: ${r.session}`]),
      ...(r.state === 'in' ? [] : [`tab ${i + 1}: page state ${r.state}`]),
    ]);
    const getTokenMs = results.flatMap((r) => r.getTokenMs).sort((a, b) => a - b);
    const fetchMs = results.flatMap((r) => r.fetchMs).sort((a, b) => a - b);
    const pairs = new Set(tokenRequests);
    const P = Math.max(1, pairs.size);
    // Why this bound: a refresh gives a token that lives TTL s; the backend refreshes it again
    // only once fewer than MARGIN s are left, so two refreshes for one (resource, scope) are at
    // least TTL - MARGIN s apart, and a window of D s holds at most ceil(D / (TTL - MARGIN)) + 1
    // of them (the +1: one right at the start). A refresh race (two tabs, or one tab twice,
    // refreshing one token) shows as two refreshes < TTL - MARGIN apart, or as a grant_error.
    const period = TTL - MARGIN;
    const bound = P * (Math.ceil(D / period) + 1);
    const grants = new Set(refreshTokens.filter((r) => r.account_id === 'alice').map((r) => r.grant_id));
    const chain = refreshTokens.filter((r) => r.account_id === 'alice');
    const revoked = chain.filter((r) => r.revoked);
    const unconsumed = chain.filter((r) => !r.consumed);
    // Issue times of the whole chain: the login's refresh token, then one per refresh.
    const issued = chain.map((r) => r.iat);
    const gaps = issued.slice(1).map((iat, i) => iat - issued[i]);
    // iat has 1 s resolution, so a real gap of TTL - MARGIN s can read as one second less.
    const minGap = P === 1 ? period - 1 : 0;

    const checks = [
      ['every /hello answered 200', failures.length === 0 && ok === calls, `${ok} of ${calls}`],
      ['the API rejected no token', apiStats.rejected === 0, `accepted ${apiStats.accepted}, rejected ${apiStats.rejected}`],
      ['no logout', logouts.length === 0, `${logouts.length}`],
      ['every bff-token request answered 200', tokenFailures.length === 0, `${tokenRequests.length} requests, ${tokenFailures.length} not 200`],
      ['no refresh error at the provider', counts.grant_error === 0 && loginCounts.grant_error === 0, `grant_error ${counts.grant_error}`],
      ['no refresh token presented twice', revoked.length === 0 && grants.size === 1 && unconsumed.length === 1,
        `${chain.length} refresh tokens in ${grants.size} grant(s), ${revoked.length} revoked, ${unconsumed.length} unconsumed`],
      [`refreshes <= ${P} x (ceil(${D.toFixed(0)} s / ${period} s) + 1)`, counts.refresh_token <= bound, `${counts.refresh_token} <= ${bound}`],
      [`refreshes >= ${minGap} s apart`, gaps.every((g) => g >= minGap), `min gap ${gaps.length ? Math.min(...gaps) : '–'} s`],
      ['expiries were crossed', counts.refresh_token >= Math.floor(D / TTL), `${counts.refresh_token} >= ${Math.floor(D / TTL)}`],
      ['no tab crashed', crashes.length === 0, crashes.join('; ') || '0'],
    ];
    const passed = checks.every(([, good]) => good);

    const perTab = results.map((r) => r.calls);
    const lines = [
      `## Soak: ${passed ? 'PASS' : 'FAIL'}`,
      '',
      '| | |',
      '|---|---|',
      `| duration | ${(D / 60).toFixed(1)} min (${D.toFixed(0)} s; asked ${MINUTES} min) |`,
      `| tabs | ${TABS} (one session, visibility ${[...new Set(visibility)].join(', ')}) |`,
      `| access-token lifetime | ${TTL} s; the backend refreshes with < ${MARGIN} s left |`,
      `| API calls | ${calls} (${ok} × 200); API saw ${apiStats.accepted} accepted, ${apiStats.rejected} rejected |`,
      `| calls per tab | ${perTab.join(', ')} (min ${Math.min(...perTab)}, max ${Math.max(...perTab)}) |`,
      `| distinct tokens seen per tab | ${results.map((r) => r.tokens).join(', ')} |`,
      `| (resource, scope) requested | ${[...pairs].join('; ') || '–'} |`,
      `| bff-token requests | ${tokenRequests.length} |`,
      `| refreshes observed / bound | ${counts.refresh_token} / ${bound} = ${P} × (ceil(${D.toFixed(0)} / (${TTL} − ${MARGIN})) + 1) |`,
      `| refresh gaps (s) | min ${gaps.length ? Math.min(...gaps) : '–'}, max ${gaps.length ? Math.max(...gaps) : '–'} |`,
      `| provider counts | refresh_token ${counts.refresh_token}, grant_error ${counts.grant_error}, authorization_code ${loginCounts.authorization_code} (login) |`,
      `| getToken latency (page) | p50 ${ms(percentile(getTokenMs, 50))}, p99 ${ms(percentile(getTokenMs, 99))}, max ${ms(getTokenMs.at(-1))} (n = ${getTokenMs.length}) |`,
      `| fetch /hello latency (page) | p50 ${ms(percentile(fetchMs, 50))}, p99 ${ms(percentile(fetchMs, 99))}, max ${ms(fetchMs.at(-1))} |`,
      `| naive one-per-lifetime count | ceil(${D.toFixed(0)} / ${TTL}) + 1 = ${Math.ceil(D / TTL) + 1} (not a bound: each token is replaced ${MARGIN} s before it expires) |`,
      `| Worker (workerd) RSS | start ${rss[0].toFixed(0)} MiB, max ${Math.max(...rss).toFixed(0)} MiB, end ${rss.at(-1).toFixed(0)} MiB |`,
      `| server log lines during the soak (besides requests) | ${serverLines.length} |`,
      `| console errors | ${consoleErrors.filter((e) => e.startsWith('[soak]')).length} during the soak, ${consoleErrors.filter((e) => e.startsWith('[login]')).length} while logging in |`,
      '',
      '| criterion | result | |',
      '|---|---|---|',
      ...checks.map(([name, good, detail]) => `| ${name} | ${good ? 'pass' : '**FAIL**'} | ${detail} |`),
    ];
    const details = [
      ['failed calls', failures],
      ['logouts', logouts],
      ['bff-token answers not 200', tokenFailures],
      ['console errors', consoleErrors],
      ['server log lines during the soak', serverLines],
    ].filter(([, list]) => list.length);
    for (const [title, list] of details) {
      lines.push('', `${title} (first 20 of ${list.length}):`, '', ...list.slice(0, 20).map((l) => `- ${l.replace(/\s+/g, ' ')}`));
    }
    const report = `${lines.join('\n')}\n`;
    fs.mkdirSync(path.dirname(REPORT), { recursive: true });
    fs.writeFileSync(REPORT, report);
    console.log(`\n${report}`);
    log(`report: ${REPORT}`);
    return passed;
  } finally {
    await close();
  }
}

main().then(
  (passed) => process.exit(passed ? 0 : 1),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
