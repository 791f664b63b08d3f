//! The storage seam.
//!
//! Receivers and the API talk to storage only through [`Store`]; the embedded SQLite backend
//! ([`sqlite::SqliteStore`]) and, later, ClickHouse implement it and both must pass the one
//! conformance suite in [`testsuite`]. A write returns only once the batch is durable: callers
//! acknowledge clients after `write` resolves, never before.
//!
//! Storage keeps spans exactly as received and stores each span's [`LlmCall`] beside it. Log records
//! that carry GenAI events for a span are kept apart from the span and merged into it whenever its
//! call is (re)normalized — at write time in either arrival order — through the [`Enricher`] the
//! store is built with.
#![deny(missing_docs)]

pub mod background;
pub mod error;
pub mod metrics;
pub mod query;
pub mod sqlite;
pub mod testsuite;

use std::sync::Arc;

use async_trait::async_trait;
use sightline_model::prices::PriceTable;
use sightline_model::{LlmCall, LogRecord, Span, TraceId};

pub use error::{ErrorKind, StoreError};
pub use metrics::{
    busiest_first, MetricAgg, MetricField, MetricKind, MetricPoint, MetricQuery, MetricSeries,
    RollupAggregate, RollupDimension, RollupQuery, RollupRow, SketchSet,
};
pub use query::{
    Filter, Page, PageRequest, SessionDetail, SessionSummary, SpanWithCall, TraceDetail,
    TraceSummary, UserSummary,
};

/// Turns a span (with its GenAI log events merged into `events`) into its LLM call, cost included.
/// The ingest pipeline owns the implementation; the store calls it when logs and spans meet.
pub trait Enricher: Send + Sync {
    /// The span's LLM call, or `None` when it is not a model call.
    fn enrich(&self, span: &Span) -> Option<LlmCall>;
}

/// A batch to store in one transaction.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// Spans, each with its call already normalized by the pipeline.
    pub spans: Vec<SpanWithCall>,
    /// Log records.
    pub logs: Vec<LogRecord>,
}

impl WriteBatch {
    /// Number of items (spans plus logs) in the batch.
    pub fn len(&self) -> usize {
        self.spans.len() + self.logs.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty() && self.logs.is_empty()
    }
}

/// What a durable write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteReceipt {
    /// Spans newly stored.
    pub spans_written: usize,
    /// Spans already stored (same project, trace and span id), ignored.
    pub spans_duplicate: usize,
    /// Log records stored.
    pub logs_written: usize,
    /// Log records already stored (the same record resent by a retrying client), ignored.
    pub logs_duplicate: usize,
}

/// Storage backend. Every method is safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a batch durably; resolves once it is committed to disk. Concurrent calls may be
    /// committed together (group commit).
    async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, StoreError>;

    /// Traces, newest first, matching the filter.
    async fn list_traces(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<TraceSummary>, StoreError>;

    /// One trace with all its spans (parents before children, then by start time).
    async fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError>;

    /// LLM calls, newest first, matching the filter.
    async fn list_calls(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<LlmCall>, StoreError>;

    /// Sessions, most recently active first.
    async fn list_sessions(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<SessionSummary>, StoreError>;

    /// One session with its traces in order.
    async fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError>;

    /// Users, most recently seen first.
    async fn list_users(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<UserSummary>, StoreError>;

    /// LLM-call rollups over a time range, grouped and optionally bucketed (see [`metrics`]).
    /// Reads rollup rows only, never raw calls.
    async fn rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError>;

    /// Stores OTLP metric points durably; returns how many were stored.
    async fn write_metrics(&self, points: Vec<MetricPoint>) -> Result<usize, StoreError>;

    /// Metric points of one metric as time series.
    async fn metric_series(&self, query: &MetricQuery) -> Result<Vec<MetricSeries>, StoreError>;

    /// Recomputes the cost of every stored call with `prices`; returns how many calls changed.
    async fn recompute_costs(&self, prices: &PriceTable) -> Result<u64, StoreError>;

    /// Flushes and stops the writer; later writes fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<(), StoreError>;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;
