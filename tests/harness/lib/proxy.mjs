// The harness's public face: a reverse proxy in front of oidc-provider (or the DynamoDB
// stand-in) that can inject faults. Modes and scopes: see README.md, "Fault proxy".

import http from 'node:http';

export const MODES = new Set([
  'pass', 'refuse', '500', 'hang', 'garbage', 'truncated', 'strip_refresh_token', 'lose', 'delay',
  'dynamodb_error',
]);

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'expect',
]);

function listen(server, port, host) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

// A fault as the control API sets it: `mode`, and what narrows it (`path`, `grant_type`,
// `header`, `times`) or shapes it (`ms`, `status`, `type`). Throws on anything unknown or malformed.
export function parseFault(input) {
  const get = (name) => {
    const value = input[name];
    return value === undefined || value === null || value === '' ? undefined : String(value);
  };
  const mode = get('mode');
  if (!MODES.has(mode)) throw new Error(`unknown mode ${mode}`);
  const number = (name, fallback) => {
    const text = get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number`);
    return value;
  };
  const path = get('path');
  if (path !== undefined && !path.startsWith('/')) throw new Error('path must start with /');
  const header = get('header');
  if (header !== undefined && !/^[A-Za-z0-9-]+:./.test(header)) throw new Error('header must be name:value');
  const type = get('type') ?? 'InternalServerError';
  if (!/^[A-Za-z]+$/.test(type)) throw new Error('type must be a DynamoDB error name');
  return {
    mode,
    path,
    grant_type: get('grant_type'),
    header,
    times: number('times', undefined),
    ms: number('ms', 1000),
    status: number('status', type === 'InternalServerError' ? 500 : 400),
    type,
  };
}

export class FaultProxy {
  constructor({ port, host = '127.0.0.1', targetPort, targetHost = '127.0.0.1', log }) {
    this.port = port;
    this.host = host;
    this.targetPort = targetPort;
    this.targetHost = targetHost;
    this.log = log;
    this.fault = parseFault({ mode: 'pass' });
    // Requests the current fault acted on, and requests seen, since it was set.
    this.hits = 0;
    this.requests = 0;
    this.server = null;
    this.sockets = new Set();
    this.hanging = new Set();
    // A new loopback connection per forwarded request: with a keep-alive pool, a request could
    // pick a socket just as the provider closes it for idleness (Node's server does so after
    // 5 s; Node 20's agent ignores the server's `Keep-Alive: timeout` hint unless the agent has a
    // timeout of its own) and fail with "socket hang up", a 502 no fault mode asked for.
    this.agent = new http.Agent({ keepAlive: false });
  }

  get mode() {
    return this.fault.mode;
  }

  // What `GET /fault` shows.
  describe() {
    const { mode, path, grant_type: grantType, header, times } = this.fault;
    const shown = { mode, hits: this.hits, requests: this.requests };
    if (path !== undefined) shown.path = path;
    if (header !== undefined) shown.header = header;
    if (grantType !== undefined) shown.grant_type = grantType;
    if (times !== undefined) shown.remaining = Math.max(0, times - this.hits);
    if (mode === 'delay') shown.ms = this.fault.ms;
    if (mode === 'dynamodb_error') Object.assign(shown, { status: this.fault.status, type: this.fault.type });
    return shown;
  }

  async start() {
    const server = http.createServer((req, res) => this.handle(req, res));
    // Idle client connections stay open a minute, as production servers keep them (nginx 75 s,
    // load balancers 60 s). With Node's 5 s, a client that pools connections (the backend's
    // reqwest, the tests' own clients) can send on one just as the server closes it, after
    // the suite's ~6 s waits for a token to age, and see a reset no fault mode asked for.
    server.keepAliveTimeout = 60_000;
    server.headersTimeout = 65_000;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    await listen(server, this.port, this.host);
    // Port 0 picks one; a later `refuse` must come back on the same.
    this.port = server.address().port;
    this.server = server;
  }

  async stop() {
    const { server } = this;
    if (!server) return;
    this.server = null;
    const closed = new Promise((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.hanging.clear();
    await closed;
  }

  releaseHanging() {
    for (const socket of this.hanging) socket.destroy();
    this.hanging.clear();
  }

  // Sets a fault (a mode name, or what `parseFault` returns). A scoped `refuse` (with `path`,
  // `grant_type` or `times`) cannot close the port for some requests only: it resets the
  // connection of each request it applies to, and the port stays open.
  async setMode(mode) {
    const fault = typeof mode === 'string' ? parseFault({ mode }) : mode;
    const previous = this.describe();
    this.releaseHanging();
    this.fault = fault;
    this.hits = 0;
    this.requests = 0;
    if (fault.mode === 'refuse' && !this.scoped()) {
      await this.stop();
    } else if (!this.server) {
      await this.start();
    }
    this.log(`fault ${JSON.stringify(previous)} -> ${JSON.stringify(this.describe())}`);
    return fault.mode;
  }

  scoped() {
    const { path, grant_type: grantType, header, times } = this.fault;
    return path !== undefined || grantType !== undefined || header !== undefined || times !== undefined;
  }

  // Whether the fault acts on this request (its body already read).
  applies(req, body) {
    const { mode, path, grant_type: grantType, header, times } = this.fault;
    if (mode === 'pass') return false;
    if (path !== undefined && new URL(req.url, 'http://proxy').pathname !== path) return false;
    if (header !== undefined) {
      const at = header.indexOf(':');
      if (req.headers[header.slice(0, at).toLowerCase()] !== header.slice(at + 1)) return false;
    }
    if (grantType !== undefined) {
      const form = new URLSearchParams(body.toString('utf8'));
      if (form.get('grant_type') !== grantType) return false;
    }
    if (times !== undefined && this.hits >= times) return false;
    this.hits += 1;
    return true;
  }

  handle(req, res) {
    // Bodies are small (forms, JSON calls): read whole, so a fault can look at a form field.
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      this.requests += 1;
      const body = Buffer.concat(chunks);
      if (!this.applies(req, body)) {
        this.forward(req, res, body);
        return;
      }
      this.inject(req, res, body);
    });
  }

  inject(req, res, body) {
    const { fault } = this;
    const answer = (status, type, text) => {
      res.writeHead(status, {
        'content-type': type,
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
      });
      res.end(text);
    };
    switch (fault.mode) {
      case 'refuse':
        req.socket.destroy();
        return;
      case '500':
        answer(500, 'application/json; charset=utf-8', JSON.stringify({
          error: 'server_error',
          error_description: 'fault injected by the test harness (mode 500)',
        }));
        return;
      case 'hang': {
        const { socket } = req;
        this.hanging.add(socket);
        socket.once('close', () => this.hanging.delete(socket));
        return; // never answer
      }
      case 'garbage':
        answer(200, 'application/json; charset=utf-8', '<html><body>Service temporarily moved</body></html>');
        return;
      case 'truncated':
        answer(200, 'application/json; charset=utf-8', '{"access_token":"fault-injected","token_type":"Bea');
        return;
      case 'dynamodb_error':
        answer(fault.status, 'application/x-amz-json-1.0', JSON.stringify({
          __type: `com.amazonaws.dynamodb.v20120810#${fault.type}`,
          message: 'fault injected by the test harness',
        }));
        return;
      case 'delay':
        setTimeout(() => this.forward(req, res, body), fault.ms);
        return;
      case 'strip_refresh_token':
        this.forward(req, res, body, (status, headers, text) => {
          let json;
          try {
            json = JSON.parse(text.toString('utf8'));
          } catch {
            return text;
          }
          if (json && typeof json === 'object' && 'refresh_token' in json) {
            delete json.refresh_token;
            this.log(`proxy: refresh_token stripped from ${req.method} ${req.url} (${status})`);
          }
          return Buffer.from(JSON.stringify(json));
        });
        return;
      case 'lose':
        // The provider processes the request and answers; the client never hears of it.
        this.forward(req, res, body, () => {
          this.log(`proxy: answer to ${req.method} ${req.url} lost on purpose`);
          req.socket.destroy();
          return null;
        });
        return;
      default:
        this.forward(req, res, body);
    }
  }

  // Sends the request on to the target. With `rewrite`, the whole answer is read first and
  // `rewrite(status, headers, body)` returns the body to send instead (`null`: send nothing).
  forward(req, res, body, rewrite) {
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name)) headers[name] = value;
    }
    // A rewritten answer is read as plain text.
    if (rewrite) delete headers['accept-encoding'];
    const upstream = http.request({
      host: this.targetHost,
      port: this.targetPort,
      method: req.method,
      path: req.url,
      headers, // Host preserved: the provider builds every URL from it
      agent: this.agent,
    }, (answer) => {
      const out = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (!HOP_BY_HOP.has(name)) out[name] = value;
      }
      if (!rewrite) {
        res.writeHead(answer.statusCode, answer.statusMessage, out);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
        return;
      }
      const chunks = [];
      answer.on('data', (chunk) => chunks.push(chunk));
      answer.on('error', () => res.destroy());
      answer.on('end', () => {
        const text = rewrite(answer.statusCode, out, Buffer.concat(chunks));
        if (text === null) return;
        delete out['content-length'];
        delete out['transfer-encoding'];
        delete out['content-encoding'];
        out['content-length'] = text.length;
        res.writeHead(answer.statusCode, answer.statusMessage, out);
        res.end(text);
      });
    });
    upstream.on('error', (err) => {
      this.log(`proxy: upstream error ${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'bad_gateway' }));
      } else {
        res.destroy();
      }
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end(body);
  }
}

// The control API's `POST /fault` and `GET /fault` for `proxy`, shared by every harness script:
// mode changes are applied one at a time, in the order they arrive. Returns false for other
// routes.
export function faultControl(proxy) {
  let chain = Promise.resolve();
  const send = (res, status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  };
  return async (req, res, url, route) => {
    if (route === 'GET /fault') {
      send(res, 200, proxy.describe());
      return true;
    }
    if (route !== 'POST /fault') return false;
    let input = Object.fromEntries(url.searchParams);
    if (!input.mode) {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const text = Buffer.concat(chunks).toString('utf8').trim();
      try {
        input = text ? JSON.parse(text) : {};
      } catch {
        input = {};
      }
    }
    let fault;
    try {
      fault = parseFault(input);
    } catch (err) {
      send(res, 400, { error: 'invalid_mode', error_description: err.message, modes: [...MODES] });
      return true;
    }
    const done = chain.then(() => proxy.setMode(fault));
    chain = done.catch(() => {});
    try {
      await done;
    } catch (err) {
      send(res, 500, { error: 'mode_change_failed', error_description: err.message });
      return true;
    }
    send(res, 200, proxy.describe());
    return true;
  };
}
