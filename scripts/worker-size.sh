#!/usr/bin/env bash
# Builds the Worker bundle exactly as `wrangler deploy` would (--dry-run: nothing is uploaded)
# and prints its size; fails above the 1 MiB gzip budget (Cloudflare's free plan allows 3 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/worker-dry-run
rm -rf "$out"
CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false \
    npx wrangler deploy --dry-run --outdir "$out" </dev/null >/dev/null
raw=$(cat "$out"/* 2>/dev/null | wc -c)
gz=0
for f in "$out"/*; do
    [ -f "$f" ] || continue
    size=$(gzip -9 -c "$f" | wc -c)
    printf '  %-40s %9d bytes, %8d gzip\n' "$(basename "$f")" "$(wc -c <"$f")" "$size"
    gz=$((gz + size))
done
printf 'worker bundle: %d bytes raw, %d bytes gzip (budget 1048576)\n' "$raw" "$gz"
[ "$gz" -le 1048576 ]
