"""The gateway with the real OpenAI and Anthropic Python SDKs.

A `sightline mock-provider` process is the upstream, and a `sightline serve` of this module's own
forwards `/gateway/openai/v1` and `/gateway/anthropic/v1` to it. Every test makes the same call
twice — directly to the mock and through the gateway — and requires identical responses (the mock
is deterministic), then finds the recorded call in the API by its session id and checks its
fields. Faults (429, 500, timeouts, malformed bodies, broken streams) are asked of the mock with
its `x-mock-fault` header; client disconnects are made with a raw streaming HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import anthropic
import openai
import pytest
import requests

from conftest import _binary, _start, free_port, wait_until

API_KEY = "sk-test-secret-key-never-stored-0123456789"
GATEWAY_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def mock_provider(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("mock") / "mock.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(_binary()), "mock-provider", "--addr", f"127.0.0.1:{port}", "--seed", "42",
         "--timeout-ms", "30000"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(base + "/v1/models", headers={"authorization": "Bearer x"},
                            timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mock provider did not start: {log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=15) == 0, log_path.read_text(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("mock provider did not exit on SIGTERM")


@pytest.fixture(scope="module")
def gw(mock_provider, tmp_path_factory):
    server = _start(_binary(), tmp_path_factory.mktemp("gateway"), (
        "--openai-upstream", mock_provider,
        "--anthropic-upstream", mock_provider,
        "--gateway-timeout", str(GATEWAY_TIMEOUT_S),
    ))
    yield server
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        pytest.fail(f"sightline did not exit within 30s of SIGTERM:\n{server.log_tail()}")
    assert code == 0, server.log_tail()
    assert API_KEY not in server.log_path.read_text(errors="replace"), "API key in the log"


def attribution(run_id: str, **extra) -> dict:
    headers = {
        "x-sightline-session-id": run_id,
        "x-sightline-user-id": f"user-{run_id}",
        "x-sightline-tags": "e2e,gateway",
        "x-sightline-metadata-team": "search",
        "x-sightline-prompt-name": "greeter",
        "x-sightline-prompt-version": "7",
        "x-sightline-service": "gateway-e2e",
    }
    headers.update(extra)
    return headers


def openai_pair(mock_provider, gw, run_id, async_=False, **extra_headers):
    cls = openai.AsyncOpenAI if async_ else openai.OpenAI
    direct = cls(api_key=API_KEY, base_url=mock_provider + "/v1", max_retries=0)
    through = cls(api_key=API_KEY, base_url=gw.base_url + "/gateway/openai/v1", max_retries=0,
                  default_headers=attribution(run_id, **extra_headers))
    return direct, through


def anthropic_pair(mock_provider, gw, run_id):
    direct = anthropic.Anthropic(api_key=API_KEY, base_url=mock_provider, max_retries=0)
    through = anthropic.Anthropic(api_key=API_KEY, base_url=gw.base_url + "/gateway/anthropic",
                                  max_retries=0, default_headers=attribution(run_id))
    return direct, through


def recorded(gw, run_id, count=1):
    """The calls recorded for one test's session, oldest first."""
    def check():
        calls = gw.api("/api/v1/calls", session_id=run_id)["calls"]
        return calls if len(calls) >= count else None
    calls = wait_until(check, what=f"{count} recorded call(s) in session {run_id}")
    return sorted(calls, key=lambda c: c["start_time_unix_nano"])


def check_context(call, run_id):
    assert call["convention"] == "gateway"
    assert call["session_id"] == run_id
    assert call["user_id"] == f"user-{run_id}"
    assert call["tags"] == ["e2e", "gateway"]
    assert call["metadata"]["team"] == "search"
    assert call["prompt_name"] == "greeter"
    assert call["prompt_version"] == "7"
    assert call["service_name"] == "gateway-e2e"


MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is observability?"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}


def test_openai_sync_chat_is_identical_and_recorded(mock_provider, gw, run_id):
    direct, through = openai_pair(mock_provider, gw, run_id)
    kwargs = dict(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=50, seed=3)
    a = direct.chat.completions.create(**kwargs)
    b = through.chat.completions.create(**kwargs)
    assert a.model_dump() == b.model_dump()

    [call] = recorded(gw, run_id)
    check_context(call, run_id)
    assert call["provider"] == "openai"
    assert call["operation"] == "chat"
    assert call["request_model"] == "gpt-4o-mini"
    assert call["response_model"] == b.model
    assert call["response_id"] == b.id
    assert call["params"]["temperature"] == 0.2
    assert call["params"]["max_tokens"] == 50
    assert call["params"]["seed"] == 3
    assert call["usage"]["input_tokens"] == b.usage.prompt_tokens
    assert call["usage"]["output_tokens"] == b.usage.completion_tokens
    assert call["cost"] is not None and call["cost"]["total_usd"] > 0
    assert [m["role"] for m in call["input_messages"]] == ["system", "user"]
    assert call["output_messages"][0]["content"] == b.choices[0].message.content
    assert call["finish_reasons"] == [b.choices[0].finish_reason]
    assert call["status"] == "ok"
    assert call["ttft_ms"] is None  # not streamed


def test_traceparent_joins_the_callers_trace(mock_provider, gw, run_id):
    trace_id = run_id.ljust(32, "0")[:32]
    parent = "00f067aa0ba902b7"
    _, through = openai_pair(mock_provider, gw, run_id)
    through.chat.completions.create(
        model="gpt-4o", messages=MESSAGES,
        extra_headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    [call] = recorded(gw, run_id)
    assert call["trace_id"] == trace_id
    assert call["parent_span_id"] == parent
    trace = gw.api(f"/api/v1/traces/{trace_id}")
    [span] = trace["spans"]
    assert span["parent_span_id"] == parent
    assert span["llm"]["span_id"] == call["span_id"]
    assert API_KEY not in json.dumps(trace), "the API key must never be stored"


def test_openai_async_streaming_with_usage(mock_provider, gw, run_id):
    direct, through = openai_pair(mock_provider, gw, run_id, async_=True)
    kwargs = dict(model="gpt-4o", messages=MESSAGES, stream=True,
                  stream_options={"include_usage": True}, max_tokens=30)

    async def collect(client):
        stream = await client.chat.completions.create(**kwargs)
        return [chunk.model_dump() async for chunk in stream]

    a = asyncio.run(collect(direct))
    b = asyncio.run(collect(through))
    assert a == b
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in b if c["choices"])
    usage = b[-1]["usage"]

    [call] = recorded(gw, run_id)
    check_context(call, run_id)
    assert call["params"]["stream"] is True
    assert call["ttft_ms"] is not None and call["ttft_ms"] >= 0
    assert call["output_messages"][0]["content"] == text
    assert call["usage"]["input_tokens"] == usage["prompt_tokens"]
    assert call["usage"]["output_tokens"] == usage["completion_tokens"]
    assert call["finish_reasons"] == ["stop"] or call["finish_reasons"] == ["length"]


def test_openai_tool_calls_streamed_and_not(mock_provider, gw, run_id):
    direct, through = openai_pair(mock_provider, gw, run_id)
    kwargs = dict(model="gpt-4o-mini", tools=[WEATHER_TOOL],
                  messages=[{"role": "user", "content": "Weather in Paris?"}])
    a = direct.chat.completions.create(**kwargs)
    b = through.chat.completions.create(**kwargs)
    assert a.model_dump() == b.model_dump()
    tool_call = b.choices[0].message.tool_calls[0]
    assert tool_call.function.name == "get_weather"

    chunks_a = [c.model_dump() for c in direct.chat.completions.create(stream=True, **kwargs)]
    chunks_b = [c.model_dump() for c in through.chat.completions.create(stream=True, **kwargs)]
    assert chunks_a == chunks_b
    streamed_args = "".join(
        (c["choices"][0]["delta"]["tool_calls"] or [{}])[0].get("function", {}).get("arguments") or ""
        for c in chunks_b if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))

    calls = recorded(gw, run_id, 2)
    for call, args in zip(calls, [tool_call.function.arguments, streamed_args]):
        out = call["output_messages"][0]
        assert out["tool_calls"][0]["name"] == "get_weather"
        assert json.loads(out["tool_calls"][0]["arguments"]) == json.loads(args)
        assert call["finish_reasons"] == ["tool_calls"]
        assert call["tool_definitions"][0]["function"]["name"] == "get_weather"
    assert calls[0]["output_messages"][0]["tool_calls"][0]["id"] == tool_call.id



RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "Weather in a city",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}


def test_openai_responses_api(mock_provider, gw, run_id):
    """OpenAI's Responses API: plain, streamed, and a tool round trip, as the SDK sends them."""
    direct, through = openai_pair(mock_provider, gw, run_id)
    kwargs = dict(model="gpt-4o-mini", instructions="Be brief.", input="What is observability?",
                  max_output_tokens=40)
    a = direct.responses.create(**kwargs)
    b = through.responses.create(**kwargs)
    assert a.model_dump() == b.model_dump()
    assert b.output_text

    events_a = [e.model_dump() for e in direct.responses.create(stream=True, **kwargs)]
    events_b = [e.model_dump() for e in through.responses.create(stream=True, **kwargs)]
    assert events_a == events_b
    streamed_text = "".join(e["delta"] for e in events_b
                            if e["type"] == "response.output_text.delta")
    with through.responses.stream(**kwargs) as stream:
        final = stream.get_final_response()
    assert final.output_text == streamed_text

    tools = dict(model="gpt-4o-mini", tools=[RESPONSES_TOOL], input="Weather in Paris?")
    t_a = direct.responses.create(**tools)
    t_b = through.responses.create(**tools)
    assert t_a.model_dump() == t_b.model_dump()
    [fc] = [item for item in t_b.output if item.type == "function_call"]
    follow_up = dict(model="gpt-4o-mini", tools=[RESPONSES_TOOL], input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": fc.call_id, "name": fc.name,
         "arguments": fc.arguments},
        {"type": "function_call_output", "call_id": fc.call_id, "output": "18C, sunny"},
    ])
    f_a = direct.responses.create(**follow_up)
    f_b = through.responses.create(**follow_up)
    assert f_a.model_dump() == f_b.model_dump()

    plain, streamed, _streamed_again, tool, after = recorded(gw, run_id, 5)
    check_context(plain, run_id)
    assert plain["provider"] == "openai" and plain["operation"] == "chat"
    assert plain["request_model"] == "gpt-4o-mini"
    assert plain["response_id"] == b.id
    assert plain["system_instructions"] == "Be brief."
    assert plain["params"]["max_tokens"] == 40
    assert [(m["role"], m["content"]) for m in plain["input_messages"]] == \
        [("user", "What is observability?")]
    assert plain["output_messages"][0]["content"] == b.output_text
    assert plain["usage"]["input_tokens"] == b.usage.input_tokens
    assert plain["usage"]["output_tokens"] == b.usage.output_tokens
    assert plain["finish_reasons"] == (["length"] if b.status == "incomplete" else ["stop"])
    assert plain["cost"] is not None

    assert streamed["params"]["stream"] is True
    assert streamed["ttft_ms"] is not None
    assert streamed["output_messages"][0]["content"] == streamed_text

    out = tool["output_messages"][0]
    assert out["tool_calls"][0]["name"] == "get_weather"
    assert out["tool_calls"][0]["id"] == fc.call_id
    assert json.loads(out["tool_calls"][0]["arguments"]) == json.loads(fc.arguments)
    assert tool["finish_reasons"] == ["tool_calls"]
    assert tool["tool_definitions"][0]["name"] == "get_weather"

    roles = [m["role"] for m in after["input_messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert after["input_messages"][1]["tool_calls"][0]["id"] == fc.call_id
    assert after["input_messages"][2]["content"] == "18C, sunny"
    assert after["output_messages"][0]["content"] == f_b.output_text

def test_openai_logprobs(mock_provider, gw, run_id):
    direct, through = openai_pair(mock_provider, gw, run_id)
    kwargs = dict(model="gpt-4o-mini", messages=MESSAGES, logprobs=True, top_logprobs=3,
                  max_tokens=12)
    a = direct.chat.completions.create(**kwargs)
    b = through.chat.completions.create(**kwargs)
    assert a.model_dump() == b.model_dump()
    [call] = recorded(gw, run_id)
    tokens = b.choices[0].logprobs.content
    assert len(call["logprobs"]) == len(tokens) == b.usage.completion_tokens
    assert call["logprobs"][0]["token"] == tokens[0].token
    assert len(call["logprobs"][0]["top_logprobs"]) == 3


def test_openai_embeddings_completions_and_models(mock_provider, gw, run_id):
    direct, through = openai_pair(mock_provider, gw, run_id)
    # The SDK asks for base64 by default and decodes it.
    a = direct.embeddings.create(model="text-embedding-3-small", input=["hello", "world"],
                                 dimensions=64)
    b = through.embeddings.create(model="text-embedding-3-small", input=["hello", "world"],
                                  dimensions=64)
    assert a.model_dump() == b.model_dump()
    assert len(b.data) == 2 and len(b.data[0].embedding) == 64

    c1 = direct.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon", max_tokens=8)
    c2 = through.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon", max_tokens=8)
    assert c1.model_dump() == c2.model_dump()

    assert [m.id for m in direct.models.list()] == [m.id for m in through.models.list()]

    calls = recorded(gw, run_id, 2)
    emb = next(c for c in calls if c["operation"] == "embeddings")
    assert emb["usage"]["input_tokens"] == b.usage.prompt_tokens
    assert [m["content"] for m in emb["input_messages"]] == ["hello", "world"]
    comp = next(c for c in calls if c["operation"] == "text_completion")
    assert comp["output_messages"][0]["content"] == c2.choices[0].text
    assert comp["input_messages"][0]["content"] == "Once upon"


def test_anthropic_messages(mock_provider, gw, run_id):
    direct, through = anthropic_pair(mock_provider, gw, run_id)
    kwargs = dict(model="claude-haiku-4-5-20251001", max_tokens=40, system="Answer briefly.",
                  messages=[{"role": "user", "content": "Hello there"}])
    a = direct.messages.create(**kwargs)
    b = through.messages.create(**kwargs)
    assert a.model_dump() == b.model_dump()
    [call] = recorded(gw, run_id)
    check_context(call, run_id)
    assert call["provider"] == "anthropic"
    assert call["request_model"] == "claude-haiku-4-5-20251001"
    assert call["system_instructions"] == "Answer briefly."
    assert call["usage"]["input_tokens"] == b.usage.input_tokens
    assert call["usage"]["output_tokens"] == b.usage.output_tokens
    assert call["output_messages"][0]["content"] == b.content[0].text
    assert call["finish_reasons"] == [b.stop_reason]
    assert call["cost"] is not None

    # Token counting passes through too, and agrees with the usage of the call itself.
    count_kwargs = {k: v for k, v in kwargs.items() if k != "max_tokens"}
    counted = through.messages.count_tokens(**count_kwargs)
    assert counted.model_dump() == direct.messages.count_tokens(**count_kwargs).model_dump()
    assert counted.input_tokens == b.usage.input_tokens


def test_anthropic_streaming_and_tools(mock_provider, gw, run_id):
    direct, through = anthropic_pair(mock_provider, gw, run_id)
    kwargs = dict(model="claude-opus-4-5", max_tokens=60,
                  messages=[{"role": "user", "content": "Tell me something"}])
    with direct.messages.stream(**kwargs) as s:
        text_a = "".join(s.text_stream)
        final_a = s.get_final_message()
    with through.messages.stream(**kwargs) as s:
        text_b = "".join(s.text_stream)
        final_b = s.get_final_message()
    assert text_a == text_b and final_a.model_dump() == final_b.model_dump()

    tools = [{"name": "lookup", "description": "Look up",
              "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    t_a = direct.messages.create(tools=tools, **kwargs)
    t_b = through.messages.create(tools=tools, **kwargs)
    assert t_a.model_dump() == t_b.model_dump()
    assert t_b.content[0].type == "tool_use"

    streamed, tool = recorded(gw, run_id, 2)
    assert streamed["ttft_ms"] is not None
    assert streamed["output_messages"][0]["content"] == text_b
    assert streamed["usage"]["output_tokens"] == final_b.usage.output_tokens
    assert tool["output_messages"][0]["tool_calls"][0]["name"] == "lookup"
    assert tool["finish_reasons"] == ["tool_use"]


@pytest.mark.parametrize("fault,sdk_error,status", [
    ("429", openai.RateLimitError, 429),
    ("500", openai.InternalServerError, 500),
])
def test_upstream_errors_pass_through(mock_provider, gw, run_id, fault, sdk_error, status):
    direct, through = openai_pair(mock_provider, gw, run_id)
    headers = {"x-mock-fault": fault}
    with pytest.raises(sdk_error) as a:
        direct.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)
    with pytest.raises(sdk_error) as b:
        through.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)
    assert a.value.status_code == b.value.status_code == status
    assert a.value.body == b.value.body
    if fault == "429":
        assert b.value.response.headers["retry-after"] == "1"
    [call] = recorded(gw, run_id)
    assert call["status"] == "error"
    assert call["error_type"] == str(status)
    assert "mock provider" in call["error_message"]


def test_upstream_timeout(mock_provider, gw, run_id):
    _, through = openai_pair(mock_provider, gw, run_id)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as e:
        through.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                        extra_headers={"x-mock-fault": "timeout"})
    assert time.monotonic() - started < 20
    assert e.value.status_code == 504
    assert e.value.body["code"] == "upstream_timeout"
    [call] = recorded(gw, run_id)
    assert call["status"] == "error" and call["error_type"] == "timeout"


def test_client_disconnect_mid_stream_is_recorded_as_cancelled(mock_provider, gw, run_id):
    body = {"model": "gpt-4o", "stream": True, "max_tokens": 200,
            "messages": [{"role": "user", "content": "A long story please"}]}
    headers = {"authorization": f"Bearer {API_KEY}", "x-mock-tokens-per-s": "20",
               **attribution(run_id)}
    with requests.post(gw.base_url + "/gateway/openai/v1/chat/completions", json=body,
                       headers=headers, stream=True, timeout=10) as r:
        assert r.status_code == 200
        received = b""
        for chunk in r.iter_content(chunk_size=None):
            received += chunk
            if received.count(b"data: ") >= 4:
                break
    # Leaving the block closes the connection mid-stream.
    [call] = recorded(gw, run_id)
    assert call["status"] == "error"
    assert call["error_type"] == "cancelled"
    assert "client disconnected" in call["error_message"]
    partial = call["output_messages"][0]["content"]
    assert partial, "what was received before the disconnect is kept"
    assert call["params"]["stream"] is True


def test_malformed_upstream_bodies(mock_provider, gw, run_id):
    body = {"model": "gpt-4o", "messages": MESSAGES}
    headers = {"authorization": f"Bearer {API_KEY}", "x-mock-fault": "malformed"}
    direct = requests.post(mock_provider + "/v1/chat/completions", json=body, headers=headers)
    through = requests.post(gw.base_url + "/gateway/openai/v1/chat/completions", json=body,
                            headers={**headers, **attribution(run_id)})
    assert direct.status_code == through.status_code == 200
    assert direct.content == through.content  # passed through unchanged, broken as it is
    streamed = requests.post(gw.base_url + "/gateway/openai/v1/chat/completions",
                             json={**body, "stream": True},
                             headers={**headers, **attribution(run_id)})
    assert streamed.status_code == 200
    calls = recorded(gw, run_id, 2)
    for call in calls:
        assert call["status"] == "error"
        assert call["error_type"] == "malformed_response"
    # The stream's valid events are still read.
    assert any(c["output_messages"] for c in calls)


def test_upstream_stream_broken_off(mock_provider, gw, run_id):
    body = {"model": "gpt-4o", "stream": True, "messages": MESSAGES}
    headers = {"authorization": f"Bearer {API_KEY}", "x-mock-fault": "disconnect",
               **attribution(run_id)}
    with pytest.raises(requests.exceptions.RequestException):
        r = requests.post(gw.base_url + "/gateway/openai/v1/chat/completions", json=body,
                          headers=headers, stream=True, timeout=10)
        for _ in r.iter_content(chunk_size=None):
            pass
    [call] = recorded(gw, run_id)
    assert call["status"] == "error"
    assert call["error_type"] == "upstream_error"


def test_bad_requests_get_clear_errors(mock_provider, gw, run_id):
    r = requests.post(gw.base_url + "/gateway/openai/v1/chat/completions", data=b"{nope",
                      headers={"authorization": f"Bearer {API_KEY}", "content-type": "application/json",
                               **attribution(run_id)})
    assert r.status_code == 400
    err = r.json()["error"]
    assert {"code", "message", "field"} <= err.keys()
    r = requests.post(gw.base_url + "/gateway/openai/v1/chat/completions",
                      json={"model": "gpt-4o", "messages": MESSAGES}, headers=attribution(run_id))
    assert r.status_code == 401  # no key: the upstream says so, unchanged
    calls = recorded(gw, run_id, 2)
    assert sorted(c["error_type"] for c in calls) == ["400", "401"]
    assert gw.get("/readyz").status_code == 200
