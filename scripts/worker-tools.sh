#!/bin/sh
# Locates (installing once if missing) the pinned tools that build functions/worker, then
# optionally builds it. Reaches no host but the crates and npm registries: worker-build would
# otherwise download wasm-bindgen and wasm-opt from GitHub, so both are handed to it via
# WASM_BINDGEN_BIN / WASM_OPT_BIN.
#
#   scripts/worker-tools.sh          install/check the tools, print the env to use them
#   scripts/worker-tools.sh build    ... then `worker-build --release` in functions/worker
#                                    (wrangler.toml's [build] command runs this)
#
# Cargo-installed tools are cached per version under $WORKER_TOOLS_DIR
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/tmi-bff-tools), outside the repository, so different
# checkouts and lockfile versions never overwrite each other. wasm-opt comes from npm binaryen
# (package.json pins it; run `npm ci` first).
set -eu

ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
WORKER_BUILD_VERSION=0.8.7   # must share major.minor with the `worker` crate (it checks)
WASM_OPT_VERSION=132         # what worker-build 0.8.7 expects; npm binaryen 132.0.0
TOOLS_DIR=${WORKER_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tmi-bff-tools}

say() { printf 'worker-tools: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The wasm-bindgen CLI must equal the wasm-bindgen crate version in Cargo.lock exactly.
lock_version() {
    awk -v want="$1" '
        $1 == "name" && $3 == "\"" want "\"" { found = 1; next }
        found && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
        /^\[\[package\]\]/ { found = 0 }
    ' "$ROOT/Cargo.lock"
}

# has_version BIN VERSION: BIN exists and `BIN --version` mentions VERSION as a whole word.
has_version() {
    [ -x "$1" ] && "$1" --version 2>/dev/null | grep -Eq "(^|[^0-9.])$2([^0-9.]|\$)"
}

# ensure CRATE VERSION BIN: prints the path of BIN from CRATE@VERSION, installing it if needed.
ensure() {
    crate=$1 version=$2 bin=$3
    dir="$TOOLS_DIR/$crate-$version"
    if ! has_version "$dir/bin/$bin" "$version"; then
        say "installing $crate $version into $dir (one-off, a few minutes)"
        # No --locked: wasm-bindgen-cli's lockfile pins a crate the index no longer has.
        cargo install --quiet --root "$dir" "$crate" --version "=$version" >&2
        has_version "$dir/bin/$bin" "$version" || die "$dir/bin/$bin --version is not $version"
    fi
    printf '%s\n' "$dir/bin/$bin"
}

BINDGEN_VERSION=$(lock_version wasm-bindgen)
[ -n "$BINDGEN_VERSION" ] || die "no wasm-bindgen in $ROOT/Cargo.lock (run cargo generate-lockfile)"

WORKER_BUILD=$(ensure worker-build "$WORKER_BUILD_VERSION" worker-build)
WASM_BINDGEN_BIN=$(ensure wasm-bindgen-cli "$BINDGEN_VERSION" wasm-bindgen)
WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
has_version "$WASM_OPT_BIN" "$WASM_OPT_VERSION" ||
    die "$WASM_OPT_BIN is not version $WASM_OPT_VERSION: run \`npm ci\` in $ROOT"
ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"   # wrangler's own; saves a download
export WASM_BINDGEN_BIN WASM_OPT_BIN
[ -x "$ESBUILD_BIN" ] && export ESBUILD_BIN

# A digest of everything the wasm is built from. `wrangler dev` runs the build at every start and
# again on a spurious watch event (wrangler 4.86); wasm-bindgen + wasm-opt alone take ~20 s, so an
# unchanged input set skips the build. WORKER_BUILD_FORCE=1 rebuilds anyway.
inputs_digest() {
    cd "$ROOT"
    {
        find Cargo.toml Cargo.lock functions/worker/Cargo.toml functions/worker/src \
            shared/bff-core/Cargo.toml shared/bff-core/src -type f | LC_ALL=C sort | xargs cksum
        cksum scripts/worker-tools.sh
        rustc -V
        printf '%s|%s|%s|%s|%s\n' "${RUSTFLAGS:-}" "${CARGO_TARGET_DIR:-}" "$WASM_BINDGEN_BIN" \
            "${WORKER_OPT_LEVEL:-}" "${WORKER_WASM_OPT_FLAGS:-}"
    } | cksum
}

case "${1:-}" in
    build)
        out="$ROOT/functions/worker/build"
        digest=$(inputs_digest)
        if [ -z "${WORKER_BUILD_FORCE:-}" ] && [ -f "$out/index.js" ] && [ -f "$out/index_bg.wasm" ] &&
            [ "$(cat "$out/.inputs" 2>/dev/null)" = "$digest" ]; then
            say "inputs unchanged since the last build, keeping $out"
            exit 0
        fi
        # The Worker is judged by its size (the bundle is loaded on every cold start and counted
        # against the plan's limit); the workspace's release profile is for speed (the Lambda).
        (cd "$ROOT/functions/worker" &&
            CARGO_PROFILE_RELEASE_OPT_LEVEL=${WORKER_OPT_LEVEL:-z} CARGO_PROFILE_RELEASE_STRIP=debuginfo \
                "$WORKER_BUILD" --release)
        # Function names (~250 KB raw, 70 KB gzip) and the producers section are not needed to
        # run; the target_features section stays (wasm-bindgen and workerd read it).
        "$WASM_OPT_BIN" "$out/index_bg.wasm" --strip-debug --strip-producers ${WORKER_WASM_OPT_FLAGS:-} \
            -o "$out/index_bg.wasm"
        printf '%s\n' "$digest" >"$out/.inputs"
        ;;
    '')
        printf 'export WASM_BINDGEN_BIN=%s WASM_OPT_BIN=%s\n' "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN"
        printf '%s --release   # in functions/worker\n' "$WORKER_BUILD"
        ;;
    *) die "usage: $0 [build]" ;;
esac
