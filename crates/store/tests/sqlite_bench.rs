//! Ingest and query speed of the SQLite backend. Ignored by default; run in release:
//!
//! ```text
//! cargo test --release -p sightline-store --test sqlite_bench -- --ignored --nocapture
//! ```
//!
//! `SIGHTLINE_BENCH_SPANS` (default 200000) sets the number of spans, `SIGHTLINE_BENCH_TASKS`
//! (default 8) the concurrent writers, `SIGHTLINE_BENCH_DIR` a directory to keep the database in
//! (default: a temporary one), `SIGHTLINE_BENCH_SYNC=normal` the durability mode, and
//! `SIGHTLINE_BENCH_QUERIES=0` skips the query timings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sightline_model::{Attributes, Scope, Span, SpanId, SpanKind, SpanStatus, TraceId};
use sightline_store::sqlite::{SqliteConfig, SqliteStore, Synchronous};
use sightline_store::testsuite::{test_enricher, TestEnricher};
use sightline_store::{Enricher, Filter, PageRequest, SpanWithCall, Store, WriteBatch};

const SPANS_PER_TRACE: u64 = 10;
const BATCH: u64 = 500;
const T0: u64 = 1_700_000_000_000_000_000;
const MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-pro"];
const SERVICES: [&str; 3] = ["api", "agent", "retriever"];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn resource(service: &str) -> Attributes {
    json!({
        "service.name": service,
        "service.version": "1.4.2",
        "deployment.environment": "prod",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": "1.27.0",
        "host.name": "ip-10-0-3-17",
        "process.pid": 4242,
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// One trace: an HTTP root, three LLM calls with prompts and completions, six tool/db spans.
fn trace(n: u64) -> Vec<SpanWithCall> {
    let trace_id = {
        // Random-looking ids, as real SDKs produce.
        let a = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555;
        let b = n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) | 1;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        TraceId(bytes)
    };
    let service = SERVICES[(n % 3) as usize];
    let start = T0 + n * 1_000_000;
    (0..SPANS_PER_TRACE)
        .map(|i| {
            let mut attributes = Attributes::new();
            let (name, kind) =
                match i {
                    0 => {
                        attributes.insert("http.request.method".into(), json!("POST"));
                        attributes.insert("url.path".into(), json!("/v1/chat"));
                        attributes.insert("http.response.status_code".into(), json!(200));
                        attributes.insert("user.id".into(), json!(format!("user-{}", n % 1000)));
                        ("POST /v1/chat".to_string(), SpanKind::Server)
                    }
                    1 | 4 | 7 => {
                        let model = MODELS[((n + i) % 4) as usize];
                        attributes.insert("gen_ai.request.model".into(), json!(model));
                        attributes.insert("gen_ai.provider.name".into(), json!("openai"));
                        attributes.insert("gen_ai.operation.name".into(), json!("chat"));
                        attributes.insert("gen_ai.usage.input_tokens".into(), json!(1200 + i));
                        attributes.insert("gen_ai.usage.output_tokens".into(), json!(300 + i));
                        attributes.insert("gen_ai.request.temperature".into(), json!(0.2));
                        attributes.insert("user.id".into(), json!(format!("user-{}", n % 1000)));
                        attributes.insert("session.id".into(), json!(format!("session-{}", n / 4)));
                        attributes.insert(
                            "test.prompt".into(),
                            json!(format!(
                            "You are a helpful assistant. Summarize ticket {n} about the billing \
                             page: the customer reports that invoices for March show the wrong \
                             currency and asks for a refund of the difference. Step {i}.{}",
                            if n.is_multiple_of(100) { " Needs escalation." } else { "" }
                        )),
                        );
                        attributes.insert(
                            "test.completion".into(),
                            json!(
                                "The customer was billed in EUR instead of USD for March; \
                               issue a refund of the exchange difference and fix the profile."
                            ),
                        );
                        (format!("chat {model}"), SpanKind::Client)
                    }
                    _ => {
                        attributes.insert("db.system".into(), json!("postgresql"));
                        attributes.insert("db.operation".into(), json!("SELECT"));
                        attributes.insert(
                            "db.statement".into(),
                            json!("SELECT * FROM tickets WHERE id = $1"),
                        );
                        attributes.insert("rows".into(), json!(i));
                        (format!("tool step {i}"), SpanKind::Internal)
                    }
                };
            let span = Span {
                project: "default".into(),
                trace_id,
                span_id: SpanId((n * 16 + i + 1).to_be_bytes()),
                parent_span_id: (i > 0).then(|| SpanId((n * 16 + 1).to_be_bytes())),
                name,
                kind,
                service: service.into(),
                start_time_unix_nano: start + i * 1000,
                end_time_unix_nano: start + i * 1000 + 500_000,
                status: SpanStatus::default(),
                attributes,
                resource: resource(service),
                scope: Scope {
                    name: "opentelemetry.instrumentation.openai_v2".into(),
                    version: "2.0b0".into(),
                    attributes: Attributes::new(),
                },
                events: Vec::new(),
                links: Vec::new(),
            };
            SpanWithCall {
                llm: TestEnricher.enrich(&span),
                span,
            }
        })
        .collect()
}

/// CPU seconds used so far by the threads whose name starts with `prefix` (Linux only; 0 when
/// /proc is unavailable).
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ... field 14 utime, 15 stime (1-based, after the parenthesised comm).
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += field(11) + field(12);
    }
    ticks as f64 / 100.0
}

fn time<T>(label: &str, runs: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    let per = start.elapsed() / runs;
    println!("  {label:<48} {:>9.2} ms", per.as_secs_f64() * 1e3);
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn ingest_and_query_speed() {
    let spans = env_u64("SIGHTLINE_BENCH_SPANS", 200_000);
    let tasks = env_u64("SIGHTLINE_BENCH_TASKS", 8);
    let traces = spans / SPANS_PER_TRACE;
    let temp = tempfile::tempdir().expect("tempdir");
    let path = std::env::var("SIGHTLINE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    let synchronous = match std::env::var("SIGHTLINE_BENCH_SYNC").as_deref() {
        Ok("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    };
    let store = Arc::new(
        SqliteStore::open(
            SqliteConfig {
                path,
                synchronous,
                ..SqliteConfig::default()
            },
            test_enricher(),
        )
        .expect("open"),
    );
    let existing = store.stats().await.expect("stats").traces;

    // Batches are built up front so that only storing is timed.
    let per_batch = BATCH / SPANS_PER_TRACE;
    let mut batches: Vec<Vec<WriteBatch>> = (0..tasks).map(|_| Vec::new()).collect();
    let mut n = existing;
    let mut i = 0;
    while n < existing + traces {
        let mut b = WriteBatch::default();
        for _ in 0..per_batch.min(existing + traces - n) {
            b.spans.extend(trace(n));
            n += 1;
        }
        batches[(i % tasks) as usize].push(b);
        i += 1;
    }
    let writer_cpu_before = thread_cpu_seconds("sightline-sqlit");
    let started = Instant::now();
    let handles: Vec<_> = batches
        .into_iter()
        .map(|mine| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = 0;
                for b in mine {
                    written += store.write(b).await.expect("write").spans_written;
                }
                written
            })
        })
        .collect();
    let mut written = 0;
    for h in handles {
        written += h.await.expect("task");
    }
    let elapsed = started.elapsed();
    let writer_cpu = thread_cpu_seconds("sightline-sqlit") - writer_cpu_before;
    let stats = store.stats().await.expect("stats");
    println!(
        "ingest: {written} spans ({tasks} tasks, batches of {BATCH}, synchronous={synchronous:?}) \
         in {:.2} s = {:.0} spans/s; writer thread busy {:.2} s = {:.0} spans per writer-second; \
         store now holds {} spans, {} calls, {} traces, db {} MiB",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64(),
        writer_cpu,
        written as f64 / writer_cpu.max(0.01),
        stats.spans,
        stats.llm_calls,
        stats.traces,
        (stats.db_bytes + stats.wal_bytes) / (1 << 20),
    );

    if env_u64("SIGHTLINE_BENCH_QUERIES", 1) == 0 {
        store.close().await.expect("close");
        return;
    }
    let rt = tokio::runtime::Handle::current();
    let total_traces = existing + traces;
    let f = || Filter {
        project: "default".into(),
        ..Filter::default()
    };
    let page = PageRequest::default();
    println!("queries at {} spans (mean of runs):", stats.spans);
    let mut k = 0u64;
    tokio::task::block_in_place(|| {
        time("get_trace (10 spans)", 200, || {
            k = (k + 7919) % total_traces;
            let id = trace(k)[0].span.trace_id;
            rt.block_on(store.get_trace("default", id))
                .expect("get_trace")
        });
        let cases: Vec<(&str, Filter)> = vec![
            ("no filter", f()),
            (
                "service",
                Filter {
                    service: Some("agent".into()),
                    ..f()
                },
            ),
            (
                "model",
                Filter {
                    model: Some("claude-sonnet-4".into()),
                    ..f()
                },
            ),
            (
                "provider",
                Filter {
                    provider: Some("openai".into()),
                    ..f()
                },
            ),
            (
                "user",
                Filter {
                    user_id: Some("user-7".into()),
                    ..f()
                },
            ),
            (
                "session",
                Filter {
                    session_id: Some(format!("session-{}", total_traces / 8)),
                    ..f()
                },
            ),
            (
                "status=error",
                Filter {
                    status: Some(sightline_model::CallStatus::Error),
                    ..f()
                },
            ),
            (
                "q=refund",
                Filter {
                    q: Some("refund".into()),
                    ..f()
                },
            ),
            (
                "q=ticket 17",
                Filter {
                    q: Some("ticket 17".into()),
                    ..f()
                },
            ),
            (
                "q=escalation (1% of calls)",
                Filter {
                    q: Some("escalation".into()),
                    ..f()
                },
            ),
            (
                "attr url.path",
                Filter {
                    attrs: vec![("url.path".into(), "/v1/chat".into())],
                    ..f()
                },
            ),
            (
                "time window",
                Filter {
                    from_unix_nano: Some(T0 + total_traces / 2 * 1_000_000),
                    to_unix_nano: Some(T0 + (total_traces / 2 + 1000) * 1_000_000),
                    ..f()
                },
            ),
        ];
        for (label, filter) in &cases {
            time(&format!("list_traces {label}"), 20, || {
                rt.block_on(store.list_traces(filter, &page))
                    .expect("list_traces")
            });
        }
        for (label, filter) in &cases {
            time(&format!("list_calls {label}"), 20, || {
                rt.block_on(store.list_calls(filter, &page))
                    .expect("list_calls")
            });
        }
        let first = rt.block_on(store.list_traces(&f(), &page)).expect("page 1");
        time("list_traces page 2 (cursor)", 20, || {
            let next = PageRequest {
                limit: 50,
                cursor: first.next_cursor.clone(),
            };
            rt.block_on(store.list_traces(&f(), &next)).expect("page 2")
        });
        time("list_sessions", 20, || {
            rt.block_on(store.list_sessions(&f(), &page))
                .expect("sessions")
        });
        time("list_users", 20, || {
            rt.block_on(store.list_users(&f(), &page)).expect("users")
        });
    });
    store.close().await.expect("close");
}
