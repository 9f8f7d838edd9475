#!/usr/bin/env bash
# Runs every test slipway has, from a clean clone, with nothing but the machine's toolchains
# (Rust, Python 3 with pip, Node). Idempotent: the tools it needs are installed from the package
# registries into ignored folders by tests/tools/install.sh (.tools/, tests/tools/node_modules);
# the emulators are started on free 127.0.0.1 ports and stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One build from scratch gains nothing from incremental data, which would double target/'s
# size on disk (tens of GB here).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export RUST_BACKTRACE=1
# sam: no telemetry, no prompts, its settings kept inside .tools.
export SAM_CLI_TELEMETRY=0
export __SAM_CLI_APP_DIR="$PWD/.tools/sam"

venv="$PWD/.tools/venv/bin"
node_bin="$PWD/tests/tools/node_modules/.bin"

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

step "Lambda functions: tests/tools/build-lambdas.sh (cargo lambda build --release)"
bash tests/tools/build-lambdas.sh

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

step "benchmarks, quick mode (small site, one run each; the full run is tests/tools/bench.sh)"
SLIPWAY_BENCH_PROFILE=debug target/debug/slipway-bench --quick --json target/bench/quick.json
