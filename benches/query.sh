#!/usr/bin/env bash
# Query latency over a large store: fills a data directory with SPANS spans through
# `sightline loadgen` flat out (once; later runs reuse it), restarts the server on it and times
# the JSON API with query_bench.py (p50/p95/p99 per kind of query, markdown table).
#
# The filled directory is kept (it is the expensive part); a marker file beside it,
# "$DATA_DIR.fill.json" (the fill's loadgen report), says it is complete. Delete both to refill.
#
# Environment:
#   SPANS          spans to store                                (default 10000000)
#   DATA_DIR       data directory to fill or reuse    (default $TMPDIR/sightline-bench-query-$SPANS)
#   REQUESTS       timed requests per query                      (default 200)
#   BUDGET_S       at most this many seconds of timing per query (default 60)
#   CONCURRENCY    fill: requests in flight                      (default 16)
#   BATCH          fill: traces per request                      (default 50)
#   BACKDATE       fill: spread traces over the last N seconds   (default 86400)
#   FILL_ARGS      fill: extra loadgen flags, e.g. "--no-content" (spans ~2x smaller on disk)
#   FILL=direct    fill in-process through decode → normalize → store, without HTTP (the
#                  fill_data_dir harness in crates/cli/src/loadgen/mod.rs; no message content
#                  unless FILL_CONTENT=1; traces spread over FILL_DAYS days, default 7): several
#                  times faster for 10M-span stores. Same generator, same stored rows.
#   FILL_MAX_S     fill: bound on each of its two loadgen runs, s (default 7200)
#   SERVE_ARGS     extra serve flags
#   SIGHTLINE_BIN  use this binary instead of building the release one
#
# Usage: SPANS=1000000 benches/query.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

SPANS="${SPANS:-10000000}"
DATA_DIR="${DATA_DIR:-${TMPDIR:-/tmp}/sightline-bench-query-$SPANS}"
REQUESTS="${REQUESTS:-200}"
CONCURRENCY="${CONCURRENCY:-16}"
BATCH="${BATCH:-50}"
BACKDATE="${BACKDATE:-86400}"
FILL_MAX_S="${FILL_MAX_S:-7200}"
MARKER="$DATA_DIR.fill.json"

sightline_bin
machine_notes
bench_tmpdir query
work="$BENCH_TMP"

# --- Fill (once) -------------------------------------------------------------------------------
if [ -f "$MARKER" ]; then
    log "reusing $DATA_DIR (filled earlier; see $MARKER)"
else
    if [ -d "$DATA_DIR" ] && [ -n "$(ls -A "$DATA_DIR")" ]; then
        die "$DATA_DIR exists but has no fill marker ($MARKER): an interrupted fill? remove it and run again"
    fi
    # About 3.1 kB per stored span with prompts and completions, 1.4 kB without (measured).
    case " ${FILL_ARGS:-} " in *" --no-content "*) kb_per_span=2 ;; *) kb_per_span=4 ;; esac
    if [ "${FILL:-}" = direct ] && [ -z "${FILL_CONTENT:-}" ]; then kb_per_span=2; fi
    mkdir -p "$DATA_DIR"
    avail_kb=$(df -Pk "$DATA_DIR" | awk 'NR == 2 {print $4}')
    if [ $(( SPANS * kb_per_span )) -gt "$avail_kb" ]; then
        rmdir "$DATA_DIR" 2>/dev/null || true
        die "$SPANS spans need about $(( SPANS * kb_per_span / 1048576 )) GiB, only $(( avail_kb / 1048576 )) GiB free under $(dirname "$DATA_DIR") (FILL_ARGS=--no-content needs less)"
    fi
    if [ "${FILL:-}" = direct ]; then
        fill_start=$(date +%s.%N)
        log "filling $DATA_DIR in-process with $SPANS spans"
        (cd "$BENCH_DIR/.." && FILL_DIR="$DATA_DIR" FILL_SPANS="$SPANS" \
            cargo test --release --locked -p sightline-cli fill_data_dir -- --ignored --nocapture) \
            | tee "$work/fill.log" | grep -E '^(filled|[0-9]+ spans stored)'
        fill_wall=$(echo "$(date +%s.%N) - $fill_start" | bc)
        spans=$(sed -n 's/^filled: \([0-9]*\) spans.*/\1/p' "$work/fill.log")
        [ -n "$spans" ] || die "the in-process fill failed (see $work/fill.log)"
        jq -n --argjson n "$spans" --arg wall "$fill_wall" '{spans: {acked: $n}, traces_acked: null,
            elapsed_s: ($wall | tonumber), fill_wall_s: ($wall | tonumber), mode: "direct",
            acked_spans_per_s: ($n / ($wall | tonumber))}' >"$MARKER"
    else
    # Loadgen counts traces, not spans: a first tenth measures the spans per trace of this
    # traffic, the rest (another seed, so no duplicate ids) brings the total to SPANS.
    start_sightline "$DATA_DIR" "$work/fill.log"
    fill_start=$(date +%s.%N)
    fill_args=(--endpoint "$SL_HTTP" --protocol http-protobuf --rate 0 --duration "$FILL_MAX_S"
        --concurrency "$CONCURRENCY" --batch-traces "$BATCH" --backdate "$BACKDATE")
    # shellcheck disable=SC2206
    fill_args+=(${FILL_ARGS:-})
    first_traces=$(( SPANS / 10 / 5 + 1 ))
    DURATION="$FILL_MAX_S" run_loadgen "$work/fill1.json" "${fill_args[@]}" \
        --traces "$first_traces" --seed 7
    first_spans=$(json_get "$work/fill1.json" .spans.acked)
    [ "$first_spans" -gt 0 ] || die "the first part of the fill stored nothing"
    rest_traces=$(( (SPANS - first_spans) * $(json_get "$work/fill1.json" .traces_acked) / first_spans ))
    if [ "$rest_traces" -gt 0 ]; then
        DURATION="$FILL_MAX_S" run_loadgen "$work/fill2.json" "${fill_args[@]}" \
            --traces "$rest_traces" --seed 8
    else
        jq '.spans.acked = 0 | .traces_acked = 0 | .elapsed_s = 0' "$work/fill1.json" >"$work/fill2.json"
    fi
    stop_sightline
    fill_wall=$(echo "$(date +%s.%N) - $fill_start" | bc)
    jq -s --arg wall "$fill_wall" '{spans: {acked: (.[0].spans.acked + .[1].spans.acked)},
        traces_acked: (.[0].traces_acked + .[1].traces_acked),
        elapsed_s: (.[0].elapsed_s + .[1].elapsed_s),
        fill_wall_s: ($wall | tonumber), parts: .}
        | .acked_spans_per_s = .spans.acked / .elapsed_s' "$work/fill1.json" "$work/fill2.json" >"$MARKER"
    fi
fi
echo
echo "fill: $(jq -r '"\(.spans.acked) spans in \(.traces_acked) traces acked in \(.elapsed_s | floor) s of load (\(.acked_spans_per_s | floor) spans/s; \(.fill_wall_s | floor) s including the server stop)"' "$MARKER")"
echo "data dir: $DATA_DIR, $(dir_size "$DATA_DIR")"
echo

# --- Query ------------------------------------------------------------------------------------
start_sightline "$DATA_DIR" "$work/query.log"
log "timing the API: $REQUESTS requests per query"
timeout 1800 python3 "$BENCH_DIR/query_bench.py" "$SL_HTTP" --requests "$REQUESTS" \
    --budget-s "${BUDGET_S:-60}" --json "$work/query.json" || die "query_bench.py failed or ran past 30 minutes"
stop_sightline
