// The JS client of the Token-Mediating Backend (README: "The JS client"). Dependency-free, browser-first.
//
//   import { createClient } from '/sdk/tmi-bff.js';
//   const bff = createClient();
//   const me = await bff.getSession();            // sessioninfo, or null
//   const res = await bff.fetch('https://api.example/items');
//
// Tokens live in this object's memory only. Several tabs share the backend's session cookie; a
// Web Lock per (base path, resource, scope) makes sure only one tab at a time asks the backend
// for a token, so when the cached token has to be refreshed one tab refreshes and the others get
// the new token from the backend's cache.
//
// When the backend's bff-configuration says `"dpop": true`, every access token is bound to a key
// of this browser (RFC 9449): one non-extractable ECDSA P-256 key pair per origin and base path,
// kept in IndexedDB (database `tmi-bff`, object store `dpop`, key `<origin><base path>`) so that
// reloads and every tab use the same key. The login pins it (`dpop_jkt`), the token request and
// every `client.fetch` carry a proof signed with it, and logout and the end of the session delete it.

/** Which token: RFC 8707 `resource` and a space-delimited `scope` (both optional). */
export interface TokenOptions {
  resource?: string;
  scope?: string;
}

export interface LoginOptions {
  /** Path on this origin to come back to; default: the current page. */
  returnTo?: string;
  /** Extra scopes for this login (space-delimited). */
  scope?: string;
  /** Resource(s) to ask for (RFC 8707). */
  resource?: string | string[];
  /** `prompt` for the authorization request, e.g. `login` or `consent`. */
  prompt?: string;
  /**
   * A `login_url` from the backend (TmiBffError.loginUrl); the other options are added to it.
   * It must be the backend's login endpoint on this page's origin, else `invalid_login_url`.
   */
  loginUrl?: string;
}

export interface ClientOptions {
  /** The backend's base path `B`, e.g. `/app`. Default: `<meta name="tmi-bff-base">`, else the origin root. */
  basePath?: string;
  /**
   * What `login()` and `logout()` do with the URL they navigate to: default `location.assign`;
   * a function to do it yourself; `false` to leave navigation to the caller (both still resolve
   * to the URL).
   */
  navigate?: ((url: string) => void) | false;
  /** The fetch used for the backend and by `client.fetch` (default: the global one). */
  fetch?: typeof fetch;
  /** Cross-tab locks (default `navigator.locks`); `null` turns cross-tab coordination off. */
  locks?: LockManagerLike | null;
  /** Creates the cross-tab channel (default `new BroadcastChannel(name)`); `null` turns it off. */
  channel?: ((name: string) => ChannelLike) | null;
  /** Milliseconds a backend call may take before it fails with `timeout` (default 10 000). */
  timeoutMs?: number;
  /**
   * Where `client.fetch` may send the token: origins (`https://api.example`) or a test of the
   * URL. Default: every origin except this page's own (the backend's). Others: `origin_not_allowed`.
   */
  tokenOrigins?: string[] | ((url: URL) => boolean);
  /**
   * Where the DPoP key pair is kept (default: the global `indexedDB`). `null`, or no IndexedDB
   * at all: in this object's memory only, so a reload makes a new key and the session's tokens
   * (bound to the old one) are refused: the backend answers `invalid_dpop_proof`.
   */
  indexedDB?: IDBFactory | null;
}

/** The subset of the Web Locks API the client uses. */
export interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

/** The subset of BroadcastChannel the client uses. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
}

/** `B/.well-known/bff-sessioninfo`: `iss`, `sub`, `exp`, maybe `auth_time`, `sid` and claims. */
export interface SessionInfo {
  iss: string;
  sub: string;
  exp: number;
  [claim: string]: unknown;
}

/** Why `sessionend` fired (`event.detail.reason`). */
export type SessionEndReason = 'logout' | 'other-tab' | 'invalid_session' | 'invalid_grant';

/** The events of a client: `sessionend` when a session this page had seen ends. */
export interface TmiBffClientEventMap {
  sessionend: CustomEvent<{ reason: SessionEndReason }>;
}

/**
 * A failure from the backend (`code` is its `error`) or of the client itself (`network_error`,
 * `timeout`, `unexpected_response`, `configuration_error`, `invalid_login_url`, `origin_not_allowed`).
 * `invalid_dpop_proof` from the token endpoint ends the session like `invalid_session` when the
 * stored key is the one refused (else the token is asked for once more with the stored key).
 */
export class TmiBffError extends Error {
  /** The backend's `error`, e.g. `invalid_session`, `backend_not_ready`, `temporarily_unavailable`. */
  readonly code: string;
  /** HTTP status of the backend's answer (0 when there was none). */
  readonly status: number;
  /** For `backend_not_ready`: where an interactive login asks for what is missing (see `login`). */
  readonly loginUrl?: string;
  /** Seconds from `Retry-After` (503 `temporarily_unavailable`). */
  readonly retryAfter?: number;

  constructor(code: string, message?: string, status = 0, extra: { loginUrl?: string; retryAfter?: number; cause?: unknown } = {}) {
    super(message ? `${code}: ${message}` : code, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'TmiBffError';
    this.code = code;
    this.status = status;
    if (extra.loginUrl !== undefined) this.loginUrl = extra.loginUrl;
    if (extra.retryAfter !== undefined) this.retryAfter = extra.retryAfter;
  }
}

interface Endpoints {
  token: string;
  session: string;
  login: string;
  logout: string;
  /** DPoP on: the authorization server's token endpoint, the `htu` of the token request's proofs; else ''. */
  dpop: string;
}

/** The DPoP key pair, its public JWK (RFC 7638 members only, in that order) and thumbprint. */
interface DpopKey {
  pair: CryptoKeyPair;
  jwk: { crv?: string; kty?: string; x?: string; y?: string };
  jkt: string;
}

/** What IndexedDB holds: the pair and its thumbprint, which a deletion compares within its transaction. */
type StoredKey = CryptoKeyPair & { jkt?: string };

interface Cached {
  token: string;
  /** `performance.now()`-style milliseconds after which the token is not handed out again. */
  staleAt: number;
}

/** A request for a token in progress (single flight per key). */
type Flight = Promise<string>;

const CSRF_HEADER = 'X-CSRF';
const now = (): number => Date.now();
const utf8 = (text: string) => new TextEncoder().encode(text);
const sha256 = (text: string) => crypto.subtle.digest('SHA-256', utf8(text));

function base64url(bytes: ArrayBuffer | Uint8Array): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * Whether a stored value is a pair this client could have made: any script of the page can write
 * IndexedDB, and a pair whose private key it kept (extractable) must never be pinned at a login.
 * (A key imported as non-extractable from material such a script kept cannot be told apart.)
 */
function usable(value: any): value is StoredKey {
  const keys = [value?.privateKey, value?.publicKey];
  return (
    keys.every(
      (k, i) =>
        (typeof CryptoKey != 'function' || k instanceof CryptoKey) &&
        k?.type == (i ? 'public' : 'private') &&
        // The public key is exported for the proofs' jwk.
        k.extractable == !!i &&
        k.algorithm?.name == 'ECDSA' &&
        k.algorithm.namedCurve == 'P-256',
    ) && keys[0].usages.includes('sign')
  );
}

/** Keeps a `DPoP-Nonce` the server at `url` sent: the next proof for that origin carries it. */
function keepNonce(nonces: Map<string, string>, url: string, response: Response): void {
  const nonce = response.headers.get('DPoP-Nonce');
  if (nonce) nonces.set(new URL(url).origin, nonce);
}

/** The base path from the meta tag, without a trailing slash; `''` for the origin root. */
function discoverBase(explicit: string | undefined): string {
  let base = explicit;
  if (base === undefined && typeof document !== 'undefined') {
    base = document.querySelector<HTMLMetaElement>('meta[name="tmi-bff-base"]')?.content?.trim();
  }
  return (base || '').replace(/\/+$/, '');
}

/** `scope` as a set: sorted, duplicates removed, so `"b a"` and `"a  b"` are the same token. */
function normalizeScope(scope: string | undefined): string {
  return scope ? [...new Set(scope.split(/\s+/).filter(Boolean))].sort().join(' ') : '';
}

/**
 * How long before its end a token stops being handed out: a second less than the backend's own
 * margin (min(60 s, max(5 s, a quarter of the lifetime))), so that when a tab asks again the
 * backend refreshes instead of answering with the same, nearly expired token.
 */
function marginSeconds(expiresIn: number): number {
  return Math.min(60, Math.max(5, expiresIn / 4)) - 1;
}

async function readJson(response: Response): Promise<Record<string, unknown> | undefined> {
  try {
    const body: unknown = await response.json();
    return body && typeof body === 'object' ? (body as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The error a non-2xx backend answer means. */
function errorOf(response: Response, body: Record<string, unknown> | undefined): TmiBffError {
  const code = typeof body?.error === 'string' ? body.error : 'unexpected_response';
  const description =
    typeof body?.error_description === 'string' ? body.error_description : body ? undefined : `HTTP ${response.status}`;
  const retry = Number(response.headers.get('Retry-After'));
  return new TmiBffError(code, description, response.status, {
    loginUrl: typeof body?.login_url === 'string' ? body.login_url : undefined,
    retryAfter: response.headers.has('Retry-After') && Number.isFinite(retry) ? retry : undefined,
  });
}

/** Milliseconds to wait before one retry, when an intermediary's 503 asks for it at once. */
function retryNow(response: Response): number | undefined {
  if (response.status !== 503) return undefined;
  if ((response.headers.get('content-type') ?? '').includes('json')) return undefined;
  const after = response.headers.get('Retry-After');
  const seconds = after === null || after.trim() === '' ? NaN : Number(after);
  return Number.isFinite(seconds) && seconds >= 0 && seconds <= 1 ? seconds * 1000 : undefined;
}

/** This page's URL (`http://localhost/` outside a browser). */
function pageUrl(): URL {
  return new URL(typeof location === 'undefined' ? 'http://localhost/' : location.href);
}

/** The page to come back to after a login: the current path, query and fragment. */
function currentPage(): string {
  if (typeof location === 'undefined') return '/';
  const here = location.pathname + location.search + location.hash;
  return here.length <= 1024 ? here : location.pathname;
}

// Typed listeners for the client's events (declaration merging; no code).
export interface TmiBffClient {
  addEventListener<K extends keyof TmiBffClientEventMap>(
    type: K,
    listener: (this: TmiBffClient, event: TmiBffClientEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof TmiBffClientEventMap>(
    type: K,
    listener: (this: TmiBffClient, event: TmiBffClientEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

export class TmiBffClient extends EventTarget {
  /** The base path `B` this client talks to (`''` is the origin root). */
  readonly basePath: string;

  private readonly options: ClientOptions;
  private endpoints?: Promise<Endpoints>;
  private readonly cache = new Map<string, Cached>();
  private readonly flights = new Map<string, Flight>();
  private readonly channel?: ChannelLike;
  /** A session was seen (sessioninfo or a token) and has not ended since. */
  private hadSession = false;
  /** Bumped when the session ends: answers to older requests are not cached. */
  private generation = 0;
  /** The DPoP key, once loaded or made; `keyOps` orders a deletion before the next load. */
  private dpopKey?: Promise<DpopKey>;
  private keyOps: Promise<unknown> = Promise.resolve();
  /** The newest `DPoP-Nonce` per origin (the authorization server's and each API's). */
  private readonly nonces = new Map<string, string>();

  constructor(options: ClientOptions = {}) {
    super();
    this.options = options;
    this.basePath = discoverBase(options.basePath);
    const open =
      options.channel === undefined
        ? typeof BroadcastChannel === 'function'
          ? (name: string) => new BroadcastChannel(name) as unknown as ChannelLike
          : undefined
        : options.channel ?? undefined;
    if (open) {
      this.channel = open(`tmi-bff:${this.basePath}`);
      // Node.js: a BroadcastChannel would keep the process alive.
      (this.channel as { unref?: () => void }).unref?.();
      this.channel.onmessage = (event) => {
        if ((event.data as { type?: string } | null)?.type === 'logout') this.ended('other-tab');
      };
    }
  }

  /** Who is logged in: the backend's sessioninfo, or `null` without a session. */
  async getSession(): Promise<SessionInfo | null> {
    const { session } = await this.config();
    const generation = this.generation;
    const [response, body] = await this.call(session, { method: 'GET' });
    if (response.ok && body) {
      if (generation === this.generation) this.hadSession = true;
      return body as SessionInfo;
    }
    const error = errorOf(response, body);
    if (error.code === 'invalid_session') {
      this.ended('invalid_session');
      return null;
    }
    throw error;
  }

  /**
   * An access token for `resource` and `scope` (defaults: the backend's). Rejects with a
   * TmiBffError; for `backend_not_ready` its `loginUrl` is set (pass it to `login`).
   */
  getToken(options: TokenOptions = {}): Promise<string> {
    return this.token(options);
  }

  /**
   * `fetch` with `Authorization: Bearer <token>`. On a 401 it asks the backend once for a
   * replacement (`rejected_token`) and, if it gets a different token, retries once; the second
   * answer is returned as it is. Only to the origins `tokenOrigins` allows (default: every origin
   * except this page's): any other URL rejects with `origin_not_allowed` and is not requested.
   *
   * DPoP on: `Authorization: DPoP <token>` and a `DPoP` proof of this request; an API asking for
   * a nonce (`use_dpop_nonce` in `WWW-Authenticate`, with `DPoP-Nonce`) gets one more try with it.
   */
  async fetch(input: RequestInfo | URL, init?: RequestInit, options: TokenOptions = {}): Promise<Response> {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const allowed = this.options.tokenOrigins ?? ((u: URL) => u.origin !== pageUrl().origin);
    if (!(typeof allowed === 'function' ? allowed(url) : allowed.some((o) => new URL(o).origin === url.origin))) {
      throw new TmiBffError('origin_not_allowed', `no token for ${url.origin} (see the option tokenOrigins)`);
    }
    const { dpop } = await this.config();
    const once = async (token: string) => {
      const attempt = request.clone();
      attempt.headers.set('Authorization', `${dpop ? 'DPoP' : 'Bearer'} ${token}`);
      // htu: the URL without query and fragment (RFC 9449 4.2).
      if (dpop) attempt.headers.set('DPoP', await this.proof(request.method, url.origin + url.pathname, token));
      const response = await (this.options.fetch ?? globalThis.fetch)(attempt);
      if (dpop) keepNonce(this.nonces, url.href, response);
      return response;
    };
    const send = async (token: string) => {
      const response = await once(token);
      const nonceAsked =
        dpop && /use_dpop_nonce/.test(response.headers.get('WWW-Authenticate') ?? '') && response.headers.has('DPoP-Nonce');
      return nonceAsked ? once(token) : response;
    };
    const token = await this.token(options);
    const response = await send(token);
    if (response.status !== 401) return response;
    const replacement = await this.token(options, token);
    if (replacement === token) return response;
    return send(replacement);
  }

  /**
   * Starts an interactive login (a navigation to `B/bff/login`, or to `options.loginUrl`),
   * coming back to `returnTo` (default: this page). Resolves to the URL. A `loginUrl` on another
   * origin or path rejects with `invalid_login_url` and is not navigated to.
   */
  async login(options: LoginOptions = {}): Promise<string> {
    const page = pageUrl();
    const { login, dpop } = await this.config();
    const endpoint = new URL(login, page);
    const url = new URL(options.loginUrl ?? endpoint, page);
    if (url.origin !== page.origin || url.pathname !== endpoint.pathname) {
      throw new TmiBffError('invalid_login_url', `not this backend's login endpoint: ${url.href}`);
    }
    const query = url.searchParams;
    query.set('return_to', options.returnTo ?? currentPage());
    if (options.scope) {
      const scope = normalizeScope(`${query.get('scope') ?? ''} ${options.scope}`);
      query.set('scope', scope);
    }
    for (const resource of ([] as string[]).concat(options.resource ?? [])) {
      if (!query.getAll('resource').includes(resource)) query.append('resource', resource);
    }
    if (options.prompt) query.set('prompt', options.prompt);
    if (dpop) query.set('dpop_jkt', (await this.key()).jkt);
    const target = url.pathname + url.search;
    this.go(target);
    return target;
  }

  /**
   * Ends the session at the backend, tells the other tabs, deletes the DPoP key, fires
   * `sessionend` (if a session was seen), then navigates to the provider's logout page. Resolves
   * to that `logout_url`.
   */
  async logout(): Promise<string> {
    const { logout } = await this.config();
    const [response, body] = await this.call(logout, { method: 'POST' });
    if (!response.ok || typeof body?.logout_url !== 'string') throw errorOf(response, body);
    this.channel?.postMessage({ type: 'logout' });
    // Before navigating away, which could abort the deletion. Whatever key is stored belongs to
    // the session this ends (another tab's newer login included).
    await this.forgetKey(true);
    this.ended('logout');
    this.go(body.logout_url);
    return body.logout_url;
  }

  // ---- internals -----------------------------------------------------------------------------

  private go(url: string): void {
    const navigate = this.options.navigate;
    if (navigate === false) return;
    if (navigate) navigate(url);
    else location.assign(url);
  }

  /**
   * The session ended: forget every token; if this page had seen a session, delete the DPoP key
   * (logout() did already) and fire `sessionend`.
   */
  private ended(reason: SessionEndReason): void {
    this.cache.clear();
    this.generation += 1;
    if (!this.hadSession) return;
    this.hadSession = false;
    if (reason !== 'logout') void this.forgetKey(false);
    this.dispatchEvent(new CustomEvent('sessionend', { detail: { reason } }));
  }

  /**
   * A request to the backend: same-origin cookies, the CSRF header, never cached. Every backend
   * call is safe to repeat (the backend's single flight absorbs a repeated refresh), so a 503
   * from something in front of the backend (not its JSON answer) that asks for an immediate retry
   * (`Retry-After` of at most 1 s) is retried once; `wrangler dev`'s proxy answers a dropped POST
   * this way. The backend's own 503 (`temporarily_unavailable`) goes to the caller.
   *
   * The whole call, answer body included, gets `timeoutMs`, then it is aborted and rejects with
   * `timeout` (so a stalled request never holds the Web Lock for long). Resolves to the answer and
   * its JSON body, if it has one. `proof` makes a `DPoP` header for each try: a proof is used once.
   */
  private async call(
    path: string,
    init: RequestInit,
    proof?: () => Promise<string>,
  ): Promise<[Response, Record<string, unknown> | undefined]> {
    const doFetch = this.options.fetch ?? globalThis.fetch;
    const headers = new Headers(init.headers);
    headers.set(CSRF_HEADER, '1');
    const ms = this.options.timeoutMs ?? 10_000;
    // setTimeout rather than AbortSignal.timeout: one timer for both tries, and fake timers drive it.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ms);
    const send = async () => {
      if (proof) headers.set('DPoP', await proof());
      return doFetch(path, { ...init, headers, credentials: 'same-origin', cache: 'no-store', signal: abort.signal });
    };
    try {
      let response = await send();
      const wait = retryNow(response);
      if (wait !== undefined) {
        await response.body?.cancel();
        await new Promise((resolve) => setTimeout(resolve, wait));
        response = await send();
      }
      const body = await readJson(response);
      abort.signal.throwIfAborted();
      return [response, body];
    } catch (cause) {
      if (cause instanceof TmiBffError) throw cause;
      throw abort.signal.aborted
        ? new TmiBffError('timeout', `no answer from the backend within ${ms} ms`, 0, { cause })
        : new TmiBffError('network_error', 'the backend could not be reached', 0, { cause });
    } finally {
      clearTimeout(timer);
    }
  }

  /** `B/.well-known/bff-configuration`, read once (again after a failure). */
  private config(): Promise<Endpoints> {
    this.endpoints ??= (async () => {
      const base = this.basePath;
      const [response, body] = await this.call(`${base}/.well-known/bff-configuration`, { method: 'GET' });
      if (!response.ok || !body) {
        throw new TmiBffError('configuration_error', `${base}/.well-known/bff-configuration answered HTTP ${response.status}`, response.status);
      }
      const path = (name: string, fallback: string) => (typeof body[name] === 'string' ? (body[name] as string) : base + fallback);
      const dpop = body.dpop === true ? body.dpop_token_endpoint : '';
      if (typeof dpop !== 'string') {
        throw new TmiBffError('configuration_error', `${base}/.well-known/bff-configuration: dpop without dpop_token_endpoint`);
      }
      return {
        token: path('bff_token_endpoint', '/.well-known/bff-token'),
        session: path('bff_sessioninfo_endpoint', '/.well-known/bff-sessioninfo'),
        login: path('login_endpoint', '/bff/login'),
        logout: path('logout_endpoint', '/bff/logout'),
        dpop,
      };
    })();
    this.endpoints.catch(() => {
      this.endpoints = undefined;
    });
    return this.endpoints;
  }

  /**
   * The token for (resource, scope): from memory while fresh; else one request per key in this
   * tab (single flight), under a Web Lock shared by the tabs. With `rejected`, a replacement for
   * a token an API refused.
   */
  private async token(options: TokenOptions, rejected?: string): Promise<string> {
    const resource = options.resource ?? '';
    const scope = normalizeScope(options.scope);
    const key = `${resource} ${scope}`;
    const flight = this.flights.get(key);
    if (flight) {
      const token = await flight;
      if (token !== rejected) return token;
    }
    const cached = this.cache.get(key);
    if (cached && cached.token !== rejected && now() < cached.staleAt) return cached.token;

    const next: Flight = this.locked(`tmi-bff:${this.basePath}|${key}`, () => this.ask(key, resource, scope, rejected));
    this.flights.set(key, next);
    try {
      return await next;
    } finally {
      if (this.flights.get(key) === next) this.flights.delete(key);
    }
  }

  /** `fn` under the cross-tab Web Lock `name` (without Web Locks: at once). */
  private locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const locks = this.options.locks === undefined ? globalThis.navigator?.locks : this.options.locks;
    return locks ? locks.request(name, fn) : fn();
  }

  private async ask(key: string, resource: string, scope: string, rejected?: string, again?: boolean): Promise<string> {
    const { token: endpoint, dpop } = await this.config();
    const form = new URLSearchParams();
    if (resource) form.set('resource', resource);
    if (scope) form.set('scope', scope);
    if (rejected) form.set('rejected_token', rejected);
    const generation = this.generation;
    const sent = now();
    let used: Promise<DpopKey> | undefined;
    // POST: a rejected token never ends up in a URL (and so in a log).
    const post = async () => {
      const answer = await this.call(
        endpoint,
        { method: 'POST', body: form },
        dpop ? () => this.proof('POST', dpop, undefined, (used = this.key())) : undefined,
      );
      if (dpop) keepNonce(this.nonces, dpop, answer[0]);
      return answer;
    };
    let [response, body] = await post();
    // The authorization server asks for a nonce (RFC 9449 8): once more with the one it sent.
    if (body?.error === 'use_dpop_nonce' && response.headers.has('DPoP-Nonce')) [response, body] = await post();
    if (!response.ok || typeof body?.access_token !== 'string') {
      const error = errorOf(response, body);
      if (error.code === 'invalid_dpop_proof' && used && !again) {
        // This tab may have kept a key from before another tab's new login: ending the session
        // would delete that tab's key. The stored key decides.
        const refused = (await used).jkt;
        if (this.dpopKey === used) this.dpopKey = undefined;
        if ((await this.key()).jkt !== refused) return this.ask(key, resource, scope, rejected, true);
      }
      if (error.code === 'invalid_session' || error.code === 'invalid_grant' || error.code === 'invalid_dpop_proof') {
        this.ended(error.code === 'invalid_grant' ? 'invalid_grant' : 'invalid_session');
      }
      throw error;
    }
    const token = body.access_token;
    if (generation === this.generation) {
      this.hadSession = true;
      const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : undefined;
      // Without expires_in the backend caches for at most 60 s; keep it for half of that.
      const keep = expiresIn === undefined ? 30 : Math.max(expiresIn - marginSeconds(expiresIn), Math.min(1, expiresIn / 2));
      this.cache.set(key, { token, staleAt: sent + keep * 1000 });
    }
    return token;
  }

  // ---- DPoP (RFC 9449) -----------------------------------------------------------------------

  /** Where the key pair is kept: `<origin><base path>`; also names the Web Lock of its creation. */
  private keyName(): string {
    return pageUrl().origin + this.basePath;
  }

  /**
   * The key pair from IndexedDB; made (non-extractable) when there is none, or none `usable`,
   * under a Web Lock, and stored in one readwrite transaction that first looks again: IndexedDB
   * runs such transactions one at a time, so that even without Web Locks two tabs never make two.
   */
  private key(): Promise<DpopKey> {
    const task = (this.dpopKey ??= this.keyOps.then(async () => {
      const subtle = globalThis.crypto?.subtle;
      if (!subtle) throw new TmiBffError('configuration_error', 'DPoP needs WebCrypto (a secure context)');
      const name = this.keyName();
      const thumbprint = async (publicKey: CryptoKey) => {
        const { crv, kty, x, y } = await subtle.exportKey('jwk', publicKey);
        const jwk = { crv, kty, x, y };
        return { jwk, jkt: base64url(await sha256(JSON.stringify(jwk))) };
      };
      const stored = await this.keyStore<StoredKey>('readonly', (s) => s.get(name));
      const pair = usable(stored)
        ? stored
        : await this.locked(`tmi-bff-dpop:${name}`, async () => {
            const { privateKey, publicKey } = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
            const made: StoredKey = { privateKey, publicKey, jkt: (await thumbprint(publicKey)).jkt };
            const kept = await this.keyStore<StoredKey>('readwrite', (s) => {
              const found = s.get(name);
              const out = { result: made };
              found.onsuccess = () => (usable(found.result) ? (out.result = found.result) : s.put(made, name));
              return out;
            });
            return kept ?? made;
          });
      return { pair, ...(await thumbprint(pair.publicKey)) };
    }));
    // A deletion waits for a key being made (and stored) now.
    this.keyOps = task.catch(() => {
      if (this.dpopKey === task) this.dpopKey = undefined;
    });
    return task;
  }

  /**
   * Forgets the key pair (memory) and deletes it from IndexedDB when DPoP is on, so that the next
   * login pins a new one; unless `all`, only if the stored pair is still the one this client
   * knew: a tab that saw the session end late must not delete the key of another tab's new login.
   */
  private forgetKey(all: boolean): Promise<unknown> {
    const known = this.dpopKey;
    this.dpopKey = undefined;
    this.keyOps = this.keyOps
      .then(async () => {
        const jkt = all || (await known)?.jkt;
        if (jkt && (await this.endpoints)?.dpop) {
          const name = this.keyName();
          // Compared within the transaction: an await between get and delete would end it.
          await this.keyStore('readwrite', (s) => {
            const found = s.get(name);
            found.onsuccess = () => (all || (found.result?.jkt ?? jkt) === jkt) && s.delete(name);
            return found;
          });
        }
      })
      .catch(() => {});
    return this.keyOps;
  }

  /**
   * One transaction on the object store `dpop` of the database `tmi-bff`: `op` makes its requests
   * and returns what holds the result, read once the transaction is committed. Without IndexedDB,
   * or when it fails (some private modes): undefined.
   */
  private async keyStore<T>(mode: IDBTransactionMode, op: (store: IDBObjectStore) => { result: unknown }): Promise<T | undefined> {
    const factory = this.options.indexedDB === undefined ? globalThis.indexedDB : this.options.indexedDB;
    if (!factory) return undefined;
    try {
      const open = factory.open('tmi-bff', 1);
      open.onupgradeneeded = () => open.result.createObjectStore('dpop');
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
      try {
        const transaction = db.transaction('dpop', mode);
        const request = op(transaction.objectStore('dpop'));
        await new Promise((resolve, reject) => {
          transaction.oncomplete = resolve;
          transaction.onerror = transaction.onabort = () => reject(transaction.error);
        });
        return request.result as T;
      } finally {
        db.close();
      }
    } catch {
      return undefined;
    }
  }

  /** A DPoP proof (RFC 9449 4.2) for `htm` `htu`; with `token`, its hash `ath`. */
  private async proof(htm: string, htu: string, token?: string, key = this.key()): Promise<string> {
    const { pair, jwk } = await key;
    const part = (value: object) => base64url(utf8(JSON.stringify(value)));
    const claims = {
      jti: base64url(crypto.getRandomValues(new Uint8Array(16))),
      htm,
      htu,
      iat: Math.floor(now() / 1000),
      nonce: this.nonces.get(new URL(htu).origin),
      ath: token && base64url(await sha256(token)),
    };
    const input = `${part({ typ: 'dpop+jwt', alg: 'ES256', jwk })}.${part(claims)}`;
    // WebCrypto's ECDSA signature is r || s, the form JWS uses (RFC 7518 3.4).
    const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, utf8(input));
    return `${input}.${base64url(signature)}`;
  }
}

/** A client for the backend at `options.basePath` (default: meta tag `tmi-bff-base`, else `/`). */
export function createClient(options?: ClientOptions): TmiBffClient {
  return new TmiBffClient(options);
}
