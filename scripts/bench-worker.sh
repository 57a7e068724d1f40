#!/usr/bin/env bash
# Throughput of the Worker's hot path against a JS Worker doing the same job with `jose`
# (bench/peer-worker), both under `wrangler dev` on loopback: GET /.well-known/bff-token answered
# from a cached, fresh access token in a valid session cookie.
#
#   scripts/bench-worker.sh
#
# One user signs in through the Worker and the test provider (scripts/load/login.mjs; access
# tokens live 3600 s, so nothing is refreshed during the run: the provider's counts are checked
# at the end). The peer gets the very session the Worker sealed: bench/peer-worker/make-session.mjs
# opens the Worker's cookie with the key this script gave it and seals the same JSON as a
# `dir`/`A256GCM` JWE, so both parse the same bytes and hand out the same token.
#
# Targets, each measured with wrk (1 thread, CONNECTIONS connections, BENCH_SECONDS per round,
# the same request headers and one session cookie), in rounds that alternate between them:
#   ours         the Worker as scripts/load.sh runs it (its settings, BFF_KV bound: in cookie mode
#                a bound store means every request also reads the session's revocation entries)
#   peer         bench/peer-worker
#   ours-nokv    the Worker from a copy of the config without the [[kv_namespaces]] binding
#   constant     (CONTROLS=1) the peer's /.well-known/bff-constant: a fixed answer, no session
#                work: what a JS Worker costs under `wrangler dev` at all
#   static       (CONTROLS=1, ASSETS=1) GET /demo.css from the assets, which never reaches a
#                Worker: what `wrangler dev` itself costs
# It prints every round and the medians: req/s, p50 and p99 latency, and the CPU time the
# target's `wrangler dev` (node and workerd) spent per request, which other jobs on the machine
# disturb far less than req/s. The table also goes to target/bench-worker/report.md. It fails on
# any non-2xx answer or socket error, when the Workers' answers differ (token, members, security
# headers), or when the provider saw a refresh.
#
# Settings (environment):
#   ROUNDS (3), BENCH_SECONDS (10), CONNECTIONS (16), CONTROLS (1)
#   RESOURCE  1: the demo's default resource (scripts/demo.sh), so the cached token is the
#             provider's JWT access token for an API, as an app calling one holds; 0: exactly
#             scripts/load.sh's settings (an opaque token, no resource)
#   ASSETS    1: both Workers behind the project's [assets] (public/), as it is deployed; 0:
#             neither (the project's config without [assets]), and no static target
#   PROFILE   1: afterwards, V8's profiler inside the isolates of ours, ours-nokv, peer and
#             constant for PROFILE_SECONDS (5) of the same load each (bench/peer-worker/profile.mjs)
#   BENCH_VERBOSE=1 prints the servers' logs at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
say() { echo "== bench-worker: $* ($(( $(date +%s) - started )) s)"; }

ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${BENCH_SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-16}
CONTROLS=${CONTROLS:-1}
ASSETS=${ASSETS:-1}
PROFILE=${PROFILE:-1}
PROFILE_SECONDS=${PROFILE_SECONDS:-5}
RESOURCE=${RESOURCE:-1}
for n in "$ROUNDS" "$SECONDS_PER_ROUND" "$CONNECTIONS"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS, BENCH_SECONDS and CONNECTIONS are whole numbers" >&2; exit 2; }
done
AT_TTL=3600

say "setup"
. scripts/lib/stack.sh
install_tools_with wrk

out=target/bench-worker
logs=$out
verbose=${BENCH_VERBOSE:-}
rm -rf "$out"
mkdir -p "$out"

read -r IDP IDP_PROVIDER IDP_CONTROL OURS OURS_INSPECT NOKV NOKV_INSPECT PEER PEER_INSPECT API < <(free_ports 10)
ISSUER="http://127.0.0.1:$IDP"
CONTROL="http://127.0.0.1:$IDP_CONTROL"
# Never listened on: the hot path never calls the API, the provider only names it as audience.
API_URL="http://127.0.0.1:$API/"
stack_traps

b64key() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }
BFF_KEYS="k1:$(b64key)"
PEER_KEY=$(b64key)

say "building the Worker (seconds when nothing changed)"
sh scripts/worker-tools.sh build >"$out/worker-build.log" 2>&1 || { cat "$out/worker-build.log"; exit 1; }
# Copies of the build and of public/, as scripts/load.sh runs them: wrangler reloads a Worker
# when a file it watches changes, and a build in this checkout would restart it mid-round.
cp -R functions/worker/build "$out/worker"
cp -R public "$out/public"
awk '/^\[build\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' wrangler.toml |
    sed -e 's#^main = ".*"#main = "worker/index.js"#' -e 's#^directory = ".*"#directory = "public"#' >"$out/wrangler.toml"
# The same Worker without its store: the one way to unbind BFF_KV is a config without it. A
# directory of its own keeps the two wrangler's scratch files apart.
mkdir -p "$out/nokv"
awk '/^\[\[kv_namespaces\]\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$out/wrangler.toml" |
    sed -e 's#^main = ".*"#main = "../worker/index.js"#' -e 's#^directory = ".*"#directory = "../public"#' >"$out/nokv/wrangler.toml"
! grep -Eq '^(\[\[kv_namespaces\]\]|binding *=)' "$out/nokv/wrangler.toml" || { echo "the no-store config still binds BFF_KV" >&2; exit 1; }
mkdir -p "$out/peer"
sed -e "s#^main = \".*\"#main = \"$PWD/bench/peer-worker/index.mjs\"#" bench/peer-worker/wrangler.toml >"$out/peer/wrangler.toml"
# With [assets], wrangler dev puts its asset router in front of the Worker on every request (it
# first looks for a file): the same pipeline for both, or neither has it.
if [ "$ASSETS" = 1 ]; then
    { echo; awk '/^\[assets\]/ { on = 1 } /^\[/ && !/^\[assets\]/ { on = 0 } on && !/^#/' "$out/wrangler.toml" |
        sed -e 's#^directory = ".*"#directory = "../public"#'; } >>"$out/peer/wrangler.toml"
    grep -q '^\[assets\]' "$out/peer/wrangler.toml" || { echo "no [assets] for the peer" >&2; exit 1; }
else
    for config in "$out/wrangler.toml" "$out/nokv/wrangler.toml"; do
        awk '/^\[assets\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$config" >"$config.new"
        mv "$config.new" "$config"
    done
fi

say "provider (access tokens live $AT_TTL s)"
resources=""
[ "$RESOURCE" = 1 ] && resources="\"resources\": {\"$API_URL\": {\"scope\": \"api:read\", \"audience\": \"$API_URL\", \"jwt\": true}},"
cat >"$out/idp.json" <<JSON
{"port": $IDP, "provider_port": $IDP_PROVIDER, "control_port": $IDP_CONTROL, "access_token_ttl": $AT_TTL, $resources
 "clients": [{"client_id": "bff", "client_secret": "bff-secret",
   "redirect_uris": ["http://127.0.0.1:$OURS/bff/callback"], "post_logout_redirect_uris": ["http://127.0.0.1:$OURS/"]}]}
JSON
start_provider idp
idp_pid=${pids[-1]}

# scripts/load.sh's settings (tests/src/target.rs), with this run's key, plus the demo's default
# resource when RESOURCE=1.
settings() {
    printf '%s\n' "BFF_ISSUER=$ISSUER" BFF_CLIENT_ID=bff BFF_CLIENT_SECRET=bff-secret \
        "BFF_PUBLIC_ORIGIN=$1" BFF_BASE_PATH= "BFF_COOKIE_KEYS=$BFF_KEYS" \
        BFF_AUTHORIZATION_PARAMS=prompt=consent BFF_ALLOW_INSECURE_ISSUER=true BFF_HTTP_TIMEOUT=2
    if [ "$RESOURCE" = 1 ]; then
        printf '%s\n' "BFF_SCOPES=openid profile email offline_access api:read" "BFF_DEFAULT_RESOURCE=$API_URL"
    fi
}

# dev CONFIG PORT INSPECTOR NAME VAR=VALUE...: `wrangler dev` as scripts/load.sh runs it.
dev() {
    local config=$1 port=$2 inspector=$3 name=$4 vars=() line
    shift 4
    for line in "$@"; do vars+=(--var "${line%%=*}:${line#*=}"); done
    CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false setsid npx wrangler dev \
        --config "$config" --ip 127.0.0.1 --port "$port" --inspector-port "$inspector" \
        --persist-to "$out/state-$name" --show-interactive-dev-session=false "${vars[@]}" \
        </dev/null >"$out/$name.log" 2>&1 &
    pids+=($!)
}

say "three wrangler dev: ours on $OURS, ours without BFF_KV on $NOKV, the peer on $PEER"
mapfile -t ours_vars < <(settings "http://127.0.0.1:$OURS")
mapfile -t nokv_vars < <(settings "http://127.0.0.1:$NOKV")
dev "$out/wrangler.toml" "$OURS" "$OURS_INSPECT" ours "${ours_vars[@]}"
ours_pid=${pids[-1]}
dev "$out/nokv/wrangler.toml" "$NOKV" "$NOKV_INSPECT" ours-nokv "${nokv_vars[@]}"
nokv_pid=${pids[-1]}
peer_vars=("PEER_SESSION_KEY=$PEER_KEY" "PEER_ISSUER=$ISSUER" "PEER_PUBLIC_ORIGIN=http://127.0.0.1:$PEER")
[ "$RESOURCE" = 1 ] && peer_vars+=("PEER_DEFAULT_RESOURCE=$API_URL")
dev "$out/peer/wrangler.toml" "$PEER" "$PEER_INSPECT" peer "${peer_vars[@]}"
peer_pid=${pids[-1]}
wait_for "$CONTROL/health" "$idp_pid" "the provider" 30
wait_for "http://127.0.0.1:$OURS/.well-known/bff-configuration" "$ours_pid" "the Worker" 300
wait_for "http://127.0.0.1:$NOKV/.well-known/bff-configuration" "$nokv_pid" "the Worker without BFF_KV" 300
wait_for "http://127.0.0.1:$PEER/.well-known/bff-constant" "$peer_pid" "the peer Worker" 300

say "signing in one user"
node scripts/load/login.mjs --origin "http://127.0.0.1:$OURS" --count 1 --prefix bench >"$out/cookie-ours.txt"

# probe URL COOKIE_FILE NAME: one request as wrk sends it; its status, headers and body in $out.
probe() {
    curl -s -D "$out/$3.headers" -o "$out/$3.body" -w '%{http_code}' \
        -H 'X-CSRF: 1' -H 'Sec-Fetch-Site: same-origin' -H "Cookie: $(head -n 1 "$2")" "$1"
}
status=$(probe "http://127.0.0.1:$OURS/.well-known/bff-token" "$out/cookie-ours.txt" probe-ours)
[ "$status" = 200 ] || { echo "ours answered $status: $(cat "$out/probe-ours.body")" >&2; exit 1; }
! grep -qi '^set-cookie' "$out/probe-ours.headers" || { echo "a cached token set a cookie: the session changed" >&2; exit 1; }

say "the peer's session: the same JSON, as a dir/A256GCM JWE"
session_facts=$(node bench/peer-worker/make-session.mjs --cookie "$out/cookie-ours.txt" --bff-keys "$BFF_KEYS" \
    --peer-key "$PEER_KEY" --out "$out/cookie-peer.txt")
echo "$session_facts" | tee "$out/session.json"

status=$(probe "http://127.0.0.1:$NOKV/.well-known/bff-token" "$out/cookie-ours.txt" probe-ours-nokv)
[ "$status" = 200 ] || { echo "ours without BFF_KV answered $status: $(cat "$out/probe-ours-nokv.body")" >&2; exit 1; }
status=$(probe "http://127.0.0.1:$PEER/.well-known/bff-token" "$out/cookie-peer.txt" probe-peer)
[ "$status" = 200 ] || { echo "the peer answered $status: $(cat "$out/probe-peer.body")" >&2; exit 1; }
# The same token, the same members, the same security headers.
node -e '
    const fs = require("fs"), dir = process.argv[1];
    const read = (n) => ({
        body: JSON.parse(fs.readFileSync(`${dir}/probe-${n}.body`, "utf8")),
        headers: Object.fromEntries(fs.readFileSync(`${dir}/probe-${n}.headers`, "utf8").split(/\r?\n/).slice(1)
            .filter((l) => l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()])),
    });
    const [ours, nokv, peer] = ["ours", "ours-nokv", "peer"].map(read);
    const wanted = ["content-type", "cache-control", "pragma", "x-content-type-options", "cross-origin-resource-policy", "x-frame-options", "content-security-policy"];
    const problems = [];
    for (const [name, other] of [["ours-nokv", nokv], ["peer", peer]]) {
        if (Object.keys(other.body).join() !== Object.keys(ours.body).join()) problems.push(`${name} answers members ${Object.keys(other.body)}, ours ${Object.keys(ours.body)}`);
        for (const k of ["access_token", "token_type", "scope"]) if (other.body[k] !== ours.body[k]) problems.push(`${name}: ${k} differs`);
        if (Math.abs(other.body.expires_in - ours.body.expires_in) > 5) problems.push(`${name}: expires_in ${other.body.expires_in}, ours ${ours.body.expires_in}`);
        for (const h of wanted) if (other.headers[h] !== ours.headers[h]) problems.push(`${name}: ${h} is ${other.headers[h]}, ours ${ours.headers[h]}`);
    }
    const t = ours.body.access_token;
    console.log(`answers: members ${Object.keys(ours.body).join(", ")}; access token ${t.length} chars (${t.split(".").length === 3 ? "JWT" : "opaque"}), expires_in ${ours.body.expires_in}; the same from all three`);
    if (problems.length) { console.error(problems.join("\n")); process.exit(1); }
' "$out"

targets=(ours peer ours-nokv)
if [ "$CONTROLS" = 1 ]; then
    targets+=(constant)
    [ "$ASSETS" = 1 ] && targets+=(static)
fi
url_of() {
    case $1 in
        ours) echo "http://127.0.0.1:$OURS/.well-known/bff-token" ;;
        ours-nokv) echo "http://127.0.0.1:$NOKV/.well-known/bff-token" ;;
        peer) echo "http://127.0.0.1:$PEER/.well-known/bff-token" ;;
        constant) echo "http://127.0.0.1:$PEER/.well-known/bff-constant" ;;
        static) echo "http://127.0.0.1:$OURS/demo.css" ;;
    esac
}
cookie_of() { case $1 in peer | constant) echo "$out/cookie-peer.txt" ;; *) echo "$out/cookie-ours.txt" ;; esac; }

# CPU time (clock ticks, user + system) of PID and every process below it: the wrangler dev of a
# target with its workerd processes. On two shared cores req/s moves with whatever else runs;
# CPU per request is what each request costs the runtime, whoever else is busy.
cpu_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
        {
            rp = 0
            for (i = length($0); i > 0; i--) if (substr($0, i, 1) == ")") { rp = i; break }
            split(substr($0, rp + 2), f, " ")
            parent[$1] = f[2]; ticks[$1] = f[12] + f[13]; comm[$1] = substr($0, index($0, "(") + 1, rp - index($0, "(") - 1)
        }
        END {
            total = 0; workerd = 0
            for (p in parent) {
                q = p
                for (hops = 0; hops < 32 && q != "" && q != root && q > 1; hops++) q = parent[q]
                if (q == root) { total += ticks[p]; if (comm[p] == "workerd") workerd += ticks[p] }
            }
            print total, workerd
        }'
}
pid_of() { case $1 in ours | static) echo "$ours_pid" ;; ours-nokv) echo "$nokv_pid" ;; *) echo "$peer_pid" ;; esac; }
HZ=$(getconf CLK_TCK)

# run TARGET SECONDS FILE: one wrk run; the RESULT line goes to FILE.
run() {
    local url path
    url=$(url_of "$1")
    path="/${url#http://*/}"
    wrk -t 1 -c "$CONNECTIONS" -d "${2}s" --timeout 10s -s bench/peer-worker/bench.lua "$url" -- "$path" "$(cookie_of "$1")" >"$3" 2>&1 ||
        { cat "$3" >&2; return 1; }
    grep -q '^RESULT ' "$3" || { cat "$3" >&2; return 1; }
}

say "warming up each target (2 s)"
for t in "${targets[@]}"; do run "$t" 2 "$out/warm-$t.txt"; done

curl -sf -X POST "$CONTROL/counts/reset" >/dev/null
results=()
for round in $(seq 1 "$ROUNDS"); do
    for t in "${targets[@]}"; do
        read -r before before_workerd < <(cpu_ticks "$(pid_of "$t")")
        run "$t" "$SECONDS_PER_ROUND" "$out/round-$round-$t.txt"
        read -r after after_workerd < <(cpu_ticks "$(pid_of "$t")")
        line=$(sed -n 's/^RESULT //p' "$out/round-$round-$t.txt")
        cpu=$(awk -v t=$(( after - before )) -v hz="$HZ" 'BEGIN { print t / hz }')
        cpu_workerd=$(awk -v t=$(( after_workerd - before_workerd )) -v hz="$HZ" 'BEGIN { print t / hz }')
        results+=("{\"round\":$round,\"target\":\"$t\",\"cpu_s\":$cpu,\"workerd_s\":$cpu_workerd,\"result\":$line}")
        node -e '
            const { result: r, cpu_s, workerd_s } = JSON.parse(process.argv[1]);
            console.log(`round ${process.argv[2]} ${process.argv[3].padEnd(10)} ${(r.requests / (r.duration_us / 1e6)).toFixed(0).padStart(6)} req/s  p50 ${(r.p50_us / 1000).toFixed(2)} ms  p99 ${(r.p99_us / 1000).toFixed(2)} ms  runtime CPU ${((cpu_s * 1e6) / r.requests).toFixed(0)} us/request (workerd ${((workerd_s * 1e6) / r.requests).toFixed(0)})  non-2xx ${r.non2xx}  socket errors ${r.socket_errors}`);
        ' "${results[-1]}" "$round" "$t"
    done
done
counts=$(curl -sf "$CONTROL/counts")

# The isolates' own share (bench/peer-worker/profile.mjs), after the rounds: the profiler slows
# what it watches.
profiles=()
if [ "$PROFILE" = 1 ]; then
    say "profiling each Worker's isolate ($PROFILE_SECONDS s of the same load each)"
    for t in ours ours-nokv peer constant; do
        case $t in ours) port=$OURS_INSPECT ;; ours-nokv) port=$NOKV_INSPECT ;; *) port=$PEER_INSPECT ;; esac
        url=$(url_of "$t")
        node bench/peer-worker/profile.mjs --port "$port" -- wrk -t 1 -c "$CONNECTIONS" -d "${PROFILE_SECONDS}s" --timeout 10s \
            -s bench/peer-worker/bench.lua "$url" -- "/${url#http://*/}" "$(cookie_of "$t")" >"$out/profile-$t.txt" 2>&1 ||
            { cat "$out/profile-$t.txt" >&2; exit 1; }
        profiles+=("{\"target\":\"$t\",\"result\":$(sed -n 's/^RESULT //p' "$out/profile-$t.txt"),\"profile\":$(sed -n 's/^PROFILE //p' "$out/profile-$t.txt")}")
    done
fi

report() {
    RESULTS="$(printf '%s\n' "${results[@]}")" PROFILES="$(printf '%s\n' "${profiles[@]}")" COUNTS="$counts" SESSION="$session_facts" node -e '
        const rows = process.env.RESULTS.trim().split("\n").map((l) => JSON.parse(l));
        const counts = JSON.parse(process.env.COUNTS), session = JSON.parse(process.env.SESSION);
        const median = (l) => { const s = [...l].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
        const rps = (r) => r.requests / (r.duration_us / 1e6);
        const by = {};
        for (const { target, result, cpu_s, workerd_s } of rows) (by[target] ??= []).push({ ...result, cpu_us: (cpu_s * 1e6) / result.requests, workerd_us: (workerd_s * 1e6) / result.requests });
        const med = Object.fromEntries(Object.entries(by).map(([t, l]) => [t, { rps: median(l.map(rps)), p50: median(l.map((r) => r.p50_us)) / 1000, p99: median(l.map((r) => r.p99_us)) / 1000, cpu: median(l.map((r) => r.cpu_us)), workerd: median(l.map((r) => r.workerd_us)) }]));
        const [conns, secs] = [process.argv[1], process.argv[2]];
        console.log(`## Worker hot path: wrk 1 thread, ${conns} connections, ${secs} s per round, ${Object.values(by)[0].length} rounds per target, alternating`);
        console.log();
        const t0 = session.tokens[0] ?? {};
        console.log(`Session (the same JSON in both): ${session.session_json_bytes} bytes; ID token ${session.id_token_chars} chars, refresh token ${session.refresh_token_chars}, cached access token ${t0.chars} chars (${t0.kind}, ${t0.lifetime} s). Cookie header: ours ${session.bff_cookie_chars} chars, the peer ${session.peer_cookie_chars}.`);
        console.log();
        console.log("| target | req/s per round | median req/s | vs peer | p50 ms | p99 ms | runtime CPU us/request | of which workerd |");
        console.log("|---|---|---:|---:|---:|---:|---:|---:|");
        for (const [t, l] of Object.entries(by)) {
            const m = med[t];
            console.log(`| ${t} | ${l.map((r) => rps(r).toFixed(0)).join(", ")} | ${m.rps.toFixed(0)} | ${(m.rps / med.peer.rps).toFixed(2)}x | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${m.cpu.toFixed(0)} | ${m.workerd.toFixed(0)} |`);
        }
        console.log();
        console.log("Medians over the rounds; p50 and p99 are the medians of the wrk percentiles of the rounds. Runtime CPU: user + system time of the `wrangler dev` of the target and every process below it over the round, per request; the rest is the node process of wrangler.");
        console.log();
        console.log(`ours / peer = ${(med.ours.rps / med.peer.rps).toFixed(2)} (target 2.00); ours-nokv / peer = ${(med["ours-nokv"].rps / med.peer.rps).toFixed(2)}`);
        const profiles = process.env.PROFILES.trim() ? process.env.PROFILES.trim().split("\n").map((l) => JSON.parse(l)) : [];
        if (profiles.length) {
            console.log();
            console.log("Inside the isolate (V8 sampling profiler, after the rounds, the same load): time per request by kind, in us; busy = all but (idle).");
            console.log();
            const kinds = [...new Set(profiles.flatMap((p) => Object.keys(p.profile.ms)))].sort();
            console.log(`| target | requests | busy | ${kinds.join(" | ")} |`);
            console.log(`|---|---:|---:|${kinds.map(() => "---:").join("|")}|`);
            for (const { target, result, profile } of profiles) {
                const per = (v) => ((v * 1000) / result.requests).toFixed(0);
                const busy = Object.entries(profile.ms).filter(([k]) => k !== "(idle)").reduce((a, [, v]) => a + v, 0);
                console.log(`| ${target} | ${result.requests} | ${per(busy)} | ${kinds.map((k) => per(profile.ms[k] ?? 0)).join(" | ")} |`);
            }
        }
        const errors = [...rows, ...profiles].reduce((a, { result: r }) => a + r.non2xx + r.socket_errors, 0);
        const fails = [];
        if (errors) fails.push(`${errors} non-2xx answers or socket errors`);
        if (counts.refresh_token || counts.grant_error) fails.push(`the provider saw ${counts.refresh_token} refreshes and ${counts.grant_error} failed grants during the rounds`);
        if (fails.length) { console.log(); console.log("Failed:"); fails.forEach((f) => console.log(`- ${f}`)); process.exitCode = 1; }
    ' "$CONNECTIONS" "$SECONDS_PER_ROUND"
}
report | tee "$out/report.md"
say "done; report in $out/report.md"
