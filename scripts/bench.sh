#!/usr/bin/env bash
# Per-request cost of the core (shared/bff-core/benches/hot_path.rs, criterion, the release
# profile the Lambda ships) beside a Node peer doing what jose-based backends do per request
# (bench/jose-peer.mjs: compactDecrypt of a dir/A256GCM JWE of the same session JSON, then
# JSON.parse). docs/performance.md says what each figure measures and what was measured.
#
#   scripts/bench.sh [SECONDS]     measurement seconds per benchmark (default 3; about 2 minutes
#                                  in all once built)
#
# Figures are medians. On a shared or busy machine they move by tens of per cent between runs:
# compare figures taken in the same run, as the ratios here are.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-3}"
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== bff-core (criterion, release profile)"
BFF_BENCH_SESSION_JSON="$work/session.json" cargo bench -p bff-core --bench hot_path -- \
  --warm-up-time 1 --measurement-time "$seconds" 2>&1 |
  grep -Ev '^\s*$|^(Benchmarking|Warning: |Found [0-9]+ outliers|  [0-9]+ \()' | tee "$work/criterion.txt"

echo
echo "== peer: jose $(node -p 'require("./node_modules/jose/package.json").version') on Node $(node --version)"
node bench/jose-peer.mjs "$work/session.json" "$((seconds + 1))" | tee "$work/peer.txt"

# Medians from criterion's estimates, in µs.
median() {
  node -e '
    const e = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log((e.median.point_estimate / 1000).toFixed(2));
  ' "$target/criterion/$1/new/estimates.json"
}
peer="$(awk '$1 == "jose_unseal_us" { print $2 }' "$work/peer.txt")"
# The peer's fastest round: its figure swings most on a busy machine (WebCrypto's work runs on
# libuv's thread pool), so the ratio is also given against its best.
peer_best="$(awk '$1 == "jose_unseal_spread_us" { split($2, r, "[.][.]"); print r[1] }' "$work/peer.txt")"
hot="$(median hot_path_bff_token_cached)"
unseal="$(median seal_unseal_and_parse)"
ratio() { awk -v p="$1" -v o="$2" 'BEGIN { printf "%.0fx", p / o }'; }

echo
echo "== summary (µs per operation: criterion medians; the peer's median round and its fastest of 10)"
row() { printf '%-40s %8s %10s %7s %10s %7s\n' "$@"; }
row "benchmark" "ours" "peer" "ratio" "peer best" "ratio"
row "bff-token, cached token (whole request)" "$hot" "$peer" "$(ratio "$peer" "$hot")" \
  "$peer_best" "$(ratio "$peer_best" "$hot")"
row "unseal + JSON parse of the session" "$unseal" "$peer" "$(ratio "$peer" "$unseal")" \
  "$peer_best" "$(ratio "$peer_best" "$unseal")"
for bench in seal_unseal seal_seal cookies_parse_session id_token_es256 id_token_rs256; do
  row "$bench" "$(median "$bench")"
done
awk -v h="$hot" -v p="$peer" 'BEGIN {
  printf "targets: hot path <= 6 us: %s; >= 25x the peer (median): %s\n",
    (h <= 6 ? "met" : "NOT met"), (p / h >= 25 ? "met" : "NOT met")
}'
