//! The bounded recording queue and the task that drains it into the pipeline.
//!
//! The request path only ever calls [`Recorder::submit`], which never waits: the exchange goes on
//! a bounded channel, or — when the channel is full — is counted as dropped. One background task
//! takes whatever is queued (up to a batch), turns each exchange into a span on a blocking thread
//! (JSON parsing of large bodies must not stall the async workers, and a panic there costs one
//! counted batch, not the recorder), and writes the batch with
//! `Pipeline::ingest_spans`, the same durable path OTLP uses. A batch the pipeline refuses for
//! overload is retried with backoff; one it still refuses is counted as failed.

use std::sync::Arc;
use std::time::Duration;

use sightline_ingest::Pipeline;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::capture::Exchange;
use crate::stats::GatewayStats;

/// Attempts to store one batch before it is counted as failed.
const ATTEMPTS: u32 = 5;

/// The sending side of the recording queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Exchange>,
    stats: Arc<GatewayStats>,
}

impl Recorder {
    /// Queues an exchange without waiting; counts it as dropped when the queue is full.
    pub fn submit(&self, exchange: Exchange) {
        match self.tx.try_send(exchange) {
            Ok(()) => self.stats.queued(),
            Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) => {
                self.stats.dropped();
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<GatewayStats> {
        self.stats.clone()
    }
}

/// Starts the recording task. It ends once every [`Recorder`] is dropped and the queue is empty.
pub fn spawn(
    pipeline: Arc<Pipeline>,
    capacity: usize,
    batch_max: usize,
    stats: Arc<GatewayStats>,
) -> (Recorder, JoinHandle<()>) {
    let capacity = capacity.max(1);
    let batch_max = batch_max.max(1);
    stats.set_capacity(capacity);
    let (tx, mut rx) = mpsc::channel::<Exchange>(capacity);
    let task_stats = stats.clone();
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(batch_max);
        while rx.recv_many(&mut batch, batch_max).await > 0 {
            let exchanges = std::mem::take(&mut batch);
            task_stats.dequeued(exchanges.len());
            // Parsing bodies is CPU work: it runs on a blocking thread, where a bug in it could
            // at worst lose this batch (counted), never the recorder.
            let n = exchanges.len();
            let spans = match tokio::task::spawn_blocking(move || {
                exchanges
                    .iter()
                    .map(crate::record::to_span)
                    .collect::<Vec<_>>()
            })
            .await
            {
                Ok(spans) => spans,
                Err(e) => {
                    tracing::error!(error = %e, "gateway record conversion failed");
                    task_stats.failed(n);
                    continue;
                }
            };
            store(&pipeline, spans, &task_stats).await;
        }
    });
    (Recorder { tx, stats }, task)
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
