#!/usr/bin/env bash
# Builds the Worker bundle exactly as `wrangler deploy` would (--dry-run: nothing is uploaded)
# and prints its size; fails above the gzip budget (WORKER_SIZE_BUDGET, default 400 KB: what every
# cold start loads; Cloudflare's free plan allows 3 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/worker-dry-run
rm -rf "$out"
CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false \
    npx wrangler deploy --dry-run --outdir "$out" </dev/null >/dev/null
raw=0
gz=0
# The modules the Worker runs: its JS and wasm. wrangler's README and the source map are not
# part of the script (a source map is uploaded only with upload_source_maps, and not counted).
for f in "$out"/*.js "$out"/*.wasm; do
    [ -f "$f" ] || continue
    size=$(gzip -9 -c "$f" | wc -c)
    raw=$((raw + $(wc -c <"$f")))
    printf '  %-40s %9d bytes, %8d gzip\n' "$(basename "$f")" "$(wc -c <"$f")" "$size"
    gz=$((gz + size))
done
budget=${WORKER_SIZE_BUDGET:-409600}
printf 'worker bundle: %d bytes raw, %d bytes gzip (budget %d)\n' "$raw" "$gz" "$budget"
[ "$gz" -le "$budget" ]
