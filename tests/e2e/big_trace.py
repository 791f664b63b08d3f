"""A single trace of many spans as one OTLP/JSON request: an agent root, steps under it, and under
each step a run of tool and LLM-call spans (every fifth child is an OTel GenAI chat call with
messages and usage). Used by the web UI tests and the trace-open benchmark."""

from __future__ import annotations

import json
import os
import time


def build(span_count: int = 5000, service: str = "big-agent", run_id: str = "") -> tuple[str, dict]:
    """Returns (trace_id, OTLP/JSON body) for a trace of exactly ``span_count`` spans (≥ 3)."""
    trace_id = os.urandom(16).hex()
    now = time.time_ns()
    start = now - 60 * 1_000_000_000
    steps = max(1, int((span_count - 1) ** 0.5 / 2))
    children = span_count - 1 - steps
    per_step = [children // steps + (1 if i < children % steps else 0) for i in range(steps)]
    spans = []

    def span(name, span_id, parent, t0, t1, attrs=()):
        s = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "kind": 1,
            "startTimeUnixNano": str(t0),
            "endTimeUnixNano": str(t1),
            "attributes": [{"key": k, "value": v} for k, v in attrs],
            "status": {"code": 1},
        }
        if parent:
            s["parentSpanId"] = parent
        spans.append(s)

    root = os.urandom(8).hex()
    total = 50 * 1_000_000_000
    span("agent.run", root, None, start, start + total,
         [("session.id", {"stringValue": f"big-session-{run_id}"}),
          ("user.id", {"stringValue": f"big-user-{run_id}"})])
    step_len = total // steps
    n = 0
    for i, count in enumerate(per_step):
        step_id = os.urandom(8).hex()
        s0 = start + i * step_len
        span(f"agent.step {i}", step_id, root, s0, s0 + step_len - 1000)
        child_len = max(1000, (step_len - 2000) // max(count, 1))
        for j in range(count):
            c0 = s0 + 1000 + j * child_len
            c1 = c0 + child_len - 500
            n += 1
            if n % 5 == 0:
                messages = [{"role": "user", "parts": [{"type": "text", "content": f"step {i} question {j} {run_id}"}]}]
                output = [{"role": "assistant", "parts": [{"type": "text", "content": f"answer {n}"}],
                           "finish_reason": "stop"}]
                span(f"chat gpt-4o-mini #{n}", os.urandom(8).hex(), step_id, c0, c1, [
                    ("gen_ai.operation.name", {"stringValue": "chat"}),
                    ("gen_ai.provider.name", {"stringValue": "openai"}),
                    ("gen_ai.request.model", {"stringValue": "gpt-4o-mini"}),
                    ("gen_ai.response.model", {"stringValue": "gpt-4o-mini-2024-07-18"}),
                    ("gen_ai.usage.input_tokens", {"intValue": "120"}),
                    ("gen_ai.usage.output_tokens", {"intValue": "30"}),
                    ("gen_ai.input.messages", {"stringValue": json.dumps(messages)}),
                    ("gen_ai.output.messages", {"stringValue": json.dumps(output)}),
                ])
            else:
                span(f"tool.lookup #{n}", os.urandom(8).hex(), step_id, c0, c1,
                     [("tool.argument", {"stringValue": f"q{n}"})])
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "big-trace"}, "spans": spans}],
    }]}
    assert len(spans) == span_count, len(spans)
    return trace_id, body
