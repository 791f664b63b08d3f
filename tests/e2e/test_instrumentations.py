"""Real instrumented applications (the official OpenTelemetry openai instrumentation, the Langfuse
SDK) call the mock OpenAI endpoint with the real ``openai`` client and report to Sightline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mock_openai as M
from conftest import wait_until
from otel_helpers import check_llm, expected_cost

CLIENTS = Path(__file__).resolve().parent / "clients.py"


def _run_client(name, sightline, mock_openai, run_id, *extra):
    session, user, service = f"sess-{name}-{run_id}", f"user-{name}-{run_id}", f"e2e-{name}-{run_id}"
    proc = subprocess.run(
        [sys.executable, str(CLIENTS), name, "--mock-url", mock_openai.base_url,
         "--endpoint", sightline.base_url, "--session", session, "--user", user,
         "--service", service, *extra],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGFUSE_"))},
    )
    assert proc.returncode == 0, f"{name} client failed:\n{proc.stdout}\n{proc.stderr}"
    trace_ids = json.loads(proc.stdout.strip().splitlines()[-1])["trace_ids"]
    return trace_ids, session, user, service, proc.stderr


def _chat_expectations(session, user, *, langfuse=False):
    chat_in, chat_out = M.USAGE["chat"]
    stream_in, stream_out = M.USAGE["stream"]
    chat = {
        "operation": "chat", "model": M.CHAT_RESPONSE_MODEL,
        "input_tokens": chat_in, "output_tokens": chat_out,
        "input": [("system", M.SYSTEM_PROMPT), ("user", M.USER_PROMPT)],
        "output": [("assistant", M.CHAT_ANSWER)],
        "session_id": session, "user_id": user,
        "cost_usd": expected_cost(M.CHAT_RESPONSE_MODEL, chat_in, chat_out),
    }
    stream = {
        "operation": "chat", "model": M.CHAT_RESPONSE_MODEL,
        "input_tokens": stream_in, "output_tokens": stream_out,
        "input": [("user", M.STREAM_PROMPT)],
        "output": [("assistant", M.STREAM_ANSWER)],
        "session_id": session, "user_id": user,
        "cost_usd": expected_cost(M.CHAT_RESPONSE_MODEL, stream_in, stream_out),
    }
    if langfuse:
        for call in (chat, stream):
            call["convention"] = "langfuse"
    else:
        for call in (chat, stream):
            call["provider"] = "openai"
            call["request_model"] = M.CHAT_MODEL
    return [chat, stream]


@pytest.mark.parametrize("mode", ["default", "latest"])
def test_official_openai_instrumentation(sightline, mock_openai, run_id, mode):
    extra = ["--latest"] if mode == "latest" else []
    trace_ids, session, user, service, _ = _run_client("openai-v2", sightline, mock_openai,
                                                      f"{mode}-{run_id}", *extra)

    def both_calls_complete():
        calls = sightline.api("/api/v1/calls", service=service)["calls"]
        # On the default conventions the messages arrive as log events, possibly after the spans.
        if len(calls) == 2 and all(c["input_messages"] and c["output_messages"] for c in calls):
            return calls
        return None

    calls = wait_until(both_calls_complete, what=f"2 complete calls from {service}")
    calls.sort(key=lambda c: c["start_time_unix_nano"])
    problems = []
    for call, expected in zip(calls, _chat_expectations(session, user)):
        allowed = ["gen_ai"] if mode == "latest" else ["gen_ai", "gen_ai_legacy"]
        if call["convention"] not in allowed:
            problems.append(f"{call['name']}: convention {call['convention']!r} not in {allowed}")
        problems += check_llm(call, expected, f"openai-v2 ({mode}) {call['name']}")
        if call["trace_id"] != trace_ids[0]:
            problems.append(f"call {call['span_id']} is in trace {call['trace_id']}, not {trace_ids[0]}")
    detail = sightline.api(f"/api/v1/traces/{trace_ids[0]}")
    names = [s["name"] for s in detail["spans"]]
    if names[0] != "handle_question" or len(names) != 3:
        problems.append(f"trace spans: {names}")
    assert not problems, "\n".join(problems)


def test_langfuse_sdk(sightline, mock_openai, run_id):
    trace_ids, session, user, service, stderr = _run_client("langfuse", sightline, mock_openai, run_id)
    calls = wait_until(
        lambda: (c := sightline.api("/api/v1/calls", session_id=session)["calls"]) and len(c) == 2 and c,
        what=f"2 Langfuse generations in session {session}")
    calls.sort(key=lambda c: c["start_time_unix_nano"])
    problems = []
    for call, expected in zip(calls, _chat_expectations(session, user, langfuse=True)):
        problems += check_llm(call, expected, f"langfuse {call['name']}")
        if call["trace_id"] != trace_ids[0]:
            problems.append(f"generation {call['span_id']} is in trace {call['trace_id']}, not {trace_ids[0]}")
    if calls and not calls[1].get("ttft_ms"):
        problems.append(f"streamed generation: ttft_ms is {calls[1].get('ttft_ms')!r}, expected a "
                        "value from langfuse.observation.completion_start_time")
    detail = sightline.api(f"/api/v1/traces/{trace_ids[0]}")
    root = detail["spans"][0]
    if root["name"] != "answer_question" or root["llm"] is not None:
        problems.append(f"root span {root['name']!r} llm={root['llm']!r}")
    assert not problems, "\n".join(problems) + f"\nclient stderr:\n{stderr[-2000:]}"
