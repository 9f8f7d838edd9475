#!/usr/bin/env bash
# slipway's performance suite (functions/bench): every scenario against its baseline, side by
# side, on 127.0.0.1. It installs the tools (the AWS CLI is the publish baseline), builds what
# it measures, starts s3s-fs, and stops it on any exit.
#
#   bash tests/tools/bench.sh            # the full run: main site, 5 runs, release builds;
#                                        # the table on stdout, JSON in target/bench/report.json
#   bash tests/tools/bench.sh --quick    # small site, 1 run each, debug builds (the Lambda zips
#                                        # are release builds either way): the test command runs the same
# Any other arguments go to slipway-bench (`--runs N`, `--only 1,5`).
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=
for arg in "$@"; do
    [[ "$arg" == --quick ]] && quick=1
done

bash tests/tools/install.sh
if [[ -n "$quick" ]]; then
    # Debug builds: the figures mean nothing, the run proves every scenario still works.
    export SLIPWAY_BENCH_PROFILE=debug
    cargo build --locked --workspace --bins
else
    export SLIPWAY_BENCH_PROFILE=release
    cargo build --locked --release --workspace --bins
fi
# The zips scenario 6 weighs are the ones the stack ships.
bash tests/tools/build-lambdas.sh

started=
cleanup() { [[ -n "$started" ]] && bash tests/tools/emulators.sh stop || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
started=1
eval "$(bash tests/tools/emulators.sh start)"

"target/$SLIPWAY_BENCH_PROFILE/slipway-bench" "$@"
