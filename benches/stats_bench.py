#!/usr/bin/env python3
"""Times /api/v1/stats and /api/v1/timeseries against a running Sightline (the rollups of
whatever it stores): p50/p95/max over REPS sequential keep-alive requests per query.

Usage: benches/stats_bench.py http://127.0.0.1:4318 [REPS]
"""

import http.client
import json
import sys
import time
import urllib.parse

QUERIES = [
    ("stats?group_by=model (7 d)", "/api/v1/stats?group_by=model&from={d7}"),
    ("stats?group_by=service&status=error (7 d)", "/api/v1/stats?group_by=service&status=error&from={d7}"),
    ("stats?group_by=provider (24 h)", "/api/v1/stats?group_by=provider&from={d1}"),
    ("stats (1 h)", "/api/v1/stats?from={h1}"),
    ("timeseries latency_p95 by model (7 d, default step)", "/api/v1/timeseries?metric=latency_p95&group_by=model&from={d7}"),
    ("timeseries latency_p95 by model, step 1h (7 d)", "/api/v1/timeseries?metric=latency_p95&step=1h&group_by=model&from={d7}"),
    ("timeseries calls by service, step 1d (7 d)", "/api/v1/timeseries?metric=calls&step=1d&group_by=service&from={d7}"),
    ("timeseries cost_usd, step 1h (7 d)", "/api/v1/timeseries?metric=cost_usd&step=1h&from={d7}"),
    ("timeseries error_rate, step 5m (24 h)", "/api/v1/timeseries?metric=error_rate&step=5m&from={d1}"),
    ("stats?group_by=user_id (7 d)", "/api/v1/stats?group_by=user_id&from={d7}"),
]


def main():
    base = urllib.parse.urlparse(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=120)
    now = int(time.time() * 1000)
    ranges = dict(h1=now - 3600_000, d1=now - 86400_000, d7=now - 7 * 86400_000)
    print("| request | groups or series | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, path in QUERIES:
        path = path.format(**ranges)
        times, size = [], 0
        for i in range(reps + 2):
            t = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = (time.perf_counter() - t) * 1000
            if resp.status != 200:
                raise SystemExit(f"GET {path}: HTTP {resp.status}: {body[:300]!r}")
            if i >= 2:  # two warm-up requests
                times.append(elapsed)
            data = json.loads(body)
            size = len(data.get("groups", data.get("series", [])))
        times.sort()
        p50 = times[len(times) // 2]
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(f"| `{name}` | {size} | {p50:.1f} | {p95:.1f} | {times[-1]:.1f} |")


if __name__ == "__main__":
    main()
