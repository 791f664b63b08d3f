//! Request bodies: batches of traces, from a pool of pre-built templates or built fresh.
//!
//! With a pool, building a request costs a copy and a few patches per trace (see `template.rs`),
//! so one core produces far more spans per second than a server can store; without one, every
//! trace is built from scratch, which gives endless variety (new sessions, new text) at a gentle
//! rate. Either way the sequence of traces depends only on the seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::template::{Template, Written};
use super::traffic::{build, Shape};

/// One request's worth of traces, encoded as an OTLP `ExportTraceServiceRequest` protobuf.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    /// The encoded request.
    pub body: Vec<u8>,
    /// Each trace's id and span count.
    pub traces: Vec<Written>,
    /// Spans in the request.
    pub spans: usize,
}

/// When the traces of a batch end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stamp {
    /// All at this time (unix nanoseconds): traffic as it happens.
    At(u64),
    /// Uniformly over `[end - window, end]`: history.
    Spread {
        /// Latest end time, unix nanoseconds.
        end: u64,
        /// Width of the window, nanoseconds.
        window: u64,
    },
}

/// Produces batches.
pub(crate) struct Generator {
    rng: SmallRng,
    shape: Shape,
    pool: Vec<Template>,
}

impl Generator {
    /// A generator seeded with `seed`; `pool` distinct traces are built up front (0: none, every
    /// trace is built when sent).
    pub(crate) fn new(seed: u64, shape: Shape, pool: usize) -> anyhow::Result<Self> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let pool = (0..pool)
            .map(|_| Template::encode(&build(&mut rng, &shape)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { rng, shape, pool })
    }

    /// Mean encoded size of a span in the pool, in bytes (0 without a pool).
    pub(crate) fn mean_span_bytes(&self) -> usize {
        let spans: usize = self.pool.iter().map(Template::span_count).sum();
        let bytes: usize = self.pool.iter().map(Template::len).sum();
        bytes.checked_div(spans).unwrap_or(0)
    }

    /// The next `traces` traces as one request body.
    pub(crate) fn next_batch(&mut self, traces: usize, stamp: Stamp) -> anyhow::Result<Batch> {
        let mut batch = Batch {
            body: Vec::with_capacity(traces * 12 * 1024),
            traces: Vec::with_capacity(traces),
            spans: 0,
        };
        for _ in 0..traces {
            let end = match stamp {
                Stamp::At(t) => t,
                Stamp::Spread { end, window } => {
                    end.saturating_sub(self.rng.random_range(0..=window))
                }
            };
            let written = if self.pool.is_empty() {
                let template = Template::encode(&build(&mut self.rng, &self.shape))?;
                template.write(&mut self.rng, end, &mut batch.body)
            } else {
                let k = self.rng.random_range(0..self.pool.len());
                self.pool[k].write(&mut self.rng, end, &mut batch.body)
            };
            batch.spans += written.spans;
            batch.traces.push(written);
        }
        Ok(batch)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::loadgen::traffic::mix;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use std::collections::HashSet;
    use std::time::Instant;

    pub(crate) fn shape(users: u32, sessions: u32, content: bool, seed: u64) -> Shape {
        Shape {
            users,
            sessions,
            content,
            salt: mix(seed),
        }
    }

    #[test]
    fn batches_decode_and_ids_are_unique() {
        let mut g = Generator::new(11, shape(20, 50, true, 11), 16).unwrap();
        let mut ids = HashSet::new();
        for _ in 0..50 {
            let b = g
                .next_batch(20, Stamp::At(1_760_000_000_000_000_000))
                .unwrap();
            let req = ExportTraceServiceRequest::decode(b.body.as_slice()).unwrap();
            let spans: usize = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            assert_eq!(spans, b.spans);
            assert_eq!(b.traces.iter().map(|t| t.spans).sum::<usize>(), b.spans);
            for t in &b.traces {
                assert!(ids.insert(t.trace_id));
            }
        }
    }

    #[test]
    fn the_seed_decides_the_sequence() {
        let ids = |seed: u64, pool: usize| {
            let mut g = Generator::new(seed, shape(20, 50, true, seed), pool).unwrap();
            let b = g
                .next_batch(5, Stamp::At(1_760_000_000_000_000_000))
                .unwrap();
            b.traces.iter().map(|t| t.trace_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(3, 8), ids(3, 8));
        assert_eq!(ids(3, 0), ids(3, 0));
        assert_ne!(ids(3, 8), ids(4, 8));
    }

    #[test]
    fn spread_stamps_fall_inside_the_window() {
        let end = 1_760_000_000_000_000_000u64;
        let window = 3_600_000_000_000u64;
        let mut g = Generator::new(1, shape(5, 5, false, 1), 0).unwrap();
        let b = g.next_batch(30, Stamp::Spread { end, window }).unwrap();
        let req = ExportTraceServiceRequest::decode(b.body.as_slice()).unwrap();
        for span in req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            assert!(span.end_time_unix_nano <= end);
            assert!(span.start_time_unix_nano >= end - window - 120_000_000_000);
        }
    }

    /// Prints the generator's own throughput; run with `--release --nocapture` for real numbers.
    #[test]
    fn generator_throughput() {
        let started = Instant::now();
        let mut g = Generator::new(7, shape(200, 1000, true, 7), 1024).unwrap();
        let built = started.elapsed();
        let started = Instant::now();
        let mut spans = 0;
        let mut bytes = 0;
        while started.elapsed().as_millis() < 500 {
            let b = g
                .next_batch(20, Stamp::At(1_760_000_000_000_000_000))
                .unwrap();
            spans += b.spans;
            bytes += std::hint::black_box(b.body).len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "pool of 1024 built in {:.2}s; {:.0} spans/s, {:.0} MB/s from the pool, {} bytes/span",
            built.as_secs_f64(),
            spans as f64 / secs,
            bytes as f64 / secs / 1e6,
            g.mean_span_bytes()
        );
        let mut fresh = Generator::new(7, shape(200, 1000, true, 7), 0).unwrap();
        let started = Instant::now();
        let mut fresh_spans = 0;
        while started.elapsed().as_millis() < 300 {
            fresh_spans += fresh
                .next_batch(20, Stamp::At(1_760_000_000_000_000_000))
                .unwrap()
                .spans;
        }
        println!(
            "{:.0} spans/s built fresh",
            fresh_spans as f64 / started.elapsed().as_secs_f64()
        );
        assert!(spans > 0 && fresh_spans > 0);
    }
}
