#!/usr/bin/env bash
# The recorded chaos run (RELIABILITY.md): about 100 k messages through two
# hubs and a notifier with a failing webhook while hubs are killed five
# times, the machine's broker is stopped and started and the database
# refuses connections for 20 s, compared with a fault-free reference. CI
# runs the same test with a small city and a 5 s database outage.
#
# It stops the machine's RabbitMQ for a few seconds: run it alone.
#
#   tests/faultruns/chaos.sh [households] [events]
set -euo pipefail
cd "$(dirname "$0")/../.."
export DYNZERO_CHAOS_HOUSEHOLDS="${1:-15000}"
export DYNZERO_CHAOS_EVENTS="${2:-60000}"
export DYNZERO_CHAOS_INVALID="${DYNZERO_CHAOS_INVALID:-100}"
export DYNZERO_CHAOS_DATABASE_OUTAGE_SECS="${DYNZERO_CHAOS_DATABASE_OUTAGE_SECS:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dynzero-target}"
cargo build --release -q -p dynzero
cargo test --release -q -p dynzero-tests --test chaos -- --nocapture
