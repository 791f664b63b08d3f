//! Counting what happened to every request, and the summary printed at the end.
//!
//! Counters are atomics shared by the in-flight requests; latencies go to one HDR histogram (3
//! significant digits, 1 µs to 10 minutes) behind a mutex held for a single record, which costs
//! nothing next to a request.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

use super::Protocol;

/// Distinct error messages kept for the report.
const MAX_ERRORS: usize = 8;

/// Outcomes of requests (or of the spans in them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sent at least once.
    pub sent: u64,
    /// Acknowledged by the server.
    pub acked: u64,
    /// Refused as overloaded or unavailable (429/503, `RESOURCE_EXHAUSTED`/`UNAVAILABLE`) on the
    /// last attempt.
    pub rejected: u64,
    /// Failed for good: any other error, an unreachable server, or (spans only) refused by the
    /// server's `partial_success`.
    pub failed: u64,
}

/// Request latency percentiles over acknowledged requests (one attempt each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
    /// Mean.
    pub mean: Duration,
}

/// One distinct error and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCount {
    /// The error as the transport or the server described it.
    pub reason: String,
    /// Occurrences.
    pub count: u64,
}

/// What a load generator run did.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Protocol used.
    pub protocol: Protocol,
    /// Where requests went.
    pub target: String,
    /// Seed of the traffic; the same seed sends the same traces (same ids) again.
    pub seed: u64,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Requests (a retried request counts once).
    pub requests: Tally,
    /// Spans in those requests.
    pub spans: Tally,
    /// Traces in fully acknowledged requests.
    pub traces_acked: u64,
    /// Extra attempts made after retryable refusals.
    pub retries: u64,
    /// Request bytes put on the wire, retries included (before gRPC compression).
    pub bytes_sent: u64,
    /// Latency of acknowledged requests.
    pub latency: Latency,
    /// The most frequent kinds of error, most frequent first.
    pub errors: Vec<ErrorCount>,
}

impl LoadReport {
    /// Acknowledged spans per second over the whole run.
    pub fn acked_spans_per_s(&self) -> f64 {
        per_s(self.spans.acked, self.elapsed)
    }

    /// The report as JSON (durations in milliseconds or seconds, as named).
    pub fn to_json(&self) -> serde_json::Value {
        let tally = |t: &Tally| json!({ "sent": t.sent, "acked": t.acked, "rejected": t.rejected, "failed": t.failed });
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        json!({
            "protocol": self.protocol.to_string(),
            "target": self.target,
            "seed": self.seed,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests": tally(&self.requests),
            "spans": tally(&self.spans),
            "traces_acked": self.traces_acked,
            "retries": self.retries,
            "bytes_sent": self.bytes_sent,
            "acked_spans_per_s": self.acked_spans_per_s(),
            "acked_requests_per_s": per_s(self.requests.acked, self.elapsed),
            "latency_ms": {
                "count": self.latency.count,
                "p50": ms(self.latency.p50),
                "p90": ms(self.latency.p90),
                "p99": ms(self.latency.p99),
                "max": ms(self.latency.max),
                "mean": ms(self.latency.mean),
            },
            "errors": self.errors.iter().map(|e| json!({ "reason": e.reason, "count": e.count })).collect::<Vec<_>>(),
        })
    }
}

fn per_s(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |t: &Tally| {
            format!(
                "sent {}  acked {}  rejected {}  failed {}",
                t.sent, t.acked, t.rejected, t.failed
            )
        };
        writeln!(
            f,
            "sightline loadgen: {} to {} (seed {})",
            self.protocol, self.target, self.seed
        )?;
        writeln!(f, "  elapsed       {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(
            f,
            "  requests      {}  (retries {})",
            t(&self.requests),
            self.retries
        )?;
        writeln!(f, "  spans         {}", t(&self.spans))?;
        writeln!(f, "  traces acked  {}", self.traces_acked)?;
        writeln!(
            f,
            "  throughput    {:.0} acked spans/s, {:.1} requests/s, {:.1} MB/s sent",
            self.acked_spans_per_s(),
            per_s(self.requests.acked, self.elapsed),
            self.bytes_sent as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
        )?;
        write!(
            f,
            "  ack latency   p50 {}  p90 {}  p99 {}  max {}  (mean {}, {} requests)",
            ms(self.latency.p50),
            ms(self.latency.p90),
            ms(self.latency.p99),
            ms(self.latency.max),
            ms(self.latency.mean),
            self.latency.count
        )?;
        if !self.errors.is_empty() {
            write!(f, "\n  errors")?;
            for e in &self.errors {
                write!(f, "\n    {:>8} x {}", e.count, e.reason)?;
            }
        }
        Ok(())
    }
}

/// Counters shared by all in-flight requests.
#[derive(Debug)]
pub(crate) struct Stats {
    pub requests: Counters,
    pub spans: Counters,
    pub traces_acked: AtomicU64,
    pub retries: AtomicU64,
    pub bytes_sent: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    errors: Mutex<Vec<ErrorCount>>,
}

/// Atomic form of [`Tally`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Tally {
        Tally {
            sent: self.sent.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            requests: Counters::default(),
            spans: Counters::default(),
            traces_acked: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
            errors: Mutex::new(Vec::new()),
        })
    }

    /// Records the latency of one acknowledged request.
    pub(crate) fn record_latency(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut h) = self.latency.lock() {
            h.saturating_record(micros.max(1));
        }
    }

    /// Counts one error by its message.
    pub(crate) fn record_error(&self, reason: &str) {
        if let Ok(mut errors) = self.errors.lock() {
            if let Some(e) = errors.iter_mut().find(|e| e.reason == reason) {
                e.count += 1;
            } else if errors.len() < MAX_ERRORS {
                errors.push(ErrorCount {
                    reason: reason.to_string(),
                    count: 1,
                });
            }
        }
    }

    /// Acknowledged spans so far.
    pub(crate) fn spans_acked(&self) -> u64 {
        self.spans.acked.load(Ordering::Relaxed)
    }

    pub(crate) fn report(
        &self,
        protocol: Protocol,
        target: String,
        seed: u64,
        elapsed: Duration,
    ) -> LoadReport {
        let latency = match self.latency.lock() {
            Ok(h) if !h.is_empty() => {
                let us = Duration::from_micros;
                Latency {
                    count: h.len(),
                    p50: us(h.value_at_quantile(0.50)),
                    p90: us(h.value_at_quantile(0.90)),
                    p99: us(h.value_at_quantile(0.99)),
                    max: us(h.max()),
                    mean: Duration::from_secs_f64(h.mean() / 1e6),
                }
            }
            _ => Latency::default(),
        };
        let mut errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        errors.sort_by_key(|e| std::cmp::Reverse(e.count));
        LoadReport {
            protocol,
            target,
            seed,
            elapsed,
            requests: self.requests.snapshot(),
            spans: self.spans.snapshot(),
            traces_acked: self.traces_acked.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            latency,
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_summarises_counters_and_latency() {
        let stats = Stats::new().unwrap();
        add(&stats.requests.sent, 4);
        add(&stats.requests.acked, 3);
        add(&stats.requests.failed, 1);
        add(&stats.spans.sent, 40);
        add(&stats.spans.acked, 30);
        add(&stats.spans.failed, 10);
        for ms in [1, 2, 3, 100] {
            stats.record_latency(Duration::from_millis(ms));
        }
        stats.record_error("HTTP 400: bad");
        stats.record_error("HTTP 400: bad");
        stats.record_error("connection refused");
        let r = stats.report(Protocol::Grpc, "x".into(), 42, Duration::from_secs(2));
        assert_eq!(r.acked_spans_per_s(), 15.0);
        assert_eq!(r.latency.count, 4);
        assert!(
            r.latency.p50 >= Duration::from_millis(2) && r.latency.p50 < Duration::from_millis(3)
        );
        assert!(r.latency.max >= Duration::from_millis(100));
        assert_eq!(r.errors[0].count, 2);
        let j = r.to_json();
        assert_eq!(j["spans"]["acked"], 30);
        assert_eq!(j["protocol"], "grpc");
        assert_eq!(j["acked_spans_per_s"], 15.0);
        let text = r.to_string();
        assert!(text.contains("15 acked spans/s"), "{text}");
        assert!(text.contains("2 x HTTP 400: bad"), "{text}");
    }
}
