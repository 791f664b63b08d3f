# Shared helpers of the benchmark scripts; sourced, not run.
#
# Every process a script starts is recorded in BENCH_PIDS and stopped by bench_cleanup, which the
# scripts install as their EXIT trap, so an interrupted or failed run leaves nothing behind.
# Every server binds to 127.0.0.1 only, on ports the kernel hands out.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_PIDS=()
BENCH_TMP_DIRS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Stops every process recorded in BENCH_PIDS (TERM, then KILL after 20 s) and removes the
# temporary directories registered with bench_tmpdir.
bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        stop_pid "$pid"
    done
    BENCH_PIDS=()
    local dir
    for dir in "${BENCH_TMP_DIRS[@]}"; do
        [ -n "$dir" ] && [ -d "$dir" ] && rm -rf -- "$dir"
    done
    BENCH_TMP_DIRS=()
}

# stop_pid PID: SIGTERM, wait up to 20 s for a graceful exit, then SIGKILL.
stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "process $pid did not stop within 20 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# bench_tmpdir NAME: a new temporary directory in $BENCH_TMP, removed by bench_cleanup. (Call it
# directly, not in $(...): a subshell's registration would be lost.)
bench_tmpdir() {
    BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/sightline-bench-$1.XXXXXX")"
    BENCH_TMP_DIRS+=("$BENCH_TMP")
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_http URL TIMEOUT_S: waits until URL answers 2xx; fails after TIMEOUT_S seconds.
wait_http() {
    local url="$1" timeout_s="$2" start
    start=$(date +%s)
    until curl -sf -o /dev/null --max-time 2 "$url"; do
        if [ $(( $(date +%s) - start )) -ge "$timeout_s" ]; then
            return 1
        fi
        sleep 0.2
    done
}

# sightline_bin: builds the release binary (unless SIGHTLINE_BIN names one) and sets SIGHTLINE.
sightline_bin() {
    if [ -n "${SIGHTLINE_BIN:-}" ]; then
        SIGHTLINE="$SIGHTLINE_BIN"
    else
        log "building: cargo build --release -p sightline-cli"
        (cd "$REPO_ROOT" && cargo build --release -p sightline-cli) >&2 \
            || die "cargo build --release -p sightline-cli failed"
        local target_dir
        target_dir="${CARGO_TARGET_DIR:-$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)}"
        SIGHTLINE="$target_dir/release/sightline"
    fi
    [ -x "$SIGHTLINE" ] || die "no sightline binary at $SIGHTLINE"
    log "binary: $SIGHTLINE ($("$SIGHTLINE" --version))"
}

# start_sightline DATA_DIR LOG_FILE: starts `sightline serve` on free loopback ports (sync full,
# the default) and sets SL_PID, SL_HTTP (base URL) and SL_GRPC (base URL). Extra serve flags can
# be passed in SERVE_ARGS.
start_sightline() {
    local data_dir="$1" log_file="$2" http_port grpc_port
    http_port=$(free_port)
    grpc_port=$(free_port)
    # shellcheck disable=SC2086
    "$SIGHTLINE" --log warn serve \
        --http-addr "127.0.0.1:$http_port" \
        --grpc-addr "127.0.0.1:$grpc_port" \
        --data-dir "$data_dir" ${SERVE_ARGS:-} >"$log_file" 2>&1 &
    SL_PID=$!
    BENCH_PIDS+=("$SL_PID")
    SL_HTTP="http://127.0.0.1:$http_port"
    SL_GRPC="http://127.0.0.1:$grpc_port"
    if ! wait_http "$SL_HTTP/readyz" 60; then
        tail -n 20 "$log_file" >&2
        die "sightline serve did not become ready within 60 s"
    fi
    log "sightline serve ready (pid $SL_PID, http $SL_HTTP, grpc $SL_GRPC, data $data_dir)"
}

# stop_tracked PID: stops a process started by this script and forgets it, so cleanup never
# signals a PID the system may since have given to another process.
stop_tracked() {
    stop_pid "$1"
    local kept=() pid
    for pid in "${BENCH_PIDS[@]}"; do
        [ "$pid" != "$1" ] && kept+=("$pid")
    done
    BENCH_PIDS=("${kept[@]}")
}

# stop_sightline: graceful stop of the server started by start_sightline.
stop_sightline() {
    stop_tracked "$SL_PID"
    log "sightline serve stopped"
}

# run_loadgen REPORT_JSON ARGS...: runs `sightline loadgen ARGS --report-json REPORT_JSON` under a
# hard time limit (LOADGEN_LIMIT_S, default duration + 120 s) and prints its report to stdout.
run_loadgen() {
    local report="$1"
    shift
    local limit="${LOADGEN_LIMIT_S:-$(( ${DURATION%.*} + 120 ))}"
    log "running: sightline loadgen $*"
    echo "\$ sightline loadgen $*"
    timeout --signal=INT --kill-after=15 "$limit" \
        /usr/bin/time -f '%U %S' -o "$report.cpu" \
        "$SIGHTLINE" --log warn loadgen "$@" --quiet --report-json "$report" \
        || die "sightline loadgen failed or ran past ${limit} s"
}

# loadgen_cpu_s REPORT_JSON: CPU seconds (user + system) the loadgen run behind REPORT_JSON used.
loadgen_cpu_s() { awk '{printf "%.1f", $1 + $2}' "$1.cpu"; }

# proc_cpu_s PID: CPU seconds (user + system) a running process has used so far.
proc_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"
}

# tree_cpu_s PID: CPU seconds (user + system) used so far by a running process and its live
# child processes (nginx's workers, for instance).
tree_cpu_s() {
    local pid total=0 ticks
    for pid in "$1" $(pgrep -P "$1" || true); do
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ticks))
    done
    awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}

# proc_thread_cpu PID: CPU seconds (user + system) of a running process per thread name, the
# busiest first, e.g. "tokio-rt-worker 10.4, sightline-searc 6.2, …" (names are cut at 15 bytes).
proc_thread_cpu() {
    local task
    for task in /proc/"$1"/task/*; do
        printf '%s\t%s\n' "$(cat "$task/comm")" "$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0)"
    done | awk -F'\t' -v hz="$(getconf CLK_TCK)" '{t[$1] += $2} END {for (n in t) if (t[n] > 0) printf "%s %.1f\n", n, t[n] / hz}' |
        sort -k2 -rn | paste -sd, | sed 's/,/, /g'
}

# index_lag DATA_DIR: queue entries committed to `sightline.db` that the call index in
# `search.db` has not filed yet (read while the server runs).
index_lag() {
    python3 - "$1" <<'PY'
import sqlite3, sys
main = sqlite3.connect(f"file:{sys.argv[1]}/sightline.db?mode=ro", uri=True)
index = sqlite3.connect(f"file:{sys.argv[1]}/search.db?mode=ro", uri=True)
queued = main.execute("SELECT coalesce(max(seq), 0) FROM search_queue").fetchone()[0]
done = index.execute("SELECT coalesce(max(seq), 0) FROM progress").fetchone()[0]
print(max(queued - done, 0))
PY
}

# proc_write_bytes PID: bytes a running process has caused to be written to storage so far
# (`write_bytes` of /proc/PID/io: the WAL, checkpoints and every other file).
proc_write_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io"; }

# json_get FILE EXPR: a jq expression over a report.
json_get() { jq -r "$2" "$1"; }

# dir_size DIR: human-readable and byte size of a directory.
dir_size() {
    printf '%s (%s bytes)\n' "$(du -sh "$1" | cut -f1)" "$(du -sb "$1" | cut -f1)"
}

machine_notes() {
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
