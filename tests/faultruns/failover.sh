#!/usr/bin/env bash
# The recorded failover run (RELIABILITY.md): about 20 k messages through a
# hub on the three-node cluster of deploy/local-cluster.sh while the node
# leading its queue is killed and brought back, compared with a fault-free
# reference. CI runs the same test with a small city.
#
#   tests/faultruns/failover.sh [households] [events]
set -euo pipefail
cd "$(dirname "$0")/../.."
export DYNZERO_FAILOVER_HOUSEHOLDS="${1:-3000}"
export DYNZERO_FAILOVER_EVENTS="${2:-12000}"
export DYNZERO_FAILOVER_INVALID="${DYNZERO_FAILOVER_INVALID:-40}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dynzero-target}"
# Release builds: the figures are about the hub, not about a debug build.
cargo build --release -q -p dynzero
cargo test --release -q -p dynzero-tests --test failover -- --nocapture
