//! The bounded recording queue and the thread that drains it into the pipeline.
//!
//! The request path only ever calls [`Recorder::submit`], which never waits and wakes nobody: the
//! exchange goes on a bounded queue under a short lock, or — when the queue is full — is counted as
//! dropped. One background thread, at a lowered scheduling priority, looks at the queue every few
//! milliseconds (sooner when it fills), turns each exchange into a span (a panic there costs one
//! counted batch, not the recorder), and writes the batch with `Pipeline::ingest_spans`, the same
//! durable path OTLP uses. A batch the pipeline refuses for overload is retried with backoff; one
//! it still refuses is counted as failed.
//!
//! Polling rather than waking the thread per call keeps a futex wake and a cross-core interrupt
//! off every proxied response, and turns a steady stream of calls into batches, which the store
//! commits far more cheaply than one call at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use sightline_ingest::Pipeline;
use sightline_store::background::{self, Priority};
use tokio::task::JoinHandle;

use crate::capture::Exchange;
use crate::stats::GatewayStats;

/// Attempts to store one batch before it is counted as failed.
const ATTEMPTS: u32 = 5;

/// How long the recorder waits between looks at a queue that had calls in it.
const POLL_BUSY: Duration = Duration::from_millis(2);

/// The longest wait between looks at a queue that stayed empty: the interval doubles from
/// [`POLL_BUSY`] up to this while no call arrives, so an idle server does not spin.
const POLL_IDLE: Duration = Duration::from_millis(64);

/// The queue both sides share.
#[derive(Debug)]
struct Queue {
    items: Mutex<Vec<Exchange>>,
    capacity: usize,
    /// Set once every [`Recorder`] is gone: the thread drains what is left and ends.
    closed: AtomicBool,
    /// The recorder thread, to wake it early when the queue fills or closes.
    thread: OnceLock<Thread>,
}

impl Queue {
    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Everything queued now.
    fn take(&self) -> Vec<Exchange> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *items)
    }
}

/// Closes the queue when the last [`Recorder`] clone is dropped.
#[derive(Debug)]
struct Sender {
    queue: Arc<Queue>,
    stats: Arc<GatewayStats>,
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        self.queue.wake();
    }
}

/// The sending side of the recording queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    sender: Arc<Sender>,
}

impl Recorder {
    /// Queues an exchange without waiting; counts it as dropped when the queue is full.
    pub fn submit(&self, exchange: Exchange) {
        let queue = &self.sender.queue;
        let len = {
            let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
            if items.len() >= queue.capacity {
                drop(items);
                self.sender.stats.dropped();
                return;
            }
            items.push(exchange);
            items.len()
        };
        self.sender.stats.queued();
        // Half full: do not wait for the next look.
        if len == queue.capacity.div_ceil(2) {
            queue.wake();
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<GatewayStats> {
        self.sender.stats.clone()
    }
}

/// Starts the recording thread. Its handle ends once every [`Recorder`] is dropped and the queue
/// is empty.
///
/// Recording is background work: it runs on a thread of its own, with its own single-threaded
/// runtime and a lowered scheduling priority, so that parsing, normalizing and encoding a call never
/// takes an async worker (or a core) from a request the gateway is proxying.
pub fn spawn(
    pipeline: Arc<Pipeline>,
    capacity: usize,
    batch_max: usize,
    stats: Arc<GatewayStats>,
) -> Result<(Recorder, JoinHandle<()>), std::io::Error> {
    let capacity = capacity.max(1);
    let batch_max = batch_max.max(1);
    stats.set_capacity(capacity);
    let queue = Arc::new(Queue {
        items: Mutex::new(Vec::new()),
        capacity,
        closed: AtomicBool::new(false),
        thread: OnceLock::new(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(|| background::lower_current_thread(Priority::Idle))
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let thread_queue = queue.clone();
    let thread_stats = stats.clone();
    let thread = std::thread::Builder::new()
        .name("sightline-gateway-recorder".into())
        .spawn(move || {
            background::lower_current_thread(Priority::Idle);
            drain(&thread_queue, &runtime, &pipeline, batch_max, &thread_stats);
            let _ = done_tx.send(());
        })?;
    let _ = queue.thread.set(thread.thread().clone());
    let task = tokio::spawn(async move {
        let _ = done_rx.await;
    });
    Ok((
        Recorder {
            sender: Arc::new(Sender { queue, stats }),
        },
        task,
    ))
}

/// Stores whatever is queued, in batches of at most `batch_max`, until the queue closes and is
/// empty.
fn drain(
    queue: &Queue,
    runtime: &tokio::runtime::Runtime,
    pipeline: &Pipeline,
    batch_max: usize,
    stats: &GatewayStats,
) {
    let mut wait = POLL_BUSY;
    loop {
        // Read `closed` before taking: a queue seen closed and then empty stays empty.
        let closed = queue.closed.load(Ordering::Acquire);
        let mut exchanges = queue.take();
        if exchanges.is_empty() {
            if closed {
                return;
            }
            std::thread::park_timeout(wait);
            wait = (wait * 2).min(POLL_IDLE);
            continue;
        }
        wait = POLL_BUSY;
        stats.dequeued(exchanges.len());
        while !exchanges.is_empty() {
            let rest = exchanges.split_off(exchanges.len().min(batch_max));
            let batch = std::mem::replace(&mut exchanges, rest);
            record(runtime, pipeline, batch, stats);
        }
        if !closed {
            std::thread::park_timeout(POLL_BUSY);
        }
    }
}

/// Converts and stores one batch.
fn record(
    runtime: &tokio::runtime::Runtime,
    pipeline: &Pipeline,
    exchanges: Vec<Exchange>,
    stats: &GatewayStats,
) {
    // A bug in parsing a body costs this batch (counted), never the recorder.
    let n = exchanges.len();
    let converted = std::panic::catch_unwind(|| {
        exchanges
            .iter()
            .map(crate::record::to_span)
            .collect::<Vec<_>>()
    });
    match converted {
        Ok(spans) => runtime.block_on(store(pipeline, spans, stats)),
        Err(_) => {
            tracing::error!(calls = n, "gateway record conversion panicked");
            stats.failed(n);
        }
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
