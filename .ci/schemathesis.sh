#!/usr/bin/env bash
# Checks the live server against its own OpenAPI document with schemathesis (4.x): starts
# `nsw serve` on a fresh embedded database, registers an administrator and an enterprise, and
# lets schemathesis generate requests for every operation (a bounded number of examples each)
# with each token, checking that no answer is a server error and that every answer's status,
# media type and body are the ones the document declares. Then stops the server and its
# database cluster. See docs/api.md ("Checking the server against the document").
#
# Usage: .ci/schemathesis.sh [max-examples]   (default 20)
#
# Left out, and why:
# - POST /exchange/v1/messages: a partner window's signed envelope. Without exchange keys this
#   window answers 409 EXCHANGE_NOT_CONFIGURED before reading a byte, so generated bodies would
#   test nothing; with keys, its answers for a configured fault (`status` 500/503, dropped
#   connections) are server errors by design. Its refusals are covered by tests/api/exchange.
# - PUT /api/v1/admin/exchange/fault: it switches those faults on for the rest of the run.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=${1:-20}
target=${CARGO_TARGET_DIR:-target}

if ! command -v schemathesis >/dev/null 2>&1; then
    echo "schemathesis: installing it with pip" >&2
    pip install --quiet 'schemathesis>=4,<5'
fi

bin=${NSW_BIN:-$target/debug/nsw}
if [ -z "${NSW_BIN:-}" ] && [ -x "$target/release/nsw" ] && { [ ! -x "$bin" ] || [ "$target/release/nsw" -nt "$bin" ]; }; then
    bin=$target/release/nsw
fi
if [ ! -x "$bin" ]; then
    cargo build --locked --bin nsw
fi

work=$(mktemp -d)
# The embedded cluster runs as the postgres user when we are root: it must reach its data.
chmod 755 "$work"
export NSW_DATA_DIR=$work/data
unset DATABASE_URL NSW_DATABASE_URL
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NSW_LISTEN=127.0.0.1:$port
base=http://127.0.0.1:$port
server=

stop() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -INT "$server" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server" 2>/dev/null || true
    fi
    # The server stops the cluster it started; make sure nothing outlives the run.
    pgdata=$NSW_DATA_DIR/postgres/pgdata
    if [ -f "$pgdata/postmaster.pid" ]; then
        pgctl=$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -n1)
        if [ "$(id -u)" = 0 ]; then
            su postgres -s /bin/sh -c "$pgctl -D $pgdata -m fast stop" >/dev/null 2>&1 || true
        else
            "$pgctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
        fi
    fi
    rm -rf "$work"
}
trap stop EXIT

# Parties first (each command starts and stops the embedded cluster), then the server.
admin=$("$bin" party add --role admin --id st-admin --name "Schemathesis admin" )
enterprise=$("$bin" party add --role enterprise --id 0309999999 --name "Schemathesis trader" )

"$bin" serve >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
    curl -fsS "$base/health" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$base/health" >/dev/null

status=0
run_as() {
    # From the temporary folder: schemathesis keeps its cache in the current directory.
    (cd "$work" && schemathesis run "$base/api/v1/openapi.json" \
        --header "Authorization: Bearer $1" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --exclude-path /exchange/v1/messages \
        --exclude-path /api/v1/admin/exchange/fault \
        --max-examples "$max_examples" \
        --phases examples,coverage,fuzzing \
        --workers 2 \
        --request-timeout 40 \
        --seed 20261130 \
        --no-color)
}
for who in admin enterprise; do
    token=${!who}
    echo "schemathesis: as the $who" >&2
    rc=0
    run_as "$token" 2>&1 | tee "$work/run-$who.log" || rc=$?
    # CPython 3.11's parser is not thread-safe where hypothesis reads a lambda's source with
    # two workers ("SystemError: AST constructor recursion depth mismatch"): an error of the
    # tool, not a finding. The run is seeded, so a second run repeats every real failure.
    if [ "$rc" != 0 ] && grep -q "AST constructor recursion depth mismatch" "$work/run-$who.log"; then
        echo "schemathesis: the tool itself failed (CPython parser race); running again" >&2
        rc=0
        run_as "$token" || rc=$?
    fi
    [ "$rc" = 0 ] || status=$rc
done
if [ "$status" != 0 ]; then
    echo "schemathesis: failures above; the server's log follows" >&2
    tail -n 50 "$work/serve.log" >&2
fi
exit $status
