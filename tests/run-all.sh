#!/usr/bin/env bash
# Runs every test slipway has, from a clean clone, with nothing but the machine's toolchains
# (Rust, Python 3 with pip, Node). Idempotent: the tools it needs are installed from the package
# registries into ignored folders by tests/tools/install.sh (.tools/, tests/tools/node_modules);
# the emulators are started on free 127.0.0.1 ports and stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1
# sam: no telemetry, no prompts, its settings kept inside .tools.
export SAM_CLI_TELEMETRY=0
export __SAM_CLI_APP_DIR="$PWD/.tools/sam"

venv="$PWD/.tools/venv/bin"
node_bin="$PWD/tests/tools/node_modules/.bin"
# Every Lambda function crate; each builds one `bootstrap` for infra/template.yaml.
lambda_functions=(source-trigger prepare publish activate prune mark-failed api github-webhook)

# Each step header shows the time since the start, so a slow step stands out in CI's log.
step() { printf '\n==> %s  [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

emulators_started=
cleanup() {
    if [[ -n "$emulators_started" ]]; then
        bash tests/tools/emulators.sh stop || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "install the test tools (moto, s3s-fs, cfn-lint, sam, cargo-lambda, schemathesis, asl-validator)"
bash tests/tools/install.sh

step "format"
cargo fmt --all -- --check

step "CloudFormation lint: cfn-lint infra/template.yaml"
"$venv/cfn-lint" infra/template.yaml

step "SAM validation: sam validate --lint"
"$venv/sam" validate --lint --template infra/template.yaml --region us-east-1

step "the CloudFront Function in infra/template.yaml is infra/edge/router.js, byte for byte"
bash infra/sync-router.sh --check

step "state machine definitions: asl-validator, as written and with the stack's substitutions"
shopt -s nullglob
definitions=(statemachines/*.asl.json)
shopt -u nullglob
if ((${#definitions[@]} == 0)); then
    echo "no statemachines/*.asl.json" >&2
    exit 1
fi
mkdir -p .tools/asl
for definition in "${definitions[@]}"; do
    "$node_bin/asl-validator" --json-path "$definition"
    substituted=".tools/asl/$(basename "$definition")"
    node tests/tools/asl-substitute.mjs "$definition" >"$substituted"
    "$node_bin/asl-validator" --json-path "$substituted"
done

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the binaries the end-to-end tests drive"
cargo build --workspace --bins --locked

# The stack runs the functions on arm64 (cargo-lambda.toml: `arm64 = true`). Cross-compiling
# needs the aarch64 standard library, which install.sh adds with rustup when it can. A machine
# without it (CI may be one) builds them for x86_64 instead, which still compiles and links
# every function: from a copy of cargo-lambda.toml with `x86_64 = true` in place of
# `arm64 = true` (cargo-lambda lets the config's arm64 win over a `--x86-64` flag).
lambda_target=aarch64-unknown-linux-gnu
lambda_config=cargo-lambda.toml
if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$lambda_target" ]]; then
    lambda_target=x86_64-unknown-linux-gnu
    lambda_config=.tools/cargo-lambda.x86_64.toml
    sed 's/^arm64 = true$/x86_64 = true/' cargo-lambda.toml >"$lambda_config"
    grep -qx 'x86_64 = true' "$lambda_config"
    echo "note: no aarch64 standard library here; building the Lambda functions for x86_64" >&2
fi
step "Lambda functions: cargo lambda build --release for $lambda_target"
packages=()
for function in "${lambda_functions[@]}"; do packages+=(--package "$function"); done
PATH="$venv:$PATH" CARGO_LAMBDA_GLOBAL="$lambda_config" \
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

step "start the emulators (moto, s3s-fs) on 127.0.0.1"
emulators_started=1
exports="$(bash tests/tools/emulators.sh start)"
eval "$exports"

step "Rust tests (unit, store, interpreter, step handlers, AWS adapters against the emulators, end to end)"
cargo test --workspace --locked --no-fail-fast

step "API fuzzing: schemathesis against slipway dev, checked by infra/api/openapi.yaml"
bash tests/tools/schemathesis.sh

step "edge router tests under Node ($(node --version))"
node --test tests/edge/
