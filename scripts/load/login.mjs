#!/usr/bin/env node
// Signs N users in through the backend and the real test provider, the way a browser would
// (tests/harness/README.md, "Login sequence"), and prints one `Cookie` header value per session:
// every `__Host-bff-session*` cookie the callback set, joined with `; `.
//
//   node scripts/load/login.mjs --origin http://127.0.0.1:8787 [--base /app] [--count 32] [--prefix load]
//
// Node's fetch keeps no cookies and would follow redirects into the wrong jar, so both jars are
// ours, keyed by name only (enough for the provider, as its README says). `Secure` cookies are
// kept and sent although the origin is http: browsers do the same on loopback.
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    origin: { type: 'string' },
    base: { type: 'string', default: '' },
    count: { type: 'string', default: '32' },
    prefix: { type: 'string', default: 'load' },
    parallel: { type: 'string', default: '4' },
  },
});
if (!values.origin) throw new Error('--origin is required');
const origin = values.origin.replace(/\/$/, '');
const base = values.base.replace(/\/$/, '');
const count = Number(values.count);
const parallel = Math.max(1, Number(values.parallel));

class Jar {
  cookies = new Map();
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a) || /^\s*expires\s*=.*1970/i.test(a));
      if (gone || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

async function step(jar, url, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  const cookie = jar.header();
  if (cookie) headers.cookie = cookie;
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  const text = await response.text();
  jar.store(response);
  return { response, text };
}

function expectRedirect(response, what) {
  const location = response.headers.get('location');
  if (response.status < 300 || response.status > 399 || !location) {
    throw new Error(`${what}: expected a redirect, got ${response.status}`);
  }
  return new URL(location, response.url);
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };

async function login(user) {
  const bff = new Jar();
  const idp = new Jar();
  const start = await step(bff, `${origin}${base}/bff/login?return_to=${encodeURIComponent(`${base}/`)}`);
  let url = expectRedirect(start.response, 'login');
  // The provider's interactions: login form, then consent (prompt=consent is configured), each a
  // POST followed by the resume at /auth/<uid>. Bounded: a flow that loops is a failure.
  for (let hops = 0; hops < 12; hops++) {
    if (url.origin === origin) break;
    const { response, text } = await step(idp, url);
    if (response.status === 200 && url.pathname.startsWith('/interaction/')) {
      const prompt = /name="prompt" value="(\w+)"/.exec(text)?.[1];
      const body = prompt === 'consent' ? 'prompt=consent' : `prompt=login&login=${encodeURIComponent(user)}&password=x`;
      const posted = await step(idp, url, { method: 'POST', headers: form, body });
      url = expectRedirect(posted.response, `interaction ${prompt}`);
    } else {
      url = expectRedirect(response, `provider ${url.pathname}`);
    }
  }
  if (url.origin !== origin || !url.pathname.endsWith('/bff/callback')) throw new Error(`login of ${user} did not come back: ${url}`);
  const { response: done } = await step(bff, url);
  if (done.status !== 302) throw new Error(`callback of ${user}: ${done.status}`);
  const session = [...bff.cookies].filter(([name]) => name.startsWith('__Host-bff-session'));
  if (session.length === 0) throw new Error(`callback of ${user} set no session cookie`);
  return session.map(([k, v]) => `${k}=${v}`).join('; ');
}

const out = new Array(count);
let next = 0;
await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
  while (next < count) {
    const i = next++;
    out[i] = await login(`${values.prefix}-${i}`);
  }
}));
process.stdout.write(`${out.join('\n')}\n`);
