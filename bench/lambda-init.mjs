#!/usr/bin/env node
// The Lambda's init time: from spawning `bootstrap` to its first poll of the Runtime API
// (`GET /2018-06-01/runtime/invocation/next`), against a stand-in Runtime API on loopback that
// never hands out an event. This is the part of a cold start the function itself owns (the
// platform's own sandbox start comes before it).
//
//   node bench/lambda-init.mjs <path to bootstrap> [runs, default 30]
//
// Prints each run's milliseconds on stderr and one JSON line on stdout:
// {"runs", "median_ms", "p90_ms", "min_ms", "max_ms"}.

import { spawn } from 'node:child_process';
import http from 'node:http';

const [bootstrap, runsArg] = process.argv.slice(2);
if (!bootstrap) {
  process.stderr.write('usage: node bench/lambda-init.mjs <bootstrap> [runs]\n');
  process.exit(2);
}
const runs = Number(runsArg ?? 30);

// What the Lambda service sets, and a valid configuration (nothing is fetched at start).
const env = {
  PATH: process.env.PATH,
  AWS_LAMBDA_FUNCTION_NAME: 'tmi-bff',
  AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '128',
  AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/tmi-bff',
  AWS_LAMBDA_LOG_STREAM_NAME: 'bench',
  AWS_REGION: 'us-east-1',
  BFF_ISSUER: 'http://127.0.0.1:9',
  BFF_ALLOW_INSECURE_ISSUER: 'true',
  BFF_CLIENT_ID: 'bff',
  BFF_CLIENT_SECRET: 'bff-secret',
  BFF_PUBLIC_ORIGIN: 'http://127.0.0.1:8787',
  BFF_COOKIE_KEYS: 'k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8',
};

function once() {
  return new Promise((resolve, reject) => {
    let child;
    let started;
    const server = http.createServer((req) => {
      if (req.url?.startsWith('/2018-06-01/runtime/invocation/next')) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        child.kill('SIGKILL');
        server.close();
        req.socket.destroy();
        resolve(ms);
      }
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      started = process.hrtime.bigint();
      child = spawn(bootstrap, [], {
        env: { ...env, AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}` },
        stdio: ['ignore', 'ignore', 'ignore'],
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`bootstrap exited (${code ?? signal}) before polling`));
      });
    });
  });
}

const times = [];
for (let i = 0; i < runs; i += 1) {
  const ms = await once();
  times.push(ms);
  process.stderr.write(`init ${i + 1}: ${ms.toFixed(2)} ms\n`);
}
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
const round = (ms) => Math.round(ms * 100) / 100;
process.stdout.write(
  `${JSON.stringify({ runs, median_ms: round(at(0.5)), p90_ms: round(at(0.9)), min_ms: round(times[0]), max_ms: round(times.at(-1)) })}\n`,
);
