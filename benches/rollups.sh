#!/usr/bin/env bash
# Rollups: the ingest cost of maintaining them (spans/s with and without, through Store::write)
# and the latency of /api/v1/stats and /api/v1/timeseries over the rollups of CALLS calls spread
# over DAYS days (built once with import_rollups, the ingest code path without the call rows, and
# kept in DIR for later runs). Prints markdown tables.
#
# Environment:
#   CALLS   calls whose rollups are queried            (default 10000000)
#   DAYS    days they span, ending now                 (default 7)
#   INGEST  calls written per ingest run (0: skip)     (default 100000)
#   REPS    timed requests per query                   (default 30)
#   DIR     where the query store is built and reused  (default $TMPDIR/sightline-bench-rollups-$CALLS)
#
# Usage: benches/rollups.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sightline-serve --example rollup_bench
target="${CARGO_TARGET_DIR:-target}"
echo "machine: $(nproc) cores, $(uname -srm)"
exec "$target/release/examples/rollup_bench"
