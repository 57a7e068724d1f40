#!/bin/sh
# Installs (once) the pinned tools that build and serve functions/lambda, and prints the directory
# holding them, so callers can write:
#
#   PATH=$(scripts/lambda-tools.sh):$PATH
#   cargo lambda watch --disable-cors ...      # local emulator (http-api.md: Configuration)
#   SAM_CLI_TELEMETRY=0 sam validate --lint && sam build
#
# Both tools live in ONE Python venv on purpose: cargo-lambda finds zig by running
# `python3 -m ziglang`, and `sam build` puts its own venv's python3 first on PATH, so a separate
# SAM venv ends in "Zig is not installed". Everything comes from PyPI (cargo-lambda ships as a
# prebuilt wheel; `cargo install cargo-lambda` fails on this toolchain without --locked).
#
# The venv is at ${BFF_TOOLS_DIR:-$HOME/.cache/tmi-bff}/venv, outside the repository. A second run
# with the tools already at these versions does nothing but print the path (well under a second).
# Set PYTHON to choose the interpreter (default python3, needs >= 3.9).
set -eu

CARGO_LAMBDA_VERSION=1.9.2
SAM_CLI_VERSION=1.170.0
VENV=${BFF_TOOLS_DIR:-$HOME/.cache/tmi-bff}/venv
PYTHON=${PYTHON:-python3}

say() { printf 'lambda-tools: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# installed: the venv's python runs and reports both distributions at the pinned versions.
installed() {
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/cargo-lambda" ] && [ -x "$VENV/bin/sam" ] &&
        [ "$("$VENV/bin/python" -c 'from importlib.metadata import version as v
print(v("cargo-lambda"), v("aws-sam-cli"))' 2>/dev/null)" = "$CARGO_LAMBDA_VERSION $SAM_CLI_VERSION" ]
}

if ! installed; then
    # A venv whose interpreter vanished (pyenv upgrade) cannot be repaired in place.
    if [ -d "$VENV" ] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
        say "removing broken venv $VENV"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating venv $VENV"
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" >&2 || die "$PYTHON -m venv failed"
    fi
    say "installing cargo-lambda $CARGO_LAMBDA_VERSION and aws-sam-cli $SAM_CLI_VERSION (one-off, about a minute)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" "aws-sam-cli==$SAM_CLI_VERSION" >&2 ||
        die "pip install failed"
    installed || die "$VENV does not hold cargo-lambda $CARGO_LAMBDA_VERSION and aws-sam-cli $SAM_CLI_VERSION"
fi

printf '%s\n' "$VENV/bin"
