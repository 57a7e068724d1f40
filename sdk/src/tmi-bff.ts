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
}

interface Cached {
  token: string;
  /** `performance.now()`-style milliseconds after which the token is not handed out again. */
  staleAt: number;
}

/** A request for a token in progress (single flight per key). */
type Flight = Promise<string>;

const CSRF_HEADER = 'X-CSRF';
const now = (): number => Date.now();

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
   */
  async fetch(input: RequestInfo | URL, init?: RequestInit, options: TokenOptions = {}): Promise<Response> {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const allowed = this.options.tokenOrigins ?? ((u: URL) => u.origin !== pageUrl().origin);
    if (!(typeof allowed === 'function' ? allowed(url) : allowed.some((o) => new URL(o).origin === url.origin))) {
      throw new TmiBffError('origin_not_allowed', `no token for ${url.origin} (see the option tokenOrigins)`);
    }
    const send = (token: string) => {
      const attempt = request.clone();
      attempt.headers.set('Authorization', `Bearer ${token}`);
      return (this.options.fetch ?? globalThis.fetch)(attempt);
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
    const endpoint = new URL((await this.config()).login, page);
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
    const target = url.pathname + url.search;
    this.go(target);
    return target;
  }

  /**
   * Ends the session at the backend, tells the other tabs, fires `sessionend` (if a session was
   * seen), then navigates to the provider's logout page. Resolves to that `logout_url`.
   */
  async logout(): Promise<string> {
    const { logout } = await this.config();
    const [response, body] = await this.call(logout, { method: 'POST' });
    if (!response.ok || typeof body?.logout_url !== 'string') throw errorOf(response, body);
    this.channel?.postMessage({ type: 'logout' });
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

  /** The session ended: forget every token; fire `sessionend` if this page had seen a session. */
  private ended(reason: SessionEndReason): void {
    this.cache.clear();
    this.generation += 1;
    if (!this.hadSession) return;
    this.hadSession = false;
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
   * its JSON body, if it has one.
   */
  private async call(path: string, init: RequestInit): Promise<[Response, Record<string, unknown> | undefined]> {
    const doFetch = this.options.fetch ?? globalThis.fetch;
    const headers = new Headers(init.headers);
    headers.set(CSRF_HEADER, '1');
    const ms = this.options.timeoutMs ?? 10_000;
    // setTimeout rather than AbortSignal.timeout: one timer for both tries, and fake timers drive it.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ms);
    const send = () => doFetch(path, { ...init, headers, credentials: 'same-origin', cache: 'no-store', signal: abort.signal });
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
      return {
        token: path('bff_token_endpoint', '/.well-known/bff-token'),
        session: path('bff_sessioninfo_endpoint', '/.well-known/bff-sessioninfo'),
        login: path('login_endpoint', '/bff/login'),
        logout: path('logout_endpoint', '/bff/logout'),
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

    const ask = () => this.ask(key, resource, scope, rejected);
    const locks = this.options.locks === undefined ? globalThis.navigator?.locks : this.options.locks;
    const next: Flight = locks ? locks.request(`tmi-bff:${this.basePath}|${key}`, ask) : ask();
    this.flights.set(key, next);
    try {
      return await next;
    } finally {
      if (this.flights.get(key) === next) this.flights.delete(key);
    }
  }

  private async ask(key: string, resource: string, scope: string, rejected?: string): Promise<string> {
    const { token: endpoint } = await this.config();
    const form = new URLSearchParams();
    if (resource) form.set('resource', resource);
    if (scope) form.set('scope', scope);
    if (rejected) form.set('rejected_token', rejected);
    const generation = this.generation;
    const sent = now();
    // POST: a rejected token never ends up in a URL (and so in a log).
    const [response, body] = await this.call(endpoint, { method: 'POST', body: form });
    if (!response.ok || typeof body?.access_token !== 'string') {
      const error = errorOf(response, body);
      if (error.code === 'invalid_session' || error.code === 'invalid_grant') {
        this.ended(error.code);
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
}

/** A client for the backend at `options.basePath` (default: meta tag `tmi-bff-base`, else `/`). */
export function createClient(options?: ClientOptions): TmiBffClient {
  return new TmiBffClient(options);
}
