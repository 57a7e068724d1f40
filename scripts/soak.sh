#!/usr/bin/env bash
# Soak with a real browser: scripts/soak.sh [MINUTES] (default 30). Chromium with 10 tabs of the
# demo page on one session, each calling the demo API every 2-5 s through the page's JS client,
# for MINUTES, against access tokens that live 20 s and refresh tokens that rotate on every use.
# Passes with no failed call, no logout, no refresh error or reused refresh token at the provider,
# and at most one refresh per access token (tests/soak/soak.mjs has the criteria and the bound).
# Starts the stack of scripts/browser-test.sh (scripts/lib/stack.sh) on free loopback ports, with
# one Worker, stops it on exit, prints a markdown summary and writes it to target/soak/report.md;
# logs stay in target/soak/. SOAK_TABS changes the number of tabs; SOAK_VERBOSE=1 prints the
# servers' logs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/stack.sh
MINUTES=${1:-30}
TTL=20
[[ "$MINUTES" =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v m="$MINUTES" 'BEGIN { exit !(m > 0) }' ||
    { echo "usage: $0 [MINUTES] (a positive number; default 30)" >&2; exit 2; }
started=$(date +%s)
say() { echo "== soak: $* ($(( $(date +%s) - started )) s)"; }

say "setup"
install_tools
node sdk/build.mjs >/dev/null

logs=target/soak
verbose=${SOAK_VERBOSE:-}
mkdir -p "$logs"
rm -rf "$logs"/*.log "$logs"/*.out "$logs"/report.md "$logs"/state-* "$logs"/worker
read -r IDP IDP_PROVIDER IDP_CONTROL API APP INSPECT < <(free_ports 6)
ISSUER="http://127.0.0.1:$IDP"
API_URL="http://127.0.0.1:$API/"
APP_URL="http://127.0.0.1:$APP"
stack_traps

say "provider (access tokens for the API: $TTL s), demo API, Worker"
# Only the API resource gets the soak's lifetime: the page asks for nothing else.
cat >"$logs/idp.json" <<JSON
{"port": $IDP, "provider_port": $IDP_PROVIDER, "control_port": $IDP_CONTROL,
 "resources": {"$API_URL": {"scope": "api:read", "audience": "$API_URL", "jwt": true, "access_token_ttl": $TTL}},
 "clients": [{"client_id": "bff", "client_secret": "bff-secret",
   "redirect_uris": ["$APP_URL/bff/callback"], "post_logout_redirect_uris": ["$APP_URL/"]}]}
JSON
start_provider
start_api "$APP_URL"

# The Worker runs from a private copy of the build: a rebuild of functions/worker/build during a
# long soak (another run, an edit) would otherwise reload it under the tabs.
build_worker worker/index.js
cp -R functions/worker/build "$logs/worker"
start_worker "$APP" "$INSPECT" "$APP_URL" worker.log
wait_for "$APP_URL/.well-known/bff-configuration" "${pids[2]}" "the Worker" 120
wait_for "http://127.0.0.1:$IDP_CONTROL/health" "${pids[0]}" "the provider" 30
wait_for "${API_URL}__stats" "${pids[1]}" "the demo API" 30

say "$MINUTES min with ${SOAK_TABS:-10} tabs"
# In its own process group, so that Ctrl-C or a TERM stops it (and its Chromium) at once.
BROWSER_TEST_APP=$APP_URL BROWSER_TEST_API=$API_URL BROWSER_TEST_ISSUER=$ISSUER \
    BROWSER_TEST_IDP_CONTROL="http://127.0.0.1:$IDP_CONTROL" \
    SOAK_MINUTES=$MINUTES SOAK_TTL=$TTL SOAK_REPORT="$logs/report.md" SOAK_WORKER_PGID="${pids[2]}" \
    setsid node tests/soak/soak.mjs </dev/null &
pids+=($!)
wait "${pids[3]}"
say "done"
