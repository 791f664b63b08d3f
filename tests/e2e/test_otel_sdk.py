"""The real OpenTelemetry Python SDK sends GenAI spans over each OTLP transport, and every span
comes back through the API with its normalized call."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from conftest import wait_until
from otel_helpers import (
    NS,
    check_llm,
    current_convention_span,
    expected_cost,
    flush,
    legacy_convention_span,
    now_ns,
    openinference_span,
    span_exporter,
    tracer_provider,
)

TRANSPORTS = ["http-protobuf", "http-json", "grpc"]


def _send_agent_trace(transport, sightline, run_id):
    """One trace: an agent root span and four model calls under it (current convention with a
    priced model, legacy convention, OpenInference, current convention with an unknown model)."""
    session = f"sess-{transport}-{run_id}"
    user = f"user-{transport}-{run_id}"
    service = f"e2e-{transport}-{run_id}"
    provider, recording = tracer_provider(span_exporter(transport, sightline), service,
                                          **{"service.version": "2.0.1"})
    tracer = provider.get_tracer("sightline.e2e", "1.0")
    t0 = now_ns() - 30 * NS
    root = tracer.start_span("agent.run", kind=SpanKind.INTERNAL, start_time=t0)
    root.set_attribute("app.request", run_id)
    ctx = trace.set_span_in_context(root)
    children = {}
    builders = [
        ("current", lambda s: current_convention_span(tracer, session=session, user=user, start_ns=s)),
        ("legacy", lambda s: legacy_convention_span(tracer, session=session, user=user, start_ns=s)),
        ("openinference", lambda s: openinference_span(tracer, session=session, user=user, start_ns=s)),
        ("unknown_model", lambda s: current_convention_span(
            tracer, session=session, user=user, start_ns=s, model="acme-unreleased-9000",
            response_model="acme-unreleased-9000", provider="acme", input_tokens=10,
            output_tokens=5)),
    ]
    token = otel_context.attach(ctx)
    try:
        for i, (kind, build) in enumerate(builders):
            span, end, expected = build(t0 + (i + 1) * NS)
            model = expected.get("response_model") or expected.get("model") or expected.get("request_model")
            expected["cost_usd"] = expected_cost(model, expected["input_tokens"], expected["output_tokens"])
            span.end(end_time=end)
            children[format(span.get_span_context().span_id, "016x")] = (kind, span.name, expected)
    finally:
        otel_context.detach(token)
    root.end(end_time=t0 + 6 * NS)
    flush(provider, recording)
    provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")
    return trace_id, root_id, children, session, user, service, recording


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_span_comes_back_normalized(sightline, run_id, transport):
    trace_id, root_id, children, session, user, service, recording = _send_agent_trace(
        transport, sightline, run_id)

    if transport == "http-json":
        # A JSON request is answered in JSON, with no rejected spans.
        for body in recording.inner.responses:
            rejected = int((body.get("partialSuccess") or {}).get("rejectedSpans") or 0)
            assert rejected == 0, f"server rejected spans: {body}"

    detail = wait_until(
        lambda: (d := sightline.api(f"/api/v1/traces/{trace_id}")) and len(d["spans"]) == 5 and d,
        what=f"trace {trace_id} with 5 spans")
    assert detail["trace_id"] == trace_id
    spans = {s["span_id"]: s for s in detail["spans"]}
    assert set(spans) == {root_id, *children}, f"span ids: {sorted(spans)}"
    # Parents come before children.
    assert detail["spans"][0]["span_id"] == root_id

    root = spans[root_id]
    assert root["parent_span_id"] is None
    assert root["name"] == "agent.run"
    assert root["kind"] == "internal"
    assert root["service"] == service
    assert root["attributes"].get("app.request") == run_id
    assert root["resource"].get("service.version") == "2.0.1"
    assert root["llm"] is None, f"agent root span was normalized into a call: {root['llm']}"

    problems = []
    for span_id, (kind, name, expected) in children.items():
        span = spans[span_id]
        where = f"{transport} {kind} span {name!r}"
        if span["parent_span_id"] != root_id:
            problems.append(f"{where}: parent_span_id {span['parent_span_id']!r} != {root_id}")
        if span["name"] != name:
            problems.append(f"{where}: name {span['name']!r}")
        if span["service"] != service:
            problems.append(f"{where}: service {span['service']!r}")
        if not span["end_time_unix_nano"] > span["start_time_unix_nano"]:
            problems.append(f"{where}: bad times {span['start_time_unix_nano']}..{span['end_time_unix_nano']}")
        problems += check_llm(span["llm"], expected, f"trace detail {where}")
        if span["llm"]:
            llm = span["llm"]
            if llm.get("trace_id") != trace_id or llm.get("span_id") != span_id:
                problems.append(f"{where}: llm ids {llm.get('trace_id')}/{llm.get('span_id')}")
            if llm.get("service_name") != service:
                problems.append(f"{where}: llm.service_name {llm.get('service_name')!r}")
    # The raw attributes stay queryable next to the normalized call.
    current = next(s for s in spans.values() if s["name"] == "chat gpt-4o")
    assert current["attributes"]["gen_ai.usage.input_tokens"] == 1200
    assert current["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert current["attributes"]["gen_ai.request.temperature"] == pytest.approx(0.3)

    # The same calls through /api/v1/calls, filtered by the session.
    calls = wait_until(
        lambda: (c := sightline.api("/api/v1/calls", session_id=session)["calls"]) and len(c) == 4 and c,
        what=f"4 calls in session {session}")
    by_span = {c["span_id"]: c for c in calls}
    if set(by_span) != set(children):
        problems.append(f"/api/v1/calls span ids {sorted(by_span)} != {sorted(children)}")
    for span_id, (kind, name, expected) in children.items():
        problems += check_llm(by_span.get(span_id), expected, f"/api/v1/calls {transport} {kind}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trace_list_summarizes_the_trace(sightline, run_id, transport):
    trace_id, _, children, session, user, service, _ = _send_agent_trace(transport, sightline, run_id)
    rows = wait_until(
        lambda: (t := sightline.api("/api/v1/traces", service=service)["traces"]) and t,
        what=f"trace list for service {service}")
    assert [r["trace_id"] for r in rows] == [trace_id]
    row = rows[0]
    want_in = sum(e["input_tokens"] for _, _, e in children.values())
    want_out = sum(e["output_tokens"] for _, _, e in children.values())
    want_cost = sum(e["cost_usd"] or 0 for _, _, e in children.values())
    assert row["name"] == "agent.run"
    assert row["span_count"] == 5
    assert row["llm_call_count"] == 4
    assert row["input_tokens"] == want_in
    assert row["output_tokens"] == want_out
    assert row["cost_usd"] == pytest.approx(want_cost, rel=0.01)
    assert row["status"] == "ok"
    assert row["session_id"] == session
    assert row["user_id"] == user
    assert row["duration_ms"] == pytest.approx(6000, rel=0.01)
