//! Self-telemetry of the writer: how long group commits take, for `/metrics`.
//!
//! Process-wide atomic counters (one writer per store, one store per server), updated once per
//! group transaction, so recording never takes a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the commit latency buckets, in seconds.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

struct Histogram {
    buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

static COMMITS: Histogram = Histogram {
    buckets: [const { AtomicU64::new(0) }; COMMIT_BUCKETS.len()],
    count: AtomicU64::new(0),
    sum_nanos: AtomicU64::new(0),
};

/// Records one group commit (the transaction from `BEGIN` to the reply).
pub(crate) fn record_commit(took: Duration) {
    let secs = took.as_secs_f64();
    for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&COMMITS.buckets) {
        if secs <= *bound {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }
    COMMITS.count.fetch_add(1, Ordering::Relaxed);
    COMMITS.sum_nanos.fetch_add(
        took.as_nanos().min(u128::from(u64::MAX)) as u64,
        Ordering::Relaxed,
    );
}

/// Group commit latency since the process started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommitLatency {
    /// Cumulative counts per bucket of [`COMMIT_BUCKETS`].
    pub buckets: Vec<(f64, u64)>,
    /// Commits.
    pub count: u64,
    /// Total time in commits, seconds.
    pub sum_secs: f64,
}

/// The commit latency histogram now.
pub fn commit_latency() -> CommitLatency {
    CommitLatency {
        buckets: COMMIT_BUCKETS
            .iter()
            .zip(&COMMITS.buckets)
            .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
            .collect(),
        count: COMMITS.count.load(Ordering::Relaxed),
        sum_secs: COMMITS.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
    }
}
