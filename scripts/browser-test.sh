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
. scripts/lib/stack.sh
started=$(date +%s)
say() { echo "== browser tests: $* ($(( $(date +%s) - started )) s)"; }

say "setup"
install_tools

say "JS client: build and unit tests"
node sdk/build.mjs
out=$(node --test sdk/test/*.test.mjs 2>&1) || { echo "$out"; exit 1; }
echo "$out" | tail -n 8

logs=target/browser
verbose=${BROWSER_TEST_VERBOSE:-}
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs"/*.png
# Eight free loopback ports: provider (proxy, provider, control), API, two Workers, two inspectors.
read -r IDP IDP_PROVIDER IDP_CONTROL API APP SUB INSPECT1 INSPECT2 < <(free_ports 8)
ISSUER="http://127.0.0.1:$IDP"
API_URL="http://127.0.0.1:$API/"
APP_URL="http://127.0.0.1:$APP"
SUB_URL="http://127.0.0.1:$SUB"
stack_traps

say "provider, demo API, Worker (/ and /app)"
cat >"$logs/idp.json" <<JSON
{"port": $IDP, "provider_port": $IDP_PROVIDER, "control_port": $IDP_CONTROL, "access_token_ttl": 10,
 "resources": {"$API_URL": {"scope": "api:read", "audience": "$API_URL", "jwt": true}},
 "clients": [{"client_id": "bff", "client_secret": "bff-secret",
   "redirect_uris": ["$APP_URL/bff/callback", "$SUB_URL/app/bff/callback"],
   "post_logout_redirect_uris": ["$APP_URL/", "$SUB_URL/app/"]}]}
JSON
start_provider
start_api "$APP_URL" "$SUB_URL"

# Both Workers serve one build, made here.
build_worker ../../functions/worker/build/index.js
rm -rf "$logs"/state-*
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
