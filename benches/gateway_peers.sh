#!/usr/bin/env bash
# Peer comparison for the gateway: the latency that Sightline's gateway adds to an OpenAI call,
# next to what nginx and HAProxy add as plain reverse proxies in front of the same mock provider,
# measured by the same client in one script run.
#
# Each measurement starts three processes, as in a deployment: a fresh `sightline mock-provider`
# (latency 0), the proxy under test, and `sightline gateway-bench --mock-url … --server-url …`,
# which sends the same requests to the mock directly and through the proxy in alternating blocks
# and reports "added" latency (proxy percentile minus direct percentile, same run). Sightline
# runs as `sightline serve` with its defaults (store fsynced at every commit, every call recorded);
# nginx and HAProxy forward only, with keep-alive connections to the mock and response buffering
# off, their worker count left to their defaults (one per core). The proxies take turns in each
# of ROUNDS rounds, so machine noise reaches all of them alike; the summary gives each proxy's
# median over the rounds.
#
# Besides latency, each run reports the CPU time the proxy process (with its child processes)
# and the mock used, per request that went through the proxy: what each proxy costs per call,
# recording included for Sightline.
#
# nginx (Debian's nginx-light) and HAProxy are installed with apt-get when they are missing and
# this script runs as root; a peer that cannot be had is skipped with a message.
#
# Environment:
#   ROUNDS        rounds; each measures every proxy once           (default 3)
#   RATES         open-loop rates, requests/s, comma-separated     (default 500,2000,5000)
#   STEP_S        seconds per open-loop step                        (default 6)
#   SEQUENTIAL    requests per path at concurrency 1                (default 1000)
#   STREAMS       streams per path                                  (default 20)
#   PEERS         which peers to run besides Sightline             (default "nginx haproxy");
#                 `nginx+US` is nginx with a stand-in for recording beside it: a process at
#                 nice 19 that burns US µs of CPU per call nginx forwarded, every 2 ms
#                 (benches/recording_standin.py), e.g. PEERS="nginx nginx+25 nginx+100"
#   STANDIN_IDLE  1: run the stand-in at SCHED_IDLE (chrt -i 0) instead of nice 19, so that any
#                 woken thread preempts it at once                  (default 0)
#   SIGHTLINE_BIN use this binary instead of building the release one
#
# Usage: benches/gateway_peers.sh        ROUNDS=5 RATES=5000 benches/gateway_peers.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

ROUNDS="${ROUNDS:-3}"
RATES="${RATES:-500,2000,5000}"
STEP_S="${STEP_S:-6}"
SEQUENTIAL="${SEQUENTIAL:-1000}"
STREAMS="${STREAMS:-20}"
PEERS="${PEERS:-nginx haproxy}"

sightline_bin
bench_tmpdir gateway-peers
WORK="$BENCH_TMP"

# ensure_peer NAME: true when the peer's binary is on PATH, installing it first if need be.
ensure_peer() {
    local bin pkg
    case "$1" in
        nginx | nginx+*) bin=nginx pkg=nginx-light ;;
        haproxy) bin=haproxy pkg=haproxy ;;
        *) die "unknown peer $1 (nginx or haproxy)" ;;
    esac
    command -v "$bin" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ]; then
        log "skipping $1: not installed, and installing needs root (apt-get install $pkg)"
        return 1
    fi
    log "installing $pkg"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg"; } >"$WORK/apt-$pkg.log" 2>&1; then
        log "skipping $1: apt-get install $pkg failed (see below)"
        tail -n 5 "$WORK/apt-$pkg.log" >&2
        return 1
    fi
    # The package starts a system-wide service on port 80; this script runs its own.
    if command -v systemctl >/dev/null 2>&1; then systemctl stop "$bin" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then service "$bin" stop >/dev/null 2>&1 || true; fi
    command -v "$bin" >/dev/null 2>&1
}

# wait_listening URL TIMEOUT_S: waits until anything answers HTTP at URL (any status).
wait_listening() {
    local url="$1" timeout_s="$2" start code
    start=$(date +%s)
    while true; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [ "$code" != "000" ] && [ -n "$code" ] && return 0
        [ $(( $(date +%s) - start )) -ge "$timeout_s" ] && return 1
        sleep 0.1
    done
}

# nginx_conf DIR PORT MOCK_PORT [ACCESS_LOG]: a minimal reverse-proxy configuration for nginx;
# with ACCESS_LOG, one 2-byte line per request is logged there.
nginx_conf() {
    local dir="$1" port="$2" mock_port="$3" access_log="${4:-}" log_directive="access_log off;"
    [ -n "$access_log" ] && log_directive="log_format calls \"1\"; access_log $access_log calls;"
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    $log_directive
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream mock {
        server 127.0.0.1:$mock_port;
        keepalive 512;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location = /metrics { return 200 ""; }
        location /gateway/openai/ {
            proxy_pass http://mock/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
EOF
}

# haproxy_conf DIR PORT MOCK_PORT: the same for HAProxy.
haproxy_conf() {
    local dir="$1" port="$2" mock_port="$3"
    cat >"$dir/haproxy.cfg" <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
    option http-no-delay
frontend gateway
    bind 127.0.0.1:$port
    http-request return status 200 content-type text/plain string "#" if { path /metrics }
    http-request replace-path /gateway/openai(/.*) \1
    default_backend mock
backend mock
    server mock 127.0.0.1:$mock_port
EOF
}

# measure PROXY ROUND: one gateway-bench run through PROXY; its report goes to $WORK/PROXY-ROUND.txt.
measure() {
    local proxy="$1" round="$2" mock_port proxy_port mock_pid proxy_pid dir url standin_pid=""
    dir="$WORK/$proxy-$round"
    mkdir -p "$dir"
    mock_port=$(free_port)
    "$SIGHTLINE" --log warn mock-provider --addr "127.0.0.1:$mock_port" >"$dir/mock.log" 2>&1 &
    mock_pid=$!
    BENCH_PIDS+=("$mock_pid")
    wait_listening "http://127.0.0.1:$mock_port/v1/models" 30 || die "the mock provider did not start"
    case "$proxy" in
        sightline)
            SERVE_ARGS="--openai-upstream http://127.0.0.1:$mock_port" \
                start_sightline "$dir/data" "$dir/serve.log"
            proxy_pid="$SL_PID"
            url="$SL_HTTP"
            ;;
        nginx | nginx+*)
            proxy_port=$(free_port)
            if [ "$proxy" = nginx ]; then
                nginx_conf "$dir" "$proxy_port" "$mock_port"
            else
                nginx_conf "$dir" "$proxy_port" "$mock_port" "$dir/access.log"
                local lowest=(nice -n 19)
                [ "${STANDIN_IDLE:-0}" = 1 ] && lowest=(chrt -i 0)
                "${lowest[@]}" python3 "$(dirname "$0")/recording_standin.py" "$dir/access.log" \
                    "${proxy#nginx+}" &
                standin_pid=$!
                BENCH_PIDS+=("$standin_pid")
            fi
            nginx -c "$dir/nginx.conf" >"$dir/proxy.log" 2>&1 &
            proxy_pid=$!
            BENCH_PIDS+=("$proxy_pid")
            url="http://127.0.0.1:$proxy_port"
            ;;
        haproxy)
            proxy_port=$(free_port)
            haproxy_conf "$dir" "$proxy_port" "$mock_port"
            haproxy -db -f "$dir/haproxy.cfg" >"$dir/proxy.log" 2>&1 &
            proxy_pid=$!
            BENCH_PIDS+=("$proxy_pid")
            url="http://127.0.0.1:$proxy_port"
            ;;
    esac
    wait_listening "$url/metrics" 30 || { tail -n 20 "$dir"/*.log >&2; die "$proxy did not start"; }
    log "round $round: $proxy"
    timeout --signal=INT --kill-after=15 600 \
        "$SIGHTLINE" --log warn gateway-bench --mock-url "http://127.0.0.1:$mock_port" \
        --server-url "$url" --sequential "$SEQUENTIAL" --rates "$RATES" --step-s "$STEP_S" \
        --streams "$STREAMS" >"$WORK/$proxy-$round.txt" 2>&1 \
        || { cat "$WORK/$proxy-$round.txt" >&2; die "gateway-bench through $proxy failed"; }
    # CPU for the whole run (warm-up, every load, streams) over the requests sent through the
    # proxy, which gateway-bench counts itself.
    # A recording stand-in's CPU counts as its proxy's.
    local proxy_cpu
    proxy_cpu=$(tree_cpu_s "$proxy_pid")
    if [ -n "$standin_pid" ]; then
        proxy_cpu=$(awk -v a="$proxy_cpu" -v b="$(tree_cpu_s "$standin_pid")" 'BEGIN {printf "%.2f", a + b}')
        stop_tracked "$standin_pid"
    fi
    echo "$proxy_cpu $(tree_cpu_s "$mock_pid")" >"$WORK/$proxy-$round.cpu"
    stop_tracked "$proxy_pid"
    stop_tracked "$mock_pid"
}

proxies=(sightline)
for peer in $PEERS; do
    ensure_peer "$peer" && proxies+=("$peer")
done

machine_notes
echo "proxies: ${proxies[*]}; rounds: $ROUNDS; rates: $RATES req/s, $STEP_S s each; $SEQUENTIAL requests per path at concurrency 1; $STREAMS streams per path"
for round in $(seq 1 "$ROUNDS"); do
    for proxy in "${proxies[@]}"; do
        measure "$proxy" "$round"
    done
done

python3 - "$WORK" "$ROUNDS" "${proxies[@]}" <<'EOF'
import re, statistics, sys

work, rounds, proxies = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
# One row per load of a gateway-bench report: label -> (added p50, added p99), in µs.
row = re.compile(r"^(concurrency 1|open loop [0-9.]+/s)\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s+\S+\s+\S+\s+(\S+)\s+(\d+)$")
stream = re.compile(r"^(time to first chunk|inter-chunk gap)\s+\S+\s+\S+\s+(\S+)\s+\S+\s+\S+\s+(\S+)$")
identical = re.compile(r"stream bytes identical to direct: (\d+)/(\d+)")
results = {}
for proxy in proxies:
    for r in range(1, rounds + 1):
        with open(f"{work}/{proxy}-{r}.txt") as f:
            for line in f:
                line = line.rstrip()
                m = row.match(line) or stream.match(line)
                if m:
                    results.setdefault(m.group(1), {}).setdefault(proxy, []).append(
                        (float(m.group(2)), float(m.group(3))))
                m = identical.search(line)
                if m and m.group(1) != m.group(2):
                    print(f"warning: {proxy} round {r}: only {m.group(1)}/{m.group(2)} streams identical")

cpu = {}
through = re.compile(r"^requests through the proxy: (\d+)$")
for proxy in proxies:
    for r in range(1, rounds + 1):
        n = 0
        with open(f"{work}/{proxy}-{r}.txt") as f:
            for line in f:
                m = through.match(line.rstrip())
                if m:
                    n = int(m.group(1))
        with open(f"{work}/{proxy}-{r}.cpu") as f:
            proxy_s, mock_s = (float(x) for x in f.read().split())
        if n:
            cpu.setdefault(proxy, []).append((proxy_s * 1e6 / n, mock_s * 1e6 / (2 * n)))

print()
print("CPU per request through the proxy, µs: median over rounds (each round's value in brackets);")
print("the mock's per request it served (direct and proxied)")
for proxy in proxies:
    vals = cpu.get(proxy, [])
    if vals:
        each = ", ".join(f"{v[0]:.0f}" for v in vals)
        print(f"{proxy:<10} proxy {statistics.median(v[0] for v in vals):>7.1f} {'[' + each + ']':<20}"
              f" mock {statistics.median(v[1] for v in vals):>6.1f}")

print()
print("added latency, µs: median over rounds (each round's value in brackets)")
print(f"{'load':<22} {'proxy':<10} {'added p50':>10} {'added p99':>10}   p99 by round")
for label, by_proxy in results.items():
    for proxy in proxies:
        vals = by_proxy.get(proxy, [])
        if not vals:
            continue
        p50 = statistics.median(v[0] for v in vals)
        p99 = statistics.median(v[1] for v in vals)
        each = ", ".join(f"{v[1]:.0f}" for v in vals)
        print(f"{label:<22} {proxy:<10} {p50:>10.1f} {p99:>10.1f}   [{each}]")
EOF
