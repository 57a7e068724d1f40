#!/usr/bin/env bash
# The JS client's unit tests, then the browser tests (tests/browser/, node's test runner driving
# Debian's Chromium through playwright-core) against the real stack on loopback: the test
# OpenID provider (tests/harness/idp.mjs, 10 s JWT access tokens for the demo API), the demo API
# (tests/harness/demo-api.mjs), and the Worker under `wrangler dev` twice: at the origin root and
# with BFF_BASE_PATH=/app. Installs what it needs (chromium via apt when /usr/bin/chromium is
# missing); stops everything it started on exit. Extra arguments go to `node --test`.
# BROWSER_TEST_VERBOSE=1 prints the servers' logs (always kept in target/browser/).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
say() { echo "== browser tests: $* ($(( $(date +%s) - started )) s)"; }

say "setup"
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
fi
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true

say "JS client: build and unit tests"
node sdk/build.mjs
out=$(node --test sdk/test/*.test.mjs 2>&1) || { echo "$out"; exit 1; }
echo "$out" | tail -n 8

logs=target/browser
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs"/*.png
# Eight free loopback ports: provider (proxy, provider, control), API, two Workers, two inspectors.
read -r IDP IDP_PROVIDER IDP_CONTROL API APP SUB INSPECT1 INSPECT2 < <(node -e '
    const net = require("node:net");
    const ports = []; const servers = [];
    (async () => {
      for (let i = 0; i < 8; i++) {
        const s = net.createServer(); servers.push(s);
        await new Promise((r) => s.listen(0, "127.0.0.1", r));
        ports.push(s.address().port);
      }
      servers.forEach((s) => s.close());
      console.log(ports.join(" "));
    })();')
ISSUER="http://127.0.0.1:$IDP"
API_URL="http://127.0.0.1:$API/"
APP_URL="http://127.0.0.1:$APP"
SUB_URL="http://127.0.0.1:$SUB"

pids=()
cleanup() {
    status=$?
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] || [ -n "${BROWSER_TEST_VERBOSE:-}" ]; then
        for f in "$logs"/*.log; do [ -f "$f" ] && { echo "--- $f (last 40 lines)"; tail -n 40 "$f"; }; done
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until URL answers 200 (or PID dies).
wait_for() {
    local url=$1 pid=$2 what=$3 limit=$4
    for _ in $(seq 1 "$limit"); do
        curl -sf -o /dev/null "$url" && return 0
        kill -0 "$pid" 2>/dev/null || { echo "$what exited; see $logs/" >&2; return 1; }
        sleep 1
    done
    echo "$what did not answer $url within $limit s; see $logs/" >&2
    return 1
}

say "provider, demo API, Worker (/ and /app)"
cat >"$logs/idp.json" <<JSON
{"port": $IDP, "provider_port": $IDP_PROVIDER, "control_port": $IDP_CONTROL, "access_token_ttl": 10,
 "resources": {"$API_URL": {"scope": "api:read", "audience": "$API_URL", "jwt": true}},
 "clients": [{"client_id": "bff", "client_secret": "bff-secret",
   "redirect_uris": ["$APP_URL/bff/callback", "$SUB_URL/app/bff/callback"],
   "post_logout_redirect_uris": ["$APP_URL/", "$SUB_URL/app/"]}]}
JSON
setsid node tests/harness/idp.mjs --config "$logs/idp.json" >"$logs/idp.out" 2>"$logs/idp.log" </dev/null &
pids+=($!)
setsid node tests/harness/demo-api.mjs --port "$API" --issuer "$ISSUER" --origin "$APP_URL" --origin "$SUB_URL" \
    >"$logs/api.out" 2>"$logs/api.log" </dev/null &
pids+=($!)

# Both Workers serve one build, made here (minutes on a fresh machine, seconds when nothing
# changed), from a copy of wrangler.toml without [build]: two `wrangler dev` would otherwise each
# rebuild on a watch event, at the same time, and trip over worker-build's lock.
echo "building the Worker (a few minutes on a fresh machine; seconds when nothing changed)"
sh scripts/worker-tools.sh build >"$logs/worker-build.log" 2>&1 || { cat "$logs/worker-build.log"; exit 1; }
awk '/^\[build\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' wrangler.toml |
    sed -e 's#^main = "#main = "../../#' -e 's#^directory = "#directory = "../../#' >"$logs/wrangler.toml"

# Each Worker keeps its local KV in its own directory: two workerd on one SQLite file can fail
# to start with SQLITE_BUSY.
rm -rf "$logs"/state-*
key() { printf 'k1:%s' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; }
# start_worker PORT INSPECTOR_PORT ORIGIN LOG [--var ...]
start_worker() {
    local port=$1 inspector=$2 origin=$3 log=$4
    shift 4
    CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false setsid npx wrangler dev \
        --config "$logs/wrangler.toml" --ip 127.0.0.1 --port "$port" --inspector-port "$inspector" \
        --persist-to "$logs/state-$port" \
        --show-interactive-dev-session=false \
        --var "BFF_ISSUER:$ISSUER" --var BFF_CLIENT_ID:bff --var BFF_CLIENT_SECRET:bff-secret \
        --var "BFF_PUBLIC_ORIGIN:$origin" --var "BFF_COOKIE_KEYS:$(key)" \
        --var BFF_AUTHORIZATION_PARAMS:prompt=consent --var BFF_ALLOW_INSECURE_ISSUER:true \
        --var "BFF_SCOPES:openid profile email offline_access api:read" \
        --var "BFF_DEFAULT_RESOURCE:$API_URL" "$@" \
        </dev/null >"$logs/$log" 2>&1 &
    pids+=($!)
}
start_worker "$APP" "$INSPECT1" "$APP_URL" worker-root.log
start_worker "$SUB" "$INSPECT2" "$SUB_URL" worker-app.log --var BFF_BASE_PATH:/app
wait_for "$APP_URL/.well-known/bff-configuration" "${pids[2]}" "the Worker" 120
wait_for "$SUB_URL/app/.well-known/bff-configuration" "${pids[3]}" "the Worker under /app" 120
wait_for "http://127.0.0.1:$IDP_CONTROL/health" "${pids[0]}" "the provider" 30
wait_for "${API_URL}__stats" "${pids[1]}" "the demo API" 30

say "browser tests"
# In the background, in its own process group, so that Ctrl-C or a TERM stops it at once. Files by
# name: `node --test <directory>` searches the directory on Node 20 only.
BROWSER_TEST_APP=$APP_URL BROWSER_TEST_SUB=$SUB_URL BROWSER_TEST_API=$API_URL \
    BROWSER_TEST_ISSUER=$ISSUER BROWSER_TEST_IDP_CONTROL="http://127.0.0.1:$IDP_CONTROL" \
    BROWSER_TEST_SCREENSHOT=target/demo-logged-in.png \
    setsid node --test --test-concurrency=1 "$@" tests/browser/*.test.mjs </dev/null &
pids+=($!)
wait "${pids[4]}"
say "done"
