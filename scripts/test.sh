#!/usr/bin/env bash
# Runs every test: the core's unit tests and the integration suite against all three targets
# (in-process core, the Lambda handler under `cargo lambda watch`, the Worker under
# `wrangler dev`), each facing a real oidc-provider on loopback; the browser tests; then short
# runs of the fuzzers, the load script and the browser soak. Installs what it needs first;
# a second run reuses the tool caches under $HOME.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setup"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
fi
PATH="$(scripts/lambda-tools.sh):$PATH"
export PATH
# Installs worker-build and wasm-bindgen-cli once (wrangler's [build] runs the same script).
sh scripts/worker-tools.sh >/dev/null

# `cargo lambda watch` compiles the handler on its first request; build it now instead.
cargo build --locked -p bff-lambda

echo "== tests"
cargo test --workspace --locked --exclude bff-tests "$@"
# The integration targets share two cores and time-based assertions: one target at a time.
cargo test --locked -p bff-tests "$@" -- --test-threads=1
scripts/browser-test.sh

# Short runs of the reliability instruments (docs/reliability.md has the long ones): every fuzz
# target 20 s, the load mixes 10 s on each runtime, a 2-minute soak of 10 browser tabs.
echo "== reliability"
scripts/fuzz.sh 20
scripts/load.sh 10
scripts/soak.sh 2
