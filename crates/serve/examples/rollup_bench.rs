//! Benchmark of the rollups: what maintaining them costs at ingest, and how fast `/api/v1/stats`
//! and `/api/v1/timeseries` answer over a week of ten million calls.
//!
//! 1. **Ingest**: `INGEST` synthetic calls written through `Store::write` (batches of 500 from 4
//!    concurrent writers, `synchronous = full`), once with rollups and once without (rollups
//!    switched off for the process), each into a fresh store; spans/s of each.
//! 2. **Queries**: the rollups of `CALLS` calls over `DAYS` days ending now are built with
//!    `import_rollups` (the ingest code path, without storing the call rows, which the queries
//!    never read), then every query is sent `REPS` times through the API router (`oneshot`, JSON
//!    included) and its latency reported as p50/p95/max.
//!
//! Run with `benches/rollups.sh`; environment: CALLS (default 10000000), DAYS (7), INGEST (100000),
//! REPS (30), DIR (where the query store is built, reused when its marker exists).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use sightline_model::{
    Attributes, CallStatus, Cost, LlmCall, Scope, Span, SpanId, SpanKind, SpanStatus, TraceId,
    Usage,
};
use sightline_store::sqlite::{import_rollups, set_rollups_enabled, SqliteConfig, SqliteStore};
use sightline_store::testsuite::test_enricher;
use sightline_store::{SharedStore, SpanWithCall, WriteBatch};
use tower::ServiceExt;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic and fast.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// (model, provider, median latency ms, $ per 1M input, $ per 1M output, operation)
const MODELS: [(&str, &str, f64, f64, f64, &str); 10] = [
    ("gpt-4o", "openai", 1800.0, 2.5, 10.0, "chat"),
    ("gpt-4o-mini", "openai", 700.0, 0.15, 0.6, "chat"),
    ("o3-mini", "openai", 4000.0, 1.1, 4.4, "chat"),
    ("claude-3-5-sonnet", "anthropic", 2200.0, 3.0, 15.0, "chat"),
    ("claude-3-5-haiku", "anthropic", 900.0, 0.8, 4.0, "chat"),
    ("gemini-1.5-pro", "google", 2000.0, 1.25, 5.0, "chat"),
    ("gemini-1.5-flash", "google", 600.0, 0.075, 0.3, "chat"),
    ("llama-3.1-70b", "bedrock", 1500.0, 0.99, 0.99, "chat"),
    ("mistral-large", "mistral", 1700.0, 2.0, 6.0, "chat"),
    (
        "text-embedding-3-small",
        "openai",
        120.0,
        0.02,
        0.0,
        "embeddings",
    ),
];

/// (service, versions, models used)
const SERVICES: [(&str, &[&str], &[usize]); 6] = [
    ("chat-api", &["1.4.0", "1.5.0"], &[0, 1, 3, 9]),
    ("agent-worker", &["2.0.1"], &[0, 2, 3, 4]),
    ("search", &["0.9.3"], &[1, 6, 9]),
    ("summarizer", &["3.1.0", "3.2.0"], &[4, 5, 6]),
    ("support-bot", &["1.0.0"], &[1, 7, 8]),
    ("batch-eval", &["0.1.0"], &[0, 2, 5, 7]),
];

fn synthetic_call(rng: &mut Rng, n: u64, start_ns: u64) -> LlmCall {
    let (service, versions, models) = rng.pick(&SERVICES);
    let (model, provider, median, p_in, p_out, operation) = MODELS[*rng.pick(models)];
    let version = rng.pick(versions);
    let duration_ms = (median * (0.6 * rng.normal()).exp()).max(1.0);
    let input = (200.0 * (1.0 * rng.normal()).exp()) as u64 + 1;
    let output = if operation == "embeddings" {
        0
    } else {
        (150.0 * (0.8 * rng.normal()).exp()) as u64 + 1
    };
    let streaming = operation == "chat" && rng.unit() < 0.6;
    let ttft = streaming.then(|| (duration_ms * (0.1 + 0.3 * rng.unit())).max(1.0));
    let generation_ms = duration_ms - ttft.unwrap_or(0.0);
    let error = rng.unit() < 0.02;
    let user = (rng.unit().powi(3) * 20_000.0) as u64;
    let mut trace = [0u8; 16];
    trace[8..].copy_from_slice(&n.to_be_bytes());
    trace[0] = 1;
    let cost = input as f64 * p_in / 1e6 + output as f64 * p_out / 1e6;
    LlmCall {
        project: "default".into(),
        trace_id: TraceId(trace),
        span_id: SpanId((n + 1).to_be_bytes()),
        name: format!("{operation} {model}"),
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + (duration_ms * 1e6) as u64,
        duration_ms,
        ttft_ms: ttft,
        time_per_output_token_ms: (output > 0).then(|| generation_ms / output as f64),
        output_tokens_per_s: (output > 0).then(|| output as f64 / (generation_ms / 1000.0)),
        provider: Some(provider.into()),
        operation: operation.into(),
        request_model: Some(model.into()),
        response_model: Some(model.into()),
        usage: Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            total_tokens: Some(input + output),
            ..Usage::default()
        },
        cost: Some(Cost {
            input_usd: input as f64 * p_in / 1e6,
            output_usd: output as f64 * p_out / 1e6,
            total_usd: cost,
            price_id: model.into(),
            price_table_version: "bench".into(),
        }),
        status: if error {
            CallStatus::Error
        } else {
            CallStatus::Ok
        },
        service_name: (*service).into(),
        service_version: Some((*version).into()),
        user_id: Some(format!("user-{user}")),
        session_id: Some(format!("session-{}", n / 8)),
        convention: "bench".into(),
        ..LlmCall::default()
    }
}

fn span_of(call: &LlmCall) -> SpanWithCall {
    let mut resource = Attributes::new();
    resource.insert("service.name".into(), json!(call.service_name));
    let mut attributes = Attributes::new();
    attributes.insert("gen_ai.request.model".into(), json!(call.request_model));
    attributes.insert("gen_ai.provider.name".into(), json!(call.provider));
    attributes.insert(
        "gen_ai.usage.input_tokens".into(),
        json!(call.usage.input_tokens),
    );
    attributes.insert(
        "gen_ai.usage.output_tokens".into(),
        json!(call.usage.output_tokens),
    );
    SpanWithCall {
        span: Span {
            project: call.project.clone(),
            trace_id: call.trace_id,
            span_id: call.span_id,
            parent_span_id: None,
            name: call.name.clone(),
            kind: SpanKind::Client,
            service: call.service_name.clone(),
            start_time_unix_nano: call.start_time_unix_nano,
            end_time_unix_nano: call.end_time_unix_nano,
            status: SpanStatus::default(),
            attributes,
            resource,
            scope: Scope::default(),
            events: vec![],
            links: vec![],
        },
        llm: Some(call.clone()),
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn ingest(n: u64, rollups: bool) -> f64 {
    set_rollups_enabled(rollups);
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
    let end = now_ns();
    let span_ns = 7 * 86_400 * 1_000_000_000u64 / n.max(1);
    let writers = 4u64;
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
            let mut i = w;
            while i < n {
                let mut spans = Vec::with_capacity(500);
                while spans.len() < 500 && i < n {
                    let start = end - (n - i) * span_ns;
                    spans.push(span_of(&synthetic_call(&mut rng, i, start)));
                    i += writers;
                }
                store
                    .write(WriteBatch {
                        spans,
                        logs: vec![],
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    store.close().await.unwrap();
    set_rollups_enabled(true);
    rate
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env("CALLS", 10_000_000);
    let days = env("DAYS", 7);
    let ingest_n = env("INGEST", 100_000);
    let reps = env("REPS", 30) as usize;
    let dir = std::env::var("DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("sightline-bench-rollups-{calls}")));

    if ingest_n > 0 {
        // Alternate to spread any drift of the machine over both.
        let with1 = ingest(ingest_n, true).await;
        let without1 = ingest(ingest_n, false).await;
        let with2 = ingest(ingest_n, true).await;
        let without2 = ingest(ingest_n, false).await;
        let with = (with1 + with2) / 2.0;
        let without = (without1 + without2) / 2.0;
        println!("## Ingest ({ingest_n} calls per run, 2 runs each, synchronous=full)\n");
        println!("| rollups | spans/s (runs) | ratio |\n|---|---|---|");
        println!("| off | {without:.0} ({without1:.0}, {without2:.0}) | 1.00 |");
        println!(
            "| on | {with:.0} ({with1:.0}, {with2:.0}) | {:.2} |\n",
            with / without
        );
    }

    let marker = dir.join("rollups.done");
    let end_ns = match std::fs::read_to_string(&marker) {
        Ok(s) => s.trim().parse::<u64>().unwrap(),
        Err(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            let end = now_ns();
            let span = days * 86_400 * 1_000_000_000;
            let step = span / calls.max(1);
            let started = Instant::now();
            let mut rng = Rng(42);
            let mut i = 0u64;
            let iter = std::iter::from_fn(move || {
                if i >= calls {
                    return None;
                }
                let start = end - span + i * step + rng.next() % step.max(1);
                let c = synthetic_call(&mut rng, i, start);
                i += 1;
                Some(c)
            });
            let n = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || import_rollups(&dir, iter, 200_000).unwrap()
            })
            .await
            .unwrap();
            println!(
                "built the rollups of {n} calls over {days} days in {:.1} s\n",
                started.elapsed().as_secs_f64()
            );
            std::fs::write(&marker, end.to_string()).unwrap();
            end
        }
    };
    let store: SharedStore = Arc::new(
        SqliteStore::open(
            SqliteConfig {
                path: dir.clone(),
                ..SqliteConfig::default()
            },
            test_enricher(),
        )
        .unwrap(),
    );
    let router = sightline_serve::router(store.clone());
    let to = end_ns / 1_000_000;
    let week = to - days * 86_400_000;
    let day = to - 86_400_000;
    let hour = to - 3_600_000;
    let queries = [
        format!("/api/v1/stats?group_by=model&from={week}&to={to}"),
        format!("/api/v1/stats?group_by=service&status=error&from={week}&to={to}"),
        format!("/api/v1/stats?group_by=provider&from={day}&to={to}"),
        format!("/api/v1/stats?from={hour}&to={to}"),
        format!("/api/v1/stats?group_by=user_id&from={week}&to={to}"),
        format!("/api/v1/stats?user_id=user-7&from={week}&to={to}"),
        format!("/api/v1/timeseries?metric=latency_p95&group_by=model&from={week}&to={to}"),
        format!("/api/v1/timeseries?metric=latency_p95&step=1h&group_by=model&from={week}&to={to}"),
        format!("/api/v1/timeseries?metric=calls&step=1d&group_by=service&from={week}&to={to}"),
        format!("/api/v1/timeseries?metric=cost_usd&step=1h&from={week}&to={to}"),
        format!("/api/v1/timeseries?metric=ttft_p99&group_by=provider&from={day}&to={to}"),
        format!("/api/v1/timeseries?metric=error_rate&step=5m&from={day}&to={to}"),
        format!("/api/v1/timeseries?metric=calls&step=1m&from={hour}&to={to}"),
    ];
    println!("## Queries over the rollups of {calls} calls, {days} days ({reps} requests each)\n");
    println!("| request | groups/series | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|");
    for q in &queries {
        let mut times = Vec::with_capacity(reps);
        let mut size = 0;
        for _ in 0..reps {
            let started = Instant::now();
            let response = router
                .clone()
                .oneshot(Request::get(q.as_str()).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(
                status,
                StatusCode::OK,
                "{q}: {}",
                String::from_utf8_lossy(&body)
            );
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            size = v["groups"]
                .as_array()
                .or_else(|| v["series"].as_array())
                .map_or(0, Vec::len);
        }
        times.sort_by(f64::total_cmp);
        let shown = q
            .replace(&format!("from={week}&to={to}"), "7 days")
            .replace(&format!("from={day}&to={to}"), "24 h")
            .replace(&format!("from={hour}&to={to}"), "1 h");
        println!(
            "| `{shown}` | {size} | {:.1} | {:.1} | {:.1} |",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            times[times.len() - 1]
        );
    }
    let db = std::fs::metadata(dir.join("sightline.db")).map_or(0, |m| m.len());
    println!("\nrollup store: {:.1} MB", db as f64 / 1e6);
    store.close().await.unwrap();
}
