#!/usr/bin/env bash
# The JS client's unit tests, then the browser tests (tests/browser/, node's test runner driving
# Debian's Chromium through playwright-core) against the real stack on loopback: the test
# OpenID provider (tests/harness/idp.mjs, 10 s JWT access tokens for the demo API), the demo API
# (tests/harness/demo-api.mjs), and the Worker under `wrangler dev` twice: at the origin root and
# with BFF_BASE_PATH=/app; beside them a DPoP stack (RFC 9449): a second provider that requires
# DPoP nonces, a demo API with --dpop-nonce trusting it, and a Worker with BFF_DPOP=required
# (tests/browser/dpop.test.mjs). Installs what it needs (chromium via apt when /usr/bin/chromium is
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
# Fourteen free loopback ports: provider (proxy, provider, control), API, two Workers, two
# inspectors; for DPoP the same once more with one Worker.
read -r IDP IDP_PROVIDER IDP_CONTROL API APP SUB INSPECT1 INSPECT2 \
    DPOP_IDP DPOP_IDP_PROVIDER DPOP_IDP_CONTROL DPOP_API DPOP_APP INSPECT3 < <(free_ports 14)
ISSUER="http://127.0.0.1:$IDP"
API_URL="http://127.0.0.1:$API/"
APP_URL="http://127.0.0.1:$APP"
SUB_URL="http://127.0.0.1:$SUB"
DPOP_ISSUER="http://127.0.0.1:$DPOP_IDP"
DPOP_API_URL="http://127.0.0.1:$DPOP_API/"
DPOP_APP_URL="http://127.0.0.1:$DPOP_APP"
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
# A nonce-requiring provider, so that the JS client's use_dpop_nonce retry is exercised on every
# token request it makes there, and an API that requires its own nonces.
cat >"$logs/idp-dpop.json" <<JSON
{"port": $DPOP_IDP, "provider_port": $DPOP_IDP_PROVIDER, "control_port": $DPOP_IDP_CONTROL,
 "access_token_ttl": 30, "dpop_nonce": true,
 "resources": {"$DPOP_API_URL": {"scope": "api:read", "audience": "$DPOP_API_URL", "jwt": true}},
 "clients": [{"client_id": "bff", "client_secret": "bff-secret",
   "redirect_uris": ["$DPOP_APP_URL/bff/callback"], "post_logout_redirect_uris": ["$DPOP_APP_URL/"]}]}
JSON
start_provider idp-dpop
dpop_idp_pid=${pids[-1]}
API=$DPOP_API ISSUER=$DPOP_ISSUER start_api_as api-dpop "$DPOP_APP_URL" --dpop-nonce
dpop_api_pid=${pids[-1]}

# Both Workers serve one build, made here.
build_worker ../../functions/worker/build/index.js
rm -rf "$logs"/state-*
start_worker "$APP" "$INSPECT1" "$APP_URL" worker-root.log
start_worker "$SUB" "$INSPECT2" "$SUB_URL" worker-app.log --var BFF_BASE_PATH:/app
ISSUER=$DPOP_ISSUER API_URL=$DPOP_API_URL start_worker "$DPOP_APP" "$INSPECT3" "$DPOP_APP_URL" worker-dpop.log \
    --var BFF_DPOP:required
dpop_worker_pid=${pids[-1]}
wait_for "$APP_URL/.well-known/bff-configuration" "${pids[2]}" "the Worker" 120
wait_for "$SUB_URL/app/.well-known/bff-configuration" "${pids[3]}" "the Worker under /app" 120
wait_for "$DPOP_APP_URL/.well-known/bff-configuration" "$dpop_worker_pid" "the DPoP Worker" 120
wait_for "http://127.0.0.1:$IDP_CONTROL/health" "${pids[0]}" "the provider" 30
wait_for "${API_URL}__stats" "${pids[1]}" "the demo API" 30
wait_for "http://127.0.0.1:$DPOP_IDP_CONTROL/health" "$dpop_idp_pid" "the DPoP provider" 30
wait_for "${DPOP_API_URL}__stats" "$dpop_api_pid" "the DPoP demo API" 30

say "browser tests"
# In the background, in its own process group, so that Ctrl-C or a TERM stops it at once. Files by
# name: `node --test <directory>` searches the directory on Node 20 only.
BROWSER_TEST_APP=$APP_URL BROWSER_TEST_SUB=$SUB_URL BROWSER_TEST_API=$API_URL \
    BROWSER_TEST_ISSUER=$ISSUER BROWSER_TEST_IDP_CONTROL="http://127.0.0.1:$IDP_CONTROL" \
    BROWSER_TEST_DPOP_APP=$DPOP_APP_URL BROWSER_TEST_DPOP_API=$DPOP_API_URL \
    BROWSER_TEST_DPOP_ISSUER=$DPOP_ISSUER BROWSER_TEST_DPOP_IDP_CONTROL="http://127.0.0.1:$DPOP_IDP_CONTROL" \
    BROWSER_TEST_SCREENSHOT=target/demo-logged-in.png \
    setsid node --test --test-concurrency=1 "$@" tests/browser/*.test.mjs </dev/null &
pids+=($!)
wait "${pids[-1]}"
say "done"
