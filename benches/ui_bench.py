"""Times the web UI in Debian's headless Chromium against a running Sightline.

Posts a 5,000-span trace and a 10-span baseline trace (OTLP/JSON, tests/e2e/big_trace.py), then
measures, median of RUNS fresh page loads each (assets cached, as for a returning user):
opening each trace (navigation start → waterfall and LLM panel rendered), and the traces page
(navigation → first rows rendered) unfiltered, filtered, and with full-text search. Prints a
markdown table. Usage: ui_bench.py BASE_URL [RUNS]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from big_trace import build  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def post(base: str, spans: int) -> str:
    trace_id, body = build(spans, service="ui-bench")
    r = requests.post(base + "/v1/traces", json=body, timeout=120)
    r.raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = requests.get(f"{base}/api/v1/traces/{trace_id}", timeout=30)
        if r.status_code == 200 and len(r.json()["spans"]) == spans:
            return trace_id
        time.sleep(0.2)
    raise SystemExit(f"trace of {spans} spans not stored in time")


def api_ms(url: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        requests.get(url, timeout=60).raise_for_status()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def page_ms(browser, url: str, ready: str, runs: int) -> float:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(url)  # warm the asset cache
    page.wait_for_selector(ready, timeout=60_000, state="attached")
    times = []
    for _ in range(runs):
        page.goto("about:blank")
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector(ready, timeout=60_000, state="attached")
        times.append((time.perf_counter() - t0) * 1000)
    context.close()
    return statistics.median(times)


def main() -> None:
    base = sys.argv[1].rstrip("/")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    big, small = post(base, 5000), post(base, 10)
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        trace_ready = "[data-testid=llm-panel]"
        small_open = page_ms(browser, f"{base}/traces/{small}", trace_ready, runs)
        rows.append(("open a 10-span trace (baseline)", api_ms(f"{base}/api/v1/traces/{small}", runs), small_open))
        big_open = page_ms(browser, f"{base}/traces/{big}", trace_ready, runs)
        rows.append(("open a 5,000-span trace", api_ms(f"{base}/api/v1/traces/{big}", runs), big_open))
        # first rows, or the "no match" answer: the page is ready either way
        row = "[data-testid=trace-row], [data-testid=no-match], [data-testid=empty]"
        for label, q in [("traces page, last 30 days", "range=30d"),
                         ("traces page, `status=error`", "range=30d&status=error"),
                         ("traces page, `service=`", "range=30d&service=ui-bench"),
                         ("traces page, full text `q=`", "range=30d&q=question")]:
            api_q = q.replace("range=30d", f"from={int(time.time() * 1000) - 30 * 86400_000}") + "&limit=100"
            rows.append((label, api_ms(f"{base}/api/v1/traces?{api_q}", runs),
                         page_ms(browser, f"{base}/traces?{q}", row, runs)))
        browser.close()
    print(f"| view | API ms (median) | page ready ms (median of {runs}) | × baseline |")
    print("|---|---|---|---|")
    for label, api, ui in rows:
        print(f"| {label} | {api:.1f} | {ui:.0f} | {ui / small_open:.2f} |")


if __name__ == "__main__":
    main()
