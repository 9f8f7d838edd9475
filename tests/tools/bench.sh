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

# s3s-fs keeps its objects on a tmpfs. On this project's machines / is ext4 without a journal,
# where creating a file soon after thousands were deleted scans every recently freed inode
# while holding the directory's lock: after each run's clean-up, uploads became 1.5 to 5 times
# slower at random (perf: recently_deleted, rwsem_spin_on_owner), whichever client sent them.
# That measured the filesystem, not the clients. Without a writable /dev/shm it stays on disk.
shm_dir=
if [[ -z "${SLIPWAY_S3S_DIR:-}" && -d /dev/shm && -w /dev/shm ]]; then
    shm_dir="$(mktemp -d /dev/shm/slipway-bench.XXXXXX)"
    export SLIPWAY_S3S_DIR="$shm_dir"
fi
started=
cleanup() {
    if [[ -n "$started" ]]; then bash tests/tools/emulators.sh stop || true; fi
    if [[ -n "$shm_dir" ]]; then rm -rf "$shm_dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
started=1
eval "$(bash tests/tools/emulators.sh start)"

"target/$SLIPWAY_BENCH_PROFILE/slipway-bench" "$@"
