#!/usr/bin/env node
// Keeps the load test's session cookies current while wrk runs, as the shared cookie jar of a
// browser would for its tabs.
//
//   node scripts/load/keeper.mjs --origin http://127.0.0.1:8787 --cookies FILE --seconds 70
//
// Why it exists: a refresh answers with the new `__Host-bff-session` followed by deletions of
// every chunk name (`.0`, `.1`, ...), and wrk hands its Lua script only the last of repeated
// headers, so wrk never sees a rotated session. This process asks `bff-token` for every session
// every INTERVAL ms with its own copy of the cookie, applies every `Set-Cookie` (after a wrk
// connection refreshed, its stale copy is answered from the backend's rotation memory, which
// holds for 30 s), and rewrites FILE atomically when a session changed; the wrk connections
// re-read FILE once a second. Stops after SECONDS or on SIGTERM, and prints one line:
// KEEPER {"requests":n,"errors":n,"updates":n,"first_error":"..."}.
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    origin: { type: 'string' },
    base: { type: 'string', default: '' },
    cookies: { type: 'string' },
    seconds: { type: 'string' },
    interval: { type: 'string', default: '2000' },
  },
});
const url = `${values.origin.replace(/\/$/, '')}${values.base.replace(/\/$/, '')}/.well-known/bff-token`;
const interval = Number(values.interval);
const deadline = Date.now() + Number(values.seconds) * 1000;

const jars = fs.readFileSync(values.cookies, 'utf8').split('\n').filter(Boolean).map((line) => {
  const jar = new Map();
  for (const pair of line.split(';')) {
    const eq = pair.indexOf('=');
    jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return jar;
});
const header = (jar) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');

let requests = 0;
let errors = 0;
let updates = 0;
let firstError = '';
let stopping = false;

function save() {
  const tmp = `${values.cookies}.tmp`;
  fs.writeFileSync(tmp, `${jars.map(header).join('\n')}\n`);
  fs.renameSync(tmp, values.cookies);
}

async function keep(jar, offset) {
  await new Promise((r) => setTimeout(r, offset));
  while (!stopping && Date.now() < deadline) {
    const before = header(jar);
    requests++;
    try {
      const response = await fetch(url, {
        headers: { 'x-csrf': '1', 'sec-fetch-site': 'same-origin', cookie: before },
        signal: AbortSignal.timeout(10_000),
      });
      const body = await response.text();
      if (response.status !== 200) {
        errors++;
        firstError ||= `${response.status} ${body.slice(0, 200)}`;
      }
      for (const line of response.headers.getSetCookie()) {
        const [pair, ...attrs] = line.split(';');
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        if (attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a)) || value === '') jar.delete(name);
        else jar.set(name, value);
      }
      if (header(jar) !== before) {
        if (jar.size !== 1) {
          errors++;
          firstError ||= `a session became ${jar.size} cookies; the load test needs single-cookie sessions`;
        }
        updates++;
        save();
      }
    } catch (err) {
      errors++;
      firstError ||= String(err);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

function finish() {
  stopping = true;
  process.stdout.write(`KEEPER ${JSON.stringify({ requests, errors, updates, first_error: firstError })}\n`);
  process.exit(0);
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);

await Promise.all(jars.map((jar, i) => keep(jar, Math.floor((i * interval) / jars.length))));
finish();
