#!/usr/bin/env bash
# The one-command demo, all on 127.0.0.1: a real OpenID provider (oidc-provider, tests/harness)
# issuing JWT access tokens for a small API (tests/harness/demo-api.mjs), and the Worker in
# workerd (`wrangler dev`) serving the demo page from public/ with the JS client (sdk/, built
# here and served as /sdk/tmi-bff.js). First run: minutes (npm packages, the Worker's wasm build);
# later runs: seconds. Ctrl-C stops everything.
# DEMO_DPOP=1: DPoP mode (RFC 9449, BFF_DPOP=required): every access token is bound to a key the
# page holds, and the API takes it only with a proof signed by that key.
set -euo pipefail
cd "$(dirname "$0")/.."

IDP_PORT=${IDP_PORT:-9090}   # and IDP_PORT+1 (the provider behind the proxy), IDP_PORT+2 (control)
APP_PORT=${APP_PORT:-8787}
API_PORT=${API_PORT:-8790}
ORIGIN="http://127.0.0.1:$APP_PORT"
ISSUER="http://127.0.0.1:$IDP_PORT"
API_URL="http://127.0.0.1:$API_PORT/"
DEMO_DPOP=${DEMO_DPOP:-0}
case "$DEMO_DPOP" in
    1) dpop_vars=(--var BFF_DPOP:required); dpop_note="DPoP on: tokens bound to this page's key, sent with a proof" ;;
    0) dpop_vars=(); dpop_note="DPoP off (DEMO_DPOP=1 turns it on)" ;;
    *) echo "DEMO_DPOP must be 0 or 1"; exit 2 ;;
esac

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
fi
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
sh scripts/worker-tools.sh >/dev/null
mkdir -p target
node sdk/build.mjs

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    pids=()
}
trap cleanup EXIT INT TERM

# The provider hands out JWT access tokens for the API (RFC 8707 resource = the API's URL, scope
# api:read, audience = the API), 60 s each.
config=target/demo-idp.json
cat >"$config" <<JSON
{"port": $IDP_PORT, "access_token_ttl": 60,
 "resources": {"$API_URL": {"scope": "api:read", "audience": "$API_URL", "jwt": true}},
 "clients": [{"client_id": "bff", "client_secret": "bff-secret",
   "redirect_uris": ["$ORIGIN/bff/callback"], "post_logout_redirect_uris": ["$ORIGIN/"]}]}
JSON
setsid node tests/harness/idp.mjs --config "$config" >/dev/null 2>target/demo-idp.log </dev/null &
pids+=($!)
setsid node tests/harness/demo-api.mjs --port "$API_PORT" --issuer "$ISSUER" --origin "$ORIGIN" \
    >/dev/null 2>target/demo-api.log </dev/null &
pids+=($!)

# A fresh key per run: sessions of an earlier run simply read as logged out.
key="demo:$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
echo "Building and starting the Worker (the first build takes a few minutes)..."
CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false setsid npx wrangler dev \
    --ip 127.0.0.1 --port "$APP_PORT" --show-interactive-dev-session=false \
    --var "BFF_ISSUER:$ISSUER" --var BFF_CLIENT_ID:bff --var BFF_CLIENT_SECRET:bff-secret \
    --var "BFF_PUBLIC_ORIGIN:$ORIGIN" --var "BFF_COOKIE_KEYS:$key" \
    --var BFF_AUTHORIZATION_PARAMS:prompt=consent --var BFF_ALLOW_INSECURE_ISSUER:true \
    --var "BFF_SCOPES:openid profile email offline_access api:read" --var "BFF_DEFAULT_RESOURCE:$API_URL" \
    "${dpop_vars[@]}" </dev/null >target/demo-wrangler.log 2>&1 &
pids+=($!)

for _ in $(seq 1 900); do
    curl -sf "$ORIGIN/.well-known/bff-configuration" >/dev/null 2>&1 && break
    kill -0 "${pids[2]}" 2>/dev/null || break
    sleep 1
done
curl -sf "$ORIGIN/.well-known/bff-configuration" >/dev/null || { echo "the Worker did not start; see target/demo-wrangler.log"; exit 1; }
for what in "provider:http://127.0.0.1:$((IDP_PORT + 2))/health" "API:${API_URL}__stats"; do
    for _ in $(seq 1 30); do curl -sf "${what#*:}" >/dev/null 2>&1 && break; sleep 0.5; done
    curl -sf "${what#*:}" >/dev/null || { echo "the ${what%%:*} did not start; see target/demo-*.log"; exit 1; }
done

cat <<TEXT

  Demo running.  Open  $ORIGIN/
  Sign in at the provider with any user name and any password (try "alice" / "secret").
  OpenID provider: $ISSUER  (access tokens live 60 s)    API: $API_URL
  $dpop_note
  Logs: target/demo-wrangler.log, target/demo-idp.log, target/demo-api.log     Ctrl-C stops everything.

TEXT
wait
