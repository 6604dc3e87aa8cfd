#!/usr/bin/env bash
# Fuzz the read API against its own OpenAPI document with schemathesis:
# no 5xx, and every response conforms to the schema.
#
#   tests/schemathesis/run.sh [SECONDS]      (default 60)
#
# Starts `dynzero run` (the hub and the API) on a fresh database and uniquely
# named exchanges and queues, publishes a small simulated city, adds an admin
# token, runs schemathesis (installed with pip into a virtualenv outside the
# clone, once), then stops the hub and drops the database.
set -euo pipefail

SECONDS_BUDGET="${1:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dynzero-target}"
VENV="${SCHEMATHESIS_VENV:-/var/tmp/dynzero-schemathesis}"
PG_SERVER="postgres://postgres@127.0.0.1:5432"
NAME="dynzero_test_schemathesis_$$"
PREFIX="t.schemathesis.$$."
PORT="${SCHEMATHESIS_PORT:-18480}"

cd "$(dirname "$0")/../.."

if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis>=4,<5"
fi

cargo build -q -p dynzero
BIN="$CARGO_TARGET_DIR/debug/dynzero"

psql "$PG_SERVER/postgres" -qc "CREATE DATABASE \"$NAME\""
export DYNZERO__DATABASE__URL="$PG_SERVER/$NAME"
export DYNZERO__API__LISTEN="127.0.0.1:$PORT"
for key in INBOUND_EXCHANGE HOUSEHOLDS_EXCHANGE ALERTS_EXCHANGE REJECTED_EXCHANGE QUEUE REJECTED_QUEUE; do
    default=$(grep -i "^${key,,} *=" config/default.toml | sed 's/.*= *"\(.*\)"/\1/')
    export "DYNZERO__AMQP__$key=$PREFIX$default"
done
export DYNZERO__NOTIFIER__QUEUE="${PREFIX}dynzero.notifier"
export RUST_LOG=warn

"$BIN" run &
HUB=$!
cleanup() {
    kill "$HUB" 2>/dev/null || true
    wait "$HUB" 2>/dev/null || true
    psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS \"$NAME\" WITH (FORCE)" || true
}
trap cleanup EXIT

for _ in $(seq 1 60); do
    curl -fs "http://127.0.0.1:$PORT/api/openapi.json" >/dev/null && break
    sleep 1
done
"$BIN" simulate --households 200 --events 600 >/dev/null
TOKEN=$("$BIN" tokens add --name schemathesis --division 2103 --role admin | tail -n 1)

"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /api/v1/alerts/stream \
    --max-time "$SECONDS_BUDGET" \
    --workers 2
