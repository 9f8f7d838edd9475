#!/usr/bin/env bash
# Installs the tools tests/run-all.sh needs into ignored folders, from the package registries:
#   .tools/venv                moto (the emulator), cfn-lint, sam, aws, cargo-lambda (+ zig),
#                              schemathesis (st, which fuzzes slipway dev against infra/api/openapi.yaml)
#   tests/tools/node_modules   asl-validator
#   .tools/cargo/bin/s3s-fs    the S3 emulator that checks SigV4 signatures
# and, when rustup can fetch it, the aarch64 standard library the Lambda functions build for.
# Idempotent: a step is skipped while its stamp (in .tools/stamps, keyed by the pinned versions)
# matches and its tool is there, so a warm run takes a second.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/tools"
tools="$root/.tools"
stamps="$tools/stamps"
venv="$tools/venv"

S3S_FS_VERSION="0.14.1"
LAMBDA_TARGET="aarch64-unknown-linux-gnu"

say() { printf '  [tools] %s\n' "$*" >&2; }

# A key for a step: a hash of whatever decides what it installs.
key_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
fresh() { [[ -f "$stamps/$1" && "$(cat "$stamps/$1")" == "$2" ]]; }
stamp() { mkdir -p "$stamps" && printf '%s' "$2" >"$stamps/$1"; }

install_python_tools() {
    local key
    key="$(key_of "$here/requirements.txt" "$here/constraints.txt" <(python3 -VV))"
    if fresh venv "$key" && "$venv/bin/python" -c '' 2>/dev/null; then
        say "python tools in .tools/venv: up to date"
        return
    fi
    # A venv whose interpreter no longer runs (Python moved or upgraded) is rebuilt; a working
    # one is upgraded in place to the pinned set.
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        say "creating .tools/venv"
        python3 -m venv --clear "$venv"
    fi
    say "installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')into .tools/venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$here/requirements.txt" -c "$here/constraints.txt"
    stamp venv "$key"
}

install_node_tools() {
    local key
    key="$(key_of "$here/package-lock.json" <(node --version))"
    if fresh npm "$key" && [[ -x "$here/node_modules/.bin/asl-validator" ]]; then
        say "node tools in tests/tools/node_modules: up to date"
        return
    fi
    say "npm ci in tests/tools (asl-validator)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    stamp npm "$key"
}

install_s3s_fs() {
    local bin="$tools/cargo/bin/s3s-fs"
    if [[ -x "$bin" && "$("$bin" --version 2>/dev/null)" == "s3s-fs $S3S_FS_VERSION" ]]; then
        say "s3s-fs $S3S_FS_VERSION in .tools/cargo: up to date"
        return
    fi
    say "cargo install s3s-fs@$S3S_FS_VERSION into .tools/cargo (about 2 minutes)"
    # Its own target dir (cargo's temporary one), never the workspace's.
    env -u CARGO_TARGET_DIR cargo install --quiet --locked "s3s-fs@$S3S_FS_VERSION" \
        --features binary --root "$tools/cargo"
}

# Best effort: without it the Lambda build falls back to x86_64 (see tests/run-all.sh).
install_lambda_target() {
    if [[ -d "$(rustc --print sysroot)/lib/rustlib/$LAMBDA_TARGET" ]]; then
        say "Rust standard library for $LAMBDA_TARGET: installed"
    elif command -v rustup >/dev/null \
        && timeout 120 rustup target add "$LAMBDA_TARGET" >&2; then
        say "Rust standard library for $LAMBDA_TARGET: added"
    else
        say "warning: could not add the $LAMBDA_TARGET standard library (rustup target add);" \
            "the Lambda functions will be built for x86_64"
    fi
}

mkdir -p "$tools"
install_python_tools
install_node_tools
install_s3s_fs
install_lambda_target
