#!/usr/bin/env bash
# The one-command demo: a real OpenID provider (oidc-provider, tests/harness) on loopback, the
# Worker in workerd (`wrangler dev`) serving the demo page from public/, all on 127.0.0.1.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

IDP_PORT=${IDP_PORT:-9090}
APP_PORT=${APP_PORT:-8787}
ORIGIN="http://127.0.0.1:$APP_PORT"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
fi
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
sh scripts/worker-tools.sh >/dev/null

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

config=$(mktemp)
cat >"$config" <<JSON
{"port": $IDP_PORT, "access_token_ttl": 60,
 "clients": [{"client_id": "bff", "client_secret": "bff-secret",
   "redirect_uris": ["$ORIGIN/bff/callback"], "post_logout_redirect_uris": ["$ORIGIN/"]}]}
JSON
setsid node tests/harness/idp.mjs --config "$config" >/dev/null &
pids+=($!)

# A fresh key per run: sessions of an earlier run simply read as logged out.
key="demo:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
echo "Building and starting the Worker (the first build takes a few minutes)..."
CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false setsid npx wrangler dev \
    --ip 127.0.0.1 --port "$APP_PORT" \
    --var "BFF_ISSUER:http://127.0.0.1:$IDP_PORT" --var BFF_CLIENT_ID:bff --var BFF_CLIENT_SECRET:bff-secret \
    --var "BFF_PUBLIC_ORIGIN:$ORIGIN" --var "BFF_COOKIE_KEYS:$key" \
    --var BFF_AUTHORIZATION_PARAMS:prompt=consent --var BFF_ALLOW_INSECURE_ISSUER:true \
    </dev/null >target/demo-wrangler.log 2>&1 &
pids+=($!)

for _ in $(seq 1 600); do
    curl -sf "$ORIGIN/.well-known/bff-configuration" >/dev/null 2>&1 && break
    sleep 1
done
curl -sf "$ORIGIN/.well-known/bff-configuration" >/dev/null || { echo "the Worker did not start; see target/demo-wrangler.log"; exit 1; }

cat <<TEXT

  Demo running.  Open  $ORIGIN/
  Sign in at the provider with any user name and any password (try "alice" / "secret").
  OpenID provider: http://127.0.0.1:$IDP_PORT  (access tokens live 60 s)
  Worker log: target/demo-wrangler.log     Ctrl-C stops everything.

TEXT
wait
