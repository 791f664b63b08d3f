//! The conformance suite every backend runs.
//!
//! Each check is a public async function that talks to a backend only through [`Store`], so the
//! embedded and the scale-out backends are held to exactly the same behaviour. A backend's test
//! file runs them all with one line:
//!
//! ```ignore
//! sightline_store::store_conformance!(sqlite, |enricher| async move {
//!     let dir = tempfile::tempdir().unwrap();
//!     let config = SqliteConfig { path: dir.path().to_path_buf(), ..SqliteConfig::default() };
//!     (SqliteStore::open(config, enricher).unwrap(), dir)
//! });
//! ```
//!
//! The constructor receives the suite's [`TestEnricher`] and returns the store plus a guard kept
//! alive for the test (a temporary directory, a container). The enricher here is deliberately
//! tiny and independent of the real conventions: it reads a handful of attributes and turns GenAI
//! events into messages, which is all the storage contract needs.
// The suite is test code compiled into the library so that every backend can run it: a failed
// expectation is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};
use sightline_model::prices::PriceTable;
use sightline_model::{
    Attributes, CallStatus, Cost, Event, Link, LlmCall, LogRecord, Message, Scope, Span, SpanId,
    SpanKind, SpanStatus, StatusCode, TraceId, Usage,
};

use crate::{
    Enricher, ErrorKind, Filter, Page, PageRequest, SessionSummary, SpanWithCall, Store,
    StoreError, TraceSummary, UserSummary, WriteBatch, WriteReceipt,
};

/// Expands to a module of `#[tokio::test]`s running every conformance check against the store
/// built by the constructor: `store_conformance!(name, |enricher| async move { (store, guard) })`.
/// The calling crate needs `tokio` (with the `macros` and `rt-multi-thread` features).
#[macro_export]
macro_rules! store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance!(@tests $make;
                write_and_read_back_a_trace,
                duplicate_spans_are_stored_once,
                trace_summaries,
                trace_filters,
                call_filters,
                full_text_search_is_safe,
                pagination_has_no_overlap_or_gaps,
                sessions_and_users,
                logs_after_the_span_update_its_call,
                logs_before_the_span_are_merged,
                resent_logs_are_stored_once,
                recompute_costs,
                concurrent_writes_are_durable,
                projects_are_isolated,
                write_after_close_fails,
                rollups_equal_a_single_pass,
                rollups_per_user,
                rollups_follow_recompute,
                metric_points_round_trip,
            );
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let (store, _guard) = ($make)($crate::testsuite::test_enricher()).await;
                $crate::testsuite::$test(::std::sync::Arc::new(store)).await;
            }
        )*
    };
}

mod rollups;
pub use rollups::{
    metric_points_round_trip, rollups_equal_a_single_pass, rollups_follow_recompute,
    rollups_per_user,
};

/// The enricher the suite builds its stores with; see [`TestEnricher`].
pub fn test_enricher() -> Arc<dyn Enricher> {
    Arc::new(TestEnricher)
}

/// A minimal enricher: a span is an LLM call when it has `gen_ai.request.model`. It reads
/// `gen_ai.response.model`, `gen_ai.provider.name`, `gen_ai.usage.input_tokens`,
/// `gen_ai.usage.output_tokens`, `user.id`, `session.id`, `test.prompt`, `test.completion` and
/// `test.cost_usd`; every `gen_ai.*` event becomes a message (`gen_ai.choice` an output, others an
/// input whose role is the middle of the event name) and `metadata.genai_events` counts them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestEnricher;

impl Enricher for TestEnricher {
    fn enrich(&self, span: &Span) -> Option<LlmCall> {
        let a = &span.attributes;
        let s = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| a.get(k).and_then(Value::as_u64);
        let request_model = s("gen_ai.request.model")?;
        let mut input_messages = Vec::new();
        let mut output_messages = Vec::new();
        if let Some(p) = s("test.prompt") {
            input_messages.push(message("user", p));
        }
        if let Some(c) = s("test.completion") {
            output_messages.push(message("assistant", c));
        }
        let mut genai_events = 0u64;
        for e in span.events.iter().filter(|e| e.name.starts_with("gen_ai.")) {
            genai_events += 1;
            let content = e
                .body
                .as_ref()
                .and_then(|b| b.get("content"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if e.name == "gen_ai.choice" {
                output_messages.push(message("assistant", content));
            } else {
                let role = e
                    .name
                    .trim_start_matches("gen_ai.")
                    .trim_end_matches(".message");
                input_messages.push(message(role, content));
            }
        }
        let input_tokens = n("gen_ai.usage.input_tokens");
        let output_tokens = n("gen_ai.usage.output_tokens");
        let cost = a
            .get("test.cost_usd")
            .and_then(Value::as_f64)
            .map(|c| Cost {
                input_usd: 0.0,
                output_usd: c,
                total_usd: c,
                price_id: format!("{request_model}@test"),
                price_table_version: "test".into(),
            });
        let mut metadata = serde_json::Map::new();
        metadata.insert("genai_events".into(), json!(genai_events));
        let failed = span.status.code == StatusCode::Error;
        Some(LlmCall {
            project: span.project.clone(),
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            name: span.name.clone(),
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            duration_ms: span.duration_ms(),
            provider: s("gen_ai.provider.name"),
            operation: "chat".into(),
            request_model: Some(request_model),
            response_model: s("gen_ai.response.model"),
            usage: Usage {
                input_tokens,
                output_tokens,
                total_tokens: match (input_tokens, output_tokens) {
                    (None, None) => None,
                    (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
                },
                ..Usage::default()
            },
            cost,
            input_messages,
            output_messages,
            status: if failed {
                CallStatus::Error
            } else {
                CallStatus::Ok
            },
            error_message: failed.then(|| span.status.message.clone()),
            service_name: span.service.clone(),
            user_id: s("user.id"),
            session_id: s("session.id"),
            metadata,
            convention: "test".into(),
            ..LlmCall::default()
        })
    }
}

fn message(role: &str, content: String) -> Message {
    Message {
        role: role.to_string(),
        content: Some(content),
        ..Message::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const PROJECT: &str = "conformance";
/// 2023-11-14T22:13:20Z: every fixture time is an offset in milliseconds from here.
const T0: u64 = 1_700_000_000_000_000_000;

fn ms(offset: u64) -> u64 {
    T0 + offset * 1_000_000
}

fn trace_id(n: u64) -> TraceId {
    let mut bytes = [0x5a; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    TraceId(bytes)
}

fn span_id(n: u64) -> SpanId {
    SpanId((n + 1).to_be_bytes())
}

/// A span of `trace` starting at `start` ms for `dur` ms, with service `service`.
fn span(
    trace: u64,
    id: u64,
    parent: Option<u64>,
    name: &str,
    service: &str,
    start: u64,
    dur: u64,
) -> Span {
    let mut resource = Attributes::new();
    resource.insert("service.name".into(), json!(service));
    Span {
        project: PROJECT.into(),
        trace_id: trace_id(trace),
        span_id: span_id(id),
        parent_span_id: parent.map(span_id),
        name: name.into(),
        kind: SpanKind::Internal,
        service: service.into(),
        start_time_unix_nano: ms(start),
        end_time_unix_nano: ms(start + dur),
        status: SpanStatus::default(),
        attributes: Attributes::new(),
        resource,
        scope: Scope {
            name: "conformance".into(),
            version: "1.0".into(),
            attributes: Attributes::new(),
        },
        events: Vec::new(),
        links: Vec::new(),
    }
}

/// Turns a span into an LLM span for `model` with the given usage.
fn llm(mut s: Span, model: &str, input: u64, output: u64) -> Span {
    s.kind = SpanKind::Client;
    let a = &mut s.attributes;
    a.insert("gen_ai.request.model".into(), json!(model));
    a.insert("gen_ai.usage.input_tokens".into(), json!(input));
    a.insert("gen_ai.usage.output_tokens".into(), json!(output));
    s
}

fn with(mut s: Span, key: &str, value: Value) -> Span {
    s.attributes.insert(key.into(), value);
    s
}

fn failed(mut s: Span, message: &str) -> Span {
    s.status = SpanStatus {
        code: StatusCode::Error,
        message: message.into(),
    };
    s
}

/// The span as the ingest pipeline hands it over: with its call already normalized.
fn item(span: Span) -> SpanWithCall {
    SpanWithCall {
        llm: TestEnricher.enrich(&span),
        span,
    }
}

fn batch(spans: Vec<Span>) -> WriteBatch {
    WriteBatch {
        spans: spans.into_iter().map(item).collect(),
        logs: Vec::new(),
    }
}

fn genai_log(trace: u64, span: u64, event: &str, content: &str, at: u64) -> LogRecord {
    let mut attributes = Attributes::new();
    attributes.insert("gen_ai.system".into(), json!("test"));
    LogRecord {
        project: PROJECT.into(),
        service: "llm-svc".into(),
        time_unix_nano: ms(at),
        observed_time_unix_nano: ms(at),
        severity_number: 9,
        severity_text: "INFO".into(),
        event_name: Some(event.into()),
        body: Some(json!({ "content": content })),
        attributes,
        resource: Attributes::new(),
        scope: Scope::default(),
        trace_id: Some(trace_id(trace)),
        span_id: Some(span_id(span)),
    }
}

fn filter() -> Filter {
    Filter {
        project: PROJECT.into(),
        ..Filter::default()
    }
}

fn page(limit: usize) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

async fn write(store: &Arc<dyn Store>, spans: Vec<Span>) {
    store.write(batch(spans)).await.expect("write");
}

/// A model call alone in trace `trace`: span 1, service `llm-svc`, at 100 ms, one token each way.
fn chat_call(trace: u64) -> Span {
    llm(
        span(trace, 1, None, "chat", "llm-svc", 100, 50),
        "gpt-a",
        1,
        1,
    )
}

/// Writes log records alone.
async fn write_logs(store: &Arc<dyn Store>, logs: Vec<LogRecord>) -> WriteReceipt {
    store
        .write(WriteBatch {
            spans: vec![],
            logs,
        })
        .await
        .expect("write logs")
}

/// Trace numbers (see [`trace_id`]) of the trace list for `f`, in order.
async fn trace_ids(store: &Arc<dyn Store>, f: &Filter) -> Vec<u64> {
    let page = store
        .list_traces(f, &page(1000))
        .await
        .expect("list_traces");
    page.items
        .iter()
        .map(|t| trace_number(t.trace_id))
        .collect()
}

/// Span numbers of the call list for `f`, in order.
async fn call_ids(store: &Arc<dyn Store>, f: &Filter) -> Vec<u64> {
    let page = store.list_calls(f, &page(1000)).await.expect("list_calls");
    page.items.iter().map(|c| span_number(c.span_id)).collect()
}

fn trace_number(id: TraceId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[8..]);
    u64::from_be_bytes(b)
}

fn span_number(id: SpanId) -> u64 {
    u64::from_be_bytes(id.0) - 1
}

async fn summary(store: &Arc<dyn Store>, trace: u64) -> TraceSummary {
    store
        .list_traces(&filter(), &page(1000))
        .await
        .expect("list_traces")
        .items
        .into_iter()
        .find(|t| t.trace_id == trace_id(trace))
        .unwrap_or_else(|| panic!("trace {trace} is not listed"))
}

async fn call_of(store: &Arc<dyn Store>, trace: u64, span: u64) -> LlmCall {
    store
        .list_calls(&filter(), &page(1000))
        .await
        .expect("list_calls")
        .items
        .into_iter()
        .find(|c| c.trace_id == trace_id(trace) && c.span_id == span_id(span))
        .unwrap_or_else(|| panic!("no call for span {span} of trace {trace}"))
}

fn assert_close(a: Option<f64>, b: Option<f64>) {
    match (a, b) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{a} != {b}"),
        (a, b) => assert_eq!(a, b),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Every span field survives a round trip, spans come back parents first, and each LLM span
/// carries its call.
pub async fn write_and_read_back_a_trace(store: Arc<dyn Store>) {
    let mut root = span(1, 1, None, "POST /chat", "api", 0, 100);
    root.kind = SpanKind::Server;
    root.attributes = json!({
        "http.method": "POST",
        "http.status_code": 200,
        "ratio": 0.25,
        "ok": false,
        "tags": ["a", "b"],
        "nested": { "list": [1, 2.5, true, null, "x"], "obj": { "deep": "value" } },
        "unicode": "héllo ✓ \"quoted\" \\ back",
    })
    .as_object()
    .cloned()
    .unwrap();
    root.resource
        .insert("host".into(), json!({ "name": "h1", "cores": 8 }));
    root.scope
        .attributes
        .insert("scope.attr".into(), json!("s"));
    root.events.push(Event {
        time_unix_nano: ms(1),
        name: "request.received".into(),
        attributes: json!({ "bytes": 512 }).as_object().cloned().unwrap(),
        body: None,
    });
    root.links.push(Link {
        trace_id: trace_id(99),
        span_id: span_id(7),
        attributes: json!({ "link.kind": "follows" })
            .as_object()
            .cloned()
            .unwrap(),
    });
    let mut call = llm(
        span(1, 2, Some(1), "chat gpt-a", "llm-svc", 10, 50),
        "gpt-a",
        12,
        34,
    );
    call = failed(
        with(call, "test.prompt", json!("hello there")),
        "rate limited",
    );
    call.events.push(Event {
        time_unix_nano: ms(11),
        name: "gen_ai.user.message".into(),
        attributes: Attributes::new(),
        body: Some(json!({ "content": "from a span event" })),
    });
    let mut sibling = span(1, 3, Some(1), "load context", "worker", 5, 3);
    sibling.kind = SpanKind::Consumer;
    let grandchild = span(1, 4, Some(2), "tool", "llm-svc", 20, 1);
    let spans = vec![
        grandchild.clone(),
        call.clone(),
        root.clone(),
        sibling.clone(),
    ];

    let receipt = store.write(batch(spans)).await.unwrap();
    assert_eq!(receipt.spans_written, 4);
    assert_eq!(receipt.spans_duplicate, 0);

    let detail = store
        .get_trace(PROJECT, trace_id(1))
        .await
        .unwrap()
        .expect("trace stored");
    assert_eq!(detail.trace_id, trace_id(1));
    let expected = [&root, &sibling, &call, &grandchild];
    assert_eq!(
        detail
            .spans
            .iter()
            .map(|s| span_number(s.span.span_id))
            .collect::<Vec<_>>(),
        vec![1, 3, 2, 4],
        "parents first, siblings by start time"
    );
    for (got, want) in detail.spans.iter().zip(expected) {
        assert_eq!(&got.span, want, "span {} round trip", want.name);
    }
    assert_eq!(detail.spans[2].llm, TestEnricher.enrich(&call));
    assert!(detail.spans[2].llm.as_ref().unwrap().input_messages.len() == 2);
    assert!(detail.spans.iter().filter(|s| s.llm.is_some()).count() == 1);

    assert!(store
        .get_trace(PROJECT, trace_id(2))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_trace("elsewhere", trace_id(1))
        .await
        .unwrap()
        .is_none());
}

/// A span resent by a retrying client is stored and counted once.
pub async fn duplicate_spans_are_stored_once(store: Arc<dyn Store>) {
    let spans = vec![
        span(1, 1, None, "root", "api", 0, 100),
        llm(span(1, 2, Some(1), "chat", "api", 10, 20), "gpt-a", 100, 50),
        span(1, 3, Some(1), "db", "api", 40, 5),
    ];
    let first = store.write(batch(spans.clone())).await.unwrap();
    assert_eq!((first.spans_written, first.spans_duplicate), (3, 0));
    let again = store.write(batch(spans.clone())).await.unwrap();
    assert_eq!((again.spans_written, again.spans_duplicate), (0, 3));
    // Duplicates inside one batch, next to a new span.
    let mixed = vec![
        spans[1].clone(),
        span(1, 4, Some(1), "cache", "api", 50, 1),
        span(1, 4, Some(1), "cache", "api", 50, 1),
    ];
    let third = store.write(batch(mixed)).await.unwrap();
    assert_eq!((third.spans_written, third.spans_duplicate), (1, 2));

    let t = summary(&store, 1).await;
    assert_eq!(t.span_count, 4);
    assert_eq!(t.llm_call_count, 1);
    assert_eq!((t.input_tokens, t.output_tokens), (100, 50));
    assert_eq!(call_ids(&store, &filter()).await, vec![2]);
    let detail = store
        .get_trace(PROJECT, trace_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.spans.len(), 4);
}

/// Trace rows: counts, token sums, cost (None until a call is priced), status, name and service
/// of the root (of the earliest span until the root arrives), user and session.
pub async fn trace_summaries(store: Arc<dyn Store>) {
    // Trace 1 arrives child first; the root comes later; then an earlier non-root span.
    let child = llm(
        span(1, 2, Some(1), "chat", "llm-svc", 20, 30),
        "gpt-a",
        10,
        20,
    );
    let child = with(
        with(child, "test.cost_usd", json!(0.25)),
        "user.id",
        json!("u1"),
    );
    write(&store, vec![child]).await;
    let t = summary(&store, 1).await;
    assert_eq!((t.name.as_str(), t.service.as_str()), ("chat", "llm-svc"));
    assert_eq!(t.user_id.as_deref(), Some("u1"));

    let second = llm(
        span(1, 3, Some(1), "chat 2", "llm-svc", 60, 40),
        "gpt-a",
        1,
        2,
    );
    let second = with(
        with(second, "test.cost_usd", json!(0.5)),
        "session.id",
        json!("s1"),
    );
    write(
        &store,
        vec![span(1, 1, None, "agent run", "api", 10, 80), second],
    )
    .await;
    write(
        &store,
        vec![span(1, 4, Some(2), "early clock", "worker", 5, 1)],
    )
    .await;
    let t = summary(&store, 1).await;
    assert_eq!((t.name.as_str(), t.service.as_str()), ("agent run", "api"));
    assert_eq!(t.span_count, 4);
    assert_eq!(t.llm_call_count, 2);
    assert_eq!((t.input_tokens, t.output_tokens), (11, 22));
    assert_close(t.cost_usd, Some(0.75));
    assert_eq!(t.status, CallStatus::Ok);
    assert_eq!(t.start_time_unix_nano, ms(5));
    assert!((t.duration_ms - 95.0).abs() < 1e-6, "{}", t.duration_ms);
    assert_eq!(t.user_id.as_deref(), Some("u1"));
    assert_eq!(t.session_id.as_deref(), Some("s1"));

    // Trace 2: one unpriced call.
    write(
        &store,
        vec![llm(span(2, 1, None, "solo", "api", 200, 10), "gpt-b", 5, 6)],
    )
    .await;
    let t = summary(&store, 2).await;
    assert_eq!(t.cost_usd, None, "unpriced is unknown, never zero");
    assert_eq!((t.span_count, t.llm_call_count), (1, 1));
    assert_eq!((t.input_tokens, t.output_tokens), (5, 6));
    assert_eq!(t.user_id, None);

    // Trace 3: a failed span that is not a call.
    write(
        &store,
        vec![
            span(3, 1, None, "job", "worker", 300, 10),
            failed(span(3, 2, Some(1), "step", "worker", 301, 2), "boom"),
        ],
    )
    .await;
    let t = summary(&store, 3).await;
    assert_eq!(t.status, CallStatus::Error);
    assert_eq!((t.span_count, t.llm_call_count, t.input_tokens), (2, 0, 0));
    assert_eq!(t.cost_usd, None);
}

/// Trace 1 (t=1000): api root with env=prod, llm-svc child calling gpt-a via openai for u1/s1.
/// Trace 2 (t=2000): worker root, failing claude-x call (answered by claude-x-2024) for u2/s2
/// with tier=3. Trace 3 (t=3000): api root with flag=true, no call.
async fn seed_filter_dataset(store: &Arc<dyn Store>) {
    let t1_root = with(
        span(1, 1, None, "chat request", "api", 1000, 100),
        "env",
        json!("prod"),
    );
    let t1_call = llm(
        span(1, 2, Some(1), "chat gpt-a", "llm-svc", 1010, 50),
        "gpt-a",
        10,
        20,
    );
    let t1_call = with(t1_call, "gen_ai.provider.name", json!("openai"));
    let t1_call = with(t1_call, "user.id", json!("u1"));
    let t1_call = with(t1_call, "session.id", json!("s1"));
    let t1_call = with(t1_call, "test.prompt", json!("The quick brown fox"));

    let t2_root = span(2, 1, None, "batch job", "worker", 2000, 100);
    let t2_call = llm(
        span(2, 2, Some(1), "chat claude", "worker", 2010, 50),
        "claude-x",
        7,
        8,
    );
    let t2_call = with(t2_call, "gen_ai.response.model", json!("claude-x-2024"));
    let t2_call = with(t2_call, "gen_ai.provider.name", json!("anthropic"));
    let t2_call = with(t2_call, "user.id", json!("u2"));
    let t2_call = with(t2_call, "session.id", json!("s2"));
    let t2_call = with(t2_call, "tier", json!(3));
    let t2_call = with(t2_call, "test.completion", json!("jumps over the lazy dog"));
    let t2_call = failed(t2_call, "overloaded");

    let t3_root = with(
        span(3, 1, None, "healthcheck", "api", 3000, 5),
        "flag",
        json!(true),
    );
    write(store, vec![t1_root, t1_call, t2_root, t2_call]).await;
    write(store, vec![t3_root]).await;
}

/// Every filter of the trace list.
pub async fn trace_filters(store: Arc<dyn Store>) {
    seed_filter_dataset(&store).await;
    let f = filter;
    let ids = |f: Filter| {
        let store = store.clone();
        async move { trace_ids(&store, &f).await }
    };
    assert_eq!(ids(f()).await, vec![3, 2, 1], "newest first");
    assert_eq!(
        ids(Filter {
            from_unix_nano: Some(ms(1500)),
            ..f()
        })
        .await,
        vec![3, 2]
    );
    assert_eq!(
        ids(Filter {
            to_unix_nano: Some(ms(2000)),
            ..f()
        })
        .await,
        vec![1],
        "to is exclusive"
    );
    assert_eq!(
        ids(Filter {
            from_unix_nano: Some(ms(1000)),
            to_unix_nano: Some(ms(2500)),
            ..f()
        })
        .await,
        vec![2, 1],
        "from is inclusive"
    );
    let service = |s: &str| Filter {
        service: Some(s.into()),
        ..f()
    };
    assert_eq!(ids(service("api")).await, vec![3, 1]);
    assert_eq!(ids(service("llm-svc")).await, vec![1], "any span's service");
    assert_eq!(ids(service("nope")).await, Vec::<u64>::new());
    let model = |m: &str| Filter {
        model: Some(m.into()),
        ..f()
    };
    assert_eq!(ids(model("gpt-a")).await, vec![1]);
    assert_eq!(ids(model("claude-x")).await, vec![2], "request model");
    assert_eq!(ids(model("claude-x-2024")).await, vec![2], "response model");
    assert_eq!(
        ids(Filter {
            provider: Some("anthropic".into()),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            user_id: Some("u1".into()),
            ..f()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        ids(Filter {
            session_id: Some("s2".into()),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            status: Some(CallStatus::Error),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            status: Some(CallStatus::Ok),
            ..f()
        })
        .await,
        vec![3, 1]
    );
    let q = |q: &str| Filter {
        q: Some(q.into()),
        ..f()
    };
    assert_eq!(ids(q("quick")).await, vec![1]);
    assert_eq!(ids(q("DOG")).await, vec![2], "case-insensitive");
    assert_eq!(ids(q("fox quick")).await, vec![1], "all words, any order");
    assert_eq!(ids(q("fox dog")).await, Vec::<u64>::new());
    let attr = |k: &str, v: &str| Filter {
        attrs: vec![(k.into(), v.into())],
        ..f()
    };
    assert_eq!(ids(attr("env", "prod")).await, vec![1]);
    assert_eq!(ids(attr("tier", "3")).await, vec![2], "integer attribute");
    assert_eq!(
        ids(attr("flag", "true")).await,
        vec![3],
        "boolean attribute"
    );
    assert_eq!(ids(attr("env", "dev")).await, Vec::<u64>::new());
    assert_eq!(ids(attr("missing", "x")).await, Vec::<u64>::new());
    assert_eq!(
        ids(attr("service.name", "api")).await,
        vec![3, 1],
        "a resource attribute"
    );
    assert_eq!(
        ids(Filter {
            model: Some("gpt-a".into()),
            status: Some(CallStatus::Error),
            ..f()
        })
        .await,
        Vec::<u64>::new(),
        "filters combine with AND"
    );
    assert_eq!(
        ids(Filter {
            attrs: vec![("env".into(), "prod".into()), ("tier".into(), "3".into())],
            ..f()
        })
        .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(Filter {
            project: "elsewhere".into(),
            ..f()
        })
        .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(Filter {
            q: Some("   ".into()),
            ..f()
        })
        .await,
        vec![3, 2, 1],
        "blank q"
    );
}

/// Every filter of the call list.
pub async fn call_filters(store: Arc<dyn Store>) {
    seed_filter_dataset(&store).await;
    let f = filter;
    let ids = |f: Filter| {
        let store = store.clone();
        // Each trace of the dataset holds at most one call: name calls by their trace.
        async move {
            let page = store.list_calls(&f, &page(1000)).await.unwrap();
            page.items
                .iter()
                .map(|c| trace_number(c.trace_id))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(f()).await, vec![2, 1], "newest first");
    assert_eq!(
        ids(Filter {
            from_unix_nano: Some(ms(1500)),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            to_unix_nano: Some(ms(2010)),
            ..f()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        ids(Filter {
            service: Some("llm-svc".into()),
            ..f()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        ids(Filter {
            service: Some("api".into()),
            ..f()
        })
        .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(Filter {
            model: Some("gpt-a".into()),
            ..f()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        ids(Filter {
            model: Some("claude-x".into()),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            model: Some("claude-x-2024".into()),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            provider: Some("openai".into()),
            ..f()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        ids(Filter {
            user_id: Some("u2".into()),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            session_id: Some("s1".into()),
            ..f()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        ids(Filter {
            status: Some(CallStatus::Error),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            status: Some(CallStatus::Ok),
            ..f()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        ids(Filter {
            q: Some("lazy".into()),
            ..f()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        ids(Filter {
            q: Some("brow*".into()),
            ..f()
        })
        .await,
        vec![1],
        "prefix"
    );
    let attr = |k: &str, v: &str| Filter {
        attrs: vec![(k.into(), v.into())],
        ..f()
    };
    assert_eq!(ids(attr("tier", "3")).await, vec![2]);
    assert_eq!(ids(attr("gen_ai.request.model", "gpt-a")).await, vec![1]);
    assert_eq!(
        ids(attr("env", "prod")).await,
        Vec::<u64>::new(),
        "the call's own span only"
    );
    assert_eq!(
        ids(Filter {
            model: Some("claude-x".into()),
            user_id: Some("u1".into()),
            ..f()
        })
        .await,
        Vec::<u64>::new()
    );
    let call = call_of(&store, 1, 2).await;
    assert_eq!(call.usage.input_tokens, Some(10));
    assert_eq!(
        call.input_messages[0].content.as_deref(),
        Some("The quick brown fox")
    );
}

/// Any `q` is a literal search, never a syntax error.
pub async fn full_text_search_is_safe(store: Arc<dyn Store>) {
    seed_filter_dataset(&store).await;
    let long = "x".repeat(10_000);
    let hostile = [
        "\"foo AND (",
        "foo AND (",
        "(",
        ")",
        "\"",
        "*",
        "**",
        "-",
        "^quick",
        "NEAR(quick fox)",
        "text:quick",
        "quick OR",
        "NOT",
        "'; DROP TABLE spans; --",
        "\u{0}",
        "{quick}",
        "ünïcødé ✓",
        long.as_str(),
    ];
    for q in hostile {
        let f = Filter {
            q: Some(q.into()),
            ..filter()
        };
        store
            .list_calls(&f, &page(10))
            .await
            .unwrap_or_else(|e| panic!("calls q={q:?}: {e}"));
        store
            .list_traces(&f, &page(10))
            .await
            .unwrap_or_else(|e| panic!("traces q={q:?}: {e}"));
    }
    // Syntax characters are ignored, the words still count.
    let f = Filter {
        q: Some("quick (".into()),
        ..filter()
    };
    assert_eq!(call_ids(&store, &f).await, vec![2]);
    let f = Filter {
        q: Some("\"brown\" fox".into()),
        ..filter()
    };
    assert_eq!(trace_ids(&store, &f).await, vec![1]);
}

/// Keyset pages: three pages with no overlap and no gap, ties on time included; bad cursors are
/// invalid input; limits are clamped.
pub async fn pagination_has_no_overlap_or_gaps(store: Arc<dyn Store>) {
    // 27 traces, three per start time, one call each.
    let spans: Vec<Span> = (0..27u64)
        .map(|i| {
            llm(
                span(i + 1, 1, None, "t", "api", 1000 + (i / 3) * 10, 5),
                "gpt-a",
                1,
                1,
            )
        })
        .collect();
    write(&store, spans).await;

    let mut seen_traces = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let p = store
            .list_traces(
                &filter(),
                &PageRequest {
                    limit: 10,
                    cursor: cursor.clone(),
                },
            )
            .await
            .unwrap();
        pages += 1;
        assert!(p.items.len() <= 10);
        seen_traces.extend(p.items.iter().map(|t| (t.start_time_unix_nano, t.trace_id)));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen_traces.len(), 27);
    let distinct: HashSet<_> = seen_traces.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), 27, "no trace twice");
    assert!(
        seen_traces.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest first"
    );

    let mut seen_calls = Vec::new();
    let mut cursor = None;
    for _ in 0..3 {
        let p = store
            .list_calls(
                &filter(),
                &PageRequest {
                    limit: 10,
                    cursor: cursor.clone(),
                },
            )
            .await
            .unwrap();
        seen_calls.extend(p.items.iter().map(|c| c.trace_id));
        cursor = p.next_cursor;
    }
    assert_eq!(cursor, None);
    assert_eq!(seen_calls.iter().collect::<HashSet<_>>().len(), 27);
    assert_eq!(seen_calls.len(), 27);

    // With a filter, the cursor carries on within the filtered list.
    let f = Filter {
        from_unix_nano: Some(ms(1030)),
        ..filter()
    };
    let first = store
        .list_traces(
            &f,
            &PageRequest {
                limit: 4,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let second = store
        .list_traces(
            &f,
            &PageRequest {
                limit: 100,
                cursor: first.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len() + second.items.len(), 18);
    assert_eq!(second.next_cursor, None);

    for bad in ["not a cursor!", "AAAA", "////"] {
        let err = store
            .list_traces(
                &filter(),
                &PageRequest {
                    limit: 10,
                    cursor: Some(bad.into()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidInput {
                    field: "cursor",
                    ..
                }
            ),
            "{bad}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = store
            .list_calls(
                &filter(),
                &PageRequest {
                    limit: 10,
                    cursor: Some(bad.into()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidInput {
                    field: "cursor",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }

    let one = store.list_traces(&filter(), &page(0)).await.unwrap();
    assert_eq!(one.items.len(), 1, "limit 0 reads one row");
    assert!(one.next_cursor.is_some());
    let all = store.list_calls(&filter(), &page(1_000_000)).await.unwrap();
    assert_eq!(all.items.len(), 27);
}

/// Session and user aggregates, and a session's traces in order.
pub async fn sessions_and_users(store: Arc<dyn Store>) {
    let call = |trace: u64, id: u64, start: u64, user: &str, session: Option<&str>| {
        let s = llm(
            span(trace, id, None, "chat", "api", start, 10),
            "gpt-a",
            10,
            5,
        );
        let s = with(s, "user.id", json!(user));
        match session {
            Some(session) => with(s, "session.id", json!(session)),
            None => s,
        }
    };
    // Session s1 of u1: trace 1 (two calls, one priced, one failed), trace 2.
    let priced = with(
        call(1, 1, 1000, "u1", Some("s1")),
        "test.cost_usd",
        json!(0.1),
    );
    let failing = failed(call(1, 2, 1010, "u1", Some("s1")), "bad request");
    write(&store, vec![priced, failing]).await;
    write(&store, vec![call(2, 1, 2000, "u2", Some("s2"))]).await;
    write(&store, vec![call(3, 1, 3000, "u1", Some("s1"))]).await;
    // u1 again, without a session.
    write(&store, vec![call(4, 1, 4000, "u1", None)]).await;

    let sessions = store.list_sessions(&filter(), &page(50)).await.unwrap();
    let names: Vec<_> = sessions
        .items
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(names, vec!["s1", "s2"], "most recently active first");
    let s1 = &sessions.items[0];
    assert_eq!(s1.user_id.as_deref(), Some("u1"));
    assert_eq!((s1.trace_count, s1.call_count, s1.errors), (2, 3, 1));
    assert_eq!((s1.input_tokens, s1.output_tokens), (30, 15));
    assert_close(s1.cost_usd, Some(0.1));
    assert_eq!(s1.first_seen_unix_nano, ms(1000));
    assert_eq!(s1.last_seen_unix_nano, ms(3000));
    assert_eq!(sessions.items[1].cost_usd, None);

    let only_u2 = Filter {
        user_id: Some("u2".into()),
        ..filter()
    };
    let p = store.list_sessions(&only_u2, &page(50)).await.unwrap();
    assert_eq!(
        p.items
            .iter()
            .map(|s| s.session_id.as_str())
            .collect::<Vec<_>>(),
        vec!["s2"]
    );
    let first = store.list_sessions(&filter(), &page(1)).await.unwrap();
    assert_eq!(first.items[0].session_id, "s1");
    let second = store
        .list_sessions(
            &filter(),
            &PageRequest {
                limit: 1,
                cursor: first.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items[0].session_id, "s2");
    assert_eq!(second.next_cursor, None);

    let detail = store
        .get_session(PROJECT, "s1")
        .await
        .unwrap()
        .expect("session s1");
    assert_eq!(&detail.summary, s1);
    let traces: Vec<u64> = detail
        .traces
        .iter()
        .map(|t| trace_number(t.trace_id))
        .collect();
    assert_eq!(traces, vec![1, 3], "oldest first");
    assert!(store.get_session(PROJECT, "nope").await.unwrap().is_none());
    assert!(store
        .get_session("elsewhere", "s1")
        .await
        .unwrap()
        .is_none());

    let users = store.list_users(&filter(), &page(50)).await.unwrap();
    let names: Vec<_> = users.items.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(names, vec!["u1", "u2"]);
    let u1 = &users.items[0];
    assert_eq!((u1.calls, u1.traces, u1.sessions, u1.errors), (4, 3, 1, 1));
    assert_eq!((u1.input_tokens, u1.output_tokens), (40, 20));
    assert_close(u1.cost_usd, Some(0.1));
    assert_eq!(
        (u1.first_seen_unix_nano, u1.last_seen_unix_nano),
        (ms(1000), ms(4000))
    );
    let u2 = &users.items[1];
    assert_eq!((u2.calls, u2.traces, u2.sessions, u2.errors), (1, 1, 1, 0));
    assert_eq!(u2.cost_usd, None);
    let p = store
        .list_users(
            &Filter {
                from_unix_nano: Some(ms(3500)),
                ..filter()
            },
            &page(50),
        )
        .await
        .unwrap();
    assert_eq!(
        p.items
            .iter()
            .map(|u| u.user_id.as_str())
            .collect::<Vec<_>>(),
        vec!["u1"]
    );

    // Every call filter narrows both lists to the groups with a matching call.
    write(
        &store,
        vec![with(
            llm(
                with(call(5, 1, 5000, "u3", Some("s3")), "tier", json!("gold")),
                "gpt-b",
                1,
                1,
            ),
            "test.prompt",
            json!("zebra crossing"),
        )],
    )
    .await;
    let session_names = |p: Page<SessionSummary>| {
        p.items
            .into_iter()
            .map(|s| s.session_id)
            .collect::<Vec<_>>()
    };
    let user_names =
        |p: Page<UserSummary>| p.items.into_iter().map(|u| u.user_id).collect::<Vec<_>>();
    for (f, sessions, users) in [
        (
            Filter {
                status: Some(CallStatus::Error),
                ..filter()
            },
            vec!["s1"],
            vec!["u1"],
        ),
        (
            Filter {
                model: Some("gpt-b".into()),
                ..filter()
            },
            vec!["s3"],
            vec!["u3"],
        ),
        (
            Filter {
                q: Some("zebra".into()),
                ..filter()
            },
            vec!["s3"],
            vec!["u3"],
        ),
        (
            Filter {
                attrs: vec![("tier".into(), "gold".into())],
                ..filter()
            },
            vec!["s3"],
            vec!["u3"],
        ),
        (
            Filter {
                service: Some("elsewhere".into()),
                ..filter()
            },
            vec![],
            vec![],
        ),
        (
            Filter {
                model: Some("unused-model".into()),
                ..filter()
            },
            vec![],
            vec![],
        ),
        (
            Filter {
                model: Some("gpt-b".into()),
                status: Some(CallStatus::Error),
                ..filter()
            },
            vec![],
            vec![],
        ),
        (
            Filter {
                session_id: Some("s2".into()),
                ..filter()
            },
            vec!["s2"],
            vec!["u2"],
        ),
    ] {
        let got = store.list_sessions(&f, &page(50)).await.unwrap();
        assert_eq!(session_names(got), sessions, "{f:?}");
        let got = store.list_users(&f, &page(50)).await.unwrap();
        assert_eq!(user_names(got), users, "{f:?}");
    }

    // A user filter on sessions and a session filter on users read the pair as the trace list
    // does, by trace: session s4 has calls of u4, then of u5; in trace 8 the user is named on
    // the root span only and the session on its model call only.
    write(&store, vec![call(6, 1, 6000, "u4", Some("s4"))]).await;
    write(&store, vec![call(7, 1, 7000, "u5", Some("s4"))]).await;
    let root = with(
        span(8, 1, None, "agent", "api", 8000, 50),
        "user.id",
        json!("u6"),
    );
    let child = with(
        llm(span(8, 2, Some(1), "chat", "api", 8010, 10), "gpt-a", 1, 1),
        "session.id",
        json!("s5"),
    );
    write(&store, vec![root, child]).await;
    for (f, sessions, users) in [
        (
            Filter {
                user_id: Some("u4".into()),
                ..filter()
            },
            vec!["s4"],
            vec!["u4"],
        ),
        (
            Filter {
                session_id: Some("s4".into()),
                ..filter()
            },
            vec!["s4"],
            vec!["u5", "u4"],
        ),
        (
            Filter {
                session_id: Some("s5".into()),
                ..filter()
            },
            vec!["s5"],
            vec!["u6"],
        ),
        (
            Filter {
                user_id: Some("u6".into()),
                ..filter()
            },
            vec!["s5"],
            vec!["u6"],
        ),
    ] {
        let got = store.list_sessions(&f, &page(50)).await.unwrap();
        assert_eq!(session_names(got), sessions, "{f:?}");
        let got = store.list_users(&f, &page(50)).await.unwrap();
        assert_eq!(user_names(got), users, "{f:?}");
        let traces = trace_ids(&store, &f).await;
        assert!(!traces.is_empty(), "the trace list agrees: {f:?}");
    }
}

/// GenAI events that arrive after their span are merged into its call (messages, search) and
/// shown on the span, without counting the call twice.
pub async fn logs_after_the_span_update_its_call(store: Arc<dyn Store>) {
    let mut s = llm(span(1, 1, None, "chat", "llm-svc", 100, 50), "gpt-a", 3, 4);
    s.events.push(Event {
        time_unix_nano: ms(101),
        name: "own.event".into(),
        attributes: Attributes::new(),
        body: None,
    });
    write(&store, vec![s.clone()]).await;
    let before = call_of(&store, 1, 1).await;
    assert!(before.input_messages.is_empty());

    let logs = vec![
        genai_log(1, 1, "gen_ai.user.message", "what is rust", 110),
        genai_log(1, 1, "gen_ai.choice", "a systems language", 140),
    ];
    let receipt = write_logs(&store, logs).await;
    assert_eq!(receipt.logs_written, 2);
    let after = call_of(&store, 1, 1).await;
    assert_eq!(after.input_messages.len(), 1);
    assert_eq!(
        after.input_messages[0].content.as_deref(),
        Some("what is rust")
    );
    assert_eq!(
        after.output_messages[0].content.as_deref(),
        Some("a systems language")
    );
    assert_eq!(after.metadata.get("genai_events"), Some(&json!(2)));

    // A later event is merged with the earlier ones; unrelated logs change nothing.
    let mut plain = genai_log(1, 1, "app.log", "ignored", 120);
    plain.event_name = None;
    let logs = vec![
        genai_log(1, 1, "gen_ai.tool.message", "tool says hi", 130),
        plain,
    ];
    write_logs(&store, logs).await;
    let after = call_of(&store, 1, 1).await;
    assert_eq!(after.metadata.get("genai_events"), Some(&json!(3)));
    assert_eq!(after.input_messages.len(), 2);
    assert_eq!(after.input_messages[1].role, "tool");

    let f = Filter {
        q: Some("rust".into()),
        ..filter()
    };
    assert_eq!(call_ids(&store, &f).await, vec![1], "events are searchable");
    let t = summary(&store, 1).await;
    assert_eq!((t.span_count, t.llm_call_count), (1, 1));
    assert_eq!((t.input_tokens, t.output_tokens), (3, 4));

    let detail = store
        .get_trace(PROJECT, trace_id(1))
        .await
        .unwrap()
        .unwrap();
    let names: Vec<_> = detail.spans[0]
        .span
        .events
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "own.event",
            "gen_ai.user.message",
            "gen_ai.tool.message",
            "gen_ai.choice"
        ],
        "own events first, then GenAI events by time"
    );
    assert_eq!(
        detail.spans[0].span.events[1].body,
        Some(json!({ "content": "what is rust" }))
    );
    assert_eq!(detail.spans[0].llm.as_ref(), Some(&after));
}

/// A client that retries an export sends the same log records again: each is stored once, and
/// a resent GenAI event is not merged into its call a second time.
pub async fn resent_logs_are_stored_once(store: Arc<dyn Store>) {
    write(&store, vec![chat_call(1)]).await;
    let mut plain = genai_log(1, 1, "app.log", "a plain line", 105);
    plain.event_name = None;
    let logs = vec![
        genai_log(1, 1, "gen_ai.user.message", "what is rust", 110),
        genai_log(1, 1, "gen_ai.choice", "a systems language", 140),
        plain,
    ];
    let first = write_logs(&store, logs.clone()).await;
    assert_eq!((first.logs_written, first.logs_duplicate), (3, 0));
    let again = write_logs(&store, logs.clone()).await;
    assert_eq!((again.logs_written, again.logs_duplicate), (0, 3));

    let call = call_of(&store, 1, 1).await;
    assert_eq!(call.input_messages.len(), 1);
    assert_eq!(call.output_messages.len(), 1);
    assert_eq!(call.metadata.get("genai_events"), Some(&json!(2)));
    let detail = store
        .get_trace(PROJECT, trace_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.spans[0].span.events.len(), 2, "each event once");

    // The same words at another time, in another span, or logged again within the same
    // (coarse) time but observed later, are another record.
    let later = genai_log(1, 1, "gen_ai.user.message", "what is rust", 111);
    let elsewhere = genai_log(2, 1, "gen_ai.user.message", "what is rust", 110);
    let mut again = genai_log(1, 1, "app.log", "a plain line", 105);
    again.event_name = None;
    again.observed_time_unix_nano += 1;
    let receipt = write_logs(&store, vec![later, elsewhere, again]).await;
    assert_eq!((receipt.logs_written, receipt.logs_duplicate), (3, 0));
    assert_eq!(call_of(&store, 1, 1).await.input_messages.len(), 2);
}

/// GenAI events that arrive before their span (or with it) are merged when the span arrives.
pub async fn logs_before_the_span_are_merged(store: Arc<dyn Store>) {
    let logs = vec![
        genai_log(1, 1, "gen_ai.system.message", "be brief", 101),
        genai_log(1, 1, "gen_ai.choice", "ok", 120),
        genai_log(5, 5, "gen_ai.choice", "for a span that never comes", 120),
    ];
    let receipt = write_logs(&store, logs).await;
    assert_eq!(receipt.logs_written, 3);
    write(&store, vec![chat_call(1)]).await;
    let call = call_of(&store, 1, 1).await;
    assert_eq!(call.input_messages[0].role, "system");
    assert_eq!(call.output_messages[0].content.as_deref(), Some("ok"));

    // Span and events in one batch.
    let together = WriteBatch {
        spans: vec![item(llm(
            span(2, 1, None, "chat", "llm-svc", 200, 50),
            "gpt-a",
            1,
            1,
        ))],
        logs: vec![genai_log(2, 1, "gen_ai.user.message", "same batch", 201)],
    };
    let receipt = store.write(together).await.unwrap();
    assert_eq!((receipt.spans_written, receipt.logs_written), (1, 1));
    let trace2 = store
        .list_calls(&filter(), &page(100))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|c| c.trace_id == trace_id(2))
        .unwrap();
    assert_eq!(
        trace2.input_messages[0].content.as_deref(),
        Some("same batch")
    );

    // Events for a span that is not a call do not make it one.
    write(&store, vec![span(3, 1, None, "plain", "api", 300, 5)]).await;
    write_logs(&store, vec![genai_log(3, 1, "gen_ai.choice", "stray", 301)]).await;
    assert_eq!(summary(&store, 3).await.llm_call_count, 0);
    for t in [1, 2] {
        let s = summary(&store, t).await;
        assert_eq!((s.span_count, s.llm_call_count), (1, 1), "trace {t}");
    }
    let detail = store
        .get_trace(PROJECT, trace_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.spans[0].span.events.len(), 2);
}

/// Re-pricing stored calls: every call ends with the table's cost, trace sums follow, and a second
/// run changes nothing.
pub async fn recompute_costs(store: Arc<dyn Store>) {
    // Priced at write time by a model no table knows: re-pricing makes the cost unknown.
    let stale = with(
        llm(
            span(1, 1, None, "chat", "api", 100, 10),
            "sightline-test-unpriced-model",
            10,
            10,
        ),
        "test.cost_usd",
        json!(2.5),
    );
    let unpriced = llm(
        span(1, 2, Some(1), "chat", "api", 110, 10),
        "sightline-test-other",
        1,
        1,
    );
    let known = llm(
        span(2, 1, None, "chat", "api", 200, 10),
        "gpt-4o",
        1000,
        500,
    );
    write(&store, vec![stale, unpriced, known]).await;
    assert_close(summary(&store, 1).await.cost_usd, Some(2.5));

    let prices = PriceTable::builtin();
    let before = store.list_calls(&filter(), &page(100)).await.unwrap().items;
    let expected_changes = before.iter().filter(|c| prices.cost(c) != c.cost).count() as u64;
    assert!(expected_changes >= 1);
    let changed = store.recompute_costs(&prices).await.unwrap();
    assert_eq!(changed, expected_changes);

    let after = store.list_calls(&filter(), &page(100)).await.unwrap().items;
    assert_eq!(after.len(), 3);
    for call in &after {
        assert_eq!(call.cost, prices.cost(call), "call {}", call.span_id);
    }
    for t in [1u64, 2] {
        let costs: Vec<f64> = after
            .iter()
            .filter(|c| c.trace_id == trace_id(t))
            .filter_map(|c| c.cost.as_ref().map(|c| c.total_usd))
            .collect();
        let expected = (!costs.is_empty()).then(|| costs.iter().sum::<f64>());
        assert_close(summary(&store, t).await.cost_usd, expected);
    }
    assert_eq!(
        store.recompute_costs(&prices).await.unwrap(),
        0,
        "idempotent"
    );
}

/// Eight writers at once: every write acknowledged is readable, and nothing is counted twice.
pub async fn concurrent_writes_are_durable(store: Arc<dyn Store>) {
    const TASKS: u64 = 8;
    const BATCHES: u64 = 25;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut written = 0;
            for b in 0..BATCHES {
                let mut spans = Vec::new();
                for t in 0..2 {
                    let trace = 1 + task * 1000 + b * 2 + t;
                    let start = trace * 10;
                    spans.push(span(trace, 1, None, "root", "api", start, 9));
                    for i in 2..=10 {
                        let child = span(trace, i, Some(1), "child", "api", start + 1, 1);
                        spans.push(if i == 2 {
                            llm(child, "gpt-a", 2, 3)
                        } else {
                            child
                        });
                    }
                }
                written += store
                    .write(batch(spans))
                    .await
                    .expect("concurrent write")
                    .spans_written;
            }
            written
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.expect("writer task");
    }
    assert_eq!(total as u64, TASKS * BATCHES * 20);
    let traces = store.list_traces(&filter(), &page(1000)).await.unwrap();
    assert_eq!(traces.items.len() as u64, TASKS * BATCHES * 2);
    assert!(traces
        .items
        .iter()
        .all(|t| t.span_count == 10 && t.llm_call_count == 1));
    let calls = store.list_calls(&filter(), &page(1000)).await.unwrap();
    assert_eq!(calls.items.len() as u64, TASKS * BATCHES * 2);
    let detail = store
        .get_trace(PROJECT, trace_id(1 + 7 * 1000 + 24 * 2 + 1))
        .await
        .unwrap();
    assert_eq!(detail.unwrap().spans.len(), 10);
}

/// The same ids in two projects are two traces.
pub async fn projects_are_isolated(store: Arc<dyn Store>) {
    let mine = llm(span(1, 1, None, "mine", "api", 100, 10), "gpt-a", 1, 1);
    let mut theirs = llm(span(1, 1, None, "theirs", "api", 100, 10), "gpt-a", 1, 1);
    theirs.project = "other".into();
    let receipt = store.write(batch(vec![mine, theirs])).await.unwrap();
    assert_eq!(receipt.spans_written, 2);
    let other = Filter {
        project: "other".into(),
        ..Filter::default()
    };
    let t = store.list_traces(&other, &page(10)).await.unwrap();
    assert_eq!(t.items.len(), 1);
    assert_eq!(t.items[0].name, "theirs");
    assert_eq!(summary(&store, 1).await.name, "mine");
    assert_eq!(
        store
            .list_calls(&other, &page(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let detail = store
        .get_trace("other", trace_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.spans.len(), 1);
    assert_eq!(detail.spans[0].span.name, "theirs");
}

/// After `close`, writes fail with `Closed` (retryable), and closing again is harmless.
pub async fn write_after_close_fails(store: Arc<dyn Store>) {
    write(
        &store,
        vec![span(1, 1, None, "before close", "api", 100, 10)],
    )
    .await;
    store.close().await.unwrap();
    let err = store
        .write(batch(vec![span(2, 1, None, "after close", "api", 200, 10)]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err}");
    assert_eq!(err.kind(), ErrorKind::Retryable);
    let err = store.write(WriteBatch::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err}");
    // A closed store answers no query either, so readiness probes see it as down.
    let err = store
        .list_traces(&filter(), &PageRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err}");
    store.close().await.unwrap();
}
