// What a Node backend-for-frontend built on jose does per request to read its session cookie
// (nextjs-auth0 and Auth.js keep the session as a JWE): decrypt a `dir`/`A256GCM` compact JWE and
// JSON.parse the payload. The session JSON is the one the Rust benchmarks seal, so both sides
// open the same bytes.
//
//   node bench/jose-peer.mjs <session.json> [seconds]
//
// Prints `jose_unseal_us <µs per op>` (median of the rounds) and the spread of the rounds.

import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import { CompactEncrypt, compactDecrypt } from "jose";

const [path, seconds = "4"] = process.argv.slice(2);
if (!path) {
  console.error("usage: node bench/jose-peer.mjs <session.json> [seconds]");
  process.exit(2);
}
const json = readFileSync(path);
const key = webcrypto.getRandomValues(new Uint8Array(32));
const jwe = await new CompactEncrypt(json).setProtectedHeader({ alg: "dir", enc: "A256GCM" }).encrypt(key);

async function open() {
  const { plaintext } = await compactDecrypt(jwe, key);
  return JSON.parse(new TextDecoder().decode(plaintext));
}

const opened = await open();
if (JSON.stringify(opened) !== JSON.stringify(JSON.parse(json.toString("utf8")))) {
  throw new Error("the JWE did not round-trip");
}

// Long enough for the JIT to settle and for WebCrypto's key import cache, if any, to warm.
async function run(ms) {
  let ops = 0;
  let sink = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(ms * 1e6));
  let now = start;
  while (now < end) {
    for (let i = 0; i < 100; i++) {
      sink += (await open()).created & 1;
    }
    ops += 100;
    now = process.hrtime.bigint();
  }
  return { us: Number(now - start) / 1e3 / ops, ops, sink };
}

await run(1500);
const rounds = [];
const total = Number(seconds) * 1000;
for (let r = 0; r < 10; r++) {
  rounds.push((await run(total / 10)).us);
}
rounds.sort((a, b) => a - b);
const median = (rounds[4] + rounds[5]) / 2;
console.log(`jwe_bytes ${jwe.length}`);
console.log(`jose_unseal_us ${median.toFixed(2)}`);
console.log(`jose_unseal_spread_us ${rounds[0].toFixed(2)}..${rounds[9].toFixed(2)}`);
