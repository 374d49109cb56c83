#!/usr/bin/env bash
# Runs every queue scenario of qron-bench three times, one after the other, as BENCHMARKS.md
# reports them (take the median of the three). Usage: bash benches/run-all.sh > results.txt
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p benches --bin qron-bench
bench=target/release/qron-bench
for scenario in floor enqueue throughput latency recurring bloat memory; do
  for run in 1 2 3; do
    echo "=== $scenario run $run $(date -u +%T)"
    "$bench" "$scenario"
  done
done
