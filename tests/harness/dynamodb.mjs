#!/usr/bin/env node
// Local DynamoDB stand-in for the tests: dynalite (npm, pinned in package.json), in memory, on
// 127.0.0.1, with the BFF's session table created.
//
//   node tests/harness/dynamodb.mjs --port 8000 [--table bff-sessions]
//   node tests/harness/dynamodb.mjs --port 0          # any free port; READY says which
//
// stdout carries exactly one line once the table is ACTIVE:
//   READY {"endpoint":"http://127.0.0.1:<port>","table":"<table>","region":"us-east-1"}
// Point the Lambda (or bff_dynamodb::DynamoDb::from_env) at it with
//   BFF_DYNAMODB_TABLE=<table> AWS_ENDPOINT_URL_DYNAMODB=<endpoint> AWS_REGION=us-east-1
//   AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
// dynalite checks that requests carry a SigV4 Authorization header but not the signature itself,
// so any credentials do. It has no UpdateTimeToLive: expired items stay until deleted, which is
// also what the BFF must cope with on DynamoDB (its TTL deletion lags), so the store ignores them.
//
// The endpoint is a fault proxy (lib/proxy.mjs) in front of dynalite, so tests can make the
// store refuse connections, hang, answer slowly or answer DynamoDB errors; READY also names its
// control API (`POST /fault`, `GET /fault`, as the provider harness's; README.md).
//
// SIGTERM / SIGINT: closes and exits 0. Exit 2 with `[dynamodb] fatal: ...` on stderr (no READY)
// when the port is taken or the table cannot be created.

import { parseArgs } from 'node:util';

import http from 'node:http';

import dynalite from 'dynalite';

import { FaultProxy, faultControl } from './lib/proxy.mjs';

const REGION = 'us-east-1';

function fail(msg) {
  process.stderr.write(`[dynamodb] fatal: ${msg}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    table: { type: 'string', default: 'bff-sessions' },
  },
});
const port = Number(values.port);
if (values.port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
  fail('--port N is required (0 = any free port)');
}
const table = values.table;
if (!/^[A-Za-z0-9_.-]{3,255}$/.test(table)) fail(`--table must be a valid DynamoDB table name`);

// Tables become ACTIVE at once (dynalite's default keeps them CREATING for 500 ms).
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.on('error', (err) => fail(err.message));

// One DynamoDB JSON call to our own server. dynalite wants an AWS4 Authorization header and a
// date, and checks no signature.
async function call(endpoint, operation, body) {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `DynamoDB_20120810.${operation}`,
      'x-amz-date': new Date().toISOString().replace(/[-:]|\.\d{3}/g, ''),
      authorization: `AWS4-HMAC-SHA256 Credential=test/20000101/${REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: JSON.stringify(body),
  });
  const reply = await response.json();
  if (!response.ok) throw new Error(`${operation}: ${reply.__type ?? response.status} ${reply.message ?? ''}`);
  return reply;
}

const log = (msg) => process.stderr.write(`[dynamodb] ${msg}\n`);
let proxy;
let controlServer;

server.listen(0, '127.0.0.1', async () => {
  const direct = `http://127.0.0.1:${server.address().port}`;
  let endpoint;
  let control;
  try {
    proxy = new FaultProxy({ port, targetPort: server.address().port, log });
    await proxy.start();
    endpoint = `http://127.0.0.1:${proxy.port}`;
    const faults = faultControl(proxy);
    controlServer = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://control');
      const route = `${req.method} ${url.pathname.replace(/\/+$/, '') || '/'}`;
      faults(req, res, url, route).then((handled) => {
        if (!handled) {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'not_found', route }));
        }
      }, (err) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'control_error', error_description: err.message }));
      });
    });
    controlServer.keepAliveTimeout = 60_000;
    await new Promise((resolve, reject) => {
      controlServer.once('error', reject);
      controlServer.listen(0, '127.0.0.1', resolve);
    });
    control = `http://127.0.0.1:${controlServer.address().port}`;
  } catch (err) {
    fail(`cannot listen: ${err.message}`);
  }
  try {
    // The BFF's schema (see template.yaml): partition key pk (S); v (B) and ttl (N) need no
    // definition. ttl is the time-to-live attribute on DynamoDB; dynalite cannot enable it.
    await call(direct, 'CreateTable', {
      TableName: table,
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    });
    for (let i = 0; ; i += 1) {
      const { Table } = await call(direct, 'DescribeTable', { TableName: table });
      if (Table.TableStatus === 'ACTIVE') break;
      if (i === 100) throw new Error(`table ${table} stays ${Table.TableStatus}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } catch (err) {
    fail(err.message);
  }
  process.stdout.write(`READY ${JSON.stringify({ endpoint, table, region: REGION, control })}\n`);
});

function stop() {
  // Connections kept alive by clients would hold close() open: end them, exit regardless.
  setTimeout(() => process.exit(0), 2000).unref();
  proxy?.releaseHanging();
  proxy?.stop();
  controlServer?.closeAllConnections();
  controlServer?.close();
  server.closeAllConnections?.();
  server.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
