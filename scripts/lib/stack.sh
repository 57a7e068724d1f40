# Sourced by scripts/browser-test.sh, soak.sh, load.sh and bench-worker.sh: the stack they run on loopback (the test
# OpenID provider, the demo API, the Worker under `wrangler dev`) and its teardown. The caller sets
# `logs` (a directory for logs, configuration and state) and `verbose` (non-empty: print the logs
# at the end even on success), then calls stack_traps; every process started goes into `pids`.

pids=()

# free_ports N: N free loopback ports, space-separated.
free_ports() {
    node -e '
        const net = require("node:net");
        const ports = []; const servers = [];
        (async () => {
          for (let i = 0; i < Number(process.argv[1]); i++) {
            const s = net.createServer(); servers.push(s);
            await new Promise((r) => s.listen(0, "127.0.0.1", r));
            ports.push(s.address().port);
          }
          servers.forEach((s) => s.close());
          console.log(ports.join(" "));
        })();' "$1"
}

# Stops everything in `pids` (each in its own process group: setsid), TERM then KILL; on failure
# (or with `verbose`) prints the end of every log.
stack_cleanup() {
    status=$?
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ] || [ -n "${verbose:-}" ]; then
        for f in "$logs"/*.log; do [ -f "$f" ] && { echo "--- $f (last 40 lines)"; tail -n 40 "$f"; }; done
    fi
    exit "$status"
}

stack_traps() {
    trap stack_cleanup EXIT
    trap 'exit 130' INT TERM
}

# wait_for URL PID WHAT LIMIT: waits until URL answers 200 (or PID dies), at most LIMIT s.
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

# build_worker MAIN: builds the Worker (minutes on a fresh machine, seconds when nothing changed)
# and writes $logs/wrangler.toml, a copy of wrangler.toml without [build] whose entry is MAIN
# (relative to $logs): a `wrangler dev` with [build] rebuilds on every watch event, and two of them
# at once trip over worker-build's lock.
build_worker() {
    echo "building the Worker (a few minutes on a fresh machine; seconds when nothing changed)"
    sh scripts/worker-tools.sh build >"$logs/worker-build.log" 2>&1 || { cat "$logs/worker-build.log"; exit 1; }
    awk '/^\[build\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' wrangler.toml |
        sed -e "s#^main = \".*\"#main = \"$1\"#" -e 's#^directory = "#directory = "../../#' >"$logs/wrangler.toml"
}

key() { printf 'k1:%s' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; }

# start_worker PORT INSPECTOR_PORT ORIGIN LOG [--var ...]: the Worker from $logs/wrangler.toml,
# facing $ISSUER with $API_URL as its default resource; its local KV in $logs/state-PORT (two
# workerd on one SQLite file can fail to start with SQLITE_BUSY).
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

# The npm packages and the wasm target, plus the Debian packages named (installed with apt when
# their command, the same name, is missing).
install_tools_with() {
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null; then
            apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
        fi
    done
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
        npm ci --no-audit --no-fund
    fi
    rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
}

# Chromium (Debian's, via apt when /usr/bin/chromium is missing), the npm packages, the wasm target.
install_tools() {
    if [ ! -x /usr/bin/chromium ]; then
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    fi
    install_tools_with
}

# start_provider [NAME]: the test provider from $logs/NAME.json (default: idp), logging to
# $logs/NAME.log.
start_provider() {
    local name=${1:-idp}
    setsid node tests/harness/idp.mjs --config "$logs/$name.json" >"$logs/$name.out" 2>"$logs/$name.log" </dev/null &
    pids+=($!)
}

# start_api ORIGIN...: the demo API on $API, trusting $ISSUER, allowing CORS for the ORIGINs.
start_api() {
    start_api_as api "$@"
}

# start_api_as NAME ORIGIN... [--FLAG...]: the same, logging to $logs/NAME.log; the --FLAGs (e.g.
# --dpop-nonce) go to the API.
start_api_as() {
    local name=$1 args=() arg
    shift
    for arg in "$@"; do
        case $arg in
            --*) args+=("$arg") ;;
            *) args+=(--origin "$arg") ;;
        esac
    done
    setsid node tests/harness/demo-api.mjs --port "$API" --issuer "$ISSUER" "${args[@]}" \
        >"$logs/$name.out" 2>"$logs/$name.log" </dev/null &
    pids+=($!)
}
