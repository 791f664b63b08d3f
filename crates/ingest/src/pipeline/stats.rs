//! Self-telemetry of the ingest path: plain atomic counters, read as one [`PipelineStats`]
//! snapshot for `/metrics` and tests. Counting never takes a lock on the request path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::IngestError;
use crate::otlp::decode::{Decoded, Rejection};

/// A snapshot of the pipeline's counters (all cumulative since start, except the in-flight
/// gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineStats {
    /// Trace export requests received (HTTP and gRPC).
    pub trace_requests: u64,
    /// Log export requests received.
    pub log_requests: u64,
    /// Requests that failed as a whole, by error kind (`invalid_input`, `too_large`,
    /// `unsupported_media_type`, `overloaded`, `unavailable`, `internal`).
    pub failed_requests: BTreeMap<String, u64>,
    /// Spans decoded from requests, valid or not.
    pub spans_received: u64,
    /// Spans acknowledged to clients (durably stored, duplicates included).
    pub spans_accepted: u64,
    /// Spans newly written to the store.
    pub spans_written: u64,
    /// Spans the store already had (a client's retry), stored once.
    pub spans_duplicate: u64,
    /// Spans rejected individually.
    pub spans_rejected: u64,
    /// Rejected spans by offending field (`traceId`, `spanId`, `parentSpanId`, `attributes`).
    pub spans_rejected_by_field: BTreeMap<String, u64>,
    /// Log records decoded from requests, valid or not.
    pub log_records_received: u64,
    /// Log records acknowledged to clients.
    pub log_records_accepted: u64,
    /// Log records rejected individually.
    pub log_records_rejected: u64,
    /// Attribute values truncated to `max_attribute_value_bytes`.
    pub values_truncated: u64,
    /// Span links dropped for an invalid id.
    pub links_dropped: u64,
    /// Items (spans and log records) held by the pipeline now: the queue depth.
    pub inflight_items: u64,
    /// Most items the pipeline holds at once.
    pub max_inflight_items: u64,
    /// Bytes of request bodies held now, read but not yet decoded.
    pub inflight_body_bytes: u64,
}

const FAILURE_KINDS: [&str; 6] = [
    "invalid_input",
    "too_large",
    "unsupported_media_type",
    "overloaded",
    "unavailable",
    "internal",
];

const REJECTED_FIELDS: [&str; 5] = ["traceId", "spanId", "parentSpanId", "attributes", "other"];

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    trace_requests: AtomicU64,
    log_requests: AtomicU64,
    failed: [AtomicU64; FAILURE_KINDS.len()],
    spans_received: AtomicU64,
    spans_accepted: AtomicU64,
    spans_written: AtomicU64,
    spans_duplicate: AtomicU64,
    spans_rejected: [AtomicU64; REJECTED_FIELDS.len()],
    logs_received: AtomicU64,
    logs_accepted: AtomicU64,
    logs_rejected: AtomicU64,
    values_truncated: AtomicU64,
    links_dropped: AtomicU64,
}

fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Counters {
    pub(crate) fn trace_request(&self) {
        add(&self.trace_requests, 1);
    }

    pub(crate) fn log_request(&self) {
        add(&self.log_requests, 1);
    }

    pub(crate) fn failure(&self, err: &IngestError) {
        if let Some(i) = FAILURE_KINDS.iter().position(|k| *k == err.kind()) {
            add(&self.failed[i], 1);
        }
    }

    pub(crate) fn decoded_spans<T>(&self, d: &Decoded<T>) {
        add(&self.spans_received, d.received());
        for r in &d.rejected {
            add(&self.spans_rejected[rejected_field_index(r)], 1);
        }
        self.decoded_common(d);
    }

    pub(crate) fn decoded_logs<T>(&self, d: &Decoded<T>) {
        add(&self.logs_received, d.received());
        add(&self.logs_rejected, d.rejected.len());
        self.decoded_common(d);
    }

    fn decoded_common<T>(&self, d: &Decoded<T>) {
        self.values_truncated
            .fetch_add(d.truncated_values, Ordering::Relaxed);
        self.links_dropped
            .fetch_add(d.dropped_links, Ordering::Relaxed);
    }

    pub(crate) fn spans_stored(&self, written: usize, duplicate: usize) {
        add(&self.spans_written, written);
        add(&self.spans_duplicate, duplicate);
        add(&self.spans_accepted, written + duplicate);
    }

    pub(crate) fn logs_stored(&self, written: usize) {
        add(&self.logs_accepted, written);
    }

    pub(crate) fn snapshot(&self, inflight: usize, capacity: usize) -> PipelineStats {
        PipelineStats {
            trace_requests: get(&self.trace_requests),
            log_requests: get(&self.log_requests),
            failed_requests: FAILURE_KINDS
                .iter()
                .zip(&self.failed)
                .map(|(k, c)| (k.to_string(), get(c)))
                .collect(),
            spans_received: get(&self.spans_received),
            spans_accepted: get(&self.spans_accepted),
            spans_written: get(&self.spans_written),
            spans_duplicate: get(&self.spans_duplicate),
            spans_rejected: self.spans_rejected.iter().map(get).sum(),
            spans_rejected_by_field: REJECTED_FIELDS
                .iter()
                .zip(&self.spans_rejected)
                .map(|(k, c)| (k.to_string(), get(c)))
                .collect(),
            log_records_received: get(&self.logs_received),
            log_records_accepted: get(&self.logs_accepted),
            log_records_rejected: get(&self.logs_rejected),
            values_truncated: get(&self.values_truncated),
            links_dropped: get(&self.links_dropped),
            inflight_items: inflight as u64,
            max_inflight_items: capacity as u64,
            inflight_body_bytes: 0,
        }
    }
}

fn rejected_field_index(r: &Rejection) -> usize {
    REJECTED_FIELDS
        .iter()
        .position(|f| *f == r.field)
        .unwrap_or(REJECTED_FIELDS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_field() {
        let c = Counters::default();
        c.trace_request();
        c.failure(&IngestError::TooLarge {
            message: "big".into(),
        });
        let d: Decoded<()> = Decoded {
            items: vec![(), ()],
            rejected: vec![
                Rejection {
                    path: "resourceSpans[0].scopeSpans[0].spans[2]".into(),
                    field: "traceId",
                    reason: "identifier is all zeros".into(),
                },
                Rejection {
                    path: "resourceSpans[0].scopeSpans[0].spans[3]".into(),
                    field: "somethingElse",
                    reason: "x".into(),
                },
            ],
            truncated_values: 3,
            dropped_links: 1,
        };
        c.decoded_spans(&d);
        c.spans_stored(1, 1);
        let s = c.snapshot(5, 10);
        assert_eq!(s.trace_requests, 1);
        assert_eq!(s.failed_requests["too_large"], 1);
        assert_eq!(s.failed_requests["overloaded"], 0);
        assert_eq!(s.spans_received, 4);
        assert_eq!(s.spans_rejected, 2);
        assert_eq!(s.spans_rejected_by_field["traceId"], 1);
        assert_eq!(s.spans_rejected_by_field["other"], 1);
        assert_eq!(
            (s.spans_accepted, s.spans_written, s.spans_duplicate),
            (2, 1, 1)
        );
        assert_eq!((s.values_truncated, s.links_dropped), (3, 1));
        assert_eq!((s.inflight_items, s.max_inflight_items), (5, 10));
    }
}
