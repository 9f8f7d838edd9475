#!/usr/bin/env bash
# Fuzzes the control-plane API of a real `slipway dev` against infra/api/openapi.yaml with
# schemathesis: positive and negative requests to every operation, and each answer checked for
# a server error, its status, its content type and its body against the document.
#
# Builds nothing: it runs the debug `slipway` that `cargo build --bins` made, and the `st` that
# tests/tools/install.sh put in .tools/venv. The server gets a fresh state directory, loopback
# ports and a random bearer token, and is stopped on any exit.
#
# Not fuzzed (both are covered by tests/tests/openapi.rs instead):
#   POST /webhooks/github   GitHub signs each delivery with an HMAC of its exact body, which
#                           generated bodies cannot carry: every request would stop at 401.
#   PUT /uploads/...zip     slipway dev's stand-in for a presigned S3 PUT: it only accepts the
#                           URL createDeployment hands out, for a zip body.
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 200 per operation), SCHEMATHESIS_SEED
# (default fixed, so CI is reproducible; set another to explore).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

slipway="${CARGO_TARGET_DIR:-$root/target}/debug/slipway"
st="$root/.tools/venv/bin/st"
document="$root/infra/api/openapi.yaml"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
checks+=,negative_data_rejection,unsupported_method,allow_header_conformance,ignored_auth
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-200}"
seed="${SCHEMATHESIS_SEED:-20260101}"

validator="$root/.tools/venv/bin/openapi-spec-validator"
for tool in "$slipway" "$st" "$validator"; do
    if [[ ! -x "$tool" ]]; then
        echo "$tool is missing: run cargo build --bins and tests/tools/install.sh first" >&2
        exit 1
    fi
done

"$validator" "$document"

work="$(mktemp -d)"
server=
stop() {
    if [[ -n "$server" ]] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

token="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
RUST_LOG="${SLIPWAY_TEST_LOG:-error}" "$slipway" dev --json \
    --state-dir "$work/state" --api-addr 127.0.0.1:0 --edge-addr 127.0.0.1:0 \
    --token "$token" >"$work/dev.out" 2>"$work/dev.err" &
server=$!

# Its first line on stdout says where it listens, once both listeners are up.
for _ in $(seq 100); do
    [[ -s "$work/dev.out" ]] && break
    if ! kill -0 "$server" 2>/dev/null; then
        echo "slipway dev exited before it was ready:" >&2
        cat "$work/dev.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ ! -s "$work/dev.out" ]]; then
    echo "slipway dev printed nothing within 10 s:" >&2
    cat "$work/dev.err" >&2
    exit 1
fi
api_url="$(head -n1 "$work/dev.out" | "$root/.tools/venv/bin/python" -c \
    'import json, sys; print(json.load(sys.stdin)["api_url"])')"
echo "slipway dev at $api_url; st run with --checks $checks --max-examples $max_examples --seed $seed"

# From the scratch directory, so schemathesis reads no stray config and leaves nothing behind.
status=0
(cd "$work" && timeout 300 "$st" run "$document" \
    --url "$api_url" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --exclude-operation-id githubWebhook \
    --exclude-operation-id uploadSource \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --request-timeout 10 \
    --generation-database none \
    --generation-with-security-parameters false \
    --no-color) || status=$?

if ((status != 0)); then
    if ((status == 124)); then
        echo "schemathesis did not finish within 300 s" >&2
    fi
    echo "--- slipway dev's log" >&2
    tail -n 50 "$work/dev.err" >&2
fi
exit "$status"
