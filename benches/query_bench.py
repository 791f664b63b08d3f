#!/usr/bin/env python3
"""Latency of Sightline's JSON API over a filled store: p50/p95/p99 per kind of query.

    query_bench.py BASE_URL [--requests 200] [--warmup 5] [--budget-s 60] [--seed 1] [--json FILE]

Filter values (models, users, services, sessions, words for full-text search, trace ids) are read
from the store first, through the same API, so the queries ask for data that exists. Requests
are sent one at a time over one keep-alive connection, so each latency is one request's own
server time plus loopback. A query that is still slow after --budget-s seconds stops with fewer
requests (the table says how many). The table is printed as markdown.
"""

import argparse
import http.client
import json
import random
import re
import sys
import time
import urllib.parse


class Client:
    """One keep-alive HTTP connection; reconnects once if the server closed it."""

    def __init__(self, base_url, timeout_s=60):
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.timeout_s = parsed.hostname, parsed.port, timeout_s
        self.conn = None

    def get(self, path):
        """Returns (status, decoded JSON or None, seconds)."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                self.conn.connect()
            started = time.perf_counter()
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
                continue
            elapsed = time.perf_counter() - started
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            return resp.status, data, elapsed
        raise RuntimeError("unreachable")

    def get_ok(self, path):
        status, data, _ = self.get(path)
        if status != 200:
            raise SystemExit(f"GET {path}: HTTP {status}: {data}")
        return data


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def discover(client, rng, want_ids):
    """Reads filter values and trace ids out of the store."""
    first = client.get_ok("/api/v1/traces?limit=1000")["traces"]
    if not first:
        raise SystemExit("the store has no traces: fill it first")
    calls = client.get_ok("/api/v1/calls?limit=500")["calls"]
    services = sorted({t["service"] for t in first if t.get("service")})
    users = sorted({t["user_id"] for t in first if t.get("user_id")})
    sessions = sorted({t["session_id"] for t in first if t.get("session_id")})
    models = sorted({c["request_model"] for c in calls if c.get("request_model")})
    words = set()
    for call in calls:
        for message in call.get("input_messages") or []:
            if message.get("role") == "user" and message.get("content"):
                words.update(w.lower() for w in re.findall(r"[A-Za-z]{7,}", message["content"]))
    words = sorted(words)
    rng.shuffle(words)
    words = words[:8]

    # Trace ids from all over the time range: a binary search on `to` finds the oldest trace,
    # then pages ending at random moments between it and the newest give the ids.
    newest_ms = max(t["start_time_unix_nano"] for t in first) // 1_000_000 + 1
    lo, hi = 0, newest_ms
    while hi - lo > 1000:
        mid = (lo + hi) // 2
        if client.get_ok(f"/api/v1/traces?limit=1&to={mid}")["traces"]:
            hi = mid
        else:
            lo = mid
    oldest_ms = hi
    ids = []
    for _ in range(want_ids * 4):
        if len(ids) >= want_ids:
            break
        to_ms = rng.randint(oldest_ms, newest_ms)
        page = client.get_ok(f"/api/v1/traces?limit=2&to={to_ms}")
        ids.extend(t["trace_id"] for t in page["traces"])
    while len(ids) < want_ids:
        ids.append(rng.choice(first)["trace_id"])
    rng.shuffle(ids)
    return dict(services=services, users=users, sessions=sessions, models=models, words=words,
                trace_ids=ids[:want_ids], oldest_ms=oldest_ms, newest_ms=newest_ms)


def count_rows(data):
    if not isinstance(data, dict):
        return 0
    for key in ("traces", "calls", "sessions", "users", "spans"):
        if isinstance(data.get(key), list):
            return len(data[key])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests per query first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget-s", type=float, default=60,
                        help="stop timing a query after this many seconds (fewer requests)")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    client = Client(args.base_url)

    found = discover(client, rng, args.requests)
    print(f"filter values: {len(found['models'])} models, {len(found['users'])} users, "
          f"{len(found['services'])} services, {len(found['sessions'])} sessions, "
          f"words {found['words']}, {len(found['trace_ids'])} trace ids", file=sys.stderr)
    for key in ("models", "users", "services", "sessions"):
        if not found[key]:
            raise SystemExit(f"no {key} found in the store to filter by")
    if not found["words"]:
        # A store filled without message content has nothing to search.
        print("no message words in the store: the full-text query is left out", file=sys.stderr)

    q = urllib.parse.quote
    pick = rng.choice
    ids = iter(found["trace_ids"] * 2)
    queries = [
        ("GET /api/v1/traces?limit=50", lambda: "/api/v1/traces?limit=50"),
        ("traces ?model=M", lambda: f"/api/v1/traces?limit=50&model={q(pick(found['models']))}"),
        ("traces ?user_id=U", lambda: f"/api/v1/traces?limit=50&user_id={q(pick(found['users']))}"),
        ("traces ?session_id=S", lambda: f"/api/v1/traces?limit=50&session_id={q(pick(found['sessions']))}"),
        ("traces ?status=error", lambda: "/api/v1/traces?limit=50&status=error"),
        ("traces ?service=S", lambda: f"/api/v1/traces?limit=50&service={q(pick(found['services']))}"),
        ("traces ?q=WORD (full text)", lambda: f"/api/v1/traces?limit=50&q={q(pick(found['words']))}"),
        ("traces ?attr.gen_ai.request.model=M", lambda: f"/api/v1/traces?limit=50&attr.gen_ai.request.model={q(pick(found['models']))}"),
        ("traces ?model=M&status=error", lambda: f"/api/v1/traces?limit=50&model={q(pick(found['models']))}&status=error"),
        ("GET /api/v1/traces/{id} (random ids)", lambda: f"/api/v1/traces/{next(ids)}"),
        ("GET /api/v1/calls?limit=50", lambda: "/api/v1/calls?limit=50"),
        ("calls ?model=M", lambda: f"/api/v1/calls?limit=50&model={q(pick(found['models']))}"),
        ("calls ?user_id=U", lambda: f"/api/v1/calls?limit=50&user_id={q(pick(found['users']))}"),
        ("calls ?session_id=S", lambda: f"/api/v1/calls?limit=50&session_id={q(pick(found['sessions']))}"),
        ("calls ?q=WORD (full text)", lambda: f"/api/v1/calls?limit=50&q={q(pick(found['words']))}"),
        ("GET /api/v1/sessions?limit=50", lambda: "/api/v1/sessions?limit=50"),
        ("GET /api/v1/sessions/{id}", lambda: f"/api/v1/sessions/{q(pick(found['sessions']))}"),
        ("GET /api/v1/users?limit=50", lambda: "/api/v1/users?limit=50"),
        ("sessions ?model=M", lambda: f"/api/v1/sessions?limit=50&model={q(pick(found['models']))}"),
        ("users ?status=error", lambda: "/api/v1/users?limit=50&status=error"),
        ("sessions ?q=WORD (full text)", lambda: f"/api/v1/sessions?limit=50&q={q(pick(found['words']))}"),
        ("users ?q=WORD (full text)", lambda: f"/api/v1/users?limit=50&q={q(pick(found['words']))}"),
    ]

    if not found["words"]:
        queries = [(n, f) for n, f in queries if "full text" not in n]

    results = []
    for name, make_path in queries:
        warm_until = time.perf_counter() + args.budget_s / 4
        for _ in range(args.warmup):
            if time.perf_counter() > warm_until:
                break
            client.get(make_path())
        latencies, rows, errors, example = [], 0, {}, None
        deadline = time.perf_counter() + args.budget_s
        for _ in range(args.requests):
            if time.perf_counter() > deadline:
                break
            path = make_path()
            example = example or path
            status, data, elapsed = client.get(path)
            if status == 200:
                latencies.append(elapsed * 1000)
                rows += count_rows(data)
            else:
                errors[status] = errors.get(status, 0) + 1
        latencies.sort()
        result = dict(
            query=name, example=example, requests=args.requests, ok=len(latencies),
            errors=errors, avg_rows=rows / max(1, len(latencies)),
            p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
            p99_ms=percentile(latencies, 99), max_ms=latencies[-1] if latencies else float("nan"),
        )
        results.append(result)
        print(f"  {name}: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
              + (f", errors {errors}" if errors else ""), file=sys.stderr)

    print("| query | requests | rows per answer | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        errs = "" if not r["errors"] else " (errors: " + ", ".join(f"{n}x HTTP {s}" for s, n in r["errors"].items()) + ")"
        print(f"| {r['query']} | {r['ok']}{errs} | {r['avg_rows']:.1f} | {r['p50_ms']:.2f} "
              f"| {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(filters=found | {"trace_ids": len(found["trace_ids"])}, results=results), f, indent=1)


if __name__ == "__main__":
    main()
