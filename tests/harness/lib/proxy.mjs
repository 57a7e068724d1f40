// The harness's public face: a reverse proxy in front of oidc-provider that can inject
// faults. Modes: pass | refuse | 500 | hang (see README.md).

import http from 'node:http';

export const MODES = new Set(['pass', 'refuse', '500', 'hang']);

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

export class FaultProxy {
  constructor({ port, host = '127.0.0.1', targetPort, targetHost = '127.0.0.1', log }) {
    this.port = port;
    this.host = host;
    this.targetPort = targetPort;
    this.targetHost = targetHost;
    this.log = log;
    this.mode = 'pass';
    this.server = null;
    this.sockets = new Set();
    this.hanging = new Set();
    // A new loopback connection per forwarded request: with a keep-alive pool, a request could
    // pick a socket just as the provider closes it for idleness (Node's server does so after
    // 5 s; Node 20's agent ignores the server's `Keep-Alive: timeout` hint unless the agent has a
    // timeout of its own) and fail with "socket hang up", a 502 no fault mode asked for.
    this.agent = new http.Agent({ keepAlive: false });
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

  async setMode(mode) {
    if (!MODES.has(mode)) throw new Error(`unknown mode ${mode}`);
    const previous = this.mode;
    this.mode = mode;
    if (previous === 'hang' && mode !== 'hang') this.releaseHanging();
    if (mode === 'refuse') {
      await this.stop();
    } else if (!this.server) {
      await this.start();
    }
    if (previous !== mode) this.log(`fault mode ${previous} -> ${mode}`);
    return mode;
  }

  handle(req, res) {
    switch (this.mode) {
      case '500': {
        req.resume();
        const body = JSON.stringify({
          error: 'server_error',
          error_description: 'fault injected by the test harness (mode 500)',
        });
        res.writeHead(500, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(body),
          'cache-control': 'no-store',
        });
        res.end(body);
        return;
      }
      case 'hang': {
        req.resume();
        const { socket } = req;
        this.hanging.add(socket);
        socket.once('close', () => this.hanging.delete(socket));
        return; // never answer
      }
      default:
        this.forward(req, res);
    }
  }

  forward(req, res) {
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name)) headers[name] = value;
    }
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
      res.writeHead(answer.statusCode, answer.statusMessage, out);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
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
    req.pipe(upstream);
  }
}
