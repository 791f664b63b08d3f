//! The gateway's own counters, for `/metrics`: what was forwarded, what failed upstream, and
//! what happened to every record (stored, dropped because the queue was full, failed to store).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// Live counters, updated without locks on the request path.
#[derive(Debug, Default)]
pub struct GatewayStats {
    requests: AtomicU64,
    upstream_errors: AtomicU64,
    client_cancelled: AtomicU64,
    records_queued: AtomicU64,
    records_dropped_queue_full: AtomicU64,
    records_stored: AtomicU64,
    records_failed: AtomicU64,
    queue_depth: AtomicI64,
    queue_capacity: AtomicU64,
}

/// A consistent-enough copy of the counters (each read atomically).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GatewayStatsSnapshot {
    /// Requests received on the gateway routes.
    pub requests: u64,
    /// Calls the upstream could not answer: unreachable, timed out, or a broken body.
    pub upstream_errors: u64,
    /// Responses the client stopped reading before the end (recorded as cancelled).
    pub client_cancelled: u64,
    /// Exchanges put on the recording queue.
    pub records_queued: u64,
    /// Exchanges not recorded because the queue was full.
    pub records_dropped_queue_full: u64,
    /// Spans the pipeline stored (duplicates included).
    pub records_stored: u64,
    /// Spans the pipeline refused after retries.
    pub records_failed: u64,
    /// Exchanges waiting on the queue now.
    pub queue_depth: u64,
    /// Capacity of the queue.
    pub queue_capacity: u64,
}

impl GatewayStats {
    /// A copy of every counter.
    pub fn snapshot(&self) -> GatewayStatsSnapshot {
        GatewayStatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            upstream_errors: self.upstream_errors.load(Ordering::Relaxed),
            client_cancelled: self.client_cancelled.load(Ordering::Relaxed),
            records_queued: self.records_queued.load(Ordering::Relaxed),
            records_dropped_queue_full: self.records_dropped_queue_full.load(Ordering::Relaxed),
            records_stored: self.records_stored.load(Ordering::Relaxed),
            records_failed: self.records_failed.load(Ordering::Relaxed),
            queue_depth: self.queue_depth.load(Ordering::Relaxed).max(0) as u64,
            queue_capacity: self.queue_capacity.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set_capacity(&self, n: usize) {
        self.queue_capacity.store(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn cancelled(&self) {
        self.client_cancelled.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn queued(&self) {
        self.records_queued.fetch_add(1, Ordering::Relaxed);
        self.queue_depth.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn dequeued(&self, n: usize) {
        self.queue_depth.fetch_sub(n as i64, Ordering::Relaxed);
    }
    pub(crate) fn dropped(&self) {
        self.records_dropped_queue_full
            .fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn stored(&self, n: usize) {
        self.records_stored.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self, n: usize) {
        self.records_failed.fetch_add(n as u64, Ordering::Relaxed);
    }
}
