#!/usr/bin/env bash
# Starts and stops the emulators the AWS adapter tests talk to, each on a free 127.0.0.1 port:
#   moto     S3, DynamoDB, Step Functions and the CodeBuild control plane
#   s3s-fs   S3 that checks SigV4 signatures (credentials slipwaytest / slipwaytestsecret)
#
#   bash tests/tools/emulators.sh start   # prints `export SLIPWAY_TEST_MOTO_URL=… …`; eval it
#   bash tests/tools/emulators.sh stop    # ends exactly the processes `start` recorded
#
# PIDs, URLs, logs and s3s-fs's (fresh) data directory, s3s-data/, live in .tools/run/;
# SLIPWAY_S3S_DIR puts s3s-data/ in another folder (the benchmarks use a tmpfs). Only that
# folder's s3s-data/ is ever removed. Install the emulators first with tests/tools/install.sh.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
run="$root/.tools/run"
moto_bin="$root/.tools/venv/bin/moto_server"
s3s_bin="$root/.tools/cargo/bin/s3s-fs"
s3s_data="${SLIPWAY_S3S_DIR:-$run}/s3s-data"
ready_seconds="${SLIPWAY_EMULATOR_READY_SECONDS:-20}"
names=(moto s3s)

bin_of() {
    case "$1" in
        moto) echo "$moto_bin" ;;
        s3s) echo "$s3s_bin" ;;
    esac
}

say() { printf '  [emulators] %s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True once an HTTP server answers at $1, whatever the status (s3s-fs refuses unsigned requests).
answers() {
    python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
except OSError:
    sys.exit(1)
PY
}

# The recorded PID of $1 when that process is still the emulator we started.
live_pid() {
    local pidfile="$run/$1.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    # A recycled PID belongs to some other program: its command line lacks our binary's path.
    ps -o args= -p "$pid" 2>/dev/null | grep -qF "$(bin_of "$1")" || return 1
    echo "$pid"
}

stop_one() {
    local name="$1" pid
    if pid="$(live_pid "$name")"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$run/$name.pid" "$run/$name.url"
}

stop_all() {
    local name
    for name in "${names[@]}"; do stop_one "$name"; done
}

# start_one NAME ARGS…: ARGS may contain {port}. Waits until it answers; retries on a new
# port when another process took the one picked (a race with anything binding port 0).
start_one() {
    local name="$1" bin log="$run/$1.log" attempt port pid url args arg
    bin="$(bin_of "$name")"
    shift
    if [[ ! -x "$bin" ]]; then
        say "$name: $bin is missing; run: bash tests/tools/install.sh"
        return 1
    fi
    for attempt in 1 2 3; do
        port="$(free_port)"
        url="http://127.0.0.1:$port"
        args=()
        for arg in "$@"; do args+=("${arg//\{port\}/$port}"); done
        "$bin" "${args[@]}" >"$log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$run/$name.pid"
        local deadline=$((SECONDS + ready_seconds))
        while ((SECONDS < deadline)); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if answers "$url"; then
                echo "$url" >"$run/$name.url"
                say "$name: $url (pid $pid, log .tools/run/$name.log)"
                return 0
            fi
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name did not answer at $url within ${ready_seconds}s; the end of its log:"
            tail -n 30 "$log" >&2
            stop_one "$name"
            return 1
        fi
        rm -f "$run/$name.pid"
        if grep -qiE 'address (already )?in use' "$log"; then
            say "$name: port $port was taken, trying another ($attempt/3)"
            continue
        fi
        say "$name exited before answering; the end of its log:"
        tail -n 30 "$log" >&2
        return 1
    done
    say "$name: no free port after 3 attempts"
    return 1
}

start() {
    local name pid
    mkdir -p "$run"
    for name in "${names[@]}"; do
        if pid="$(live_pid "$name")"; then
            say "$name is already running (pid $pid); run: bash tests/tools/emulators.sh stop"
            exit 1
        fi
        rm -f "$run/$name.pid" "$run/$name.url"
    done
    rm -rf "$s3s_data"
    mkdir -p "$s3s_data"
    # A failed start stops whatever did start, so it leaves nothing behind.
    start_one moto -H 127.0.0.1 -p '{port}' || { stop_all; exit 1; }
    start_one s3s --host 127.0.0.1 --port '{port}' \
        --access-key slipwaytest --secret-key slipwaytestsecret --domain localhost \
        "$s3s_data" || { stop_all; exit 1; }
    echo "export SLIPWAY_TEST_MOTO_URL=$(cat "$run/moto.url")"
    echo "export SLIPWAY_TEST_S3S_URL=$(cat "$run/s3s.url")"
}

case "${1:-}" in
    start) start ;;
    stop) stop_all ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
