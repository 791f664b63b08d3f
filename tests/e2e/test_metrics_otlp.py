"""The real OpenTelemetry Python SDK exports metrics — a histogram (explicit and exponential), a
gauge and a counter — over OTLP/HTTP and OTLP/gRPC, and they come back, attributes and all,
through /api/v1/timeseries. OTLP/JSON (which the Python SDK does not send) is posted by hand."""

from __future__ import annotations

import time

import pytest
import requests
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from conftest import wait_until

TRANSPORTS = ["http-protobuf", "grpc"]


class Recording:
    """Wraps an exporter and remembers each export's result."""

    def __init__(self, inner):
        self.inner = inner
        self.results = []
        self._preferred_temporality = inner._preferred_temporality
        self._preferred_aggregation = inner._preferred_aggregation

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def metric_exporter(transport: str, server):
    if transport == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        return OTLPMetricExporter(endpoint=server.otlp_http + "/v1/metrics")
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        return OTLPMetricExporter(endpoint=server.grpc_endpoint, insecure=True)
    raise ValueError(transport)


def series(sightline, metric: str, **params) -> list:
    body = sightline.api("/api/v1/timeseries", metric=metric,
                         **{"from": int(time.time() * 1000) - 3_600_000}, **params)
    return body["series"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sdk_metrics_come_back_as_timeseries(sightline, transport, run_id):
    tag = f"{transport.replace('-', '_')}_{run_id}"
    exporter = Recording(metric_exporter(transport, sightline))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": f"trainer-{tag}", "host.name": "gpu-node-1"}),
        metric_readers=[reader],
        views=[View(instrument_name=f"grad_norm_{tag}",
                    aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("sightline.e2e.metrics", "1.0")
    latency = meter.create_histogram(f"step_time_{tag}", unit="s")
    grad = meter.create_histogram(f"grad_norm_{tag}")
    loss = meter.create_gauge(f"loss_{tag}")
    tokens = meter.create_counter(f"tokens_{tag}", unit="{token}")

    for v in (0.5, 1.5, 4.0):
        latency.record(v, {"phase": "train"})
    for layer in range(3):
        grad.record(0.1 * (layer + 1), {"layer": layer})
        grad.record(0.2 * (layer + 1), {"layer": layer})
    loss.set(2.25, {"run": "a"})
    loss.set(1.75, {"run": "b"})
    tokens.add(3, {"model": "llama"})
    tokens.add(4, {"model": "llama"})
    assert provider.force_flush(30_000)
    provider.shutdown()
    assert exporter.results and all(r == MetricExportResult.SUCCESS for r in exporter.results), \
        exporter.results

    # Gauge: one series per attribute set, attributes kept.
    s = wait_until(lambda: series(sightline, f"loss_{tag}"), what="the gauge")
    by_run = {x["attributes"]["run"]: x["points"][-1][1] for x in s}
    assert by_run == {"a": 2.25, "b": 1.75}
    # Resource attributes filter and group.
    s = series(sightline, f"loss_{tag}", **{"attr.host.name": "gpu-node-1", "group_by": "host.name",
                                           "agg": "max"})
    assert len(s) == 1 and s[0]["points"][-1][1] == 2.25
    assert s[0]["attributes"] == {"host.name": "gpu-node-1"}

    # Counter: a cumulative sum.
    s = series(sightline, f"tokens_{tag}")
    assert s[0]["attributes"] == {"model": "llama"}
    assert s[0]["points"][-1][1] == 7

    # Explicit-bucket histogram: count, sum and mean.
    for field, want in [("count", 3), ("sum", 6.0), ("value", 2.0), ("min", 0.5), ("max", 4.0)]:
        s = series(sightline, f"step_time_{tag}", field=field)
        assert s[0]["points"][-1][1] == pytest.approx(want), field
        assert s[0]["attributes"] == {"phase": "train"}

    # Exponential histogram, one series per layer, grouped back together: `last` takes each
    # series' latest cumulative point and sums them (flush and shutdown both exported).
    s = series(sightline, f"grad_norm_{tag}", field="count")
    assert sorted(x["attributes"]["layer"] for x in s) == [0, 1, 2]
    s = series(sightline, f"grad_norm_{tag}", field="count", group_by="service.name", agg="last",
               step="1h")
    assert len(s) == 1 and s[0]["points"][-1][1] == 6


def test_otlp_json_metrics_and_rejections(sightline, run_id):
    now = time.time_ns()
    name = f"gpu_util_{run_id}"
    body = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "dcgm"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": name, "unit": "%", "gauge": {"dataPoints": [
                {"timeUnixNano": str(now - 2_000_000_000), "asDouble": 71.5,
                 "attributes": [{"key": "gpu", "value": {"intValue": "0"}}]},
                {"timeUnixNano": str(now - 1_000_000_000), "asInt": "93",
                 "attributes": [{"key": "gpu", "value": {"intValue": "0"}}]},
                {"timeUnixNano": "0", "asDouble": 1.0},
            ]}},
        ]}],
    }]}
    r = requests.post(sightline.otlp_http + "/v1/metrics", json=body, timeout=10)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    # An int64, written as a decimal string in OTLP/JSON.
    assert partial["rejectedDataPoints"] == "1"
    assert "dataPoints[2].timeUnixNano" in partial["errorMessage"]
    s = series(sightline, name)
    assert [p[1] for p in s[0]["points"]] == [71.5, 93.0]

    # A body that is not OTLP: 400 naming the field, and the server keeps serving.
    r = requests.post(sightline.otlp_http + "/v1/metrics",
                      json={"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": 7}]}]}]},
                      timeout=10)
    assert r.status_code == 400, r.text
    assert "metrics[0].name" in r.text
    r = requests.get(sightline.base_url + "/api/v1/timeseries",
                     params={"metric": name, "agg": "median"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "agg"
    assert sightline.get("/readyz").status_code == 200
