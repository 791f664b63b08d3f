//! Sightline's own health on `/metrics`: the ingest pipeline's counters and the store's sizes and
//! commit latency, as [`MetricsSource`]s beside the LLM-call metrics. Another component with
//! counters of its own adds a source the same way.

use std::sync::Arc;

use async_trait::async_trait;
use sightline_gateway::GatewayStatsSnapshot;
use sightline_ingest::pipeline::Pipeline;
use sightline_serve::prometheus::{family, sample, MetricsSource};
use sightline_store::sqlite::{telemetry, SqliteStore};

/// Counters of the ingest pipeline.
pub struct PipelineMetrics(pub Arc<Pipeline>);

#[async_trait]
impl MetricsSource for PipelineMetrics {
    async fn render(&self, out: &mut String) {
        let s = self.0.stats();
        let m = self.0.metric_counters().snapshot();
        let counters: [(&str, &str, u64); 11] = [
            (
                "sightline_trace_requests_total",
                "OTLP trace export requests received.",
                s.trace_requests,
            ),
            (
                "sightline_log_requests_total",
                "OTLP log export requests received.",
                s.log_requests,
            ),
            (
                "sightline_metric_requests_total",
                "OTLP metrics export requests received.",
                m.requests,
            ),
            (
                "sightline_spans_received_total",
                "Spans decoded from requests, valid or not.",
                s.spans_received,
            ),
            (
                "sightline_spans_accepted_total",
                "Spans acknowledged (durably stored, duplicates included).",
                s.spans_accepted,
            ),
            (
                "sightline_spans_written_total",
                "Spans newly written.",
                s.spans_written,
            ),
            (
                "sightline_spans_duplicate_total",
                "Spans already stored (client retries).",
                s.spans_duplicate,
            ),
            (
                "sightline_log_records_accepted_total",
                "Log records acknowledged.",
                s.log_records_accepted,
            ),
            (
                "sightline_metric_points_received_total",
                "OTLP metric data points decoded, valid or not.",
                m.points_received,
            ),
            (
                "sightline_metric_points_accepted_total",
                "OTLP metric data points stored.",
                m.points_accepted,
            ),
            (
                "sightline_metric_points_rejected_total",
                "OTLP metric data points rejected individually.",
                m.points_rejected,
            ),
        ];
        for (name, help, v) in counters {
            family(out, name, "counter", help);
            sample(out, name, &[], v as f64);
        }
        let name = "sightline_spans_rejected_total";
        family(
            out,
            name,
            "counter",
            "Spans rejected individually, by offending field.",
        );
        for (reason, n) in &s.spans_rejected_by_field {
            sample(out, name, &[("reason", reason)], *n as f64);
        }
        let name = "sightline_requests_failed_total";
        family(
            out,
            name,
            "counter",
            "Export requests that failed as a whole, by kind.",
        );
        for (kind, n) in &s.failed_requests {
            sample(out, name, &[("kind", kind)], *n as f64);
        }
        for (name, help, v) in [
            (
                "sightline_pipeline_inflight_items",
                "Spans and log records between decode and commit (the queue depth).",
                s.inflight_items,
            ),
            (
                "sightline_pipeline_max_inflight_items",
                "Capacity of the in-flight bound.",
                s.max_inflight_items,
            ),
            (
                "sightline_pipeline_inflight_body_bytes",
                "Request body bytes read and not yet decoded.",
                s.inflight_body_bytes,
            ),
        ] {
            family(out, name, "gauge", help);
            sample(out, name, &[], v as f64);
        }
    }
}

/// Sizes, queue depth and commit latency of the embedded store.
pub struct StoreMetrics(pub Arc<SqliteStore>);

#[async_trait]
impl MetricsSource for StoreMetrics {
    async fn render(&self, out: &mut String) {
        match self.0.stats().await {
            Ok(s) => {
                for (name, help, v) in [
                    ("sightline_store_spans", "Spans stored.", s.spans),
                    (
                        "sightline_store_llm_calls",
                        "LLM calls stored.",
                        s.llm_calls,
                    ),
                    ("sightline_store_traces", "Traces stored.", s.traces),
                    ("sightline_store_logs", "Log records stored.", s.logs),
                    (
                        "sightline_store_db_bytes",
                        "Size of the database file in bytes.",
                        s.db_bytes,
                    ),
                    (
                        "sightline_store_wal_bytes",
                        "Size of the write-ahead log in bytes.",
                        s.wal_bytes,
                    ),
                    (
                        "sightline_store_queued_writes",
                        "Write requests waiting for the writer thread.",
                        s.queued_writes,
                    ),
                ] {
                    family(out, name, "gauge", help);
                    sample(out, name, &[], v as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read store stats for /metrics"),
        }
        let c = telemetry::commit_latency();
        let name = "sightline_store_commit_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Duration of group commits (one transaction, fsync included).",
        );
        for (bound, n) in &c.buckets {
            sample(
                out,
                &format!("{name}_bucket"),
                &[("le", &bound.to_string())],
                *n as f64,
            );
        }
        sample(
            out,
            &format!("{name}_bucket"),
            &[("le", "+Inf")],
            c.count as f64,
        );
        sample(out, &format!("{name}_sum"), &[], c.sum_secs);
        sample(out, &format!("{name}_count"), &[], c.count as f64);
    }
}

/// A field of the gateway's counters.
type GatewayField = fn(&mut GatewayStatsSnapshot) -> &mut u64;

/// The gateway's series on `/metrics`: name, Prometheus type, help, and the counter it shows
/// (`gateway-bench` reads them back by the same names).
pub(crate) const GATEWAY_SERIES: [(&str, &str, &str, GatewayField); 9] = [
    (
        "sightline_gateway_requests_total",
        "counter",
        "Requests received on the gateway routes.",
        |g| &mut g.requests,
    ),
    (
        "sightline_gateway_upstream_errors_total",
        "counter",
        "Calls the upstream could not answer (unreachable, timed out, broken body).",
        |g| &mut g.upstream_errors,
    ),
    (
        "sightline_gateway_client_cancelled_total",
        "counter",
        "Responses the client stopped reading before the end.",
        |g| &mut g.client_cancelled,
    ),
    (
        "sightline_gateway_records_queued_total",
        "counter",
        "Calls put on the recording queue.",
        |g| &mut g.records_queued,
    ),
    (
        "sightline_gateway_records_dropped_total",
        "counter",
        "Calls not recorded because the recording queue was full.",
        |g| &mut g.records_dropped_queue_full,
    ),
    (
        "sightline_gateway_records_stored_total",
        "counter",
        "Recorded spans the pipeline stored.",
        |g| &mut g.records_stored,
    ),
    (
        "sightline_gateway_records_failed_total",
        "counter",
        "Recorded spans the pipeline refused after retries.",
        |g| &mut g.records_failed,
    ),
    (
        "sightline_gateway_record_queue_depth",
        "gauge",
        "Calls waiting on the recording queue.",
        |g| &mut g.queue_depth,
    ),
    (
        "sightline_gateway_record_queue_capacity",
        "gauge",
        "Capacity of the recording queue.",
        |g| &mut g.queue_capacity,
    ),
];

/// The gateway's counters: requests, upstream failures, cancelled streams, and what happened to
/// the recording of each call (queued, stored, failed, or not recorded because the queue was
/// full — never silently lost).
pub struct GatewayMetrics(pub Arc<sightline_gateway::GatewayStats>);

#[async_trait]
impl MetricsSource for GatewayMetrics {
    async fn render(&self, out: &mut String) {
        let mut g = self.0.snapshot();
        for (name, kind, help, field) in GATEWAY_SERIES {
            family(out, name, kind, help);
            sample(out, name, &[], *field(&mut g) as f64);
        }
    }
}
