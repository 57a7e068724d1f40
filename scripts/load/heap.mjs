#!/usr/bin/env node
// Measures the Worker's own memory under `wrangler dev` through its inspector (the Chrome DevTools
// protocol wrangler serves on --inspector-port), for scripts/load.sh: the size of every
// WebAssembly.Memory (the Rust code's linear memory: it only ever grows, so a leak in the Rust
// code shows up here as growth, whatever the allocator does) and the V8 heap's used bytes after a
// full garbage collection (Runtime.queryObjects collects first), which a leak in the JavaScript
// glue would grow. Both are the isolate's, unlike the workerd processes' RSS, which the tool grows
// by itself per request (scripts/load.sh, run_control).
//
//   node scripts/load/heap.mjs --port 9229
//
// Prints one line: HEAP {"wasm_bytes":n,"memories":n,"heap_used":n,"heap_total":n}.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
if (!values.port) throw new Error('--port is required');
// Node 22 has a WebSocket of its own; on 20, the `ws` package wrangler brings along.
const WS = globalThis.WebSocket ?? createRequire(new URL('../../package.json', import.meta.url))('ws');

const timer = setTimeout(() => fail('no answer within 30 s'), 30000);
function fail(message) {
  console.error(`heap.mjs: ${message}`);
  process.exit(1);
}

const ws = new WS(`ws://127.0.0.1:${values.port}/ws`);
let next = 0;
const waiting = new Map();
let context = null;
const send = (method, params = {}) =>
  new Promise((resolve, reject) => {
    const id = ++next;
    waiting.set(id, { resolve, reject, method });
    ws.send(JSON.stringify({ id, method, params }));
  });
ws.onmessage = (event) => {
  const message = JSON.parse(typeof event.data === 'string' ? event.data : event.data.toString());
  // workerd announces no execution context on Runtime.enable; the scripts the debugger lists
  // carry the Worker's.
  if (message.method === 'Debugger.scriptParsed' && context === null) context = message.params.executionContextId;
  const entry = message.id !== undefined && waiting.get(message.id);
  if (!entry) return;
  waiting.delete(message.id);
  if (message.error) entry.reject(new Error(`${entry.method}: ${message.error.message}`));
  else entry.resolve(message.result);
};
ws.onerror = (event) => fail(`inspector: ${event.message ?? 'connection failed'}`);
ws.onopen = async () => {
  try {
    await send('Runtime.enable');
    await send('Debugger.enable');
    for (let i = 0; i < 50 && context === null; i++) await new Promise((r) => setTimeout(r, 100));
    await send('Debugger.disable');
    if (context === null) fail('the inspector listed no script of the Worker');
    const proto = await send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype', contextId: context });
    const found = await send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
    const sizes = await send('Runtime.callFunctionOn', {
      objectId: found.objects.objectId,
      functionDeclaration: 'function () { return this.map((m) => m.buffer.byteLength); }',
      returnByValue: true,
    });
    const heap = await send('Runtime.getHeapUsage');
    const memories = sizes.result.value;
    console.log(`HEAP ${JSON.stringify({
      wasm_bytes: memories.reduce((a, b) => a + b, 0),
      memories: memories.length,
      heap_used: heap.usedSize,
      heap_total: heap.totalSize,
    })}`);
    clearTimeout(timer);
    ws.close();
    process.exit(0);
  } catch (e) {
    fail(e.message);
  }
};
