"""Instrumented applications the end-to-end tests run as child processes.

Each sets up its instrumentation the way its documentation tells users to (global providers,
environment variables), which is process-wide state, hence a process per run. They call the mock
OpenAI endpoint with the real ``openai`` client, export to the Sightline server under test, flush,
and print one JSON line: ``{"trace_ids": [...]}``.

    python clients.py openai-v2 --mock-url URL --endpoint URL --session S --user U [--latest]
    python clients.py langfuse  --mock-url URL --endpoint URL --session S --user U
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "record"))

import mock_openai as M  # noqa: E402


def _calls(client) -> None:
    resp = client.chat.completions.create(
        model=M.CHAT_MODEL,
        messages=[{"role": "system", "content": M.SYSTEM_PROMPT},
                  {"role": "user", "content": M.USER_PROMPT}],
        temperature=0.2,
    )
    assert resp.choices[0].message.content == M.CHAT_ANSWER
    chunks = client.chat.completions.create(
        model=M.CHAT_MODEL,
        messages=[{"role": "user", "content": M.STREAM_PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == M.STREAM_ANSWER


def openai_v2(args) -> list[str]:
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only" if args.latest else "true"
    if args.latest:
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"

    import openai
    from opentelemetry import baggage, context, trace
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": args.service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint + "/v1/traces")))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=args.endpoint + "/v1/logs")))
    set_logger_provider(logger_provider)
    OpenAIInstrumentor().instrument()

    client = openai.OpenAI(base_url=args.mock_url, api_key="sk-e2e", max_retries=0)
    ctx = baggage.set_baggage("session.id", args.session)
    ctx = baggage.set_baggage("user.id", args.user, context=ctx)
    token = context.attach(ctx)
    try:
        with trace.get_tracer("e2e.app").start_as_current_span("handle_question") as root:
            _calls(client)
            trace_id = format(root.get_span_context().trace_id, "032x")
    finally:
        context.detach(token)
    assert tracer_provider.force_flush(30_000), "span flush timed out"
    assert logger_provider.force_flush(30_000), "log flush timed out"
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return [trace_id]


def langfuse(args) -> list[str]:
    os.environ["OTEL_SERVICE_NAME"] = args.service
    from langfuse import Langfuse, propagate_attributes
    from langfuse.openai import OpenAI

    lf = Langfuse(public_key="pk-lf-e2e", secret_key="sk-lf-e2e", host=args.endpoint,
                  environment="e2e")
    client = OpenAI(base_url=args.mock_url, api_key="sk-e2e", max_retries=0)
    with lf.start_as_current_observation(as_type="span", name="answer_question"):
        with propagate_attributes(user_id=args.user, session_id=args.session):
            _calls(client)
        trace_id = lf.get_current_trace_id()
    lf.flush()
    lf.shutdown()
    return [trace_id]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["openai-v2", "langfuse"])
    parser.add_argument("--mock-url", required=True)
    parser.add_argument("--endpoint", required=True, help="Sightline's HTTP base URL")
    parser.add_argument("--session", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--latest", action="store_true")
    args = parser.parse_args()
    trace_ids = openai_v2(args) if args.client == "openai-v2" else langfuse(args)
    print(json.dumps({"trace_ids": trace_ids}), flush=True)


if __name__ == "__main__":
    main()
