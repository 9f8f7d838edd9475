#!/usr/bin/env bash
# Builds every Lambda function with `cargo lambda build --release` into
# target/lambda/{function}/bootstrap, as the stack ships them, and checks each is an executable
# for the architecture it was built for and that its zip stays within 4 MB. Run by
# tests/run-all.sh and tests/tools/bench.sh,
# after tests/tools/install.sh (cargo-lambda and zig live in .tools/venv).
#
# The stack runs the functions on arm64 (cargo-lambda.toml: `arm64 = true`). Cross-compiling
# needs the aarch64 standard library, which install.sh adds with rustup when it can. A machine
# without it (CI may be one) builds them for x86_64 instead, which still compiles and links
# every function: from a copy of cargo-lambda.toml with `x86_64 = true` in place of
# `arm64 = true` (cargo-lambda lets the config's arm64 win over a `--x86-64` flag).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Every Lambda function crate, by its binary; each builds one `bootstrap` for
# infra/template.yaml. Its package is the binary's name with a `slipway-` prefix.
lambda_functions=(source-trigger prepare publish activate prune mark-failed api github-webhook housekeeping)

lambda_target=aarch64-unknown-linux-gnu
lambda_config=cargo-lambda.toml
if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$lambda_target" ]]; then
    lambda_target=x86_64-unknown-linux-gnu
    lambda_config=.tools/cargo-lambda.x86_64.toml
    sed 's/^arm64 = true$/x86_64 = true/' cargo-lambda.toml >"$lambda_config"
    grep -qx 'x86_64 = true' "$lambda_config"
    echo "note: no aarch64 standard library here; building the Lambda functions for x86_64" >&2
fi
echo "cargo lambda build --release for $lambda_target"
packages=()
for function in "${lambda_functions[@]}"; do packages+=(--package "slipway-$function"); done
PATH="$PWD/.tools/venv/bin:$PATH" CARGO_LAMBDA_GLOBAL="$lambda_config" \
    cargo lambda build --release --locked "${packages[@]}"
case "$lambda_target" in
    aarch64-*) elf_machine="b7 00" ;;
    x86_64-*) elf_machine="3e 00" ;;
esac
for function in "${lambda_functions[@]}"; do
    bootstrap="target/lambda/$function/bootstrap"
    if [[ ! -f "$bootstrap" ]] || [[ "$(od -An -tx1 -j18 -N2 "$bootstrap" | xargs)" != "$elf_machine" ]]; then
        echo "$bootstrap is missing or not an $lambda_target executable" >&2
        exit 1
    fi
done
echo "built ${#lambda_functions[@]} functions into target/lambda/*/bootstrap"

# The design's budget: every function's zip (deflated, as cargo-lambda and SAM package it)
# stays within 4 MB, so cold starts stay short. It holds for what ships (arm64); an x86_64
# build only proves the functions compile, so its sizes are shown, not held to the budget.
# slipway-bench scenario 6 reports the figures.
python3 - "$lambda_target" "${lambda_functions[@]}" <<'PY'
import io, sys, zipfile
MAX_ZIP_BYTES = 4_000_000
target, functions = sys.argv[1], sys.argv[2:]
over = []
for function in functions:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(f"target/lambda/{function}/bootstrap", "bootstrap")
    size = buffer.getbuffer().nbytes
    print(f"  {function}: {size / 1e6:.2f} MB zipped")
    if size > MAX_ZIP_BYTES:
        over.append(function)
if over and target.startswith("aarch64-"):
    sys.exit(f"over the 4 MB Lambda zip budget: {', '.join(over)}")
if over:
    print(f"  (not held to the budget: {target} is not what ships)")
PY
