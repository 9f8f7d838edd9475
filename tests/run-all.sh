#!/usr/bin/env bash
# Runs every test slipway has, from a clean clone, with nothing but the machine's toolchains
# (Rust, Node). Idempotent: tools it needs are installed into ignored folders.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the binaries the end-to-end tests drive"
cargo build --workspace --bins --locked

step "Rust tests (unit, store, interpreter, step handlers, end to end through the slipway binary)"
cargo test --workspace --locked --no-fail-fast

step "edge router tests under Node ($(node --version))"
node --test tests/edge/
