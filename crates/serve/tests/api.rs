//! The JSON API against the real embedded store: fixtures are written with `Store::write`, every
//! endpoint is read through the router with `oneshot`, and the JSON is checked field by field —
//! shapes, each filter, pagination, projects, 404s and health.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use sightline_model::{
    Attributes, Event, Link, Scope, Span, SpanId, SpanKind, SpanStatus, StatusCode as SpanCode,
    TraceId, DEFAULT_PROJECT,
};
use sightline_store::sqlite::{SqliteConfig, SqliteStore};
use sightline_store::testsuite::{test_enricher, TestEnricher};
use sightline_store::{Enricher, SharedStore, SpanWithCall, WriteBatch};
use tempfile::TempDir;

use common::{get, send, Reply};

/// 2024-05-01T10:00:00Z; fixture times are offsets in milliseconds from here.
const T0: u64 = 1_714_557_600_000_000_000;
const T0_MS: u64 = T0 / 1_000_000;

fn at(ms: u64) -> u64 {
    T0 + ms * 1_000_000
}

fn tid(n: u8) -> TraceId {
    let mut bytes = [0xab; 16];
    bytes[15] = n;
    TraceId(bytes)
}

fn hex(n: u8) -> String {
    tid(n).to_hex()
}

fn sid(trace: u8, n: u8) -> SpanId {
    SpanId([trace, 0, 0, 0, 0, 0, 0, n])
}

struct SpanSpec<'a> {
    project: &'a str,
    trace: u8,
    id: u8,
    parent: Option<u8>,
    name: &'a str,
    kind: SpanKind,
    service: &'a str,
    start_ms: u64,
    dur_ms: u64,
}

fn span(s: SpanSpec<'_>) -> Span {
    let mut resource = Attributes::new();
    resource.insert("service.name".into(), json!(s.service));
    Span {
        project: s.project.into(),
        trace_id: tid(s.trace),
        span_id: sid(s.trace, s.id),
        parent_span_id: s.parent.map(|p| sid(s.trace, p)),
        name: s.name.into(),
        kind: s.kind,
        service: s.service.into(),
        start_time_unix_nano: at(s.start_ms),
        end_time_unix_nano: at(s.start_ms + s.dur_ms),
        status: SpanStatus::default(),
        attributes: Attributes::new(),
        resource,
        scope: Scope {
            name: "sightline.test".into(),
            version: "1.0".into(),
            attributes: Attributes::new(),
        },
        events: Vec::new(),
        links: Vec::new(),
    }
}

fn with(mut s: Span, attrs: &[(&str, Value)]) -> Span {
    for (k, v) in attrs {
        s.attributes.insert((*k).into(), v.clone());
    }
    s
}

/// An LLM span as the test enricher reads it.
#[allow(clippy::too_many_arguments)]
fn llm(
    s: Span,
    provider: &str,
    model: &str,
    input: u64,
    output: u64,
    user: &str,
    session: &str,
    prompt: &str,
) -> Span {
    with(
        s,
        &[
            ("gen_ai.provider.name", json!(provider)),
            ("gen_ai.request.model", json!(model)),
            ("gen_ai.usage.input_tokens", json!(input)),
            ("gen_ai.usage.output_tokens", json!(output)),
            ("user.id", json!(user)),
            ("session.id", json!(session)),
            ("test.prompt", json!(prompt)),
        ],
    )
}

/// The fixture, in project `default` unless said otherwise:
///
/// | trace | start | service | spans | call | user | session | status | tier |
/// |---|---|---|---|---|---|---|---|---|
/// | 1 | 0 s | chatbot | root, llm, tool | openai gpt-4o 10/20, $0.002 | u1 | s1 | ok | gold |
/// | 2 | 60 s | chatbot | root, llm | anthropic claude 5/0, unpriced | u2 | s2 | error | free |
/// | 3 | 120 s | indexer | llm (root) | openai embedding 7/0, $0.0001 | u1 | s1 | ok | gold |
/// | 4 | 180 s | indexer | cron (no call) | – | – | – | ok | gold |
/// | 5 (project `other`) | 30 s | chatbot | llm | openai gpt-4o 1/1 | u3 | s3 | ok | – |
fn fixture() -> Vec<Span> {
    let d = DEFAULT_PROJECT;
    let spec = |project, trace, id, parent, name, kind, service, start_ms, dur_ms| SpanSpec {
        project,
        trace,
        id,
        parent,
        name,
        kind,
        service,
        start_ms,
        dur_ms,
    };

    let mut root1 = with(
        span(spec(
            d,
            1,
            1,
            None,
            "POST /chat",
            SpanKind::Server,
            "chatbot",
            0,
            1000,
        )),
        &[("tier", json!("gold")), ("http.status_code", json!(200))],
    );
    root1.events.push(Event {
        time_unix_nano: at(5),
        name: "request.received".into(),
        attributes: Attributes::new(),
        body: None,
    });
    let chat1 = with(
        llm(
            span(spec(
                d,
                1,
                2,
                Some(1),
                "chat gpt-4o",
                SpanKind::Client,
                "chatbot",
                100,
                500,
            )),
            "openai",
            "gpt-4o",
            10,
            20,
            "u1",
            "s1",
            "What is the capital of France?",
        ),
        &[
            ("gen_ai.response.model", json!("gpt-4o-2024-08-06")),
            ("test.completion", json!("Paris")),
            ("test.cost_usd", json!(0.002)),
        ],
    );
    let mut tool1 = span(spec(
        d,
        1,
        3,
        Some(1),
        "tool lookup",
        SpanKind::Internal,
        "chatbot",
        700,
        100,
    ));
    tool1.links.push(Link {
        trace_id: tid(2),
        span_id: sid(2, 1),
        attributes: Attributes::new(),
    });

    let root2 = with(
        span(spec(
            d,
            2,
            1,
            None,
            "POST /chat",
            SpanKind::Server,
            "chatbot",
            60_000,
            2000,
        )),
        &[("tier", json!("free"))],
    );
    let mut chat2 = llm(
        span(spec(
            d,
            2,
            2,
            Some(1),
            "chat claude",
            SpanKind::Client,
            "chatbot",
            60_100,
            1500,
        )),
        "anthropic",
        "claude-3-5-sonnet",
        5,
        0,
        "u2",
        "s2",
        "Tell me a joke about penguins",
    );
    chat2.status = SpanStatus {
        code: SpanCode::Error,
        message: "rate limited".into(),
    };

    let embed3 = with(
        llm(
            span(spec(
                d,
                3,
                1,
                None,
                "embeddings",
                SpanKind::Client,
                "indexer",
                120_000,
                300,
            )),
            "openai",
            "text-embedding-3-small",
            7,
            0,
            "u1",
            "s1",
            "kangaroo facts",
        ),
        &[("tier", json!("gold")), ("test.cost_usd", json!(0.0001))],
    );

    let cron4 = with(
        span(spec(
            d,
            4,
            1,
            None,
            "cron",
            SpanKind::Internal,
            "indexer",
            180_000,
            50,
        )),
        &[("tier", json!("gold"))],
    );

    let other5 = llm(
        span(spec(
            "other",
            5,
            1,
            None,
            "chat",
            SpanKind::Client,
            "chatbot",
            30_000,
            100,
        )),
        "openai",
        "gpt-4o",
        1,
        1,
        "u3",
        "s3",
        "hello from another project",
    );

    vec![root1, chat1, tool1, root2, chat2, embed3, cron4, other5]
}

struct Api {
    router: Router,
    _dir: TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        path: dir.path().to_path_buf(),
        ..SqliteConfig::default()
    };
    let store: SharedStore = Arc::new(SqliteStore::open(config, test_enricher()).unwrap());
    let spans = fixture()
        .into_iter()
        .map(|span| SpanWithCall {
            llm: TestEnricher.enrich(&span),
            span,
        })
        .collect();
    store
        .write(WriteBatch {
            spans,
            logs: Vec::new(),
        })
        .await
        .unwrap();
    Api {
        router: sightline_serve::router(store),
        _dir: dir,
    }
}

impl Api {
    async fn ok(&self, uri: &str) -> Value {
        let reply = get(&self.router, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
        reply.json()
    }

    async fn get(&self, uri: &str) -> Reply {
        get(&self.router, uri).await
    }

    /// Trace ids listed by `/api/v1/traces?{query}`.
    async fn traces(&self, query: &str) -> Vec<String> {
        let json = self.ok(&format!("/api/v1/traces?{query}")).await;
        ids(&json["traces"], "trace_id")
    }

    /// Trace ids of the calls listed by `/api/v1/calls?{query}`.
    async fn calls(&self, query: &str) -> Vec<String> {
        let json = self.ok(&format!("/api/v1/calls?{query}")).await;
        ids(&json["calls"], "trace_id")
    }

    async fn sessions(&self, query: &str) -> Vec<String> {
        let json = self.ok(&format!("/api/v1/sessions?{query}")).await;
        ids(&json["sessions"], "session_id")
    }

    async fn users(&self, query: &str) -> Vec<String> {
        let json = self.ok(&format!("/api/v1/users?{query}")).await;
        ids(&json["users"], "user_id")
    }

    /// Follows `next_cursor` from `/api/v1/{list}?{query}` to the end; returns every page's ids.
    async fn walk(&self, list: &str, key: &str, id: &str, query: &str) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut uri = format!("/api/v1/{list}?{query}");
            if let Some(c) = &cursor {
                uri.push_str(&format!("&cursor={}", encode(c)));
            }
            let json = self.ok(&uri).await;
            pages.push(ids(&json[key], id));
            match &json["next_cursor"] {
                Value::Null => return pages,
                Value::String(c) => cursor = Some(c.clone()),
                other => panic!("next_cursor is {other}"),
            }
            assert!(pages.len() < 100, "pagination does not end");
        }
    }
}

fn ids(rows: &Value, key: &str) -> Vec<String> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not an array: {rows}"))
        .iter()
        .map(|r| r[key].as_str().unwrap().to_owned())
        .collect()
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn sorted<const N: usize>(mut k: [&str; N]) -> Vec<&str> {
    k.sort_unstable();
    k.to_vec()
}

#[tokio::test]
async fn trace_list_shape() {
    let api = api().await;
    let reply = api.get("/api/v1/traces").await;
    assert_eq!(reply.headers["content-type"], "application/json");
    let json = api.ok("/api/v1/traces").await;
    assert_eq!(keys(&json), ["next_cursor", "traces"]);
    assert_eq!(json["next_cursor"], Value::Null);
    let traces = json["traces"].as_array().unwrap();
    assert_eq!(
        ids(&json["traces"], "trace_id"),
        [hex(4), hex(3), hex(2), hex(1)]
    );
    for t in traces {
        assert_eq!(
            keys(t),
            sorted([
                "trace_id",
                "name",
                "service",
                "start_time",
                "start_time_unix_nano",
                "duration_ms",
                "span_count",
                "llm_call_count",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "status",
                "user_id",
                "session_id",
            ])
        );
    }
    assert_eq!(
        traces[3],
        json!({
            "trace_id": hex(1),
            "name": "POST /chat",
            "service": "chatbot",
            "start_time": "2024-05-01T10:00:00.000000000Z",
            "start_time_unix_nano": T0,
            "duration_ms": 1000.0,
            "span_count": 3,
            "llm_call_count": 1,
            "input_tokens": 10,
            "output_tokens": 20,
            "cost_usd": 0.002,
            "status": "ok",
            "user_id": "u1",
            "session_id": "s1",
        })
    );
    // trace 2: a failed, unpriced call
    assert_eq!(traces[2]["status"], "error");
    assert_eq!(traces[2]["cost_usd"], Value::Null);
    assert_eq!(traces[2]["start_time"], "2024-05-01T10:01:00.000000000Z");
    // trace 4: no call at all
    assert_eq!(traces[0]["llm_call_count"], 0);
    assert_eq!(traces[0]["user_id"], Value::Null);
    assert_eq!(traces[0]["session_id"], Value::Null);
}

#[tokio::test]
async fn trace_detail_shape() {
    let api = api().await;
    let json = api.ok(&format!("/api/v1/traces/{}", hex(1))).await;
    assert_eq!(keys(&json), ["spans", "trace_id"]);
    assert_eq!(json["trace_id"], hex(1));
    let spans = json["spans"].as_array().unwrap();
    assert_eq!(
        ids(&json["spans"], "name"),
        ["POST /chat", "chat gpt-4o", "tool lookup"]
    );
    for s in spans {
        assert_eq!(
            keys(s),
            sorted([
                "span_id",
                "parent_span_id",
                "name",
                "kind",
                "service",
                "start_time_unix_nano",
                "end_time_unix_nano",
                "duration_ms",
                "status",
                "status_message",
                "attributes",
                "resource",
                "scope",
                "events",
                "links",
                "llm",
            ])
        );
    }
    let root = &spans[0];
    assert_eq!(root["span_id"], sid(1, 1).to_hex());
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(root["kind"], "server");
    assert_eq!(root["service"], "chatbot");
    assert_eq!(root["start_time_unix_nano"], T0);
    assert_eq!(root["end_time_unix_nano"], at(1000));
    assert_eq!(root["duration_ms"], 1000.0);
    assert_eq!(root["status"], "unset");
    assert_eq!(root["status_message"], "");
    assert_eq!(
        root["attributes"],
        json!({"tier": "gold", "http.status_code": 200})
    );
    assert_eq!(root["resource"], json!({"service.name": "chatbot"}));
    assert_eq!(
        root["scope"],
        json!({"name": "sightline.test", "version": "1.0", "attributes": {}})
    );
    assert_eq!(root["events"][0]["name"], "request.received");
    assert_eq!(root["events"][0]["time_unix_nano"], at(5));
    assert_eq!(root["links"], json!([]));
    assert_eq!(root["llm"], Value::Null);

    let chat = &spans[1];
    assert_eq!(chat["parent_span_id"], sid(1, 1).to_hex());
    assert_eq!(chat["kind"], "client");
    assert_eq!(chat["duration_ms"], 500.0);
    let call = &chat["llm"];
    assert_eq!(call["trace_id"], hex(1));
    assert_eq!(call["span_id"], sid(1, 2).to_hex());
    assert_eq!(call["provider"], "openai");
    assert_eq!(call["request_model"], "gpt-4o");
    assert_eq!(call["response_model"], "gpt-4o-2024-08-06");
    assert_eq!(call["usage"]["input_tokens"], 10);
    assert_eq!(call["usage"]["output_tokens"], 20);
    assert_eq!(call["cost"]["total_usd"], 0.002);
    assert_eq!(
        call["input_messages"][0]["content"],
        "What is the capital of France?"
    );
    assert_eq!(call["output_messages"][0]["content"], "Paris");
    assert_eq!(call["status"], "ok");
    assert_eq!(call["user_id"], "u1");
    assert_eq!(call["session_id"], "s1");

    let tool = &spans[2];
    assert_eq!(tool["kind"], "internal");
    assert_eq!(
        tool["links"],
        json!([{"trace_id": hex(2), "span_id": sid(2, 1).to_hex(), "attributes": {}}])
    );

    // a failed span shows its status and message, and so does its call
    let json = api.ok(&format!("/api/v1/traces/{}", hex(2))).await;
    let chat = &json["spans"][1];
    assert_eq!(chat["status"], "error");
    assert_eq!(chat["status_message"], "rate limited");
    assert_eq!(chat["llm"]["status"], "error");
    assert_eq!(chat["llm"]["cost"], Value::Null);
}

#[tokio::test]
async fn trace_ids_are_checked_and_missing_traces_are_404() {
    let api = api().await;
    // upper-case hex is the same id
    let json = api
        .ok(&format!("/api/v1/traces/{}", hex(1).to_uppercase()))
        .await;
    assert_eq!(json["trace_id"], hex(1));

    api.get(&format!("/api/v1/traces/{}", hex(9)))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    for bad in ["xyz", "00000000000000000000000000000000", &hex(1)[..31]] {
        api.get(&format!("/api/v1/traces/{bad}"))
            .await
            .assert_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                Some("trace_id"),
            );
    }
}

#[tokio::test]
async fn projects_are_separate() {
    let api = api().await;
    assert_eq!(api.traces("").await.len(), 4);
    assert_eq!(api.traces("project=other").await, [hex(5)]);
    assert_eq!(api.calls("project=other").await, [hex(5)]);
    assert_eq!(api.sessions("project=other").await, ["s3"]);
    assert_eq!(api.users("project=other").await, ["u3"]);
    assert!(api.traces("project=nobody").await.is_empty());

    // a trace of another project is not found in the default one
    let trace5 = format!("/api/v1/traces/{}", hex(5));
    api.get(&trace5)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(
        api.ok(&format!("{trace5}?project=other")).await["trace_id"],
        hex(5)
    );
    api.get("/api/v1/sessions/s3")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(
        api.ok("/api/v1/sessions/s3?project=other").await["session"]["session_id"],
        "s3"
    );

    // the header names the project when the query does not
    let with_header = |uri: &str| {
        Request::get(uri)
            .header("x-sightline-project", "other")
            .body(Body::empty())
            .unwrap()
    };
    let reply = send(&api.router, with_header("/api/v1/traces")).await;
    assert_eq!(ids(&reply.json()["traces"], "trace_id"), [hex(5)]);
    let reply = send(&api.router, with_header(&trace5)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&api.router, with_header("/api/v1/traces?project=default")).await;
    assert_eq!(ids(&reply.json()["traces"], "trace_id").len(), 4);
}

#[tokio::test]
async fn every_filter_narrows_the_trace_list() {
    let api = api().await;
    let all = [hex(4), hex(3), hex(2), hex(1)];
    assert_eq!(api.traces("").await, all);
    let cases: Vec<(String, Vec<String>)> = vec![
        ("service=indexer".into(), vec![hex(4), hex(3)]),
        ("service=chatbot".into(), vec![hex(2), hex(1)]),
        ("model=gpt-4o".into(), vec![hex(1)]),
        // the response model matches too
        ("model=gpt-4o-2024-08-06".into(), vec![hex(1)]),
        ("provider=anthropic".into(), vec![hex(2)]),
        ("provider=openai".into(), vec![hex(3), hex(1)]),
        ("user_id=u1".into(), vec![hex(3), hex(1)]),
        ("session_id=s2".into(), vec![hex(2)]),
        ("status=error".into(), vec![hex(2)]),
        ("status=ok".into(), vec![hex(4), hex(3), hex(1)]),
        ("q=penguins".into(), vec![hex(2)]),
        ("q=kangaroo".into(), vec![hex(3)]),
        ("attr.tier=gold".into(), vec![hex(4), hex(3), hex(1)]),
        ("attr.tier=free".into(), vec![hex(2)]),
        ("attr.http.status_code=200".into(), vec![hex(1)]),
        (
            "attr.tier=gold&attr.http.status_code=200".into(),
            vec![hex(1)],
        ),
        (
            format!("from={}", T0_MS + 60_000),
            vec![hex(4), hex(3), hex(2)],
        ),
        ("to=2024-05-01T10:01:00Z".into(), vec![hex(1)]),
        (
            format!("from=2024-05-01T10:01:00Z&to={}", T0_MS + 120_000),
            vec![hex(2)],
        ),
        // an offset written with an unescaped `+`
        (
            "from=2024-05-01T12:02:00+02:00".into(),
            vec![hex(4), hex(3)],
        ),
        ("service=indexer&status=ok&user_id=u1".into(), vec![hex(3)]),
        ("model=no-such-model".into(), vec![]),
        (
            "unknown=ignored&service=indexer".into(),
            vec![hex(4), hex(3)],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(api.traces(&query).await, expected, "{query}");
    }
}

#[tokio::test]
async fn every_filter_narrows_the_call_list() {
    let api = api().await;
    let json = api.ok("/api/v1/calls").await;
    assert_eq!(keys(&json), ["calls", "next_cursor"]);
    assert_eq!(json["next_cursor"], Value::Null);
    assert_eq!(ids(&json["calls"], "trace_id"), [hex(3), hex(2), hex(1)]);
    // each call is the full LlmCall
    let call = &json["calls"][2];
    for key in [
        "project",
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "duration_ms",
        "ttft_ms",
        "provider",
        "operation",
        "request_model",
        "response_model",
        "params",
        "usage",
        "cost",
        "input_messages",
        "output_messages",
        "status",
        "error_type",
        "error_message",
        "service_name",
        "user_id",
        "session_id",
        "tags",
        "metadata",
        "convention",
    ] {
        assert!(call.get(key).is_some(), "call has no `{key}`: {call}");
    }
    assert_eq!(call["project"], DEFAULT_PROJECT);
    assert_eq!(call["request_model"], "gpt-4o");

    let cases: Vec<(String, Vec<String>)> = vec![
        ("service=indexer".into(), vec![hex(3)]),
        ("model=claude-3-5-sonnet".into(), vec![hex(2)]),
        ("model=gpt-4o-2024-08-06".into(), vec![hex(1)]),
        ("provider=openai".into(), vec![hex(3), hex(1)]),
        ("user_id=u2".into(), vec![hex(2)]),
        ("session_id=s1".into(), vec![hex(3), hex(1)]),
        ("status=error".into(), vec![hex(2)]),
        ("status=ok".into(), vec![hex(3), hex(1)]),
        ("q=capital+france".into(), vec![hex(1)]),
        ("q=Paris".into(), vec![hex(1)]),
        ("attr.tier=gold".into(), vec![hex(3)]),
        (format!("from={}", T0_MS + 60_000), vec![hex(3), hex(2)]),
        (format!("to={}", T0_MS + 60_000), vec![hex(1)]),
    ];
    for (query, expected) in cases {
        assert_eq!(api.calls(&query).await, expected, "{query}");
    }
}

#[tokio::test]
async fn full_text_queries_never_fail() {
    let api = api().await;
    for q in [
        "\"",
        "AND",
        "(",
        "*",
        "NEAR(a b)",
        "a:b",
        "-x",
        "\"unbalanced",
        "🦘",
        "kan*",
    ] {
        let q = encode(q);
        let reply = api.get(&format!("/api/v1/calls?q={q}")).await;
        assert_eq!(reply.status, StatusCode::OK, "q={q}: {}", reply.text());
        let reply = api.get(&format!("/api/v1/traces?q={q}")).await;
        assert_eq!(reply.status, StatusCode::OK, "q={q}: {}", reply.text());
    }
}

#[tokio::test]
async fn pagination_follows_next_cursor() {
    let api = api().await;
    assert_eq!(
        api.walk("traces", "traces", "trace_id", "limit=1").await,
        [[hex(4)], [hex(3)], [hex(2)], [hex(1)]]
    );
    assert_eq!(
        api.walk("traces", "traces", "trace_id", "limit=3").await,
        [vec![hex(4), hex(3), hex(2)], vec![hex(1)]]
    );
    // filters hold on every page
    assert_eq!(
        api.walk("traces", "traces", "trace_id", "limit=1&attr.tier=gold")
            .await,
        [[hex(4)], [hex(3)], [hex(1)]]
    );
    assert_eq!(
        api.walk("calls", "calls", "trace_id", "limit=2").await,
        [vec![hex(3), hex(2)], vec![hex(1)]]
    );
    assert_eq!(
        api.walk("sessions", "sessions", "session_id", "limit=1")
            .await,
        [["s1"], ["s2"]]
    );
    assert_eq!(
        api.walk("users", "users", "user_id", "limit=1").await,
        [["u1"], ["u2"]]
    );
    // a page that holds exactly the remaining rows is the last one
    let json = api.ok("/api/v1/traces?limit=4").await;
    assert_eq!(json["traces"].as_array().unwrap().len(), 4);
    assert_eq!(json["next_cursor"], Value::Null);
}

#[tokio::test]
async fn bad_cursors_are_400_naming_cursor() {
    let api = api().await;
    for list in ["traces", "calls", "sessions", "users"] {
        api.get(&format!("/api/v1/{list}?cursor=garbage"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("cursor"));
    }
    // a cursor from one list is not valid for another
    let json = api.ok("/api/v1/traces?limit=1").await;
    let cursor = json["next_cursor"].as_str().unwrap();
    api.get(&format!("/api/v1/calls?cursor={}", encode(cursor)))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("cursor"));
}

#[tokio::test]
async fn bad_parameters_are_400_naming_them() {
    let api = api().await;
    for (query, field) in [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("status=maybe", "status"),
        ("from=garbage", "from"),
        ("to=2024-13-45T00:00:00Z", "to"),
        ("from=1969-12-31T23:59:59Z", "from"),
        ("from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
        ("attr.=gold", "attr"),
        ("user_id=a&user_id=b", "user_id"),
    ] {
        for list in ["traces", "calls", "sessions", "users"] {
            api.get(&format!("/api/v1/{list}?{query}"))
                .await
                .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some(field));
        }
    }
    // an attribute key the store cannot query is reported as the `attr` parameter
    for list in ["traces", "calls"] {
        api.get(&format!("/api/v1/{list}?attr.a%22b=1"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("attr"));
    }
}

#[tokio::test]
async fn sessions_list_and_detail() {
    let api = api().await;
    let json = api.ok("/api/v1/sessions").await;
    assert_eq!(keys(&json), ["next_cursor", "sessions"]);
    assert_eq!(ids(&json["sessions"], "session_id"), ["s1", "s2"]);
    let s1 = &json["sessions"][0];
    assert_eq!(
        keys(s1),
        sorted([
            "session_id",
            "user_id",
            "trace_count",
            "call_count",
            "errors",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "first_seen",
            "first_seen_unix_nano",
            "last_seen",
            "last_seen_unix_nano",
        ])
    );
    assert_eq!(s1["user_id"], "u1");
    assert_eq!(s1["trace_count"], 2);
    assert_eq!(s1["call_count"], 2);
    assert_eq!(s1["errors"], 0);
    assert_eq!(s1["input_tokens"], 17);
    assert_eq!(s1["output_tokens"], 20);
    assert!((s1["cost_usd"].as_f64().unwrap() - 0.0021).abs() < 1e-12);
    let first = s1["first_seen_unix_nano"].as_u64().unwrap();
    let last = s1["last_seen_unix_nano"].as_u64().unwrap();
    assert!(
        at(0) <= first && first <= last && last <= at(120_300),
        "{s1}"
    );
    assert!(s1["first_seen"]
        .as_str()
        .unwrap()
        .starts_with("2024-05-01T10:0"));
    assert!(s1["last_seen"].as_str().unwrap().ends_with('Z'));
    let s2 = &json["sessions"][1];
    assert_eq!(s2["errors"], 1);
    assert_eq!(s2["cost_usd"], Value::Null);

    // filters the session list honours
    assert_eq!(api.sessions("user_id=u2").await, ["s2"]);
    assert_eq!(api.sessions("session_id=s1").await, ["s1"]);
    assert_eq!(
        api.sessions(&format!("from={}", T0_MS + 100_000)).await,
        ["s1"]
    );
    // a session is active from its first call (100 ms in) to its last
    assert!(api
        .sessions(&format!("to={}", T0_MS + 100))
        .await
        .is_empty());
    assert_eq!(api.sessions(&format!("to={}", T0_MS + 101)).await, ["s1"]);

    let detail = api.ok("/api/v1/sessions/s1").await;
    assert_eq!(keys(&detail), ["session", "traces"]);
    assert_eq!(detail["session"], *s1);
    // its traces, oldest first, in the trace-list row shape
    assert_eq!(ids(&detail["traces"], "trace_id"), [hex(1), hex(3)]);
    let traces = api.ok("/api/v1/traces").await;
    assert_eq!(detail["traces"][0], traces["traces"][3]);

    api.get("/api/v1/sessions/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    // ids with reserved characters are addressed percent-encoded
    assert_eq!(
        api.ok("/api/v1/sessions/s%31").await["session"]["session_id"],
        "s1"
    );
}

#[tokio::test]
async fn users_list() {
    let api = api().await;
    let json = api.ok("/api/v1/users").await;
    assert_eq!(keys(&json), ["next_cursor", "users"]);
    assert_eq!(ids(&json["users"], "user_id"), ["u1", "u2"]);
    let u1 = &json["users"][0];
    assert_eq!(
        keys(u1),
        sorted([
            "user_id",
            "calls",
            "traces",
            "sessions",
            "errors",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "first_seen",
            "first_seen_unix_nano",
            "last_seen",
            "last_seen_unix_nano",
        ])
    );
    assert_eq!(u1["calls"], 2);
    assert_eq!(u1["traces"], 2);
    assert_eq!(u1["sessions"], 1);
    assert_eq!(u1["errors"], 0);
    assert_eq!(u1["input_tokens"], 17);
    assert_eq!(u1["output_tokens"], 20);
    assert_eq!(u1["first_seen_unix_nano"], at(100));
    assert_eq!(u1["first_seen"], "2024-05-01T10:00:00.100000000Z");
    assert_eq!(u1["last_seen_unix_nano"], at(120_000));
    assert_eq!(u1["last_seen"], "2024-05-01T10:02:00.000000000Z");
    let u2 = &json["users"][1];
    assert_eq!(u2["errors"], 1);
    assert_eq!(u2["cost_usd"], Value::Null);

    assert_eq!(api.users("user_id=u2").await, ["u2"]);
    assert_eq!(
        api.users(&format!("from={}", T0_MS + 100_000)).await,
        ["u1"]
    );
}

#[tokio::test]
async fn health_probes() {
    let api = api().await;
    let reply = api.get("/healthz").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "ok")
    );
    let reply = api.get("/readyz").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "ready")
    );
}
