#!/usr/bin/env node
// Where a Worker's isolate spends its time under load, through the inspector `wrangler dev`
// serves (--inspector-port): V8's sampling CPU profiler runs while COMMAND (a wrk run) does, and
// the samples are summed by kind. The workerd process time scripts/bench-worker.sh measures also
// holds wrangler's proxy and the HTTP work around the Worker; this is the Worker's own share.
//
//   node bench/peer-worker/profile.mjs --port 9229 -- wrk ... (a wrk run printing RESULT {...})
//
// Prints the command's output, then PROFILE {"ms": {kind: ms}, "top": [...]}.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { port: { type: 'string' } }, allowPositionals: true });
if (!values.port || positionals.length === 0) throw new Error('usage: profile.mjs --port PORT -- COMMAND...');
// Node 22 has a WebSocket of its own; on 20, the `ws` package wrangler brings along.
const WS = globalThis.WebSocket ?? createRequire(new URL('../../package.json', import.meta.url))('ws');

const ws = new WS(`ws://127.0.0.1:${values.port}/ws`);
let next = 0;
const waiting = new Map();
const send = (method, params = {}) =>
  new Promise((resolve, reject) => {
    const id = ++next;
    waiting.set(id, { resolve, reject, method });
    ws.send(JSON.stringify({ id, method, params }));
  });
ws.onmessage = (event) => {
  const message = JSON.parse(typeof event.data === 'string' ? event.data : event.data.toString());
  const entry = message.id !== undefined && waiting.get(message.id);
  if (!entry) return;
  waiting.delete(message.id);
  if (message.error) entry.reject(new Error(`${entry.method}: ${message.error.message}`));
  else entry.resolve(message.result);
};
ws.onerror = (event) => {
  console.error(`profile.mjs: inspector: ${event.message ?? 'connection failed'}`);
  process.exit(1);
};

const run = (argv) =>
  new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.on('close', (code) => resolve({ code, text }));
  });

function kind(frame) {
  const { functionName: f, url } = frame;
  if (f === '(idle)' || f === '(program)' || f === '(garbage collector)' || f === '(root)') return f;
  if (url.startsWith('wasm://') || /^\$?(wasm-function|js-to-wasm|wasm-to-js)/.test(f)) return 'wasm';
  if (url === '') return 'runtime builtins';
  return `js ${url.split('/').pop()}`;
}

ws.onopen = async () => {
  try {
    await send('Profiler.enable');
    await send('Profiler.setSamplingInterval', { interval: 100 });
    await send('Profiler.start');
    const { code, text } = await run(positionals);
    const { profile } = await send('Profiler.stop');
    process.stdout.write(text);
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map();
    profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
    const ms = {};
    const fns = new Map();
    for (const [id, us] of self) {
      const frame = byId.get(id).callFrame;
      const k = kind(frame);
      ms[k] = (ms[k] ?? 0) + us / 1000;
      // Minified glue has many anonymous functions: the position tells them apart.
      const at = frame.url && !k.startsWith('wasm') ? `@${frame.lineNumber + 1}:${frame.columnNumber + 1}` : '';
      const name = `${k}: ${frame.functionName || '(anonymous)'}${at}`;
      fns.set(name, (fns.get(name) ?? 0) + us / 1000);
    }
    const top = [...fns].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([n, v]) => [n, Math.round(v)]);
    for (const k of Object.keys(ms)) ms[k] = Math.round(ms[k]);
    console.log(`PROFILE ${JSON.stringify({ ms, top })}`);
    ws.close();
    process.exit(code ?? 1);
  } catch (e) {
    console.error(`profile.mjs: ${e.message}`);
    process.exit(1);
  }
};
