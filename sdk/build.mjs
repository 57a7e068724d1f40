// Builds the JS client: TypeScript → dist/tmi-bff.js + dist/tmi-bff.d.ts (tsc, type-checked),
// dist/tmi-bff.min.js (esbuild), prints the minified+gzipped size (budget 4096 bytes) and copies
// the module to public/sdk/tmi-bff.js, where the demo's Worker serves it as /sdk/tmi-bff.js.
// typescript and esbuild are devDependencies of the repository root (`npm ci` there first).
//
//   node sdk/build.mjs        (or `npm run build` / `npm test` in sdk/)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

import * as esbuild from 'esbuild';
import ts from 'typescript';

const BUDGET = 4096;
const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
const served = path.join(here, '..', 'public', 'sdk');

// 1. tsc with sdk/tsconfig.json: type errors fail the build.
const configPath = path.join(here, 'tsconfig.json');
const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile);
const parsed = error ? { errors: [error] } : ts.parseJsonConfigFileContent(config, ts.sys, here);
const host = {
  getCanonicalFileName: (f) => f,
  getCurrentDirectory: () => here,
  getNewLine: () => '\n',
};
if (parsed.errors.length) {
  console.error(ts.formatDiagnostics(parsed.errors, host));
  process.exit(1);
}
fs.rmSync(dist, { recursive: true, force: true });
const program = ts.createProgram(parsed.fileNames, parsed.options);
const emitted = program.emit();
const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
if (diagnostics.length) {
  console.error(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  process.exit(1);
}

// 2. The minified module (what a production page would serve) and its size.
const source = path.join(dist, 'tmi-bff.js');
await esbuild.build({
  entryPoints: [source],
  outfile: path.join(dist, 'tmi-bff.min.js'),
  format: 'esm',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const minified = fs.readFileSync(path.join(dist, 'tmi-bff.min.js'));
const gzip = zlib.gzipSync(minified, { level: 9 }).length;

// 3. The demo serves the readable module.
fs.mkdirSync(served, { recursive: true });
fs.copyFileSync(source, path.join(served, 'tmi-bff.js'));

console.log(
  `sdk: dist/tmi-bff.js ${fs.statSync(source).size} bytes, minified ${minified.length} bytes, `
  + `minified+gzip ${gzip} bytes (budget ${BUDGET}); copied to public/sdk/tmi-bff.js`,
);
if (gzip > BUDGET) {
  console.error(`sdk: over the size budget by ${gzip - BUDGET} bytes`);
  process.exit(1);
}
