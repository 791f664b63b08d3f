"""The query API over a small known dataset sent with the OpenTelemetry SDK: every filter, cursor
pagination, sessions in order, per-user aggregates and the error bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from conftest import wait_until
from otel_helpers import (
    NS,
    current_convention_span,
    expected_cost,
    flush,
    now_ns,
    span_exporter,
    tracer_provider,
)


@dataclass
class Call:
    trace: int
    span_id: str
    model: str
    response_model: str
    provider: str
    input_tokens: int
    output_tokens: int
    user: str
    session: str
    start_ns: int
    end_ns: int
    error: bool = False
    attrs: dict = field(default_factory=dict)

    @property
    def cost(self):
        return expected_cost(self.response_model, self.input_tokens, self.output_tokens)


@dataclass
class Dataset:
    run: str
    service: str
    alice: str
    bob: str
    s1: str
    s2: str
    word: str
    base_ns: int
    trace_ids: list = field(default_factory=list)
    calls: list = field(default_factory=list)

    def calls_where(self, **kw):
        return [c for c in self.calls if all(getattr(c, k) == v for k, v in kw.items())]


# trace index, session, user, [(model, response model, provider, input, output, error, attrs)]
PLAN = [
    (0, "s1", "alice", [("gpt-4o", "gpt-4o-2024-08-06", "openai", 100, 20, False, {})]),
    (1, "s2", "bob", [("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", 200, 40, False, {})]),
    (2, "s1", "alice", [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", 300, 60, False, {"app.tier": "gold"}),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022", "anthropic", 50, 10, False,
         {"app.tier": "gold"}),
    ]),
    (3, "s2", "bob", [("gpt-4o", "gpt-4o-2024-08-06", "openai", 10, 0, True, {})]),
    (4, "s1", "alice", [("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", 40, 8, False, {})]),
]


@pytest.fixture(scope="module")
def data(sightline) -> Dataset:
    run = uuid.uuid4().hex[:10]
    ds = Dataset(run=run, service=f"e2e-api-{run}", alice=f"alice-{run}", bob=f"bob-{run}",
                 s1=f"s1-{run}", s2=f"s2-{run}", word=f"quokka{run}",
                 base_ns=(now_ns() // NS - 600) * NS)
    provider, recording = tracer_provider(span_exporter("http-protobuf", sightline), ds.service)
    tracer = provider.get_tracer("sightline.e2e.api")
    for index, session_key, user_key, calls in PLAN:
        session, user = getattr(ds, session_key), getattr(ds, user_key)
        t0 = ds.base_ns + index * 10 * NS
        root = tracer.start_span(f"turn-{index}", kind=SpanKind.SERVER, start_time=t0)
        token = otel_context.attach(trace.set_span_in_context(root))
        try:
            for k, (model, response_model, prov, inp, out, error, attrs) in enumerate(calls):
                start = t0 + (k + 1) * NS
                question = f"Tell me about the {ds.word}." if index == 4 else f"Question {index}.{k}"
                span, end, _ = current_convention_span(
                    tracer, session=session, user=user, start_ns=start, model=model,
                    response_model=response_model, provider=prov, input_tokens=inp,
                    output_tokens=out, question=question, answer=f"Answer {index}.{k}",
                    status_error="rate_limit_exceeded" if error else None, extra=attrs)
                span.end(end_time=end)
                ds.calls.append(Call(index, format(span.get_span_context().span_id, "016x"), model,
                                     response_model, prov, inp, out, user, session, start, end,
                                     error, attrs))
        finally:
            otel_context.detach(token)
        if any(c[5] for c in calls):
            from opentelemetry.trace import Status, StatusCode
            root.set_status(Status(StatusCode.ERROR, "a model call failed"))
        root.end(end_time=t0 + 5 * NS)
        ds.trace_ids.append(format(root.get_span_context().trace_id, "032x"))
    flush(provider, recording)
    provider.shutdown()
    wait_until(lambda: len(sightline.api("/api/v1/calls", service=ds.service, limit=100)["calls"]) == 6,
               what="the 6 calls of the API dataset")
    return ds


def _span_ids(calls):
    return sorted(c["span_id"] for c in calls)


def _want(calls):
    return sorted(c.span_id for c in calls)


def calls_of(sightline, data, **params):
    return sightline.api("/api/v1/calls", service=data.service, limit=100, **params)["calls"]


def test_filter_by_model_matches_request_or_response_model(sightline, data):
    assert _span_ids(calls_of(sightline, data, model="gpt-4o-mini")) == \
        _want(data.calls_where(model="gpt-4o-mini"))
    assert _span_ids(calls_of(sightline, data, model="gpt-4o")) == _want(data.calls_where(model="gpt-4o"))
    assert _span_ids(calls_of(sightline, data, model="gpt-4o-2024-08-06")) == \
        _want(data.calls_where(model="gpt-4o"))
    assert calls_of(sightline, data, model="no-such-model") == []


def test_filter_by_provider_user_session_status(sightline, data):
    assert _span_ids(calls_of(sightline, data, provider="anthropic")) == \
        _want(data.calls_where(provider="anthropic"))
    assert _span_ids(calls_of(sightline, data, user_id=data.alice)) == _want(data.calls_where(user=data.alice))
    assert _span_ids(calls_of(sightline, data, session_id=data.s2)) == _want(data.calls_where(session=data.s2))
    errors = calls_of(sightline, data, status="error")
    assert _span_ids(errors) == _want(data.calls_where(error=True))
    assert errors[0]["status"] == "error"
    assert errors[0]["error_type"] == "rate_limit_exceeded"
    assert _span_ids(calls_of(sightline, data, status="ok")) == _want(data.calls_where(error=False))
    # Filters combine with AND.
    assert _span_ids(calls_of(sightline, data, user_id=data.alice, model="gpt-4o-mini")) == \
        _want(data.calls_where(user=data.alice, model="gpt-4o-mini"))
    assert calls_of(sightline, data, user_id=data.alice, status="error") == []


def test_full_text_and_attribute_filters(sightline, data):
    found = calls_of(sightline, data, q=data.word)
    assert _span_ids(found) == _want(data.calls_where(trace=4)), f"q={data.word} found {found}"
    # q alone (no service filter) finds it too: the word is unique to this run.
    assert _span_ids(sightline.api("/api/v1/calls", q=data.word)["calls"]) == _want(data.calls_where(trace=4))
    gold = calls_of(sightline, data, **{"attr.app.tier": "gold"})
    assert _span_ids(gold) == _want([c for c in data.calls if c.attrs.get("app.tier") == "gold"])


def test_time_range_filter(sightline, data):
    # Unix milliseconds and RFC 3339 both work; `from` is inclusive, `to` exclusive.
    start_ms = (data.base_ns + 15 * NS) // 1_000_000
    end_ms = (data.base_ns + 35 * NS) // 1_000_000
    want = _want([c for c in data.calls if start_ms * 1_000_000 <= c.start_ns < end_ms * 1_000_000])
    assert _span_ids(calls_of(sightline, data, **{"from": start_ms, "to": end_ms})) == want
    import datetime as dt
    rfc = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    assert _span_ids(calls_of(sightline, data, **{"from": rfc(start_ms), "to": rfc(end_ms)})) == want


def _pages(sightline, path, key, **params):
    pages, cursor = [], None
    for _ in range(20):
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        body = sightline.api(path, **query)
        pages.append(body[key])
        cursor = body.get("next_cursor")
        if not cursor:
            return pages
    raise AssertionError(f"{path}: pagination did not end after 20 pages: {pages}")


def test_call_pagination(sightline, data):
    pages = _pages(sightline, "/api/v1/calls", "calls", service=data.service, limit=2)
    assert all(len(p) <= 2 for p in pages), [len(p) for p in pages]
    ids = [c["span_id"] for p in pages for c in p]
    assert len(ids) == len(set(ids)), f"a call appeared on two pages: {ids}"
    assert sorted(ids) == _want(data.calls)
    starts = [c["start_time_unix_nano"] for p in pages for c in p]
    assert starts == sorted(starts, reverse=True) or starts == sorted(starts), \
        f"calls are not ordered by time across pages: {starts}"


def test_trace_list_filters_and_pagination(sightline, data):
    pages = _pages(sightline, "/api/v1/traces", "traces", service=data.service, limit=2)
    assert [len(p) for p in pages][:2] == [2, 2]
    ids = [t["trace_id"] for p in pages for t in p]
    assert sorted(ids) == sorted(data.trace_ids) and len(ids) == len(set(ids))

    s1 = sightline.api("/api/v1/traces", session_id=data.s1)["traces"]
    assert sorted(t["trace_id"] for t in s1) == sorted(data.trace_ids[i] for i in (0, 2, 4))
    assert all(t["session_id"] == data.s1 and t["user_id"] == data.alice for t in s1), s1
    errors = sightline.api("/api/v1/traces", service=data.service, status="error")["traces"]
    assert [t["trace_id"] for t in errors] == [data.trace_ids[3]]
    assert errors[0]["status"] == "error"
    bob = sightline.api("/api/v1/traces", user_id=data.bob)["traces"]
    assert sorted(t["trace_id"] for t in bob) == sorted(data.trace_ids[i] for i in (1, 3))
    gpt4o = sightline.api("/api/v1/traces", service=data.service, model="gpt-4o")["traces"]
    assert sorted(t["trace_id"] for t in gpt4o) == sorted(data.trace_ids[i] for i in (0, 3))
    t2 = next(t for t in s1 if t["trace_id"] == data.trace_ids[2])
    assert t2["llm_call_count"] == 2 and t2["span_count"] == 3
    assert t2["input_tokens"] == 350 and t2["output_tokens"] == 70
    assert t2["cost_usd"] == pytest.approx(sum(c.cost for c in data.calls_where(trace=2)), rel=0.01)


def test_session_lists_its_traces_in_order(sightline, data):
    body = sightline.api(f"/api/v1/sessions/{data.s1}")
    assert [t["trace_id"] for t in body["traces"]] == [data.trace_ids[i] for i in (0, 2, 4)]
    session = body["session"]
    mine = data.calls_where(session=data.s1)
    assert session["session_id"] == data.s1
    assert session["user_id"] == data.alice
    assert session["trace_count"] == 3
    assert session["call_count"] == len(mine)
    assert session["errors"] == 0
    assert session["input_tokens"] == sum(c.input_tokens for c in mine)
    assert session["output_tokens"] == sum(c.output_tokens for c in mine)
    assert session["cost_usd"] == pytest.approx(sum(c.cost for c in mine), rel=0.01)

    listed = sightline.api("/api/v1/sessions", user_id=data.bob)["sessions"]
    assert [s["session_id"] for s in listed] == [data.s2]
    assert listed[0]["errors"] == 1 and listed[0]["trace_count"] == 2


def test_users_aggregate(sightline, data):
    rows = {}
    for page in _pages(sightline, "/api/v1/users", "users", limit=1000):
        for row in page:
            rows[row["user_id"]] = row
    for user, traces in ((data.alice, 3), (data.bob, 2)):
        assert user in rows, f"{user} missing from /api/v1/users"
        row, mine = rows[user], data.calls_where(user=user)
        assert row["calls"] == len(mine), row
        assert row["traces"] == traces, row
        assert row["sessions"] == 1, row
        assert row["errors"] == sum(c.error for c in mine), row
        assert row["input_tokens"] == sum(c.input_tokens for c in mine), row
        assert row["output_tokens"] == sum(c.output_tokens for c in mine), row
        assert row["cost_usd"] == pytest.approx(sum(c.cost for c in mine), rel=0.01), row
        last = max(mine, key=lambda c: c.start_ns)
        assert last.start_ns <= row["last_seen_unix_nano"] <= last.end_ns, row
        first = min(mine, key=lambda c: c.start_ns)
        assert first.start_ns <= row["first_seen_unix_nano"] <= first.end_ns, row
    alice = sightline.api("/api/v1/users", user_id=data.alice)["users"]
    assert [u["user_id"] for u in alice] == [data.alice]


@pytest.mark.parametrize("path,params,status,field", [
    ("/api/v1/calls", {"status": "bogus"}, 400, "status"),
    ("/api/v1/calls", {"limit": "0"}, 400, "limit"),
    ("/api/v1/calls", {"from": "yesterday-ish"}, 400, "from"),
    ("/api/v1/traces/not-a-trace-id", {}, 400, "trace_id"),
    ("/api/v1/traces/0000000000000000000000000000abcd", {}, 404, None),
    ("/api/v1/sessions/no-such-session", {}, 404, None),
    ("/api/v1/no-such-endpoint", {}, 404, None),
])
def test_errors_are_json_with_the_right_status(sightline, path, params, status, field):
    r = sightline.get(path, **params)
    assert r.status_code == status, f"{path} {params}: {r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    if field:
        assert body["error"].get("field") == field, body
