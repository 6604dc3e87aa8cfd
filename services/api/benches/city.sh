#!/usr/bin/env bash
# The read side at city scale (BENCHMARKS.md, "The read side"): a city of
# 1.2 M households seeded into a fresh database (seed_city.sql), a release
# `dynzero run` (hub, relay, sweeper, API) ingesting the simulator's stream
# at 500 msg/s meanwhile, and wrk against the city's statistics (one client)
# and a ledger page (50 clients, a city token and a community token).
#
#   services/api/benches/city.sh [households] [rate] [seconds]
#
# Needs wrk (apt-get install wrk); oha (cargo install oha) for the paced run. Uses its own database (dz_api_bench_city,
# left behind for a look) and its own exchanges and queue (bench.api.*), so
# the machine's dynzero.* topology is not touched.
set -euo pipefail
cd "$(dirname "$0")/../../.."
HOUSEHOLDS="${1:-1200000}"
RATE="${2:-500}"
SECONDS_EACH="${3:-20}"
PORT="${DYNZERO_BENCH_API_PORT:-18490}"
DB=dz_api_bench_city
PSQL=(psql -h 127.0.0.1 -U postgres -qAt -v ON_ERROR_STOP=1)

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dynzero-target}"
cargo build --release -q -p dynzero
BIN="$CARGO_TARGET_DIR/release/dynzero"

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
export DYNZERO__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DB"
export DYNZERO__API__LISTEN="127.0.0.1:$PORT"
export DYNZERO__AMQP__INBOUND_EXCHANGE=bench.api.inbound
export DYNZERO__AMQP__HOUSEHOLDS_EXCHANGE=bench.api.households
export DYNZERO__AMQP__ALERTS_EXCHANGE=bench.api.alerts
export DYNZERO__AMQP__REJECTED_EXCHANGE=bench.api.rejected
export DYNZERO__AMQP__QUEUE=bench.api.reconciler
export DYNZERO__AMQP__REJECTED_QUEUE=bench.api.rejected
export RUST_LOG="${RUST_LOG:-warn}"

# Migrates, and prints the token as its last line.
CITY=$("$BIN" tokens add --name bench-city --division 2103 --role worker | tail -n 1)
# A seeded community the simulator does not touch (it uses streets 001–005, communities 001–006).
COMMUNITY=$("$BIN" tokens add --name bench-community --division 210311010010 --role worker | tail -n 1)
echo "seeding $HOUSEHOLDS households"
time "${PSQL[@]}" -d "$DB" -v households="$HOUSEHOLDS" -f services/api/benches/seed_city.sql

"$BIN" run --only consumer,relay,sweeper,api >/tmp/dz-api-bench-run.log 2>&1 &
RUN=$!
SIM=""
cleanup() {
    [ -n "$SIM" ] && kill "$SIM" 2>/dev/null || true
    kill "$RUN" 2>/dev/null || true
    wait 2>/dev/null || true
    rabbitmqctl -q delete_queue bench.api.reconciler >/dev/null 2>&1 || true
}
trap cleanup EXIT
until curl -sf "http://127.0.0.1:$PORT/api/openapi.json" >/dev/null; do sleep 0.5; done

# The simulator's stream at RATE msg/s for the whole measurement (households
# of its own, in the same districts), then measure while it flows.
EVENTS=$((RATE * (6 * SECONDS_EACH + 60)))
"$BIN" simulate --households $((EVENTS / 4)) --events $((EVENTS * 3 / 4)) --rate "$RATE" --seed 7 \
    >/tmp/dz-api-bench-simulate.log 2>&1 &
SIM=$!
sleep 10   # let the ingestion reach its rate before measuring

ingested() { "${PSQL[@]}" -d "$DB" -c "SELECT COALESCE(max(arrival), 0) FROM inbox"; }
measure() {
    local what="$1" clients="$2" header="$3" path="$4" before after
    echo "== $what ($clients clients, $SECONDS_EACH s): $path"
    before=$(ingested)
    wrk -t"$(( clients < 2 ? 1 : 2 ))" -c"$clients" -d"${SECONDS_EACH}s" --latency \
        -H "$header" "http://127.0.0.1:$PORT$path" |
        grep -E 'Latency|50%|90%|99%|Requests/sec|Non-2xx'
    after=$(ingested)
    echo "   the hub ingested $(( (after - before) / SECONDS_EACH )) msg/s meanwhile"
}
bearer() { echo "Authorization: Bearer $1"; }
cookie() { echo "Cookie: dynzero_session=$1"; }
measure "city statistics" 1 "$(bearer "$CITY")" "/api/v1/stats?division=2103"
measure "district statistics" 1 "$(bearer "$CITY")" "/api/v1/stats?division=210302"
measure "ledger page, city token" 50 "$(bearer "$CITY")" "/api/v1/households?status=zero_employment&limit=50"
measure "ledger page, community token" 50 "$(bearer "$COMMUNITY")" "/api/v1/households?status=zero_employment&limit=50"
measure "ledger page, community token, all households" 50 "$(bearer "$COMMUNITY")" "/api/v1/households?limit=50"
measure "board 台账, community token" 50 "$(cookie "$COMMUNITY")" "/ledger"

# Fifty clients at a pace a city's workers might keep (PACED requests/s in
# all), open loop: oha sends on schedule whether or not the last answer came,
# and counts the wait from when each request should have left.
paced() {
    local what="$1" header="$2" path="$3" before after
    echo "== $what (50 clients, $PACED req/s in all, $SECONDS_EACH s, oha): $path"
    before=$(ingested)
    oha -z "${SECONDS_EACH}s" -c 50 -q "$PACED" --latency-correction --no-tui \
        -H "$header" "http://127.0.0.1:$PORT$path" |
        grep -E 'Requests/sec|(50\.00|99\.00|99\.90)% in|^ *\[[0-9]{3}\]'
    after=$(ingested)
    echo "   the hub ingested $(( (after - before) / SECONDS_EACH )) msg/s meanwhile"
}
PACED="${DYNZERO_BENCH_API_PACED:-500}"
if command -v oha >/dev/null; then
    paced "ledger page, city token" "$(bearer "$CITY")" "/api/v1/households?status=zero_employment&limit=50"
    paced "board 台账, community token" "$(cookie "$COMMUNITY")" "/ledger"
else
    echo "(oha is not installed — cargo install oha — so no paced run)"
fi

echo "== ingestion while measuring"
"${PSQL[@]}" -d "$DB" -c "SELECT 'inbox rows: ' || count(*) FROM inbox"
tail -c 300 /tmp/dz-api-bench-simulate.log | tr '\r' '\n' | tail -n 1
