//! The bounded recording queue and the thread that drains it into the pipeline.
//!
//! The request path only ever calls [`Recorder::submit`], which never waits, takes no lock and
//! wakes nobody: the exchange goes on a bounded lock-free channel, or — when the channel is full —
//! is counted as dropped. One background thread, at the lowest scheduling priority, looks at the
//! channel every few milliseconds (sooner when it is half full), turns each exchange into a span,
//! and writes the batch with `Pipeline::ingest_spans`, the same durable path OTLP uses. A batch
//! the pipeline refuses for overload is retried with backoff; one it still refuses, or one whose
//! conversion or storing panics, is counted as failed.
//!
//! Polling rather than waking the thread per call keeps a futex wake and a cross-core interrupt
//! off every proxied response, and turns a steady stream of calls into batches, which the store
//! commits far more cheaply than one call at a time. At most the channel's capacity plus one batch
//! of exchanges is held in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use sightline_ingest::Pipeline;
use sightline_store::background::{self, Priority};
use tokio::task::JoinHandle;

use crate::capture::Exchange;
use crate::stats::GatewayStats;

/// Attempts to store one batch before it is counted as failed.
const ATTEMPTS: u32 = 5;

/// How long the recorder waits between looks at a channel that had calls in it.
const POLL_BUSY: Duration = Duration::from_millis(2);

/// The longest wait between looks at a channel that stayed empty: the interval doubles from
/// [`POLL_BUSY`] up to this while no call arrives, so an idle server does not spin.
const POLL_IDLE: Duration = Duration::from_millis(64);

/// The sending side, shared by every [`Recorder`] clone; dropping the last one closes the
/// channel and wakes the thread to drain what is left.
#[derive(Debug)]
struct Shared {
    tx: Option<Sender<Exchange>>,
    capacity: usize,
    /// Body bytes of the exchanges queued (see [`exchange_bytes`]), and the most allowed.
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    stats: Arc<GatewayStats>,
    /// The recorder thread, to wake it early.
    thread: Thread,
}

impl Shared {
    fn wake(&self) {
        self.thread.unpark();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.wake();
    }
}

/// The sending side of the recording queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

impl Recorder {
    /// Queues an exchange without waiting; counts it as dropped when the queue is full.
    pub fn submit(&self, exchange: Exchange) {
        let Some(tx) = &self.shared.tx else {
            return;
        };
        // The queue is bounded in bytes as well as in calls: 10,000 calls of 40 MiB each would
        // not fit in any machine's memory. One call alone is always taken.
        let size = exchange_bytes(&exchange);
        let held = self.shared.bytes.fetch_add(size, Ordering::AcqRel) + size;
        if held > self.shared.max_bytes && held != size {
            self.shared.bytes.fetch_sub(size, Ordering::AcqRel);
            self.shared.stats.dropped();
            return;
        }
        match tx.try_send(exchange) {
            Ok(()) => {
                self.shared.stats.queued();
                // Half full: do not wait for the next look.
                if tx.len() == self.shared.capacity.div_ceil(2) {
                    self.shared.wake();
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.bytes.fetch_sub(size, Ordering::AcqRel);
                self.shared.stats.dropped();
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<GatewayStats> {
        self.shared.stats.clone()
    }

    /// The counters, borrowed: for the per-request path, which needs no handle of its own.
    pub(crate) fn counters(&self) -> &GatewayStats {
        &self.shared.stats
    }
}

/// Starts the recording thread. Its handle ends once every [`Recorder`] is dropped and the queue
/// is empty.
///
/// Recording is background work: it runs on a thread of its own, with its own single-threaded
/// runtime and the lowest scheduling priority (nice 19, which still guarantees it progress on a
/// saturated machine), so that parsing, normalizing and encoding a call never takes an async
/// worker from a request the gateway is proxying.
pub fn spawn(
    pipeline: Arc<Pipeline>,
    capacity: usize,
    max_bytes: usize,
    batch_max: usize,
    stats: Arc<GatewayStats>,
) -> Result<(Recorder, JoinHandle<()>), std::io::Error> {
    let capacity = capacity.max(1);
    let batch_max = batch_max.max(1);
    stats.set_capacity(capacity);
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(|| {
            background::enter_background();
            background::lower_current_thread(Priority::Lowest);
        })
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let thread_stats = stats.clone();
    let bytes = Arc::new(AtomicUsize::new(0));
    let thread_bytes = bytes.clone();
    let thread = std::thread::Builder::new()
        .name("sightline-gateway-recorder".into())
        .spawn(move || {
            background::enter_background();
            background::lower_current_thread(Priority::Lowest);
            drain(
                &rx,
                &runtime,
                &pipeline,
                batch_max,
                &thread_stats,
                &thread_bytes,
            );
            let _ = done_tx.send(());
        })?;
    let shared = Shared {
        tx: Some(tx),
        capacity,
        bytes,
        max_bytes,
        stats,
        thread: thread.thread().clone(),
    };
    let task = tokio::spawn(async move {
        let _ = done_rx.await;
    });
    Ok((
        Recorder {
            shared: Arc::new(shared),
        },
        task,
    ))
}

/// Stores what is queued, in batches of at most `batch_max`, until every sender is gone and the
/// channel is empty.
fn drain(
    rx: &Receiver<Exchange>,
    runtime: &tokio::runtime::Runtime,
    pipeline: &Pipeline,
    batch_max: usize,
    stats: &GatewayStats,
    bytes: &AtomicUsize,
) {
    let mut wait = POLL_BUSY;
    loop {
        let mut batch = Vec::new();
        let closed = loop {
            match rx.try_recv() {
                Ok(exchange) => {
                    batch.push(exchange);
                    if batch.len() == batch_max {
                        break false;
                    }
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if batch.is_empty() {
            if closed {
                return;
            }
            std::thread::park_timeout(wait);
            wait = (wait * 2).min(POLL_IDLE);
            continue;
        }
        wait = POLL_BUSY;
        let full = batch.len() == batch_max;
        stats.dequeued(batch.len());
        let size: usize = batch.iter().map(exchange_bytes).sum();
        record(runtime, pipeline, batch, stats);
        // Held until recorded: the batch's bodies live until then.
        bytes.fetch_sub(size, Ordering::AcqRel);
        if !full && !closed {
            std::thread::park_timeout(POLL_BUSY);
        }
    }
}

/// What an exchange holds in memory while it waits, by its bodies (the rest is small).
fn exchange_bytes(exchange: &Exchange) -> usize {
    exchange.request_body.len() + exchange.chunks.iter().map(|c| c.len()).sum::<usize>()
}

/// Converts and stores one batch. A bug anywhere in it costs this batch (counted), never the
/// recorder.
fn record(
    runtime: &tokio::runtime::Runtime,
    pipeline: &Pipeline,
    exchanges: Vec<Exchange>,
    stats: &GatewayStats,
) {
    let n = exchanges.len();
    let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let spans = exchanges
            .iter()
            .map(crate::record::to_span)
            .collect::<Vec<_>>();
        runtime.block_on(store(pipeline, spans, stats));
    }));
    if stored.is_err() {
        tracing::error!(calls = n, "recording a batch of gateway calls panicked");
        stats.failed(n);
    }
}

async fn store(pipeline: &Pipeline, spans: Vec<sightline_model::Span>, stats: &GatewayStats) {
    let n = spans.len();
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=ATTEMPTS {
        match pipeline.ingest_spans(spans.clone()).await {
            Ok(receipt) => {
                stats.stored(receipt.spans_written + receipt.spans_duplicate);
                return;
            }
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "gateway records refused; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::warn!(error = %e, spans = n, "gateway records could not be stored");
                stats.failed(n);
                return;
            }
        }
    }
}
