//! The ingest pipeline: decoded items → enriched → durably stored → acknowledged.
//!
//! Every receiver (OTLP/HTTP, OTLP/gRPC, later the gateway) hands decoded items to one
//! [`Pipeline`], so limits and counters are shared. A call resolves only after the store has
//! committed the batch, so an acknowledgement is a promise the data survives a crash; the store
//! groups concurrent writes into one transaction. Memory is bounded in [`limit`]: a request that
//! does not fit is refused at once with a retry hint instead of waiting in a queue.

pub mod enrich;
pub mod limit;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sightline_model::{LogRecord, Span};
use sightline_store::{Enricher, SharedStore, WriteBatch, WriteReceipt};

use crate::error::IngestError;
use crate::otlp::decode::Decoded;
use limit::{DecodeSlots, InflightLimiter};
pub use stats::PipelineStats;

/// Batches at least this large are enriched on a blocking thread; smaller ones inline, where a
/// thread hop would cost more than the work.
const BLOCKING_ENRICH_THRESHOLD: usize = 64;

/// Pipeline settings (the `[pipeline]` section of the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Most spans and log records held at once, from decoding until the store commits them.
    /// A request that would pass it is refused at once with 429 / `RESOURCE_EXHAUSTED` and a
    /// retry hint, which bounds memory.
    pub max_inflight_spans: usize,
    /// Seconds a refused client is told to wait (`Retry-After`, gRPC `RetryInfo`) when the
    /// pipeline is full or the store unavailable.
    pub retry_after_secs: u64,
    /// Request bodies decompressed and decoded at once, on blocking threads; 0 means one per
    /// CPU. Further requests wait for a slot.
    pub max_concurrent_decodes: usize,
    /// Most bytes of OTLP request bodies held at once, over HTTP (as received, before
    /// decompression) and gRPC (as framed) together, from the first byte read until the body is
    /// decoded. A body that would pass it is refused with 429 / RESOURCE_EXHAUSTED and a retry
    /// hint, so many concurrent uploads cannot exhaust memory.
    pub max_inflight_body_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_inflight_spans: 200_000,
            retry_after_secs: 1,
            max_concurrent_decodes: 0,
            max_inflight_body_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What one ingest call stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestReceipt {
    /// Spans newly stored.
    pub spans_written: usize,
    /// Spans the store already had (a retried request), stored once and acknowledged again.
    pub spans_duplicate: usize,
    /// Log records stored.
    pub logs_written: usize,
}

impl From<WriteReceipt> for IngestReceipt {
    fn from(r: WriteReceipt) -> Self {
        Self {
            spans_written: r.spans_written,
            spans_duplicate: r.spans_duplicate,
            logs_written: r.logs_written,
        }
    }
}

/// The shared ingest pipeline.
pub struct Pipeline {
    store: SharedStore,
    enricher: Arc<dyn Enricher>,
    config: PipelineConfig,
    inflight: InflightLimiter,
    body_bytes: InflightLimiter,
    decodes: DecodeSlots,
    counters: stats::Counters,
    metric_counters: crate::otlp::metrics::MetricCounters,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("inflight", &self.inflight)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline writing to `store`, normalizing and pricing spans with `enricher`.
    pub fn new(
        store: SharedStore,
        enricher: Arc<dyn Enricher>,
        config: PipelineConfig,
    ) -> Arc<Self> {
        let retry_after = Duration::from_secs(config.retry_after_secs);
        Arc::new(Self {
            inflight: InflightLimiter::new(config.max_inflight_spans, retry_after),
            body_bytes: InflightLimiter::new(config.max_inflight_body_bytes, retry_after),
            decodes: DecodeSlots::new(config.max_concurrent_decodes),
            store,
            enricher,
            config,
            counters: stats::Counters::default(),
            metric_counters: Default::default(),
        })
    }

    /// The settings the pipeline runs with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// How long refused clients are told to wait.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(self.config.retry_after_secs)
    }

    /// Enriches `spans` (each becomes a span with its LLM call) and stores them; resolves once
    /// they are durable. Fails at once with [`IngestError::Overloaded`] when the pipeline is full.
    pub async fn ingest_spans(&self, spans: Vec<Span>) -> Result<IngestReceipt, IngestError> {
        if spans.is_empty() {
            return Ok(IngestReceipt::default());
        }
        let _permit = self.inflight.try_acquire(spans.len())?;
        let enriched = if spans.len() >= BLOCKING_ENRICH_THRESHOLD {
            let enricher = self.enricher.clone();
            tokio::task::spawn_blocking(move || enrich::enrich_all(enricher.as_ref(), spans))
                .await
                .map_err(|e| IngestError::Internal {
                    message: format!("enrichment task failed: {e}"),
                })?
        } else {
            enrich::enrich_all(self.enricher.as_ref(), spans)
        };
        let receipt = self
            .store
            .write(WriteBatch {
                spans: enriched,
                logs: Vec::new(),
            })
            .await
            .map_err(|e| IngestError::from_store(e, self.retry_after()))?;
        self.counters
            .spans_stored(receipt.spans_written, receipt.spans_duplicate);
        Ok(receipt.into())
    }

    /// Stores log records; resolves once they are durable. The store attaches GenAI events to
    /// their spans (whichever arrives first) through the enricher it was built with.
    pub async fn ingest_logs(&self, logs: Vec<LogRecord>) -> Result<IngestReceipt, IngestError> {
        if logs.is_empty() {
            return Ok(IngestReceipt::default());
        }
        let _permit = self.inflight.try_acquire(logs.len())?;
        let receipt = self
            .store
            .write(WriteBatch {
                spans: Vec::new(),
                logs,
            })
            .await
            .map_err(|e| IngestError::from_store(e, self.retry_after()))?;
        self.counters.logs_stored(receipt.logs_written);
        Ok(receipt.into())
    }

    /// Stores OTLP metric points durably (under the same in-flight bound as spans).
    pub async fn ingest_metrics(
        &self,
        points: Vec<sightline_store::MetricPoint>,
    ) -> Result<usize, IngestError> {
        if points.is_empty() {
            return Ok(0);
        }
        let _permit = self.inflight.try_acquire(points.len())?;
        let n = self
            .store
            .write_metrics(points)
            .await
            .map_err(|e| IngestError::from_store(e, self.retry_after()))?;
        self.metric_counters.stored(n);
        Ok(n)
    }

    /// Counters of the OTLP metrics path.
    pub fn metric_counters(&self) -> &crate::otlp::metrics::MetricCounters {
        &self.metric_counters
    }

    /// The budget of request body bytes held at once; receivers reserve from it while reading a
    /// body and release when it is decoded.
    pub fn body_budget(&self) -> &InflightLimiter {
        &self.body_bytes
    }

    /// Runs a decoding job (decompression, parsing, conversion) on a blocking thread once one of
    /// the pipeline's decode slots is free.
    pub async fn decode<T, F>(&self, job: F) -> Result<T, IngestError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, IngestError> + Send + 'static,
    {
        self.decodes.run(job).await
    }

    /// Counts a trace export request.
    pub fn record_trace_request(&self) {
        self.counters.trace_request();
    }

    /// Counts a logs export request.
    pub fn record_log_request(&self) {
        self.counters.log_request();
    }

    /// Counts a request that failed as a whole.
    pub fn record_failure(&self, err: &IngestError) {
        self.counters.failure(err);
    }

    /// Counts the outcome of decoding spans: received, rejected by field, truncated values.
    pub fn record_decoded_spans(&self, decoded: &Decoded<Span>) {
        self.counters.decoded_spans(decoded);
    }

    /// Counts the outcome of decoding log records.
    pub fn record_decoded_logs(&self, decoded: &Decoded<LogRecord>) {
        self.counters.decoded_logs(decoded);
    }

    /// A snapshot of the counters and the queue depth.
    pub fn stats(&self) -> PipelineStats {
        let mut stats = self
            .counters
            .snapshot(self.inflight.in_flight(), self.inflight.capacity());
        stats.inflight_body_bytes = self.body_bytes.in_flight() as u64;
        stats
    }
}
