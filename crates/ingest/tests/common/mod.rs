//! Shared helpers of the integration tests: a recording store, request builders.
#![allow(dead_code)] // each test binary uses its own part of these helpers
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
use sightline_ingest::otlp::decode::Limits;
use sightline_ingest::pipeline::enrich::StandardEnricher;
use sightline_ingest::{Pipeline, PipelineConfig};
use sightline_model::prices::PriceTable;
use sightline_model::{LlmCall, LogRecord, SpanId, TraceId};
use sightline_store::{
    Filter, Page, PageRequest, SessionDetail, SessionSummary, SpanWithCall, Store, StoreError,
    TraceDetail, TraceSummary, UserSummary, WriteBatch, WriteReceipt,
};
use tokio::sync::{Notify, Semaphore};

pub const TRACE_HEX: &str = "5b8efff798038103d269b633813fc60c";
pub const SPAN_HEX: &str = "eee19b7ec3c1b174";
pub const PARENT_HEX: &str = "eee19b7ec3c1b173";

/// How the recording store answers writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Store everything.
    Ok,
    /// Fail as a closed store does (retryable).
    Closed,
    /// Fail as a broken database does (internal).
    Broken,
}

/// A store double that keeps every batch written, stores each span once, and can hold writes
/// back (to fill the pipeline) or fail them.
pub struct RecordingStore {
    pub batches: Mutex<Vec<WriteBatch>>,
    seen: Mutex<HashSet<(String, TraceId, SpanId)>>,
    pub mode: Mutex<Mode>,
    /// When set, each write waits for a permit here before completing.
    gate: Option<Arc<Semaphore>>,
    /// Signalled when a write has started (and, with a gate, is waiting).
    pub write_started: Notify,
    /// Metric points written.
    pub metric_points: Mutex<Vec<sightline_store::MetricPoint>>,
}

impl RecordingStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::build(None))
    }

    /// A store whose writes wait until `gate` hands out a permit.
    pub fn gated(gate: Arc<Semaphore>) -> Arc<Self> {
        Arc::new(Self::build(Some(gate)))
    }

    fn build(gate: Option<Arc<Semaphore>>) -> Self {
        Self {
            batches: Mutex::new(Vec::new()),
            seen: Mutex::new(HashSet::new()),
            mode: Mutex::new(Mode::Ok),
            gate,
            write_started: Notify::new(),
            metric_points: Mutex::new(Vec::new()),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn spans(&self) -> Vec<SpanWithCall> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.spans.clone())
            .collect()
    }

    pub fn logs(&self) -> Vec<LogRecord> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.logs.clone())
            .collect()
    }
}

#[async_trait]
impl Store for RecordingStore {
    async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, StoreError> {
        self.write_started.notify_one();
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Ok => {}
            Mode::Closed => return Err(StoreError::Closed),
            Mode::Broken => return Err(StoreError::Database("disk I/O error".into())),
        }
        let mut receipt = WriteReceipt {
            logs_written: batch.logs.len(),
            ..Default::default()
        };
        {
            let mut seen = self.seen.lock().unwrap();
            for s in &batch.spans {
                if seen.insert((s.span.project.clone(), s.span.trace_id, s.span.span_id)) {
                    receipt.spans_written += 1;
                } else {
                    receipt.spans_duplicate += 1;
                }
            }
        }
        self.batches.lock().unwrap().push(batch);
        Ok(receipt)
    }

    async fn list_traces(
        &self,
        _: &Filter,
        _: &PageRequest,
    ) -> Result<Page<TraceSummary>, StoreError> {
        Ok(Page {
            items: vec![],
            next_cursor: None,
        })
    }

    async fn get_trace(&self, _: &str, _: TraceId) -> Result<Option<TraceDetail>, StoreError> {
        Ok(None)
    }

    async fn list_calls(&self, _: &Filter, _: &PageRequest) -> Result<Page<LlmCall>, StoreError> {
        Ok(Page {
            items: vec![],
            next_cursor: None,
        })
    }

    async fn list_sessions(
        &self,
        _: &Filter,
        _: &PageRequest,
    ) -> Result<Page<SessionSummary>, StoreError> {
        Ok(Page {
            items: vec![],
            next_cursor: None,
        })
    }

    async fn get_session(&self, _: &str, _: &str) -> Result<Option<SessionDetail>, StoreError> {
        Ok(None)
    }

    async fn list_users(
        &self,
        _: &Filter,
        _: &PageRequest,
    ) -> Result<Page<UserSummary>, StoreError> {
        Ok(Page {
            items: vec![],
            next_cursor: None,
        })
    }

    async fn rollups(
        &self,
        _: &sightline_store::RollupQuery,
    ) -> Result<Vec<sightline_store::RollupRow>, StoreError> {
        Ok(vec![])
    }

    async fn write_metrics(
        &self,
        points: Vec<sightline_store::MetricPoint>,
    ) -> Result<usize, StoreError> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Ok => {}
            Mode::Closed => return Err(StoreError::Closed),
            Mode::Broken => return Err(StoreError::Database("disk I/O error".into())),
        }
        let n = points.len();
        self.metric_points.lock().unwrap().extend(points);
        Ok(n)
    }

    async fn metric_series(
        &self,
        _: &sightline_store::MetricQuery,
    ) -> Result<Vec<sightline_store::MetricSeries>, StoreError> {
        Ok(vec![])
    }

    async fn recompute_costs(&self, _: &PriceTable) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

pub fn pipeline(store: Arc<RecordingStore>, config: PipelineConfig) -> Arc<Pipeline> {
    Pipeline::new(store, Arc::new(StandardEnricher::builtin()), config)
}

pub fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

pub fn int(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}

/// A valid span with the given ids (raw bytes, so invalid ones can be built too).
pub fn span(trace: &[u8], span_id: &[u8]) -> OtlpSpan {
    OtlpSpan {
        trace_id: trace.to_vec(),
        span_id: span_id.to_vec(),
        name: "chat gpt-4o-mini".into(),
        kind: 3,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_500_000_000,
        ..Default::default()
    }
}

pub fn trace_id() -> Vec<u8> {
    hex::decode(TRACE_HEX).unwrap()
}

/// The n-th distinct valid span id.
pub fn span_id(n: u64) -> Vec<u8> {
    (n + 1).to_be_bytes().to_vec()
}

/// A GenAI chat span as the OTel openai instrumentation sends it.
pub fn genai_span(n: u64) -> OtlpSpan {
    let mut sp = span(&trace_id(), &span_id(n));
    sp.attributes = vec![
        kv("gen_ai.operation.name", s("chat")),
        kv("gen_ai.provider.name", s("openai")),
        kv("gen_ai.request.model", s("gpt-4o-mini")),
        kv("gen_ai.usage.input_tokens", int(1000)),
        kv("gen_ai.usage.output_tokens", int(200)),
    ];
    sp
}

pub fn trace_request(spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("checkout"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.openai_v2".into(),
                    version: "2.1b0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub fn logs_request(records: Vec<OtlpLog>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("checkout"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.openai_v2".into(),
                    ..Default::default()
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A GenAI user-message event attached to span `n` of [`trace_id`].
pub fn genai_event(n: u64) -> OtlpLog {
    OtlpLog {
        time_unix_nano: 1_700_000_000_100_000_000,
        severity_number: 9,
        event_name: "gen_ai.user.message".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![kv("content", s("What is OTLP?"))],
                },
            )),
        }),
        trace_id: trace_id(),
        span_id: span_id(n),
        ..Default::default()
    }
}

pub fn small_limits() -> Limits {
    Limits {
        max_body_bytes: 64 * 1024,
        max_decompressed_bytes: 256 * 1024,
        max_spans_per_request: 100,
        max_log_records_per_request: 100,
        ..Limits::default()
    }
}
