#!/usr/bin/env bash
# Fuzz every target in turn, one job each, niced: `fuzz/run.sh [RUNS] [TARGET...]`.
# RUNS is libFuzzer's -runs (default 10,000,000 executions per target). The
# growing corpus is in fuzz/corpus/<target> (not committed), seeded from
# fuzz/seeds/<target>; crashes land in fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-10000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(inbound_bytes inbound_structured identifiers)
fi
# The sanitizer flags need nightly features; stable accepts them with this.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/dynzero-fuzz-target}"
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    echo "==> $target: $runs runs"
    # No sanitizer: the targets are safe Rust, and the executions go 2-3x
    # further on a shared machine; panics and overflows are still caught.
    # One job: libFuzzer writes its output to fuzz-0.log, kept per target.
    mkdir -p logs
    nice -n 10 cargo fuzz run --sanitizer none "$target" "corpus/$target" "${seeds[@]}" -- \
        -runs="$runs" -jobs=1 -max_len=16384 -print_final_stats=1 || status=$?
    mv -f fuzz-0.log "logs/$target.log" 2>/dev/null || true
    tail -n 20 "logs/$target.log" || true
    [ "${status:-0}" -eq 0 ] || exit "$status"
done
