#!/bin/sh
# Runs the cargo-fuzz targets of fuzz/ one after the other, SECONDS each:
#
#   scripts/fuzz.sh 20                  # every target, 20 s each (CI)
#   scripts/fuzz.sh 1800                # the long run
#   scripts/fuzz.sh 600 handle jwt      # only these targets
#
# Exits non-zero when any target crashed (the input is kept in fuzz/artifacts/<target>/; replay
# it with `cargo +nightly fuzz run -s none <target> <file>` in fuzz/). Prints, per target, the
# executions, executions per second and coverage (libFuzzer's cov and ft).
#
# Installs what it needs once: the nightly toolchain through rustup when it is missing, and
# cargo-fuzz at a pinned version into ${BFF_TOOLS_DIR:-$HOME/.cache/tmi-bff}/cargo-fuzz-<version>
# (outside the repository; a second run finds it). libFuzzer is C++: a C++ compiler (g++) must be
# installed.
#
# Settings: FUZZ_RUNS stops a target after that many executions if that comes first (default: no
# limit); FUZZ_RSS_MB is libFuzzer's memory limit (default 2048); FUZZ_WORK is where new inputs
# and logs go (default fuzz/target/fuzz-work). The committed seeds in fuzz/corpus/<target> are
# read, never written.
#
# The targets build without a sanitizer: the core and the targets forbid unsafe code, so what
# the fuzzer looks for is panics and failed assertions, and AddressSanitizer would halve the speed.
set -eu

CARGO_FUZZ_VERSION=0.13.2
TOOLS=${BFF_TOOLS_DIR:-$HOME/.cache/tmi-bff}/cargo-fuzz-$CARGO_FUZZ_VERSION
TARGETS="cookie_header unseal callback provider_responses jwt handle"

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -ge 1 ] || die "usage: scripts/fuzz.sh SECONDS [TARGET...]"
SECONDS_EACH=$1
shift
case $SECONDS_EACH in '' | *[!0-9]*) die "SECONDS must be a whole number, not '$SECONDS_EACH'" ;; esac
[ $# -eq 0 ] || TARGETS=$*
for target in $TARGETS; do
    case " cookie_header unseal callback provider_responses jwt handle " in
        *" $target "*) ;;
        *) die "no target '$target'" ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FUZZ_WORK:-$ROOT/fuzz/target/fuzz-work}
RSS_MB=${FUZZ_RSS_MB:-2048}
RUNS=${FUZZ_RUNS:-}

command -v rustup >/dev/null || die "rustup is needed (it installs the nightly toolchain)"
if ! cargo +nightly --version >/dev/null 2>&1; then
    say "installing the nightly toolchain (one-off)"
    rustup toolchain install nightly --profile minimal >&2 || die "rustup could not install nightly"
fi
if [ "$("$TOOLS/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS (one-off, about two minutes)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS" >&2 ||
        die "cargo install cargo-fuzz failed"
fi
PATH=$TOOLS/bin:$PATH
export PATH

cd "$ROOT/fuzz"
say "building the targets"
cargo +nightly fuzz build -s none >&2 || die "the targets did not build"
# The runs use copies, so a rebuild meanwhile (another run, an edit) does not change a long run.
HOST=$(rustc +nightly -vV | sed -n 's/^host: //p')
mkdir -p "$WORK/bin"
for target in $TARGETS; do
    cp "$ROOT/fuzz/target/$HOST/release/$target" "$WORK/bin/$target"
done
failed=""
summary=""
for target in $TARGETS; do
    mkdir -p "$WORK/corpus/$target" "$ROOT/fuzz/artifacts/$target"
    log=$WORK/$target.log
    say "$target: ${SECONDS_EACH}s${RUNS:+ or $RUNS executions} (log: $log)"
    set -- -max_total_time="$SECONDS_EACH" -rss_limit_mb="$RSS_MB" -timeout=60 -print_final_stats=1 \
        -artifact_prefix="$ROOT/fuzz/artifacts/$target/"
    [ -z "$RUNS" ] || set -- "$@" -runs="$RUNS"
    seeds=$ROOT/fuzz/corpus/$target
    [ -d "$seeds" ] || seeds=""
    start=$(date +%s)
    # New inputs go to the work corpus (first directory); the seeds are only read.
    if "$WORK/bin/$target" "$@" "$WORK/corpus/$target" $seeds >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed="$failed $target"
    fi
    wall=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \2/p' "$log" | tail -n 1)
    line=$(printf '%-20s %-6s executions %-10s exec/s %-7s cov/ft %-13s wall %ss' \
        "$target" "$status" "${execs:-?}" "${rate:-?}" "$(echo "${cov:-? ?}" | tr ' ' /)" "$wall")
    printf '%s\n' "$line"
    summary="$summary$line
"
    if [ "$status" = CRASH ]; then
        grep -E "panicked at|^SUMMARY|Test unit written to" "$log" >&2 || tail -n 30 "$log" >&2
    fi
done

printf '\n%s' "$summary"
[ -z "$failed" ] || die "crashed:$failed (inputs in fuzz/artifacts/)"
