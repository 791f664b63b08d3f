"""The web UI in a real browser: Debian's Chromium driven by Playwright against a running
``sightline demo`` (its own process, free ports, fresh data directory).

Every test collects the page's console errors and uncaught exceptions and fails on any. Screenshots
of each page go to ``tests/e2e/screenshots/`` (``SIGHTLINE_SCREENSHOTS`` overrides; gitignored).

Tests marked ``needs_stats`` exercise the Overview and Models pages, which read only
``/api/v1/stats`` and ``/api/v1/timeseries`` (the rollups).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from playwright import sync_api as playwright_sync

from big_trace import build as build_big_trace
from conftest import REPO, _binary, free_port, wait_until

CHROMIUM = os.environ.get("SIGHTLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("SIGHTLINE_SCREENSHOTS", REPO / "tests" / "e2e" / "screenshots"))
TIMEOUT_MS = 15_000


class Demo:
    def __init__(self, proc, port, workdir):
        self.proc, self.port, self.workdir = proc, port, workdir
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        r = requests.get(self.base + "/api/v1" + path, params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def log_tail(self):
        try:
            return "\n".join((self.workdir / "demo.log").read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return ""


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start(binary, workdir: Path, command: str, *extra: str) -> Demo:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    http, grpc = free_port(), free_port()
    log = open(workdir / "demo.log", "ab")
    proc = subprocess.Popen([str(binary), command, "--http-addr", f"127.0.0.1:{http}",
                             "--grpc-addr", f"127.0.0.1:{grpc}", "--data-dir", str(workdir / "data"), *extra],
                            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    log.close()
    demo = Demo(proc, http, workdir)

    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"sightline {command} exited with {proc.returncode}:\n{demo.log_tail()}")
        try:
            return requests.get(demo.base + "/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    wait_until(ready, timeout=60, what=f"sightline {command} to be ready")
    return demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    binary = _binary()
    if not binary.is_file():
        pytest.fail(f"no sightline binary at {binary}")
    d = _start(binary, tmp_path_factory.mktemp("ui-demo"), "demo", "--rate", "2")
    try:
        # The demo sends an hour of history first; wait until most of it is queryable.
        wait_until(lambda: len(d.api("/traces", limit=150)["traces"]) >= 150, timeout=90,
                   what="the demo's history to be stored")
        yield d
    finally:
        _stop(d.proc)


@pytest.fixture(scope="module")
def stats_available(demo) -> bool:
    return requests.get(demo.base + "/api/v1/stats", params={"group_by": "model"}, timeout=10).status_code != 404


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/install-test-deps.sh")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser, request, stats_available):
    """A fresh page that fails the test on any console error or uncaught exception. While the
    metrics endpoints are not there, their 404s are the only errors tolerated."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors = []

    def on_console(msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if not stats_available and re.search(r"/api/v1/(stats|timeseries)", url):
            return
        errors.append(f"console: {msg.text} ({url})")
    pg.on("console", on_console)
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    yield pg
    context.close()
    assert not errors, "\n".join(errors)


def shot(pg, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def row_ids(pg, selector="[data-testid=trace-row]", attr="data-trace-id"):
    return [e.get_attribute(attr) for e in pg.query_selector_all(selector)]


# --- traces -------------------------------------------------------------------------------------

def test_ui_root_and_deep_links_serve_the_app(demo):
    for path in ["/", "/traces", "/traces/" + "ab" * 16, "/sessions/x?y=1", "/users", "/models"]:
        r = requests.get(demo.base + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html"), path
        assert '<div id="app">' in r.text
    asset = re.search(r'src="(/assets/[^"]+\.js)"', requests.get(demo.base + "/", timeout=10).text).group(1)
    r = requests.get(demo.base + asset, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "immutable" in r.headers["cache-control"]
    # the API keeps answering JSON, not the app
    assert requests.get(demo.base + "/api/v1/nope", timeout=10).json()["error"]["code"]


def test_ui_traces_page_lists_traces(demo, page):
    page.goto(demo.base + "/traces")
    page.wait_for_selector("[data-testid=trace-row]")
    ids = row_ids(page)
    assert len(ids) >= 10
    # the page shows what the API lists (the demo keeps adding traces, so compare a stable one)
    older = demo.api("/traces", limit=12)["traces"][-1]
    assert older["trace_id"] in ids
    row = page.locator(f"[data-trace-id='{older['trace_id']}']")
    assert older["name"] in row.inner_text() and older["service"] in row.inner_text()
    # windowed: loaded traces beyond the viewport are not in the DOM
    loaded = int(page.locator("[data-testid=trace-count]").inner_text().split()[0].rstrip("+"))
    assert loaded >= 100 and len(ids) < loaded
    shot(page, "traces")


def test_ui_trace_filters_and_search_change_results(demo, page):
    errors = demo.api("/traces", status="error", limit=50)["traces"]
    assert errors, "the demo produces failing traces"
    page.goto(demo.base + "/traces?range=24h")
    page.wait_for_selector("[data-testid=trace-row]")
    page.select_option("[data-testid=filter-status]", "error")
    page.click("[data-testid=apply]")
    page.wait_for_url(re.compile(r"status=error"))
    page.wait_for_function("() => document.querySelectorAll('[data-testid=trace-row] .badge-ok').length === 0"
                           " && document.querySelectorAll('[data-testid=trace-row]').length > 0")
    badges = page.locator("[data-testid=trace-row] .badge").all_inner_texts()
    assert badges and set(badges) == {"error"}

    user = errors[0]["user_id"]
    assert user
    page.goto(demo.base + "/traces")
    page.fill("[data-testid=filter-user_id]", user)
    page.click("[data-testid=apply]")
    page.wait_for_url(re.compile(r"user_id="))
    wait_until(lambda: page.locator("[data-testid=trace-row]").count() > 0 and
               set(page.locator("[data-testid=trace-row] .c-id").all_inner_texts()[::2]) == {user},
               what="only the user's traces")

    # full-text search: a word from a stored completion finds its trace, and nonsense finds none
    calls = demo.api("/calls", limit=50)["calls"]
    text = next(m["content"] for c in calls for m in c["output_messages"] if m.get("content"))
    word = max(re.findall(r"[A-Za-z]{6,}", text), key=len)
    expected = {t["trace_id"] for t in demo.api("/traces", q=word, limit=100, **{"from": 0})["traces"]}
    assert expected
    page.goto(demo.base + "/traces?range=30d")
    page.fill("[data-testid=filter-q]", word)
    page.press("[data-testid=filter-q]", "Enter")
    page.wait_for_url(re.compile(r"q=" + word))
    page.wait_for_selector("[data-testid=trace-row]")
    assert set(row_ids(page)) <= expected | {t["trace_id"] for t in demo.api("/traces", q=word, limit=100)["traces"]}
    page.fill("[data-testid=filter-q]", "zzqxnonexistentword")
    page.click("[data-testid=apply]")
    page.wait_for_selector("[data-testid=no-match]")
    assert page.locator("[data-testid=trace-row]").count() == 0


def test_ui_shows_token_logprobs_as_confidence(demo, page):
    # The demo asks for logprobs on some of its gateway calls; the LLM panel colours each output
    # token by its probability and lists the alternatives in its tooltip.
    def with_logprobs():
        calls = demo.api("/calls", service="demo-gateway-app", limit=200)["calls"]
        return next((c for c in calls if c.get("logprobs")), None)
    call = wait_until(with_logprobs, timeout=30, what="a gateway call with logprobs")
    page.goto(f"{demo.base}/traces/{call['trace_id']}?span={call['span_id']}")
    page.wait_for_selector("[data-testid=logprobs]")
    recorded = call["logprobs"]
    recorded = recorded["content"] if isinstance(recorded, dict) else recorded
    tokens = page.locator("[data-testid=logprobs] .tok")
    assert tokens.count() == len(recorded)
    first = recorded[0]
    assert tokens.first.inner_text() == first["token"]
    assert tokens.first.get_attribute("title").startswith("p=")
    shot(page, "logprobs")


def test_ui_trace_opens_with_its_messages(demo, page):
    page.goto(demo.base + "/traces")
    page.wait_for_selector("[data-testid=trace-row]")

    def chat(span):
        llm = span["llm"]
        return llm and llm["input_messages"] and (llm["response_model"] or llm["request_model"])
    # a trace in view (the list is windowed) with a chat call among several spans (the demo's
    # gateway traffic makes single-span traces too)
    target = next(t for t in (demo.api(f"/traces/{i}") for i in row_ids(page)[:15])
                  if len(t["spans"]) > 1 and any(chat(s) for s in t["spans"])
                  and all(s["status"] != "error" for s in t["spans"]))
    page.click(f"[data-trace-id='{target['trace_id']}']")
    page.wait_for_url(re.compile(target["trace_id"]))
    page.wait_for_selector("[data-testid=llm-panel]")
    detail = demo.api(f"/traces/{target['trace_id']}")
    assert page.locator("[data-testid=span-count]").inner_text() == str(len(detail["spans"]))
    assert page.locator("[data-testid=span-row]").count() == len(detail["spans"])
    # the LLM panel shows the selected call's messages with their roles, and its output
    selected = page.locator("[data-testid=span-row].selected").get_attribute("data-span-id")
    call = next(s["llm"] for s in detail["spans"] if s["span_id"] == selected)
    assert call == next(s["llm"] for s in detail["spans"] if chat(s)), "the first chat call is shown first"
    roles = page.locator("[data-testid=input-messages] [data-testid=message]").evaluate_all(
        "els => els.map(e => e.dataset.role)")
    assert roles == [m["role"] for m in call["input_messages"]]
    first_user = next(m["content"] for m in call["input_messages"] if m["role"] == "user" and m.get("content"))
    assert first_user[:40] in page.locator("[data-testid=input-messages]").inner_text()
    if call["output_messages"]:
        assert page.locator("[data-testid=output-message]").count() == len(call["output_messages"])
    model = call["response_model"] or call["request_model"]
    assert model in page.locator("[data-testid=llm-model]").inner_text()
    assert str(call["usage"]["input_tokens"]) in page.locator("[data-testid=llm-tokens]").inner_text().replace(",", "")
    shot(page, "trace")

    # clicking another span selects it and shows its raw attributes
    other = next(s for s in detail["spans"] if s["span_id"] != selected)
    page.click(f"[data-span-id='{other['span_id']}']")
    page.wait_for_url(re.compile("span=" + other["span_id"]))
    assert other["name"] in page.locator("[data-testid=span-detail] h2").inner_text()


def test_ui_deep_links_restore_state(demo, page):
    page.goto(demo.base + "/traces?status=error&range=7d&q=weather")
    page.wait_for_selector("[data-testid=filters]")
    assert page.locator("[data-testid=filter-status]").input_value() == "error"
    assert page.locator("[data-testid=range]").input_value() == "7d"
    assert page.locator("[data-testid=filter-q]").input_value() == "weather"

    t = next(t for t in demo.api("/traces", limit=20)["traces"] if t["span_count"] > 2)
    spans = demo.api(f"/traces/{t['trace_id']}")["spans"]
    pick = spans[-1]
    page.goto(f"{demo.base}/traces/{t['trace_id']}?span={pick['span_id']}")
    page.wait_for_selector("[data-testid=span-row].selected")
    assert page.locator("[data-testid=span-row].selected").get_attribute("data-span-id") == pick["span_id"]
    assert pick["name"] in page.locator("[data-testid=span-detail] h2").inner_text()
    # back/forward keep working with client-side navigation
    page.click("[data-testid=nav-users]")
    page.wait_for_selector("[data-testid=page-users]")
    page.go_back()
    page.wait_for_selector("[data-testid=span-row].selected")


def test_ui_5000_span_trace_opens_windowed(demo, page):
    trace_id, body = build_big_trace(5000, run_id="ui")
    r = requests.post(demo.base + "/v1/traces", json=body, timeout=60)
    assert r.status_code == 200, r.text
    wait_until(lambda: len(demo.api(f"/traces/{trace_id}")["spans"]) == 5000, timeout=30, what="the big trace")
    t0 = time.monotonic()
    page.goto(f"{demo.base}/traces/{trace_id}")
    page.wait_for_selector("[data-testid=llm-panel]")
    elapsed = time.monotonic() - t0
    print(f"5,000-span trace: page load to LLM panel {elapsed * 1000:.0f} ms")
    assert page.locator("[data-testid=span-count]").inner_text() == "5000"
    rendered = page.locator("[data-testid=span-row]").count()
    assert 0 < rendered < 200, f"{rendered} rows in the DOM: the waterfall must be windowed"
    # scrolling the waterfall to the end renders the last span of the tree (the latest child)
    last = max((s["name"] for s in body["resourceSpans"][0]["scopeSpans"][0]["spans"] if "#" in s["name"]),
               key=lambda name: int(name.rsplit("#", 1)[1]))
    assert page.locator(f"[data-testid=span-row]:has-text('{last}')").count() == 0
    page.locator("[data-testid=waterfall]").evaluate("e => { e.scrollTop = e.scrollHeight; }")
    page.wait_for_selector(f"[data-testid=span-row]:has-text('{last}')")
    shot(page, "trace-5000")
    # collapsing the root folds the whole tree into one row, and expanding brings it back
    page.locator("[data-testid=waterfall]").evaluate("e => { e.scrollTop = 0; }")
    page.locator("[data-testid=span-row]").first.locator(".twisty").click()
    wait_until(lambda: page.locator("[data-testid=span-row]").count() == 1, what="a collapsed tree")
    page.locator("[data-testid=span-row]").first.locator(".twisty").click()
    wait_until(lambda: page.locator("[data-testid=span-row]").count() > 1, what="an expanded tree")


# --- sessions and users -------------------------------------------------------------------------

def test_ui_sessions_replay_turn_by_turn(demo, page):
    page.goto(demo.base + "/sessions")
    page.wait_for_selector("[data-testid=session-row]")
    shot(page, "sessions")
    sessions = demo.api("/sessions", limit=50)["sessions"]
    s = max(sessions, key=lambda s: s["trace_count"])
    page.goto(f"{demo.base}/sessions/{s['session_id']}")
    page.wait_for_selector("[data-testid=turn] [data-testid=message]")
    detail = demo.api(f"/sessions/{s['session_id']}")
    assert page.locator("[data-testid=turn]").count() == len(detail["traces"])
    assert page.locator("[data-testid=turn] [data-role=user]").count() >= 1
    shot(page, "session")


def test_ui_users_page_lists_users_and_links_to_traces(demo, page):
    page.goto(demo.base + "/users")
    page.wait_for_selector("[data-testid=user-row]")
    users = demo.api("/users", limit=100)["users"]
    names = page.locator("[data-testid=user-row] .c-name").all_inner_texts()
    assert set(names) <= {u["user_id"] for u in users} | set(names)
    assert users[0]["user_id"] in names
    shot(page, "users")
    page.click(f"[data-testid=user-row] a[href='/traces?user_id={users[0]['user_id']}']")
    page.wait_for_selector("[data-testid=trace-row]")
    assert page.locator("[data-testid=filter-user_id]").input_value() == users[0]["user_id"]


def test_ui_empty_server_tells_how_to_send_data(tmp_path, browser):
    server = _start(_binary(), tmp_path, "serve")
    try:
        context = browser.new_context()
        pg = context.new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        for path in ["/traces", "/sessions", "/users"]:
            pg.goto(server.base + path)
            pg.wait_for_selector("[data-testid=empty]", timeout=TIMEOUT_MS)
            text = pg.locator("[data-testid=empty]").inner_text()
            assert "OTEL_EXPORTER_OTLP_ENDPOINT" in text
            assert f"127.0.0.1:{server.port}/gateway/openai/v1" in text
        shot(pg, "empty")
        context.close()
        assert not errors
    finally:
        _stop(server.proc)


# --- overview and models (need /api/v1/stats and /api/v1/timeseries) ----------------------------

needs_stats = pytest.mark.needs_stats


@needs_stats
def test_ui_overview_shows_rollups(demo, page, stats_available):
    assert stats_available, "/api/v1/stats must answer"
    since = lambda hours: {"from": int(time.time() * 1000) - hours * 3600_000}  # noqa: E731
    # The demo keeps sending: a model may appear between the page's request and ours, so the
    # page's rows are bounded by the groups before and after it loaded.
    before = demo.api("/stats", group_by="model", **since(6))["groups"]
    page.goto(demo.base + "/?range=6h")
    page.wait_for_selector("[data-testid=kpi-calls]")
    calls = int(page.locator("[data-testid=kpi-calls] .stat-value").inner_text().replace(",", ""))
    assert calls > 0
    page.wait_for_selector("[data-testid=chart-calls] canvas")
    assert page.locator("[data-testid=charts] canvas").count() >= 6
    page.wait_for_selector("[data-testid=group-row]")
    rows = page.locator("[data-testid=group-row]").count()
    after = demo.api("/stats", group_by="model", **since(6))["groups"]
    assert len(before) <= rows <= len(after)
    shot(page, "overview")
    # the group-by picker changes the breakdown and the URL
    page.select_option("[data-testid=group-by]", "service")
    page.wait_for_url(re.compile("group_by=service"))
    services = demo.api("/stats", group_by="service", **{"from": int(time.time() * 1000) - 6 * 3600_000})["groups"]
    wait_until(lambda: page.locator("[data-testid=group-row]").count() == len(services), what="service rows")
    page.reload()
    assert page.locator("[data-testid=group-by]").input_value() == "service"


@needs_stats
def test_ui_models_side_by_side(demo, page, stats_available):
    assert stats_available, "/api/v1/stats must answer"
    since = {"from": int(time.time() * 1000) - 24 * 3600_000}
    before = demo.api("/stats", group_by="model", **since)["groups"]
    page.goto(demo.base + "/models?range=24h")
    page.wait_for_selector("[data-testid=model-row]")
    rows = page.locator("[data-testid=model-row]").count()
    after = demo.api("/stats", group_by="model", **since)["groups"]
    assert len(before) <= rows <= len(after)
    shot(page, "models")
    page.select_option("[data-testid=models-by]", "response_model")
    page.wait_for_url(re.compile("by=response_model"))
    page.wait_for_selector("[data-testid=model-row]")
