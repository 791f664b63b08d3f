//! `/api/v1/stats`, `/api/v1/timeseries` and `/metrics` against the real embedded store: calls
//! with known latencies, tokens and costs are written through `Store::write` and metric points
//! through `Store::write_metrics`; the answers are checked against numbers computed here.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};
use sightline_model::StatusCode as SpanCode;
use sightline_model::{Attributes, Scope, Span, SpanId, SpanKind, SpanStatus, TraceId};
use sightline_serve::prometheus::{LlmMetrics, LlmMetricsConfig, MetricsSources};
use sightline_store::sqlite::{SqliteConfig, SqliteStore};
use sightline_store::testsuite::{test_enricher, TestEnricher};
use sightline_store::{Enricher, MetricKind, MetricPoint, SharedStore, SpanWithCall, WriteBatch};
use tempfile::TempDir;

use common::get;

/// 2024-05-01T10:00:00Z.
const T0: u64 = 1_714_557_600_000_000_000;
const T0_MS: i64 = (T0 / 1_000_000) as i64;

fn call(
    n: u64,
    model: &str,
    start_ms: u64,
    dur_ms: u64,
    tokens: (u64, u64),
    error: bool,
) -> SpanWithCall {
    let mut resource = Attributes::new();
    resource.insert("service.name".into(), json!("api"));
    let mut attributes = Attributes::new();
    attributes.insert("gen_ai.request.model".into(), json!(model));
    attributes.insert("gen_ai.provider.name".into(), json!("openai"));
    attributes.insert("gen_ai.usage.input_tokens".into(), json!(tokens.0));
    attributes.insert("gen_ai.usage.output_tokens".into(), json!(tokens.1));
    attributes.insert("test.cost_usd".into(), json!(0.01));
    attributes.insert("user.id".into(), json!(format!("user-{}", n % 2)));
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    let span = Span {
        project: "default".into(),
        trace_id: TraceId(id),
        span_id: SpanId((n + 1).to_be_bytes()),
        parent_span_id: None,
        name: "chat".into(),
        kind: SpanKind::Client,
        service: "api".into(),
        start_time_unix_nano: T0 + start_ms * 1_000_000,
        end_time_unix_nano: T0 + (start_ms + dur_ms) * 1_000_000,
        status: SpanStatus {
            code: if error {
                SpanCode::Error
            } else {
                SpanCode::Unset
            },
            message: String::new(),
        },
        attributes,
        resource,
        scope: Scope::default(),
        events: vec![],
        links: vec![],
    };
    SpanWithCall {
        llm: TestEnricher.enrich(&span),
        span,
    }
}

async fn fixture() -> (Router, SharedStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(
        SqliteStore::open(
            SqliteConfig {
                path: dir.path().to_path_buf(),
                ..SqliteConfig::default()
            },
            test_enricher(),
        )
        .unwrap(),
    );
    // gpt-4o: 100 calls over 100 minutes, latencies 10..1000 ms, every 10th failed.
    // claude: 10 calls in the first minute, 2 s each.
    let mut spans = Vec::new();
    for i in 0..100u64 {
        spans.push(call(
            i,
            "gpt-4o",
            i * 60_000,
            10 * (i + 1),
            (100, 10),
            i % 10 == 0,
        ));
    }
    for i in 0..10u64 {
        spans.push(call(1000 + i, "claude", i * 1000, 2000, (50, 5), false));
    }
    store
        .write(WriteBatch {
            spans,
            logs: vec![],
        })
        .await
        .unwrap();
    let mut sources = MetricsSources::default();
    sources.push(Arc::new(LlmMetrics::new(
        store.clone(),
        LlmMetricsConfig { top_models: 1 },
    )));
    let router = sightline_serve::router_with_metrics(store.clone(), sources);
    (router, store, dir)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.01 * b.abs() + 1e-9
}

#[tokio::test]
async fn stats_by_model() {
    let (router, _store, _dir) = fixture().await;
    let r = get(&router, "/api/v1/stats?group_by=model").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!(g["key"], "gpt-4o");
    assert_eq!(g["calls"], 100);
    assert_eq!(g["errors"], 10);
    assert_eq!(g["error_rate"], 0.1);
    assert_eq!(g["input_tokens"], 10_000);
    assert_eq!(g["output_tokens"], 1000);
    assert!(close(g["cost_usd"].as_f64().unwrap(), 1.0));
    // Latencies 10, 20, …, 1000 ms: exact p50 (rank 49) is 500, p99 (rank 98) is 990.
    for (p, exact) in [
        ("p50", 500.0),
        ("p90", 900.0),
        ("p95", 950.0),
        ("p99", 990.0),
    ] {
        let got = g["latency_ms"][p].as_f64().unwrap();
        assert!(close(got, exact), "{p}: {got} vs {exact}");
    }
    assert!(close(g["latency_ms"]["mean"].as_f64().unwrap(), 505.0));
    assert_eq!(g["ttft_ms"]["p50"], Value::Null);
    for key in ["output_tokens_per_s", "throughput_per_s"] {
        assert!(g.get(key).is_some(), "{key} missing");
    }
    assert_eq!(groups[1]["key"], "claude");
    assert_eq!(groups[1]["calls"], 10);
    assert_eq!(body["total_groups"], 2);

    // `limit` keeps the groups with the most calls.
    let r = get(&router, "/api/v1/stats?group_by=model&limit=1").await;
    let body = r.json();
    assert_eq!(body["groups"].as_array().unwrap().len(), 1);
    assert_eq!(body["groups"][0]["key"], "gpt-4o");
    assert_eq!(body["total_groups"], 2);

    // Filters and a range: minutes 10..20 hold gpt-4o calls 10..19 and nothing of claude.
    let from = T0_MS + 10 * 60_000;
    let to = T0_MS + 20 * 60_000;
    let r = get(
        &router,
        &format!("/api/v1/stats?from={from}&to={to}&status=error"),
    )
    .await;
    let g = &r.json()["groups"][0];
    assert_eq!(g["key"], "all");
    assert_eq!(g["calls"], 1);
    assert!(close(g["throughput_per_s"].as_f64().unwrap(), 1.0 / 600.0));

    // Per user.
    let r = get(&router, "/api/v1/stats?group_by=user_id").await;
    let groups = r.json()["groups"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups
            .iter()
            .map(|g| g["calls"].as_i64().unwrap())
            .sum::<i64>(),
        110
    );
}

#[tokio::test]
async fn stats_rejects_what_is_not_rolled_up() {
    let (router, _store, _dir) = fixture().await;
    get(&router, "/api/v1/stats?group_by=colour")
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("group_by"),
        );
    get(&router, "/api/v1/stats?session_id=s1")
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("session_id"),
        );
    get(&router, "/api/v1/stats?group_by=user_id&model=gpt-4o")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("model"));
    get(&router, "/api/v1/stats?from=yesterday")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("from"));
}

#[tokio::test]
async fn timeseries_of_calls() {
    let (router, _store, _dir) = fixture().await;
    let from = T0_MS;
    let to = T0_MS + 100 * 60_000;
    let r = get(
        &router,
        &format!("/api/v1/timeseries?metric=calls&step=10m&from={from}&to={to}&group_by=model"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["step_ms"], 600_000);
    let series = body["series"].as_array().unwrap();
    let gpt = series.iter().find(|s| s["key"] == "gpt-4o").unwrap();
    let points = gpt["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p[0].as_i64().unwrap(), from + i as i64 * 600_000);
        assert_eq!(p[1], 10.0);
    }
    let claude = series.iter().find(|s| s["key"] == "claude").unwrap();
    assert_eq!(claude["points"][0][1], 10.0);
    assert_eq!(claude["points"][1][1], 0.0, "empty buckets read 0");

    let r = get(
        &router,
        &format!("/api/v1/timeseries?metric=latency_p99&step=1h&from={from}&to={to}&model=gpt-4o"),
    )
    .await;
    let s = &r.json()["series"][0];
    assert_eq!(s["key"], "all");
    // Hour 0 holds calls 0..59 (10..600 ms): p99 is rank 58, 590 ms.
    assert!(close(s["points"][0][1].as_f64().unwrap(), 590.0));

    get(&router, "/api/v1/timeseries").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("metric"),
    );
    get(&router, "/api/v1/timeseries?metric=calls&step=90s")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("step"));
    get(&router, "/api/v1/timeseries?metric=calls&step=1m&from=0")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("step"));
}

#[tokio::test]
async fn timeseries_of_an_otlp_metric() {
    let (router, store, _dir) = fixture().await;
    let mut points = Vec::new();
    for step in 0..5u64 {
        for gpu in ["0", "1"] {
            let mut attributes = Attributes::new();
            attributes.insert("gpu".into(), json!(gpu));
            points.push(MetricPoint {
                project: "default".into(),
                name: "gpu.utilization".into(),
                kind: MetricKind::Gauge,
                unit: "1".into(),
                description: String::new(),
                resource: Attributes::new(),
                scope: String::new(),
                attributes,
                start_time_unix_nano: 0,
                time_unix_nano: T0 + step * 1_000_000_000,
                value: Some(step as f64 + if gpu == "1" { 0.5 } else { 0.0 }),
                count: None,
                sum: None,
                min: None,
                max: None,
                data: json!({}),
            });
        }
    }
    store.write_metrics(points).await.unwrap();
    let range = format!("from={T0_MS}&to={}", T0_MS + 10_000);
    let r = get(
        &router,
        &format!("/api/v1/timeseries?metric=gpu.utilization&{range}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let series = r.json()["series"].as_array().unwrap().clone();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["attributes"]["gpu"], "0");
    assert_eq!(series[0]["points"].as_array().unwrap().len(), 5);
    let r = get(
        &router,
        &format!("/api/v1/timeseries?metric=gpu.utilization&{range}&group_by=&agg=max&step=2s&attr.gpu=1"),
    )
    .await;
    let s = &r.json()["series"][0];
    assert_eq!(
        s["points"],
        json!([[T0_MS, 1.5], [T0_MS + 2000, 3.5], [T0_MS + 4000, 4.5]])
    );
    get(
        &router,
        "/api/v1/timeseries?metric=gpu.utilization&agg=median",
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("agg"));
}

#[tokio::test]
async fn prometheus_exposition_agrees_with_stats() {
    let (router, _store, _dir) = fixture().await;
    let r = get(&router, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[axum::http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    let labels = "project=\"default\",service_name=\"api\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o\",gen_ai_operation_name=\"chat\"";
    assert!(
        text.contains(&format!(
            "gen_ai_client_operation_duration_seconds_count{{{labels}}} 100\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "gen_ai_client_operation_duration_seconds_sum{{{labels}}} 50.5\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("sightline_gen_ai_errors_total{{{labels}}} 10\n")),
        "{text}"
    );
    // top_models = 1: claude is reported as `other`.
    assert!(text.contains("gen_ai_request_model=\"other\""), "{text}");
    assert!(!text.contains("claude"), "{text}");
    assert!(text.contains("# TYPE gen_ai_client_token_usage histogram"));
    // Tokens per call come with OTel's buckets (powers of 4), not only `+Inf`.
    for le in ["1", "4", "16", "1024", "67108864", "+Inf"] {
        assert!(
            text.contains(&format!(
                "gen_ai_client_token_usage_bucket{{{labels},gen_ai_token_type=\"input\",le=\"{le}\"}}"
            )),
            "le={le}: {text}"
        );
    }
}
