#!/usr/bin/env bash
# Peer comparison: the same `sightline loadgen` run against Arize Phoenix, then against Sightline,
# in one script run on one machine.
#
# "acked spans/s" is what each server acknowledged per second of load. Phoenix acknowledges an
# OTLP request once its spans are queued in memory, and writes them to its database later;
# Sightline acknowledges only after the spans are committed. To compare like with like, after
# the load stops the script polls each server's own query API until it shows every acknowledged
# span, and reports "persisted spans/s" = acked spans / (load time + time until all visible).
#
# Phoenix is installed, pinned, into its own virtual environment (benches/.venv-phoenix), with
# its working directory in a temporary folder, telemetry off, and every listener on 127.0.0.1
# (see phoenix_serve.py). Both servers are stopped on exit.
#
# Environment:
#   DURATION        seconds of load per server                  (default 30)
#   CONCURRENCY     requests in flight                          (default 8)
#   BATCH           traces per request (about 5 spans each)     (default 20)
#   PROTOCOL        http-protobuf or grpc                       (default http-protobuf)
#   LOADGEN_ARGS    extra loadgen flags for both runs
#   RATE            traces per second, 0 = flat out             (default 0)
#   SEED            traffic seed, the same for both runs        (default 42)
#   DRAIN_TIMEOUT   seconds to wait for acked spans to become visible (default 600)
#   PHOENIX_VERSION arize-phoenix version to install            (default 20.26.1)
#   SIGHTLINE_BIN   use this binary instead of building the release one
#
# Usage: benches/phoenix.sh        DURATION=60 PROTOCOL=grpc benches/phoenix.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

DURATION="${DURATION:-30}"
CONCURRENCY="${CONCURRENCY:-8}"
BATCH="${BATCH:-20}"
PROTOCOL="${PROTOCOL:-http-protobuf}"
SEED="${SEED:-42}"
RATE="${RATE:-0}"
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-600}"
PHOENIX_VERSION="${PHOENIX_VERSION:-20.26.1}"
VENV="$BENCH_DIR/.venv-phoenix"

case "$PROTOCOL" in
    http-protobuf | grpc) ;;
    *) die "PROTOCOL must be http-protobuf or grpc (Phoenix's OTLP/HTTP takes protobuf only), got $PROTOCOL" ;;
esac

# --- Phoenix, installed once into its own venv -------------------------------------------------
installed_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("arize-phoenix"))' 2>/dev/null || true
}
if [ "$(installed_version)" != "$PHOENIX_VERSION" ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "arize-phoenix needs Python 3.10 or newer"
    log "installing arize-phoenix==$PHOENIX_VERSION into $VENV (a few minutes the first time)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    timeout 1800 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "arize-phoenix==$PHOENIX_VERSION" >&2 || die "pip install arize-phoenix failed"
fi

sightline_bin
machine_notes
bench_tmpdir phoenix
work="$BENCH_TMP"

# peak_rss PID: the process's peak resident memory (VmHWM), human-readable.
peak_rss() {
    awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

# check_loopback PORT...: fails if any of the ports listens beyond loopback.
check_loopback() {
    local port bad
    for port in "$@"; do
        bad=$(ss -ltnH "( sport = :$port )" | awk '{print $4}' | grep -Ev '^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):' || true)
        [ -z "$bad" ] || die "port $port listens on $bad, not only on 127.0.0.1"
    done
}

# --- 1. Phoenix --------------------------------------------------------------------------------
phx_port=$(free_port)
phx_grpc_port=$(free_port)
mkdir -p "$work/phoenix"
PHOENIX_WORKING_DIR="$work/phoenix" \
PHOENIX_HOST=127.0.0.1 \
PHOENIX_PORT="$phx_port" \
PHOENIX_GRPC_PORT="$phx_grpc_port" \
PHOENIX_TELEMETRY_ENABLED=false \
PHOENIX_ALLOW_EXTERNAL_RESOURCES=false \
    "$VENV/bin/python" "$BENCH_DIR/phoenix_serve.py" >"$work/phoenix.log" 2>&1 &
phx_pid=$!
BENCH_PIDS+=("$phx_pid")
if ! wait_http "http://127.0.0.1:$phx_port/healthz" 180; then
    tail -n 30 "$work/phoenix.log" >&2
    die "phoenix did not become healthy within 180 s"
fi
check_loopback "$phx_port" "$phx_grpc_port"
log "phoenix $PHOENIX_VERSION ready (pid $phx_pid, http :$phx_port, grpc :$phx_grpc_port)"

case "$PROTOCOL" in
    grpc) phx_endpoint="http://127.0.0.1:$phx_grpc_port" ;;
    *) phx_endpoint="http://127.0.0.1:$phx_port" ;;
esac
loadgen_args=(--protocol "$PROTOCOL" --rate "$RATE" --duration "$DURATION" --concurrency "$CONCURRENCY"
    --batch-traces "$BATCH" --seed "$SEED")
# shellcheck disable=SC2206
loadgen_args+=(${LOADGEN_ARGS:-})

echo "=== Arize Phoenix $PHOENIX_VERSION ==="
run_loadgen "$work/phoenix.json" --endpoint "$phx_endpoint" "${loadgen_args[@]}"
phx_load_end=$(date +%s.%N)
phx_acked=$(json_get "$work/phoenix.json" .spans.acked)
log "waiting until phoenix shows $phx_acked spans (at most $DRAIN_TIMEOUT s)"
"$VENV/bin/python" "$BENCH_DIR/visible.py" phoenix "http://127.0.0.1:$phx_port" "$phx_acked" \
    "$phx_load_end" "$DRAIN_TIMEOUT" >"$work/phoenix-visible.json"
echo "visibility: $(cat "$work/phoenix-visible.json")"
phx_rss=$(peak_rss "$phx_pid")
stop_tracked "$phx_pid"
echo "phoenix peak RSS $phx_rss, working dir $(dir_size "$work/phoenix")"
echo

# --- 2. Sightline ------------------------------------------------------------------------------
echo "=== Sightline ==="
start_sightline "$work/sightline-data" "$work/sightline.log"
check_loopback "${SL_HTTP##*:}" "${SL_GRPC##*:}"
case "$PROTOCOL" in
    grpc) sl_endpoint="$SL_GRPC" ;;
    *) sl_endpoint="$SL_HTTP" ;;
esac
run_loadgen "$work/sightline.json" --endpoint "$sl_endpoint" "${loadgen_args[@]}"
sl_load_end=$(date +%s.%N)
sl_acked=$(json_get "$work/sightline.json" .spans.acked)
log "checking that sightline shows $sl_acked spans"
python3 "$BENCH_DIR/visible.py" sightline "$SL_HTTP" "$sl_acked" "$sl_load_end" "$DRAIN_TIMEOUT" \
    >"$work/sightline-visible.json"
echo "visibility: $(cat "$work/sightline-visible.json")"
sl_rss=$(peak_rss "$SL_PID")
stop_sightline
echo "sightline peak RSS $sl_rss, data dir $(dir_size "$work/sightline-data")"
echo

# --- Summary -----------------------------------------------------------------------------------
python3 - "$work" "$PROTOCOL" "$DURATION" "$RATE" "$CONCURRENCY" "$BATCH" "$PHOENIX_VERSION" \
    "$phx_rss" "$sl_rss" <<'EOF'
import json, sys
work, protocol, duration, rate, concurrency, batch, version, phx_rss, sl_rss = sys.argv[1:]
rows = {}
for name in ("phoenix", "sightline"):
    report = json.load(open(f"{work}/{name}.json"))
    visible = json.load(open(f"{work}/{name}-visible.json"))
    acked = report["spans"]["acked"]
    after = visible["visible_after_s"]
    if after is not None:
        persisted = acked / (report["elapsed_s"] + after)
    else:
        # Not all visible before DRAIN_TIMEOUT: the rate of what was stored by then.
        persisted = visible["count"] / (report["elapsed_s"] + visible["waited_s"])
    rows[name] = dict(report=report, visible=visible, acked=acked, after=after, persisted=persisted)

print(f"## Sightline vs Arize Phoenix {version}: {protocol}, {duration} s at rate {rate} (0 = flat out), "
      f"concurrency {concurrency}, {batch} traces per request")
print()
print("| server | acked spans/s | spans acked | not acked | ack p50 ms | ack p99 ms "
      "| all visible after load (s) | persisted spans/s | peak RSS |")
print("|---|---|---|---|---|---|---|---|---|")
for name, label, rss in (("phoenix", f"Phoenix {version}", phx_rss), ("sightline", "Sightline", sl_rss)):
    r = rows[name]
    rep = r["report"]
    not_acked = rep["spans"]["rejected"] + rep["spans"]["failed"]
    if r["after"] is None:
        after = "> {:.0f} ({:,} of {:,} visible then)".format(r["visible"]["waited_s"], r["visible"]["count"], r["acked"])
    else:
        after = f"{r['after']:.1f}"
    print(f"| {label} | {rep['acked_spans_per_s']:,.0f} | {r['acked']:,} | {not_acked:,} "
          f"| {rep['latency_ms']['p50']:.1f} | {rep['latency_ms']['p99']:.1f} | {after} "
          f"| {r['persisted']:,.0f} | {rss} |")
print()
sl, phx = rows["sightline"], rows["phoenix"]
ack_ratio = sl["report"]["acked_spans_per_s"] / max(phx["report"]["acked_spans_per_s"], 1e-9)
print(f"ratio Sightline / Phoenix, acked spans/s:     {ack_ratio:.1f}x")
note = "" if phx["after"] is not None else " (Phoenix had not stored everything by DRAIN_TIMEOUT; its rate up to then)"
print(f"ratio Sightline / Phoenix, persisted spans/s: {sl['persisted'] / max(phx['persisted'], 1e-9):.1f}x{note}")
EOF
