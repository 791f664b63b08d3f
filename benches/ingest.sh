#!/usr/bin/env bash
# Sustained ingest with durable acknowledgement: `sightline loadgen` flat out against a fresh
# `sightline serve` (sync full: every ack follows an fsync'd commit), once per protocol.
#
# Each protocol gets its own server and empty data directory, so the second run does not start on
# the first one's data. Everything listens on 127.0.0.1; the servers are stopped on exit. Besides
# the table, each run prints the server's CPU per thread and how far the call index in search.db
# trails the commits when the load ends.
#
# Environment:
#   DURATION      seconds of load per protocol            (default 30)
#   CONCURRENCY   requests in flight                       (default 8)
#   BATCH         traces per request (about 5 spans each)  (default 20)
#   PROTOCOLS     space-separated list                     (default "http-protobuf grpc")
#   LOADGEN_ARGS  extra loadgen flags, e.g. "--gzip" or "--no-content"
#   SERVE_ARGS    extra serve flags, e.g. "--sync normal"
#   RATE          traces per second, 0 = flat out          (default 0)
#   SEED          traffic seed                             (default 42)
#   SIGHTLINE_BIN use this binary instead of building the release one
#
# Usage: benches/ingest.sh            DURATION=60 CONCURRENCY=32 benches/ingest.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

DURATION="${DURATION:-30}"
CONCURRENCY="${CONCURRENCY:-8}"
BATCH="${BATCH:-20}"
PROTOCOLS="${PROTOCOLS:-http-protobuf grpc}"
SEED="${SEED:-42}"
RATE="${RATE:-0}"

sightline_bin
machine_notes
bench_tmpdir ingest
work="$BENCH_TMP"
summary=()

for protocol in $PROTOCOLS; do
    data_dir="$work/data-$protocol"
    start_sightline "$data_dir" "$work/serve-$protocol.log"
    case "$protocol" in
        grpc) endpoint="$SL_GRPC" ;;
        *) endpoint="$SL_HTTP" ;;
    esac
    report="$work/report-$protocol.json"
    # shellcheck disable=SC2086
    run_loadgen "$report" --endpoint "$endpoint" --protocol "$protocol" --rate "$RATE" \
        --duration "$DURATION" --concurrency "$CONCURRENCY" --batch-traces "$BATCH" \
        --seed "$SEED" ${LOADGEN_ARGS:-}
    server_cpu=$(proc_cpu_s "$SL_PID")
    written=$(proc_write_bytes "$SL_PID")
    threads=$(proc_thread_cpu "$SL_PID")
    lag=$(index_lag "$data_dir")
    stop_sightline
    acked=$(json_get "$report" .spans.acked)
    gen_cpu=$(loadgen_cpu_s "$report")
    echo "CPU: server ${server_cpu} s, loadgen ${gen_cpu} s over $(json_get "$report" '.elapsed_s * 10 | round / 10') s of load ($(nproc) cores); $(awk -v a="$acked" -v c="$server_cpu" 'BEGIN {printf "%.0f", (c > 0 ? a / c : 0)}') spans per server CPU-second"
    echo "server CPU by thread: $threads"
    echo "call index behind the commits when the load ended: $lag calls"
    size_b=$(du -sb "$data_dir" | cut -f1)
    echo "data dir after stop: $(dir_size "$data_dir"), $(( size_b / (acked > 0 ? acked : 1) )) bytes per acked span; written to disk during the load: $(( written / (acked > 0 ? acked : 1) )) bytes per acked span"
    echo "server log (warnings and errors):"
    sed 's/^/  /' "$work/serve-$protocol.log" | tail -n 10
    echo
    summary+=("$(jq -r --arg p "$protocol" --arg size "$(du -sh "$data_dir" | cut -f1)" \
        --arg scpu "$server_cpu" --arg gcpu "$gen_cpu" \
        '"| \($p) | \(.acked_spans_per_s | floor) | \(.spans.acked) | \(.spans.rejected + .spans.failed) | \(.latency_ms.p50 * 100 | round / 100) | \(.latency_ms.p90 * 100 | round / 100) | \(.latency_ms.p99 * 100 | round / 100) | \($scpu) / \($gcpu) | \(.spans.acked / ($scpu | tonumber) | floor) | \($size) |"' \
        "$report")")
    rm -rf -- "$data_dir"
done

if [ "$RATE" = 0 ]; then pace="flat out"; else pace="at $RATE traces/s"; fi
echo "## Sustained ingest: ${DURATION} s $pace per protocol, concurrency $CONCURRENCY, $BATCH traces per request"
echo
echo "serve flags: ${SERVE_ARGS:-none (defaults: --sync full)}; loadgen extra flags: ${LOADGEN_ARGS:-none}"
echo
echo "| protocol | acked spans/s | spans acked | spans not acked | ack p50 ms | ack p90 ms | ack p99 ms | CPU s server / loadgen | spans per server CPU-s | data dir |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
