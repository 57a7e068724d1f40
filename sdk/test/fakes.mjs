// Small fakes for the client's unit tests: a backend behind `fetch`, Web Locks, BroadcastChannel,
// IndexedDB, a clock and `location`.

/** A JSON response like the backend's. */
export function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/**
 * Date.now() under the test's control; after `useTimers()` also setTimeout/clearTimeout, whose
 * callbacks `advance` runs when they are due.
 */
export function fakeClock(start = 1_800_000_000_000) {
  const real = { now: Date.now, setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
  let t = start;
  let timers = null;
  let ids = 0;
  Date.now = () => t;
  return {
    advance(ms) {
      t += ms;
      for (const [id, timer] of [...(timers ?? [])].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at > t) break;
        timers.delete(id);
        timer.fn();
      }
    },
    useTimers() {
      timers = new Map();
      globalThis.setTimeout = (fn, ms = 0, ...args) => {
        ids += 1;
        timers.set(ids, { at: t + ms, fn: () => fn(...args) });
        return ids;
      };
      globalThis.clearTimeout = (id) => { timers.delete(id); };
    },
    /** How many fake timers are waiting. */
    pending: () => timers?.size ?? 0,
    restore() {
      Date.now = real.now;
      globalThis.setTimeout = real.setTimeout;
      globalThis.clearTimeout = real.clearTimeout;
    },
  };
}

/** A route handler that never answers: its promise only rejects when the request is aborted. */
export function stall(call) {
  return new Promise((_, reject) => {
    if (call.signal?.aborted) reject(call.signal.reason);
    call.signal?.addEventListener('abort', () => reject(call.signal.reason));
  });
}

/** Lets pending promise callbacks run without any timer (fake timers do not move). */
export async function settle() {
  for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
}

/** The state of a promise, for tests that must not wait for it: `pending`, or its outcome. */
export function track(promise) {
  const state = { status: 'pending' };
  promise.then(
    (value) => Object.assign(state, { status: 'fulfilled', value }),
    (reason) => Object.assign(state, { status: 'rejected', reason }),
  );
  return state;
}

/**
 * The backend: routes by path (every endpoint under `base`), records every request.
 * `token` answers token requests; the default hands out tok-1, tok-2, ... with `expires_in`.
 * `dpop`: the authorization server's token endpoint, announced with `"dpop": true`.
 */
export function fakeBackend({ base = '', expiresIn = 10, loggedIn = true, dpop, ...routes } = {}) {
  const calls = [];
  let issued = 0;
  let inFlight = 0;
  const state = { session: loggedIn, maxInFlight: 0, delay: 0 };
  const defaults = {
    configuration: () => json(200, {
      bff_token_endpoint: `${base}/.well-known/bff-token`,
      bff_sessioninfo_endpoint: `${base}/.well-known/bff-sessioninfo`,
      login_endpoint: `${base}/bff/login`,
      logout_endpoint: `${base}/bff/logout`,
      csrf_header: 'X-CSRF',
      dpop: Boolean(dpop),
      ...(dpop ? { dpop_token_endpoint: dpop, dpop_signing_alg_values_supported: ['ES256'] } : {}),
    }),
    session: () => (state.session
      ? json(200, { iss: 'https://op', sub: 'alice', exp: 2_000_000_000, name: 'Alice' })
      : json(400, { error: 'invalid_session' })),
    token: () => {
      if (!state.session) return json(400, { error: 'invalid_session' });
      issued += 1;
      return json(200, { access_token: `tok-${issued}`, token_type: 'Bearer', expires_in: expiresIn, scope: 'openid' });
    },
    logout: () => {
      state.session = false;
      return json(200, { logout_url: 'https://op/session/end?client_id=bff' });
    },
    api: () => json(200, { ok: true }),
  };
  const handlers = { ...defaults, ...routes };
  const fetch = async (input, init = {}) => {
    const request = input instanceof Request ? input : null;
    const url = request ? request.url : String(input);
    const headers = new Headers(request ? request.headers : init.headers);
    const method = request ? request.method : init.method ?? 'GET';
    const body = request ? await request.text() : init.body ? String(init.body) : '';
    const signal = request ? request.signal : init.signal;
    const call = { url, method, headers, body, form: new URLSearchParams(body), credentials: init.credentials, signal };
    calls.push(call);
    const path = url.startsWith('http') ? '(api)' : url;
    const route = {
      [`${base}/.well-known/bff-configuration`]: 'configuration',
      [`${base}/.well-known/bff-sessioninfo`]: 'session',
      [`${base}/.well-known/bff-token`]: 'token',
      [`${base}/bff/logout`]: 'logout',
      '(api)': 'api',
    }[path];
    if (!route) return json(404, { error: 'not_found' });
    inFlight += 1;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    try {
      if (state.delay) await new Promise((r) => setTimeout(r, state.delay));
      return await handlers[route](call, state);
    } finally {
      inFlight -= 1;
    }
  };
  const of = (route) => calls.filter((c) => c.url === `${base}${{
    token: '/.well-known/bff-token',
    session: '/.well-known/bff-sessioninfo',
    configuration: '/.well-known/bff-configuration',
    logout: '/bff/logout',
  }[route]}`);
  return { fetch, calls, of, state, api: () => calls.filter((c) => c.url.startsWith('http')) };
}

/** Web Locks: one holder per name at a time, FIFO; records the names asked for. */
export function fakeLocks() {
  const tails = new Map();
  const names = [];
  return {
    names,
    request(name, callback) {
      names.push(name);
      const previous = tails.get(name) ?? Promise.resolve();
      const run = previous.then(() => callback());
      const tail = run.catch(() => {});
      tails.set(name, tail);
      return run;
    },
  };
}

/**
 * IndexedDB, as far as the client uses it: open (with upgradeneeded), one object store per
 * transaction, get/put/add/delete, values stored as structured clones. Transactions run one after
 * the other (a real readwrite transaction waits for every earlier one on its store), so a get and
 * a put issued in its onsuccess are atomic; a transaction completes once no request is pending.
 * Shared by the "tabs" given the same instance. `ops` records [mode, op, key]; `value(key)` reads
 * the store `dpop` of the database `tmi-bff`, `plant(key, value)` writes it (what a script of the
 * page could do); with `fail`, open fails.
 */
export function fakeIndexedDB({ fail = false } = {}) {
  const databases = new Map();
  const ops = [];
  const later = (fn) => queueMicrotask(fn);
  let tail = Promise.resolve();
  const dpop = () => databases.get('tmi-bff')?.get('dpop');
  return {
    ops,
    value: (key) => dpop()?.get(key),
    plant: (key, value) => {
      if (!databases.has('tmi-bff')) databases.set('tmi-bff', new Map([['dpop', new Map()]]));
      dpop().set(key, structuredClone(value));
    },
    keys: () => [...(dpop()?.keys() ?? [])],
    open(name) {
      const req = { result: undefined, error: null, onsuccess: null, onerror: null, onupgradeneeded: null };
      later(() => {
        if (fail) {
          req.error = new DOMException('no IndexedDB here', 'InvalidStateError');
          req.onerror?.();
          return;
        }
        let stores = databases.get(name);
        req.result = {
          createObjectStore: (store) => stores.set(store, new Map()),
          close() {},
          transaction(store, mode) {
            const data = stores.get(store);
            const tx = { oncomplete: null, onerror: null, onabort: null, error: null };
            let pending = 0;
            let finished = false;
            let finish;
            const begin = tail;
            tail = new Promise((resolve) => { finish = resolve; });
            const end = (ok) => {
              if (finished) return;
              finished = true;
              finish();
              if (ok) tx.oncomplete?.();
              else { tx.onerror?.(); tx.onabort?.(); }
            };
            const check = () => later(() => later(() => { if (pending === 0) end(true); }));
            begin.then(check);
            const request = (op, key, run) => {
              const r = { result: undefined, error: null, onsuccess: null, onerror: null };
              pending += 1;
              begin.then(() => {
                if (finished) return;
                ops.push([mode, op, key]);
                try {
                  if (op !== 'get' && mode !== 'readwrite') throw new Error(`${op} in a readonly transaction`);
                  r.result = run();
                } catch (error) {
                  r.error = tx.error = error;
                  r.onerror?.();
                  end(false);
                  return;
                }
                r.onsuccess?.();
                pending -= 1;
                check();
              });
              return r;
            };
            tx.objectStore = () => ({
              get: (key) => request('get', key, () => (data.has(key) ? structuredClone(data.get(key)) : undefined)),
              put: (value, key) => request('put', key, () => { data.set(key, structuredClone(value)); return key; }),
              add: (value, key) => request('add', key, () => {
                if (data.has(key)) throw new DOMException('key exists', 'ConstraintError');
                data.set(key, structuredClone(value));
                return key;
              }),
              delete: (key) => request('delete', key, () => { data.delete(key); }),
            });
            return tx;
          },
        };
        if (!stores) {
          stores = new Map();
          databases.set(name, stores);
          req.onupgradeneeded?.();
        }
        req.onsuccess?.();
      });
      return req;
    },
  };
}

/** BroadcastChannel: every channel of a name hears the others' messages (not its own). */
export function fakeChannels() {
  const open = [];
  return (name) => {
    const channel = {
      name,
      onmessage: null,
      postMessage(data) {
        for (const other of open) {
          if (other !== channel && other.name === name) {
            setTimeout(() => other.onmessage?.({ data: structuredClone(data) }), 0);
          }
        }
      },
    };
    open.push(channel);
    return channel;
  };
}

/** A page's `location` while `fn` runs; records assign() calls. */
export async function withLocation(href, fn) {
  const url = new URL(href);
  const assigned = [];
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'location');
  Object.defineProperty(globalThis, 'location', {
    configurable: true,
    value: {
      origin: url.origin, pathname: url.pathname, search: url.search, hash: url.hash, href: url.href,
      assign: (to) => assigned.push(to),
    },
  });
  try {
    return await fn(assigned);
  } finally {
    if (saved) Object.defineProperty(globalThis, 'location', saved);
    else delete globalThis.location;
  }
}

/** A page's `document` with `<meta name="tmi-bff-base" content=...>` while `fn` runs. */
export async function withMetaBase(content, fn) {
  globalThis.document = {
    querySelector: (selector) => (selector === 'meta[name="tmi-bff-base"]' && content !== null ? { content } : null),
  };
  try {
    return await fn();
  } finally {
    delete globalThis.document;
  }
}

export const tick = () => new Promise((r) => setTimeout(r, 5));
