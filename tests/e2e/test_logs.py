"""GenAI events sent as OTLP log records (how the official instrumentations send message content)
attach to their span, and the span's call is normalized with them, whichever arrives first."""

from __future__ import annotations

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from conftest import wait_until
from otel_helpers import check_llm, expected_cost, flush, log_exporter, span_exporter, tracer_provider

QUESTION = "Which planet is the largest?"
ANSWER = "Jupiter is the largest planet in the Solar System."


@pytest.mark.parametrize("order", ["spans-first", "logs-first"])
@pytest.mark.parametrize("transport", ["http-protobuf", "grpc"])
def test_genai_log_events_attach_to_their_span(sightline, run_id, transport, order):
    service = f"e2e-logs-{transport}-{order}-{run_id}"
    session, user = f"sess-logs-{run_id}", f"user-logs-{run_id}"
    provider, recording = tracer_provider(span_exporter(transport, sightline), service)
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter(transport, sightline)))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    logger = logger_provider.get_logger("opentelemetry.instrumentation.openai_v2")

    # What the official openai instrumentation sends on its default conventions: usage on the
    # span, content as gen_ai.* events in log records carrying the span's context.
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
        span.set_attributes({
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 30,
            "gen_ai.usage.output_tokens": 11,
            "session.id": session,
            "user.id": user,
        })
        logger.emit(event_name="gen_ai.user.message", body={"content": QUESTION},
                    attributes={"gen_ai.system": "openai"})
        logger.emit(event_name="gen_ai.choice",
                    body={"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": ANSWER}},
                    attributes={"gen_ai.system": "openai"})
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")

    if order == "spans-first":
        flush(provider, recording)
        assert logger_provider.force_flush(30_000)
    else:
        assert logger_provider.force_flush(30_000)
        flush(provider, recording)
    provider.shutdown()
    logger_provider.shutdown()

    def attached():
        spans = sightline.api(f"/api/v1/traces/{trace_id}")["spans"]
        span = next(s for s in spans if s["span_id"] == span_id)
        llm = span["llm"] or {}
        return span if llm.get("input_messages") and llm.get("output_messages") else None

    span = wait_until(attached, what="the log events to reach the span's call")
    names = [e["name"] for e in span["events"]]
    assert "gen_ai.user.message" in names and "gen_ai.choice" in names, f"span events: {names}"
    choice = next(e for e in span["events"] if e["name"] == "gen_ai.choice")
    assert choice["body"]["message"]["content"] == ANSWER

    expected = {
        "provider": "openai", "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "input_tokens": 30, "output_tokens": 11,
        "input": [("user", QUESTION)], "output": [("assistant", ANSWER)],
        "finish_reasons": ["stop"], "session_id": session, "user_id": user,
        "cost_usd": expected_cost("gpt-4o-mini-2024-07-18", 30, 11),
    }
    problems = check_llm(span["llm"], expected, f"trace detail ({transport}, {order})")
    calls = sightline.api("/api/v1/calls", service=service)["calls"]
    assert len(calls) == 1, f"calls for {service}: {calls}"
    problems += check_llm(calls[0], expected, f"/api/v1/calls ({transport}, {order})")
    # The message text is searchable once the events are attached.
    found = sightline.api("/api/v1/calls", q="Jupiter", service=service)["calls"]
    if [c["span_id"] for c in found] != [span_id]:
        problems.append(f"full-text search for a word of the log-event answer found {found}")
    assert not problems, "\n".join(problems)
