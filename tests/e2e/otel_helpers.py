"""OpenTelemetry SDK plumbing shared by the end-to-end tests: the three exporters, GenAI spans in
each convention, and checks of the normalized call the API returns."""

from __future__ import annotations

import base64
import json
import time

import requests
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

# ----------------------------------------------------------------------------------------------
# Exporters
# ----------------------------------------------------------------------------------------------


class OTLPJsonSpanExporter(SpanExporter):
    """OTLP/HTTP with the JSON encoding, which the Python SDK does not ship.

    Encodes with the SDK's own protobuf encoder, then converts to the OTLP/JSON mapping: lowerCamel
    field names, enums as integers, and trace/span ids as hex (protobuf's JSON mapping would give
    base64, which OTLP/JSON explicitly replaces)."""

    def __init__(self, endpoint: str, timeout: float = 10.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.session = requests.Session()
        self.responses: list[dict] = []

    @staticmethod
    def to_json(request) -> dict:
        body = MessageToDict(request, use_integers_for_enums=True)
        for rs in body.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    _hex_ids(span)
                    for link in span.get("links", []):
                        _hex_ids(link)
        return body

    def export(self, spans) -> SpanExportResult:
        body = self.to_json(encode_spans(spans))
        r = self.session.post(self.endpoint, data=json.dumps(body),
                              headers={"Content-Type": "application/json"}, timeout=self.timeout)
        if r.status_code != 200:
            return SpanExportResult.FAILURE
        self.responses.append(r.json() if r.content else {})
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.session.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _hex_ids(obj: dict) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if obj.get(key):
            obj[key] = base64.b64decode(obj[key]).hex()


class RecordingExporter(SpanExporter):
    """Wraps an exporter and remembers whether every export succeeded."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans):
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis) if hasattr(self.inner, "force_flush") else True


def span_exporter(transport: str, server) -> SpanExporter:
    if transport == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=server.otlp_http + "/v1/traces")
    if transport == "http-json":
        return OTLPJsonSpanExporter(server.otlp_http + "/v1/traces")
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=server.grpc_endpoint, insecure=True)
    raise ValueError(transport)


def log_exporter(transport: str, server):
    if transport == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        return OTLPLogExporter(endpoint=server.otlp_http + "/v1/logs")
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        return OTLPLogExporter(endpoint=server.grpc_endpoint, insecure=True)
    raise ValueError(transport)


def tracer_provider(exporter: SpanExporter, service: str, **resource) -> tuple[TracerProvider, RecordingExporter]:
    recording = RecordingExporter(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    provider.add_span_processor(BatchSpanProcessor(recording))
    return provider, recording


def flush(provider, recording: RecordingExporter) -> None:
    assert provider.force_flush(30_000), "force_flush timed out"
    assert recording.results, "nothing was exported"
    assert all(r == SpanExportResult.SUCCESS for r in recording.results), \
        f"export failed: {recording.results}"


# ----------------------------------------------------------------------------------------------
# GenAI spans, one per convention. Each returns (span, expected normalized fields).
# ----------------------------------------------------------------------------------------------

NS = 1_000_000_000


def _timed(tracer, name, start_ns, duration_ms, kind=SpanKind.CLIENT):
    span = tracer.start_span(name, kind=kind, start_time=start_ns)
    return span, start_ns + int(duration_ms * 1e6)


def current_convention_span(tracer, *, session, user, start_ns, model="gpt-4o",
                            response_model="gpt-4o-2024-08-06", provider="openai",
                            input_tokens=1200, output_tokens=300, question="What is OTLP?",
                            answer="OTLP is the OpenTelemetry protocol.", status_error=None,
                            extra=None):
    span, end = _timed(tracer, f"chat {model}", start_ns, 420)
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": response_model,
        "gen_ai.response.id": "chatcmpl-e2e-current",
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.conversation.id": session,
        "user.id": user,
        "gen_ai.input.messages": json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "Answer briefly."}]},
            {"role": "user", "parts": [{"type": "text", "content": question}]},
        ]),
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": answer}],
             "finish_reason": "stop"},
        ]),
    }
    attrs.update(extra or {})
    span.set_attributes(attrs)
    if status_error:
        from opentelemetry.trace import Status, StatusCode
        span.set_attribute("error.type", status_error)
        span.set_status(Status(StatusCode.ERROR, f"provider answered {status_error}"))
    expected = {
        "operation": "chat", "provider": provider, "request_model": model,
        "response_model": response_model, "input_tokens": input_tokens,
        "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens,
        "input": [("system", "Answer briefly."), ("user", question)],
        "output": [("assistant", answer)], "finish_reasons": ["stop"],
        "session_id": session, "user_id": user, "convention": "gen_ai",
        "status": "error" if status_error else "ok",
    }
    return span, end, expected


def legacy_convention_span(tracer, *, session, user, start_ns):
    span, end = _timed(tracer, "chat gpt-4o-mini", start_ns, 250)
    span.set_attributes({
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 50,
        "gen_ai.usage.completion_tokens": 20,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Translate 'hello' to French.",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Bonjour.",
        "gen_ai.completion.0.finish_reason": "stop",
        "session.id": session,
        "user.id": user,
    })
    expected = {
        "operation": "chat", "provider": "openai", "request_model": "gpt-4o-mini",
        "input_tokens": 50, "output_tokens": 20, "total_tokens": 70,
        "input": [("user", "Translate 'hello' to French.")], "output": [("assistant", "Bonjour.")],
        "session_id": session, "user_id": user, "convention": "gen_ai_legacy", "status": "ok",
    }
    return span, end, expected


def openinference_span(tracer, *, session, user, start_ns):
    span, end = _timed(tracer, "ChatCompletion", start_ns, 610, kind=SpanKind.INTERNAL)
    span.set_attributes({
        "openinference.span.kind": "LLM",
        "llm.provider": "anthropic",
        "llm.system": "anthropic",
        "llm.model_name": "claude-3-5-haiku-20241022",
        "llm.invocation_parameters": json.dumps({"model": "claude-3-5-haiku-20241022",
                                                 "max_tokens": 256}),
        "llm.token_count.prompt": 80,
        "llm.token_count.completion": 40,
        "llm.token_count.total": 120,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Summarize the meeting notes.",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "The team agreed to ship on Friday.",
        "input.value": "Summarize the meeting notes.",
        "output.value": "The team agreed to ship on Friday.",
        "session.id": session,
        "user.id": user,
    })
    expected = {
        "provider": "anthropic", "model": "claude-3-5-haiku-20241022",
        "input_tokens": 80, "output_tokens": 40, "total_tokens": 120,
        "input": [("user", "Summarize the meeting notes.")],
        "output": [("assistant", "The team agreed to ship on Friday.")],
        "session_id": session, "user_id": user, "convention": "openinference", "status": "ok",
    }
    return span, end, expected


# List prices (USD per million tokens) of the models the tests send, for expected costs.
PRICES = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "claude-3-5-haiku-20241022": (0.80, 4.00),
    "text-embedding-3-small": (0.02, 0.0),
}


def expected_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    price = PRICES.get(model)
    if price is None:
        return None
    return (input_tokens * price[0] + (output_tokens or 0) * price[1]) / 1e6


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def message_pairs(messages: list[dict]) -> list[tuple]:
    return [(m.get("role"), m.get("content")) for m in messages]


def check_llm(llm: dict | None, expected: dict, where: str) -> list[str]:
    """Compares an LlmCall JSON with expected fields; returns the mismatches (empty when equal).

    A leading expected system message may instead be in ``system_instructions``."""
    if llm is None:
        return [f"{where}: llm is null, expected a normalized call"]
    problems = []

    def eq(field, want, got):
        if want != got:
            problems.append(f"{where}: {field}: expected {want!r}, got {got!r}")

    usage = llm.get("usage") or {}
    for key, want in expected.items():
        if key in ("input_tokens", "output_tokens", "total_tokens"):
            eq(f"usage.{key}", want, usage.get(key))
        elif key == "model":
            eq("model (response_model or request_model)", want,
               llm.get("response_model") or llm.get("request_model"))
        elif key == "input":
            got = message_pairs(llm.get("input_messages") or [])
            want_msgs = list(want)
            if want_msgs and want_msgs[0][0] == "system" and (not got or got[0][0] != "system"):
                eq("system_instructions", want_msgs[0][1], llm.get("system_instructions"))
                want_msgs = want_msgs[1:]
            eq("input_messages (role, content)", want_msgs, got)
        elif key == "output":
            eq("output_messages (role, content)", list(want),
               message_pairs(llm.get("output_messages") or []))
        elif key == "cost_usd":
            cost = llm.get("cost")
            if want is None:
                eq("cost", None, cost)
            elif cost is None:
                problems.append(f"{where}: cost: expected ${want:.8f}, got null")
            elif abs(cost["total_usd"] - want) > want * 0.01:
                problems.append(f"{where}: cost.total_usd: expected ${want:.8f} (±1%), "
                                f"got {cost['total_usd']!r} ({cost.get('price_id')})")
        else:
            eq(key, want, llm.get(key))
    return problems


def now_ns() -> int:
    return time.time_ns()
