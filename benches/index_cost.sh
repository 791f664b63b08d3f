#!/usr/bin/env bash
# What the layout of the main database costs at ingest: the same flat-out `sightline loadgen`
# run against a fresh store as built, and against fresh stores changed after the schema was
# created. The variants are experiments, not configurations a user can choose.
#
# Each round runs every variant once, one after the other, so machine noise spreads over all of
# them. Per run: acked spans/s, server CPU seconds, bytes written to disk per acked span.
#
# Variants:
#   as-built      the schema as migrations create it
#   page-4k       the schema as built, in 4 KiB pages instead of 8 KiB (rebuilt with VACUUM)
#   page-2k       the same in 2 KiB pages
#
# The variants that dropped or reshaped the filter indexes of `llm_calls` (no-filters, no-time,
# no-people, bucketed; figures in BENCHMARKS.md) measured the layout before those indexes moved
# to `search.db` (migration 0010); this script as of commit 4159b1a runs them.
#
# Environment:
#   DURATION      seconds of load per run                   (default 12)
#   CONCURRENCY   requests in flight                        (default 16)
#   BATCH         traces per request                        (default 50)
#   ROUNDS        rounds over the variants                  (default 2)
#   VARIANTS      space-separated list                      (default: all of the above)
#   LOADGEN_ARGS  extra loadgen flags, e.g. "--no-content"
#   SIGHTLINE_BIN use this binary instead of building the release one
#
# Usage: benches/index_cost.sh            LOADGEN_ARGS=--no-content ROUNDS=3 benches/index_cost.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

DURATION="${DURATION:-12}"
CONCURRENCY="${CONCURRENCY:-16}"
BATCH="${BATCH:-50}"
ROUNDS="${ROUNDS:-2}"
VARIANTS="${VARIANTS:-as-built page-4k page-2k}"

variant_sql() {
    case "$1" in
        as-built) echo "" ;;
        page-4k) echo "PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096; VACUUM; PRAGMA journal_mode = WAL;" ;;
        page-2k) echo "PRAGMA journal_mode = DELETE; PRAGMA page_size = 2048; VACUUM; PRAGMA journal_mode = WAL;" ;;
        *) die "unknown variant: $1" ;;
    esac
}

sightline_bin
machine_notes
bench_tmpdir index-cost
work="$BENCH_TMP"
rows=()

for round in $(seq 1 "$ROUNDS"); do
    for variant in $VARIANTS; do
        sql=$(variant_sql "$variant")
        data_dir="$work/data-$variant"
        rm -rf -- "$data_dir"
        # Let the server create the schema, then change it while the store is closed.
        start_sightline "$data_dir" "$work/serve.log"
        stop_sightline
        if [ -n "$sql" ]; then
            python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.close()' \
                "$data_dir/sightline.db" "$sql"
        fi
        start_sightline "$data_dir" "$work/serve.log"
        report="$work/report-$variant-$round.json"
        # shellcheck disable=SC2086
        run_loadgen "$report" --endpoint "$SL_HTTP" --protocol http-protobuf --duration "$DURATION" \
            --concurrency "$CONCURRENCY" --batch-traces "$BATCH" --seed 42 ${LOADGEN_ARGS:-} >/dev/null
        cpu=$(proc_cpu_s "$SL_PID")
        written=$(proc_write_bytes "$SL_PID")
        stop_sightline
        acked=$(json_get "$report" .spans.acked)
        rows+=("| $round | $variant | $(json_get "$report" '.acked_spans_per_s | floor') | $(json_get "$report" '.latency_ms.p99 | floor') | $cpu | $(( written / (acked > 0 ? acked : 1) )) |")
        log "round $round, $variant: ${rows[-1]}"
        rm -rf -- "$data_dir"
    done
done

echo "## Store layouts at ingest: ${DURATION} s flat out per run, concurrency $CONCURRENCY, $BATCH traces per request"
echo
echo "loadgen extra flags: ${LOADGEN_ARGS:-none}"
echo
echo "| round | variant | acked spans/s | ack p99 ms | server CPU s | bytes written per span |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
