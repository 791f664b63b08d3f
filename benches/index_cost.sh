#!/usr/bin/env bash
# What the secondary indexes of `llm_calls` cost at ingest: the same flat-out `sightline loadgen`
# run against a fresh store as built, and against fresh stores whose filter indexes were dropped
# or reshaped after the schema was created. The variants are experiments, not configurations a
# user can choose: a store without these indexes answers filtered call lists by scanning.
#
# Each round runs every variant once, one after the other, so machine noise spreads over all of
# them. Per run: acked spans/s, server CPU seconds, bytes written to disk per acked span.
#
# Variants:
#   as-built      the schema as migrations create it
#   no-filters    without the six (project, <filter>, start_ns) indexes: time, service, request
#                 model, response model, user, session
#   no-time       without the four whose keys follow time: time, service, request and response model
#   no-people     without the user and session indexes
#   bucketed      the four time-following indexes keyed by (project, [filter,] start_ns >> 30, id,
#                 start_ns): within a ~1 s bucket new entries append instead of landing among
#                 entries of the calls that started before them
#   page-4k         the schema as built, in 4 KiB pages instead of 8 KiB (rebuilt with VACUUM)
#   page-2k         the same in 2 KiB pages
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
VARIANTS="${VARIANTS:-as-built no-filters no-time no-people bucketed}"

variant_sql() {
    local time="DROP INDEX llm_calls_time; DROP INDEX llm_calls_service;
        DROP INDEX llm_calls_request_model; DROP INDEX llm_calls_response_model;"
    local people="DROP INDEX llm_calls_user; DROP INDEX llm_calls_session;"
    case "$1" in
        as-built) echo "" ;;
        no-filters) echo "$time $people" ;;
        no-time) echo "$time" ;;
        no-people) echo "$people" ;;
        bucketed)
            echo "$time
            CREATE INDEX llm_calls_time ON llm_calls (project, (start_ns >> 30), id, start_ns);
            CREATE INDEX llm_calls_service ON llm_calls (project, service, (start_ns >> 30), id, start_ns);
            CREATE INDEX llm_calls_request_model ON llm_calls
                (project, request_model, (start_ns >> 30), id, start_ns) WHERE request_model IS NOT NULL;
            CREATE INDEX llm_calls_response_model ON llm_calls
                (project, response_model, (start_ns >> 30), id, start_ns) WHERE response_model IS NOT NULL;"
            ;;
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

echo "## llm_calls indexes at ingest: ${DURATION} s flat out per run, concurrency $CONCURRENCY, $BATCH traces per request"
echo
echo "loadgen extra flags: ${LOADGEN_ARGS:-none}"
echo
echo "| round | variant | acked spans/s | ack p99 ms | server CPU s | bytes written per span |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
