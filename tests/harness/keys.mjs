#!/usr/bin/env node
// Prints fresh client keys for private_key_jwt tests as JSON on stdout:
// {"rsa": {"private_jwk", "public_jwk"}, "ec": {"private_pem", "public_jwk"}}
import { generateKeyPairSync } from 'node:crypto';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const out = {
  rsa: {
    private_jwk: { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'client-rsa' },
    public_jwk: { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'client-rsa', alg: 'RS256', use: 'sig' },
  },
  ec: {
    private_pem: ec.privateKey.export({ format: 'pem', type: 'pkcs8' }),
    public_jwk: { ...ec.publicKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' },
  },
};
process.stdout.write(JSON.stringify(out));
