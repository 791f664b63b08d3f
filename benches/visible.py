#!/usr/bin/env python3
"""Waits until a server shows at least TARGET stored spans and says when that first happened.

Used after a load run to turn "acknowledged" into "persisted and visible": a server that queues
spans and acknowledges before writing them is only done when its own query API can see them.

    visible.py sightline URL TARGET LOAD_END_EPOCH_S TIMEOUT_S
    visible.py phoenix   URL TARGET LOAD_END_EPOCH_S TIMEOUT_S

sightline: sums span_count over every page of GET /api/v1/traces?limit=1000 (following
next_cursor). phoenix: the GraphQL `recordCount` of the `default` project (its span count).

A pass counts from the moment it started: whatever it found was stored by then. Prints one JSON
object: {"count", "target", "visible_after_s" (from LOAD_END to the start of the first pass that
reached TARGET, null if none did before TIMEOUT), "waited_s" (from LOAD_END to the start of the
last pass that fell short), "passes", "last_pass_s"}.
"""

import http.client
import json
import sys
import time
import urllib.parse

PHOENIX_QUERY = '{ projects { edges { node { name recordCount } } } }'


class Client:
    """One keep-alive HTTP connection to a base URL."""

    def __init__(self, base_url):
        parsed = urllib.parse.urlsplit(base_url)
        self.host = parsed.hostname
        self.port = parsed.port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data[:200]!r}")
                return json.loads(data)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


def count_sightline(client):
    total = 0
    cursor = None
    for _ in range(1_000_000):
        query = {"limit": "1000"}
        if cursor:
            query["cursor"] = cursor
        page = client.request("GET", "/api/v1/traces?" + urllib.parse.urlencode(query))
        total += sum(t["span_count"] for t in page["traces"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total
    raise RuntimeError("more than a million pages of traces")


def count_phoenix(client):
    body = json.dumps({"query": PHOENIX_QUERY}).encode()
    answer = client.request(
        "POST", "/graphql", body=body, headers={"content-type": "application/json"}
    )
    if answer.get("errors"):
        raise RuntimeError(f"graphql errors: {answer['errors']}")
    for edge in answer["data"]["projects"]["edges"]:
        if edge["node"]["name"] == "default":
            return int(edge["node"]["recordCount"])
    return 0


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("sightline", "phoenix"):
        sys.exit(__doc__)
    kind, url = sys.argv[1], sys.argv[2]
    target, load_end, timeout_s = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    counter = count_sightline if kind == "sightline" else count_phoenix
    client = Client(url)
    deadline = time.time() + timeout_s
    passes = 0
    count = 0
    last_pass_s = 0.0
    visible_after = None
    waited = 0.0
    while True:
        started = time.time()
        count = counter(client)
        last_pass_s = time.time() - started
        passes += 1
        if count >= target:
            visible_after = max(0.0, started - load_end)
            break
        waited = time.time() - load_end
        if time.time() >= deadline:
            break
        time.sleep(0.25)
    print(
        json.dumps(
            {
                "count": count,
                "target": target,
                "visible_after_s": visible_after,
                "waited_s": round(waited, 3),
                "passes": passes,
                "last_pass_s": round(last_pass_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
