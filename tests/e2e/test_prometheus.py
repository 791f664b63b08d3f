"""A real Prometheus server (the Debian package, installed by scripts/install-test-deps.sh)
scrapes Sightline's /metrics on loopback, and what it stored agrees with /api/v1/stats."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from conftest import free_port, wait_until
from otel_helpers import NS, current_convention_span, flush, now_ns, span_exporter, tracer_provider

CALLS = 6
ERRORS = 2


@pytest.fixture()
def prometheus(sightline, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("no `prometheus` on PATH: run scripts/install-test-deps.sh as root "
                    "(it installs the Debian package)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: sightline\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{sightline.http_port}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "prometheus.log").read_text()[-3000:])
            try:
                return requests.get(base + "/-/ready", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_until(ready, timeout=60, what="prometheus to be ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(base: str, promql: str) -> float | None:
    r = requests.get(base + "/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_what_stats_reports(sightline, prometheus, run_id):
    service = f"e2e-prom-{run_id}"
    provider, recording = tracer_provider(span_exporter("http-protobuf", sightline), service)
    tracer = provider.get_tracer("sightline.e2e.prometheus", "1.0")
    t0 = now_ns() - 60 * NS
    for i in range(CALLS):
        span, end, _ = current_convention_span(
            tracer, session=f"s-{run_id}", user=f"u-{run_id}", start_ns=t0 + i * NS,
            input_tokens=100 + i, output_tokens=10 + i,
            status_error="rate_limited" if i < ERRORS else None)
        span.end(end_time=end)
    flush(provider, recording)
    provider.shutdown()

    stats = wait_until(
        lambda: (lambda g: g if g and g[0]["calls"] == CALLS else None)(
            sightline.api("/api/v1/stats", service=service)["groups"]),
        what="the calls in /api/v1/stats")[0]
    assert stats["errors"] == ERRORS

    sel = f'service_name="{service}"'
    wanted = {
        f"sum(gen_ai_client_operation_duration_seconds_count{{{sel}}})": stats["calls"],
        f"sum(sightline_gen_ai_calls_total{{{sel}}})": stats["calls"],
        f"sum(sightline_gen_ai_errors_total{{{sel}}})": stats["errors"],
        f'sum(sightline_gen_ai_tokens_total{{{sel},gen_ai_token_type="input"}})': stats["input_tokens"],
        f'sum(gen_ai_client_token_usage_sum{{{sel},gen_ai_token_type="output"}})': stats["output_tokens"],
        # Tokens per call have buckets: every call used 100 + i < 1,024 input tokens, more than 64.
        f'sum(gen_ai_client_token_usage_count{{{sel},gen_ai_token_type="input"}})': stats["calls"],
        f'sum(gen_ai_client_token_usage_bucket{{{sel},gen_ai_token_type="input",le="1024"}})': stats["calls"],
        f'sum(gen_ai_client_token_usage_bucket{{{sel},gen_ai_token_type="input",le="64"}})': 0,
        f"sum(sightline_gen_ai_cost_usd_total{{{sel}}})": stats["cost_usd"],
        # Latency: the histogram's sum is the exact sum of durations, in seconds.
        f"sum(gen_ai_client_operation_duration_seconds_sum{{{sel}}})":
            stats["latency_ms"]["mean"] * stats["calls"] / 1000.0,
        f'sum(gen_ai_client_operation_duration_seconds_bucket{{{sel},le="+Inf"}})': stats["calls"],
    }

    def scraped():
        got = {q: query(prometheus, q) for q in wanted}
        return got if all(v is not None for v in got.values()) else None

    got = wait_until(scraped, timeout=60, interval=1.0, what="Prometheus to scrape the calls")
    for q, want in wanted.items():
        assert got[q] == pytest.approx(want, rel=1e-9, abs=1e-9), q

    # The histogram's quantile lands in the bucket that holds the stats p50 (every call took the
    # same 420 ms, so p50 is 420 ms within 1%).
    p50 = query(prometheus, "histogram_quantile(0.5, sum by (le) "
                            f"(gen_ai_client_operation_duration_seconds_bucket{{{sel}}}))")
    assert stats["latency_ms"]["p50"] == pytest.approx(420, rel=0.01)
    assert 0.32 <= p50 <= 0.64, p50

    # Sightline's own health is scraped too.
    assert query(prometheus, 'up{job="sightline"}') == 1
    assert query(prometheus, "sightline_spans_accepted_total") >= CALLS
    assert query(prometheus, "sightline_store_commit_duration_seconds_count") > 0
    assert query(prometheus, "sightline_store_db_bytes") > 0
    assert query(prometheus, "sightline_pipeline_max_inflight_items") > 0
    assert query(prometheus, 'sum(sightline_spans_rejected_total)') is not None
