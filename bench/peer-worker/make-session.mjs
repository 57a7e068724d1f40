#!/usr/bin/env node
// Gives the comparison Worker the very session the project's Worker holds, so both answer from
// the same content: opens the backend's session cookie with the key the benchmark gave it (the
// envelope of shared/bff-core/src/seal.rs: `v1.<kid>.<base64url(nonce ‖ AES-256-GCM(expiry ‖
// JSON) ‖ tag)>`, associated data `v1|<cookie name>`), and seals the same JSON bytes as a
// `dir`/`A256GCM` JWE under the peer's key.
//
//   node bench/peer-worker/make-session.mjs --cookie FILE --bff-keys k1:<b64url> --peer-key <b64url> --out FILE
//
// Writes the peer's `Cookie` value to --out and prints one JSON line describing both sessions.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { CompactEncrypt } from 'jose';

const { values } = parseArgs({
  options: {
    cookie: { type: 'string' },
    'bff-keys': { type: 'string' },
    'peer-key': { type: 'string' },
    out: { type: 'string' },
  },
});
const NAME = '__Host-bff-session';
const CHUNK = 3800;

const header = fs.readFileSync(values.cookie, 'utf8').trim().split('\n')[0];
const pairs = header.split(';').map((p) => p.trim()).filter(Boolean).map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]);
const mine = new Map(pairs.filter(([n]) => n === NAME || n.startsWith(`${NAME}.`)));
const sealed = mine.has(NAME) ? mine.get(NAME) : [...Array(mine.size).keys()].map((i) => mine.get(`${NAME}.${i}`)).join('');

const [version, kid, body] = sealed.split('.');
const keys = new Map(values['bff-keys'].split(',').map((k) => [k.slice(0, k.indexOf(':')), Buffer.from(k.slice(k.indexOf(':') + 1), 'base64url')]));
if (version !== 'v1' || !keys.has(kid)) throw new Error(`unexpected session envelope ${version}.${kid}`);
const raw = Buffer.from(body, 'base64url');
const decipher = crypto.createDecipheriv('aes-256-gcm', keys.get(kid), raw.subarray(0, 12));
decipher.setAAD(Buffer.from(`v1|${NAME}`));
decipher.setAuthTag(raw.subarray(raw.length - 16));
const plain = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
const json = plain.subarray(8);
const session = JSON.parse(json.toString('utf8'));

const peerKey = Buffer.from(values['peer-key'], 'base64url');
if (peerKey.length !== 32) throw new Error('--peer-key must be 32 bytes');
const jwe = await new CompactEncrypt(json).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(peerKey);
// Split as the backend splits, so a large session is as many cookies for both.
const peerCookie = jwe.length <= CHUNK
  ? `${NAME}=${jwe}`
  : Array.from({ length: Math.ceil(jwe.length / CHUNK) }, (_, i) => `${NAME}.${i}=${jwe.slice(i * CHUNK, (i + 1) * CHUNK)}`).join('; ');
fs.writeFileSync(values.out, `${peerCookie}\n`);

const jwtParts = (t) => (typeof t === 'string' && t.split('.').length === 3 ? 'JWT' : 'opaque');
console.log(JSON.stringify({
  session_json_bytes: json.length,
  fields: Object.keys(session),
  claims: Object.keys(session.claims ?? {}),
  id_token_chars: session.id_token?.length ?? 0,
  refresh_token_chars: session.refresh_token?.length ?? 0,
  tokens: (session.tokens ?? []).map((t) => ({ resource: t.resource ?? null, key: t.key, chars: t.token.length, kind: jwtParts(t.token), lifetime: t.expires - t.obtained })),
  bff_cookie_chars: header.length,
  peer_cookie_chars: peerCookie.length,
}));
