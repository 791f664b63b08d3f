//! Unit tests of the SQLite backend internals: durability without `close`, query plans, stats,
//! and a misbehaving enricher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::json;
use sightline_model::{
    Attributes, CallStatus, LlmCall, LogRecord, Scope, Span, SpanId, SpanKind, SpanStatus, TraceId,
};

use super::read::{calls_sql, sessions_sql, traces_sql, users_sql, FtsPlan, GroupPlan};
use super::schema::open_writer;
use super::{SqliteConfig, SqliteStore, Synchronous, DB_FILE};
use crate::query::{Filter, PageRequest, SpanWithCall};
use crate::testsuite::{test_enricher, TestEnricher};
use crate::{Enricher, Store, WriteBatch};

/// A span of trace `trace`; a model call of `model` when one is given.
pub(super) fn span(trace: u8, id: u8, model: Option<&str>) -> Span {
    let mut attributes = Attributes::new();
    if let Some(m) = model {
        attributes.insert("gen_ai.request.model".into(), json!(m));
        attributes.insert("gen_ai.usage.input_tokens".into(), json!(3));
    }
    Span {
        project: "p".into(),
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: None,
        name: "s".into(),
        kind: SpanKind::Client,
        service: "svc".into(),
        start_time_unix_nano: 1_000 + u64::from(id),
        end_time_unix_nano: 2_000,
        status: SpanStatus::default(),
        attributes,
        resource: Attributes::new(),
        scope: Scope::default(),
        events: vec![],
        links: vec![],
    }
}

/// `span` with its call, as the pipeline hands it to the store.
pub(super) fn item(span: Span) -> SpanWithCall {
    SpanWithCall {
        llm: TestEnricher.enrich(&span),
        span,
    }
}

fn open(dir: &std::path::Path, enricher: Arc<dyn Enricher>) -> SqliteStore {
    SqliteStore::open(
        SqliteConfig {
            path: dir.to_path_buf(),
            ..SqliteConfig::default()
        },
        enricher,
    )
    .unwrap()
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn acknowledged_writes_are_in_the_file_before_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    let batch = WriteBatch {
        spans: vec![item(span(1, 1, Some("m"))), item(span(1, 2, None))],
        logs: vec![],
    };
    store.write(batch).await.unwrap();
    // The store stays open (no close, no checkpoint): a separate connection, as after a crash
    // and restart, must find the data in the database and its WAL.
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    assert_eq!(count(&conn, "spans"), 2);
    assert_eq!(count(&conn, "llm_calls"), 1);
    let spans: i64 = conn
        .query_row("SELECT span_count FROM traces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(spans, 2);
    drop(conn);
    drop(store);

    // Reopening migrates nothing and keeps everything.
    let store = open(dir.path(), test_enricher());
    let detail = store
        .get_trace("p", TraceId([1; 16]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.spans.len(), 2);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.spans, stats.llm_calls, stats.traces), (2, 1, 1));
    assert!(stats.db_bytes > 0);
    store.close().await.unwrap();
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::schema_version());
}

#[test]
fn normal_synchronous_mode_opens() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join("n.db"), Synchronous::Normal).unwrap();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 1);
}

/// Every list query walks an index in order: no full scan of a big table, no sort of all rows.
#[test]
fn list_queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer(&dir.path().join("plan.db"), Synchronous::Normal).unwrap();
    super::search::attach_new(&conn, &dir.path().join("plan.db")).unwrap();
    let base = Filter {
        project: "p".into(),
        ..Filter::default()
    };
    let filters = vec![
        ("none", base.clone()),
        (
            "window",
            Filter {
                from_unix_nano: Some(1),
                to_unix_nano: Some(2),
                ..base.clone()
            },
        ),
        (
            "service",
            Filter {
                service: Some("s".into()),
                ..base.clone()
            },
        ),
        (
            "model",
            Filter {
                model: Some("m".into()),
                ..base.clone()
            },
        ),
        (
            "user",
            Filter {
                user_id: Some("u".into()),
                ..base.clone()
            },
        ),
        (
            "session",
            Filter {
                session_id: Some("s".into()),
                ..base.clone()
            },
        ),
        (
            "user and session",
            Filter {
                user_id: Some("u".into()),
                session_id: Some("s".into()),
                ..base.clone()
            },
        ),
        (
            "error",
            Filter {
                status: Some(CallStatus::Error),
                ..base.clone()
            },
        ),
        (
            "q",
            Filter {
                q: Some("hello".into()),
                ..base.clone()
            },
        ),
    ];
    let cursor = PageRequest {
        limit: 50,
        cursor: Some(
            super::codec::Cursor { time: 5, id: 5 }.encode(super::codec::CursorKind::Traces),
        ),
    };
    let call_cursor = PageRequest {
        limit: 50,
        cursor: Some(
            super::codec::Cursor { time: 5, id: 5 }.encode(super::codec::CursorKind::Calls),
        ),
    };
    let plan_of = |sql: &str, params: &[rusqlite::types::Value]| -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = st
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
    };
    for (name, f) in &filters {
        for (page, fts, rare_model) in [
            (&PageRequest::default(), FtsPlan::Set, true),
            (&PageRequest::default(), FtsPlan::Walk, false),
            (&cursor, FtsPlan::Probe, false),
        ] {
            let rare = super::read::Rare {
                model: rare_model,
                service: rare_model,
            };
            let (sql, params) = traces_sql(f, page, fts, rare).unwrap();
            let p = plan_of(&sql, &params);
            println!("traces/{name}:\n{p}\n");
            if name.starts_with("user") || *name == "session" {
                // Starts from the user's or session's traces, then sorts those.
                assert!(
                    p.contains("SEARCH m USING PRIMARY KEY"),
                    "traces/{name}:\n{p}"
                );
            } else if *name == "service" && rare_model {
                // Starts from the service's (few) traces, then sorts them.
                assert!(
                    p.contains("SEARCH ms USING PRIMARY KEY (project=? AND service=?)"),
                    "traces/{name}:\n{p}"
                );
            } else if *name == "model" && rare_model {
                // Starts from the model's (few) calls, then sorts their traces.
                assert!(p.contains("call_keys_request_model"), "traces/{name}:\n{p}");
                assert!(
                    p.contains("call_keys_response_model"),
                    "traces/{name}:\n{p}"
                );
            } else if *name == "q" && fts == FtsPlan::Set {
                // Starts from the (few) matching calls, then sorts their traces.
                assert!(
                    p.contains("SCAN calls_fts VIRTUAL TABLE"),
                    "traces/{name}:\n{p}"
                );
                assert!(
                    p.contains("SEARCH t USING INTEGER PRIMARY KEY"),
                    "traces/{name}:\n{p}"
                );
            } else {
                assert!(
                    !p.contains("TEMP B-TREE FOR ORDER BY"),
                    "traces/{name} sorts:\n{p}"
                );
            }
            assert!(
                !p.lines()
                    .any(|l| l.trim() == "SCAN t" || l.trim() == "SCAN traces"),
                "traces/{name} scans:\n{p}"
            );
        }
        for (page, fts) in [
            (&PageRequest::default(), FtsPlan::Set),
            (&PageRequest::default(), FtsPlan::Walk),
            (&call_cursor, FtsPlan::Probe),
        ] {
            let (sql, params) = calls_sql(f, page, fts).unwrap();
            let p = plan_of(&sql, &params);
            println!("calls/{name}:\n{p}\n");
            assert!(
                !p.lines()
                    .any(|l| l.trim() == "SCAN c" || l.trim() == "SCAN llm_calls"),
                "calls/{name} scans:\n{p}"
            );
            if *name == "q" && fts == FtsPlan::Set {
                assert!(
                    p.contains("SCAN calls_fts VIRTUAL TABLE"),
                    "calls/{name}:\n{p}"
                );
            } else if name.starts_with("user") || *name == "session" {
                // Starts from the user's or session's traces, then sorts their calls.
                assert!(
                    p.contains("SEARCH m USING PRIMARY KEY"),
                    "calls/{name}:\n{p}"
                );
                assert!(
                    p.contains("SEARCH c USING INDEX call_keys_trace (trace_ref=?)"),
                    "calls/{name}:\n{p}"
                );
            } else if *name == "model" {
                // Merges two index walks of at most `limit` rows each: only the merge sorts.
                for index in ["call_keys_request_model", "call_keys_response_model"] {
                    assert!(
                        p.contains(index),
                        "calls/{name} does not walk {index}:\n{p}"
                    );
                }
                assert_eq!(
                    p.matches("TEMP B-TREE FOR ORDER BY").count(),
                    1,
                    "calls/{name} sorts an index walk:\n{p}"
                );
            } else {
                assert!(
                    !p.contains("TEMP B-TREE FOR ORDER BY"),
                    "calls/{name} sorts:\n{p}"
                );
            }
        }
    }
    let searched = Filter {
        q: Some("needle".into()),
        ..base.clone()
    };
    for fts in [FtsPlan::Walk, FtsPlan::Probe] {
        for f in [&base, &searched] {
            let page = PageRequest::default();
            let few = ["g1".to_string(), "g2".to_string()];
            let plans = [("walk", None), ("model's groups", Some(&few[..]))];
            for (plan_name, model_groups) in plans {
                let plan = GroupPlan { fts, model_groups };
                for (name, (sql, params)) in [
                    ("sessions", sessions_sql(f, &page, plan).unwrap()),
                    ("users", users_sql(f, &page, plan).unwrap()),
                ] {
                    let p = plan_of(&sql, &params);
                    println!("{name} ({fts:?}, {plan_name}, q={:?}):\n{p}\n", f.q);
                    if model_groups.is_none() {
                        assert!(
                            !p.contains("TEMP B-TREE FOR ORDER BY"),
                            "{name} sorts:\n{p}"
                        );
                    } else {
                        // Looks up the model's (few) groups, then sorts them.
                        assert!(
                            p.contains(&format!("USING INDEX {name}_key")),
                            "{name}:\n{p}"
                        );
                    }
                    assert!(
                        !p.lines().any(|l| l.trim() == "SCAN x"),
                        "{name} scans:\n{p}"
                    );
                    if f.q.is_some() {
                        // Each group's calls are reached through its traces.
                        assert!(p.contains("USING INDEX call_keys_trace"), "{name}:\n{p}");
                    }
                }
            }
        }
    }
}

struct PanicOnEvents {
    panicked: AtomicBool,
}

impl Enricher for PanicOnEvents {
    fn enrich(&self, span: &Span) -> Option<LlmCall> {
        if !span.events.is_empty() {
            self.panicked.store(true, Ordering::SeqCst);
            panic!("enricher bug");
        }
        TestEnricher.enrich(span)
    }
}

#[tokio::test]
async fn a_panicking_enricher_keeps_the_previous_call() {
    let dir = tempfile::tempdir().unwrap();
    let enricher = Arc::new(PanicOnEvents {
        panicked: AtomicBool::new(false),
    });
    let store = open(dir.path(), enricher.clone());
    let s = span(1, 1, Some("m"));
    store
        .write(WriteBatch {
            spans: vec![item(s.clone())],
            logs: vec![],
        })
        .await
        .unwrap();
    let log = LogRecord {
        project: "p".into(),
        service: "svc".into(),
        time_unix_nano: 1_500,
        observed_time_unix_nano: 0,
        severity_number: 9,
        severity_text: "INFO".into(),
        event_name: Some("gen_ai.choice".into()),
        body: Some(json!({ "content": "hi" })),
        attributes: Attributes::new(),
        resource: Attributes::new(),
        scope: Scope::default(),
        trace_id: Some(s.trace_id),
        span_id: Some(s.span_id),
    };
    let receipt = store
        .write(WriteBatch {
            spans: vec![],
            logs: vec![log],
        })
        .await
        .unwrap();
    assert_eq!(receipt.logs_written, 1);
    assert!(enricher.panicked.load(Ordering::SeqCst));
    let calls = store
        .list_calls(
            &Filter {
                project: "p".into(),
                ..Filter::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(calls.items.len(), 1);
    assert!(calls.items[0].output_messages.is_empty());
    // The writer survived: later writes still work.
    let receipt = store
        .write(WriteBatch {
            spans: vec![item(span(2, 1, None))],
            logs: vec![],
        })
        .await
        .unwrap();
    assert_eq!(receipt.spans_written, 1);
    store.close().await.unwrap();
}

#[tokio::test]
async fn stats_count_rows_and_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.spans, stats.traces, stats.logs), (0, 0, 0));
    assert_eq!(stats.queued_writes, 0);
    let log = LogRecord {
        project: "p".into(),
        service: "svc".into(),
        time_unix_nano: 1,
        observed_time_unix_nano: 0,
        severity_number: 0,
        severity_text: String::new(),
        event_name: None,
        body: None,
        attributes: Attributes::new(),
        resource: Attributes::new(),
        scope: Scope::default(),
        trace_id: None,
        span_id: None,
    };
    store
        .write(WriteBatch {
            spans: vec![item(span(1, 1, Some("m"))), item(span(2, 1, None))],
            logs: vec![log],
        })
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.spans, stats.llm_calls, stats.traces, stats.logs),
        (2, 1, 2, 1)
    );
    assert!(stats.db_bytes + stats.wal_bytes > 0);
    assert!(store.db_path().ends_with(DB_FILE));
}

#[tokio::test]
async fn every_full_text_plan_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    let mut spans = Vec::new();
    for i in 1..=20u8 {
        let mut s = span(i, 1, Some("m"));
        let word = if i % 3 == 0 { "needle" } else { "hay" };
        s.attributes
            .insert("test.prompt".into(), json!(format!("{word} number {i}")));
        s.attributes
            .insert("session.id".into(), json!(format!("s{}", i % 7)));
        s.attributes
            .insert("user.id".into(), json!(format!("u{}", i % 8)));
        spans.push(item(s));
    }
    write_spans(&store, spans).await;
    store.search.caught_up(Duration::from_secs(30)).await;
    let conn = super::schema::open_reader(&dir.path().join(DB_FILE)).unwrap();
    let f = Filter {
        project: "p".into(),
        q: Some("needle".into()),
        ..Filter::default()
    };
    assert_eq!(
        super::read::fts_plan(&conn, f.q.as_deref()).unwrap(),
        FtsPlan::Set
    );
    let mut results = Vec::new();
    for plan in [FtsPlan::Set, FtsPlan::Walk, FtsPlan::Probe] {
        let page = PageRequest {
            limit: 4,
            cursor: None,
        };
        let calls = super::read::list_calls_with(&conn, &f, &page, plan).unwrap();
        let next = PageRequest {
            limit: 4,
            cursor: calls.next_cursor.clone(),
        };
        let more = super::read::list_calls_with(&conn, &f, &next, plan).unwrap();
        let traces = super::read::list_traces_with(
            &conn,
            &f,
            &PageRequest::default(),
            plan,
            super::read::Rare {
                model: plan == FtsPlan::Set,
                service: plan == FtsPlan::Set,
            },
        )
        .unwrap();
        // The model and service filters, walked from their rows or from the trace list.
        for rare_model in [true, false] {
            let rare = super::read::Rare {
                model: rare_model,
                service: rare_model,
            };
            let by_service = Filter {
                service: Some("svc".into()),
                ..f.clone()
            };
            let other = super::read::list_traces_with(
                &conn,
                &by_service,
                &PageRequest::default(),
                plan,
                rare,
            )
            .unwrap();
            assert_eq!(
                other.items, traces.items,
                "{plan:?} rare_service={rare_model}"
            );
            let nowhere = Filter {
                service: Some("nowhere".into()),
                ..f.clone()
            };
            let empty =
                super::read::list_traces_with(&conn, &nowhere, &PageRequest::default(), plan, rare)
                    .unwrap();
            assert!(empty.items.is_empty());
            let by_model = Filter {
                model: Some("m".into()),
                ..f.clone()
            };
            let other = super::read::list_traces_with(
                &conn,
                &by_model,
                &PageRequest::default(),
                plan,
                rare,
            )
            .unwrap();
            assert_eq!(
                other.items, traces.items,
                "{plan:?} rare_model={rare_model}"
            );
            let none = Filter {
                model: Some("other".into()),
                ..f.clone()
            };
            let empty =
                super::read::list_traces_with(&conn, &none, &PageRequest::default(), plan, rare)
                    .unwrap();
            assert!(empty.items.is_empty());
        }
        let ids: Vec<_> = calls
            .items
            .iter()
            .chain(&more.items)
            .map(|c| c.trace_id)
            .collect();
        assert_eq!(ids.len(), 6, "{plan:?}");
        assert_eq!(traces.items.len(), 6, "{plan:?}");
        // The session and user lists, through the same plan.
        let walk = GroupPlan {
            fts: plan,
            model_groups: None,
        };
        let groups: Vec<usize> = [
            sessions_sql(&f, &PageRequest::default(), walk).unwrap(),
            users_sql(&f, &PageRequest::default(), walk).unwrap(),
        ]
        .iter()
        .map(|(sql, params)| {
            let mut st = conn.prepare(sql).unwrap();
            st.query(rusqlite::params_from_iter(params))
                .unwrap()
                .mapped(|_| Ok(()))
                .count()
        })
        .collect();
        results.push((ids, traces.items, groups));
    }
    // Needles are spans 3, 6, …, 18: in six of the seven sessions (not s0) and six of the eight
    // users (not u0, u5).
    assert_eq!(results[0].2, vec![6, 6]);
    for r in &results[1..] {
        assert_eq!(*r, results[0]);
    }
}

/// A database written by schema 2 (spans keyed by trace id) is migrated with its data.
#[tokio::test]
async fn migration_to_trace_refs_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let s = {
        let mut s = span(9, 4, Some("m"));
        s.attributes
            .insert("test.prompt".into(), json!("hello old schema"));
        s.attributes.insert("session.id".into(), json!("s1"));
        s
    };
    let call = TestEnricher.enrich(&s).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        for (i, (_, sql)) in super::schema::MIGRATIONS.iter().take(2).enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .unwrap();
        }
        let t = s.trace_id.as_bytes();
        conn.execute(
            "INSERT INTO origins (id, hash, resource, scope) VALUES (1, 0, '{}', ?1)",
            [serde_json::to_string(&s.scope).unwrap()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO traces (id, project, trace_id, start_ns, end_ns, root_known, name, \
             service, span_count, llm_call_count, error_count, input_tokens, output_tokens, \
             priced_calls, cost_usd, session_id) \
             VALUES (5, 'p', ?1, 1004, 2000, 1, 's', 'svc', 1, 1, 0, 3, 0, 0, 0, 's1')",
            [t],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO spans (project, trace_id, span_id, parent_span_id, start_ns, end_ns, \
             kind, status, service, name, status_message, origin, attributes, extra) \
             VALUES ('p', ?1, ?2, NULL, 1004, 2000, 3, 0, 'svc', 's', '', 1, ?3, NULL)",
            rusqlite::params![
                t,
                s.span_id.as_bytes(),
                serde_json::to_string(&s.attributes).unwrap()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO llm_calls (id, project, trace_id, span_id, start_ns, status, service, \
             request_model, operation, session_id, input_tokens, call) \
             VALUES (7, 'p', ?1, ?2, 1004, 0, 'svc', 'm', 'chat', 's1', 3, ?3)",
            rusqlite::params![
                t,
                s.span_id.as_bytes(),
                serde_json::to_string(&call).unwrap()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO calls_fts (rowid, text) VALUES (7, ?1)",
            [call.searchable_text()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO session_traces (project, session_id, trace_id) VALUES ('p', 's1', ?1)",
            [t],
        )
        .unwrap();
    }

    let store = open(dir.path(), test_enricher());
    let detail = store.get_trace("p", s.trace_id).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 1);
    assert_eq!(detail.spans[0].span, s);
    assert_eq!(detail.spans[0].llm.as_ref(), Some(&call));
    let f = Filter {
        project: "p".into(),
        ..Filter::default()
    };
    let by_text = Filter {
        q: Some("old schema".into()),
        ..f.clone()
    };
    assert_eq!(
        store
            .list_calls(&by_text, &PageRequest::default())
            .await
            .unwrap()
            .items,
        vec![call]
    );
    let by_session = Filter {
        session_id: Some("s1".into()),
        ..f.clone()
    };
    let traces = store
        .list_traces(&by_session, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(traces.items.len(), 1);
    // New spans of the migrated trace join it.
    let receipt = store
        .write(WriteBatch {
            spans: vec![item(span(9, 5, None)), item(s.clone())],
            logs: vec![],
        })
        .await
        .unwrap();
    assert_eq!((receipt.spans_written, receipt.spans_duplicate), (1, 1));
    let traces = store
        .list_traces(&f, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(traces.items.len(), 1);
    assert_eq!(traces.items[0].span_count, 2);
    store.close().await.unwrap();
}

async fn write_spans(store: &SqliteStore, spans: Vec<SpanWithCall>) {
    store
        .write(WriteBatch {
            spans,
            logs: vec![],
        })
        .await
        .unwrap();
}

async fn write_word(store: &SqliteStore, trace: u8, word: &str) {
    let mut s = span(trace, 1, Some("m"));
    s.attributes.insert(
        "test.prompt".into(),
        json!(format!("{word} in trace {trace}")),
    );
    write_spans(store, vec![item(s)]).await;
}

/// Calls listed for full-text query `word` (every call when it is empty).
async fn hits(store: &SqliteStore, word: &str) -> usize {
    let f = Filter {
        project: "p".into(),
        q: Some(word.into()),
        model: word.is_empty().then(|| "m".into()),
        ..Filter::default()
    };
    store
        .list_calls(&f, &PageRequest::default())
        .await
        .unwrap()
        .items
        .len()
}

/// The full-text index is derived data: a lost `search.db` is rebuilt from the calls, an index
/// that fell behind (or lost its last commits) takes the queue up where its progress says, and a
/// search waits for both.
#[tokio::test]
async fn full_text_index_is_rebuilt_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    for t in 1..=3 {
        write_word(&store, t, "alpha").await;
    }
    assert_eq!(
        hits(&store, "alpha").await,
        3,
        "searches see acknowledged writes"
    );
    store.close().await.unwrap();

    // The index file is lost: the next start rebuilds it from the calls.
    for name in [super::SEARCH_FILE, "search.db-wal", "search.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    let store = open(dir.path(), test_enricher());
    write_word(&store, 4, "beta").await;
    assert_eq!(hits(&store, "alpha").await, 3, "rebuilt from llm_calls");
    assert_eq!(hits(&store, "beta").await, 1, "queued while rebuilding");
    // The call filters' keys are rebuilt with it.
    assert_eq!(hits(&store, "").await, 4, "every call listed");
    store.close().await.unwrap();

    // The index lost its last commits (its progress went back): the queue is taken up again
    // from there, and nothing is indexed twice.
    {
        let index = Connection::open(dir.path().join(super::SEARCH_FILE)).unwrap();
        index.execute("UPDATE progress SET seq = 0", []).unwrap();
    }
    let store = open(dir.path(), test_enricher());
    write_word(&store, 5, "gamma").await;
    assert_eq!(hits(&store, "gamma").await, 1);
    assert_eq!(hits(&store, "beta").await, 1);
    assert_eq!(hits(&store, "alpha").await, 3);
    assert_eq!(hits(&store, "").await, 5, "no call listed twice");
    store.close().await.unwrap();
}

/// A store created before rollups existed (here: rollups and their marker removed) gets them
/// built from its stored calls when opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_are_backfilled_for_older_stores() {
    use crate::metrics::{RollupQuery, SketchSet};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    let spans = (1..=5u8)
        .map(|i| item(span(i, i, Some(if i % 2 == 0 { "a" } else { "b" }))))
        .collect();
    write_spans(&store, spans).await;
    let query = RollupQuery {
        filter: Filter {
            project: "p".into(),
            ..Filter::default()
        },
        sketches: SketchSet::ALL,
        ..RollupQuery::default()
    };
    let before = store.rollups(&query).await.unwrap();
    assert_eq!(before[0].aggregate.calls, 5);
    store.close().await.unwrap();
    drop(store);

    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch(
        "DELETE FROM rollups; DELETE FROM rollup_series; \
         DELETE FROM counters WHERE name = 'rollups_built';",
    )
    .unwrap();
    drop(conn);

    let store = open(dir.path(), test_enricher());
    let after = store.rollups(&query).await.unwrap();
    assert_eq!(after, before);
    // Once built, reopening does not add them again.
    store.close().await.unwrap();
    drop(store);
    let store = open(dir.path(), test_enricher());
    assert_eq!(store.rollups(&query).await.unwrap(), before);
    store.close().await.unwrap();
    drop(store);

    // A rebuild cut short leaves its committed chunks and no marker: the next open starts over
    // instead of counting those calls twice.
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch("DELETE FROM counters WHERE name = 'rollups_built';")
        .unwrap();
    drop(conn);
    let store = open(dir.path(), test_enricher());
    assert_eq!(store.rollups(&query).await.unwrap(), before);
    store.close().await.unwrap();
}

/// Times every full-text plan of the trace list on an existing data directory (`SIGHTLINE_DATA`,
/// read only) for each of `SIGHTLINE_WORDS` (space-separated): best of three, in milliseconds.
/// Ignored by default; it is how the plan costs in BENCHMARKS.md were measured:
///
/// ```text
/// SIGHTLINE_DATA=/var/tmp/q1m SIGHTLINE_WORDS="southeast document" \
///   cargo test --release -p sightline-store time_full_text_plans -- --ignored --nocapture
/// ```
#[test]
#[ignore = "measurement harness"]
fn time_full_text_plans() {
    let dir = std::env::var("SIGHTLINE_DATA").expect("SIGHTLINE_DATA");
    let words = std::env::var("SIGHTLINE_WORDS").expect("SIGHTLINE_WORDS");
    let conn = super::schema::open_reader(&std::path::Path::new(&dir).join(DB_FILE)).unwrap();
    let rare = super::read::Rare {
        model: false,
        service: false,
    };
    for word in words.split_whitespace() {
        let f = Filter {
            project: "default".into(),
            q: Some(word.into()),
            ..Filter::default()
        };
        let matches: i64 = conn
            .query_row(
                "SELECT count(*) FROM calls_fts WHERE calls_fts MATCH ?1",
                [word],
                |r| r.get(0),
            )
            .unwrap();
        let chosen = super::read::fts_plan(&conn, f.q.as_deref()).unwrap();
        let mut line = format!("{word} ({matches} matching calls, chosen {chosen:?}):");
        for plan in [FtsPlan::Set, FtsPlan::Walk, FtsPlan::Probe] {
            let mut best = f64::MAX;
            let mut rows = 0;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let page =
                    super::read::list_traces_with(&conn, &f, &PageRequest::default(), plan, rare)
                        .unwrap();
                best = best.min(t.elapsed().as_secs_f64() * 1e3);
                rows = page.items.len();
            }
            line += &format!("  {plan:?} {best:.1} ms ({rows} rows)");
        }
        println!("{line}");
    }
}

/// Past [`super::dictionary::SAMPLE_BYTES`] of documents the store trains a zstd dictionary and
/// compresses with it; documents from before and after read back the same through every path
/// that decodes them (trace detail, attribute filters, a reopened store).
#[tokio::test]
async fn documents_from_before_and_after_the_dictionary_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    let prompt = |t: u8, i: u8| {
        format!(
            "You are the assistant of a travel agency. Trace {t}, turn {i}: the customer asks \
             for a train from {} to {} on day {} and a hotel near the station; answer in two \
             sentences and give the price in euros. {}",
            ["Lyon", "Porto", "Gdansk", "Turin", "Ghent"][usize::from(t) % 5],
            ["Basel", "Seville", "Krakow", "Bologna"][usize::from(i) % 4],
            u32::from(t) * 31 % 28 + 1,
            "Keep the tone friendly. ".repeat(40)
        )
    };
    let dictionaries = || {
        Connection::open(dir.path().join(DB_FILE))
            .unwrap()
            .query_row("SELECT count(*) FROM dictionaries", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    let batch = |t: u8| {
        (1..=20u8)
            .map(|i| {
                let mut s = span(t, i, Some("gpt-4o"));
                s.attributes
                    .insert("gen_ai.prompt.0.content".into(), json!(prompt(t, i)));
                s.attributes.insert("batch".into(), json!(format!("b{t}")));
                item(s)
            })
            .collect::<Vec<_>>()
    };
    // Batches until the samples are complete and the trainer has stored its dictionary (it
    // runs on a thread of its own, at the lowest priority), then three more.
    let mut written = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut t = 0u8;
    while dictionaries() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no dictionary was trained from {} traces",
            written.len()
        );
        if t < 250 {
            t += 1;
            write_spans(&store, batch(t)).await;
            written.push(t);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        t += 1;
        write_spans(&store, batch(t)).await;
        written.push(t);
    }
    assert_eq!(dictionaries(), 1);

    // Frames from before name no dictionary; frames from the last batches name the stored one.
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    let id: u32 = conn
        .query_row("SELECT id FROM dictionaries", [], |r| r.get(0))
        .unwrap();
    let frame_dict = |trace: u8| -> Option<u32> {
        let frame: Vec<u8> = conn
            .query_row(
                "SELECT s.attributes FROM spans s JOIN traces t ON t.id = s.trace_ref \
                 WHERE t.trace_id = ?1 LIMIT 1",
                [&[trace; 16][..]],
                |r| r.get(0),
            )
            .unwrap();
        zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|d| d.get())
    };
    assert_eq!(frame_dict(written[0]), None);
    assert_eq!(frame_dict(*written.last().unwrap()), Some(id));

    let (written, prompt) = (&written, &prompt);
    let check = |store: SqliteStore| async move {
        for &t in [written[0], *written.last().unwrap()].iter() {
            let detail = store
                .get_trace("p", TraceId([t; 16]))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(detail.spans.len(), 20);
            for s in &detail.spans {
                let i = s.span.span_id.0[0];
                assert_eq!(
                    s.span.attributes["gen_ai.prompt.0.content"],
                    json!(prompt(t, i))
                );
            }
            let page = store
                .list_traces(
                    &Filter {
                        project: "p".into(),
                        attrs: vec![("batch".into(), format!("b{t}"))],
                        ..Filter::default()
                    },
                    &PageRequest::default(),
                )
                .await
                .unwrap();
            assert_eq!(page.items.len(), 1, "attribute filter on trace {t}");
        }
        store
    };
    let store = check(store).await;
    store.close().await.unwrap();
    drop(store);
    check(open(dir.path(), test_enricher())).await;
}

/// Nice values of this process's threads named `name` (Linux truncates names to 15 bytes).
#[cfg(target_os = "linux")]
fn thread_nice(name: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, nice field 19.
        if let Some(rest) = stat.rsplit(')').next() {
            if let Some(nice) = rest.split_whitespace().nth(16) {
                out.push(nice.parse().unwrap());
            }
        }
    }
    out
}

/// The writer keeps its priority while only OTLP is served and steps back once the gateway
/// says requests come first.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_writer_steps_back_once_requests_are_favoured() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    write_spans(&store, vec![item(span(1, 1, Some("m")))]).await;
    let before = thread_nice("sightline-sqlit");
    if before.len() != 1 || crate::background::requests_favoured() {
        // Other tests share this process (`cargo test` without nextest): their writers cannot be
        // told apart from this one, and one of them may have favoured requests already.
        return;
    }
    assert!(before[0] < 10, "{before:?}");

    crate::background::favour_requests();
    write_spans(&store, vec![item(span(2, 1, Some("m")))]).await;
    assert_eq!(thread_nice("sightline-sqlit"), vec![10]);
}

/// A read whose caller stops waiting is stopped too, and gives its permit back at once: a pool of
/// one permit answers the next read long before the abandoned one's deadline.
#[tokio::test]
async fn an_abandoned_read_stops_and_frees_its_permit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), test_enricher());
    drop(store);
    let pool = Arc::new(super::read::ReadPool::new(dir.path().join(DB_FILE), 1));
    let endless = pool.run(|conn| {
        conn.query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             SELECT count(*) FROM c",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(super::codec::db_err)
    });
    assert!(tokio::time::timeout(Duration::from_millis(100), endless)
        .await
        .is_err());
    let next = tokio::time::timeout(
        super::read::QUERY_TIMEOUT / 3,
        pool.run(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map_err(super::codec::db_err)
        }),
    )
    .await
    .expect("the abandoned read gave its permit back")
    .unwrap();
    assert_eq!(next, 1);
}
