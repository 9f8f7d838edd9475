#!/usr/bin/env bash
# Installs the tools tests/run-all.sh needs into ignored folders, from the package registries:
#   .tools/venv                moto (the emulator), cfn-lint, sam, aws, cargo-lambda (+ zig),
#                              schemathesis (st, which fuzzes slipway dev against infra/api/openapi.yaml),
#                              awslambdaric (slipway dev runs Python functions under it)
#   tests/tools/node_modules   asl-validator
#   .tools/cargo/bin/s3s-fs    the S3 emulator that checks SigV4 signatures
#   rclone                     from the system's apt (Debian's package), when it is not on PATH:
#                              a baseline of the Publish benchmark (scenario 1)
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

# rclone is a system package (Debian's), installed only when no rclone is on PATH. Without it
# the benchmarks' scenario 1, which the test command runs, cannot run: so this fails, clearly.
install_rclone() {
    if command -v rclone >/dev/null; then
        say "rclone: installed ($(rclone version 2>/dev/null | head -n 1))"
        return
    fi
    local as_root=()
    if ((EUID != 0)) && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    fi
    if ! command -v apt-get >/dev/null || ((EUID != 0 && ${#as_root[@]} == 0)); then
        say "error: rclone is missing, and apt-get cannot install it here (no apt-get, or" \
            "neither root nor password-less sudo). Install rclone (Debian: apt-get install" \
            "rclone; elsewhere https://rclone.org/install/) and run again: the benchmarks use it."
        return 1
    fi
    local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq
        -o DPkg::Lock::Timeout=300)
    say "apt-get install rclone"
    # Without package lists (a fresh image) or with stale ones, the install fails: then fetch
    # them and try again.
    if ! "${apt[@]}" install -y --no-install-recommends rclone >/dev/null; then
        say "apt-get update, then install rclone again"
        "${apt[@]}" update >/dev/null
        "${apt[@]}" install -y --no-install-recommends rclone >/dev/null
    fi
    if ! command -v rclone >/dev/null; then
        say "error: apt-get installed rclone, yet there is no rclone on PATH ($PATH)"
        return 1
    fi
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
install_rclone
install_lambda_target
