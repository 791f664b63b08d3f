//! What one call through the gateway leaves behind to be recorded, and the stream wrapper that
//! collects it while the response passes through.
//!
//! The wrapper ([`Tee`]) forwards every chunk the moment the upstream yields it and keeps a
//! reference-counted handle to it (no copy) up to a byte budget. Whichever way the response ends
//! — the upstream finishes, the upstream fails, or the client goes away and the body is dropped —
//! the exchange is handed to the recorder exactly once.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::Stream;

use crate::recorder::Recorder;
use crate::trace::TraceContext;
use crate::Provider;

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The response was delivered completely.
    Complete,
    /// The client stopped reading (disconnected) before the end.
    Cancelled,
    /// The upstream could not be reached.
    Unreachable(String),
    /// The upstream did not answer, or stopped sending, within the timeout.
    Timeout(String),
    /// The upstream's response broke off (connection reset, invalid framing).
    UpstreamError(String),
    /// The gateway refused the request itself (too large).
    Rejected(String),
}

/// One call through the gateway, as captured.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Which API.
    pub provider: Provider,
    /// HTTP method.
    pub method: String,
    /// Path below `/v1`, e.g. `/chat/completions`.
    pub path: String,
    /// Upstream host, for `server.address`.
    pub upstream_host: String,
    /// Project (from `x-sightline-project`).
    pub project: String,
    /// The `x-sightline-*` headers, name (lowercase, prefix removed) and value.
    pub attribution: Vec<(String, String)>,
    /// Where the span sits.
    pub trace: TraceContext,
    /// The request body as sent.
    pub request_body: Bytes,
    /// Start, unix nanoseconds.
    pub start_unix_nano: u64,
    /// Upstream status code, when it answered.
    pub status: Option<u16>,
    /// Response `content-type`.
    pub content_type: Option<String>,
    /// Response `content-encoding`.
    pub content_encoding: Option<String>,
    /// Response body chunks as received (up to the capture budget).
    pub chunks: Vec<Bytes>,
    /// Response bytes received in all.
    pub response_bytes: u64,
    /// Whether some of the body was not kept.
    pub capture_truncated: bool,
    /// Nanoseconds from the start to the first body chunk.
    pub first_chunk_ns: Option<u64>,
    /// End, unix nanoseconds.
    pub end_unix_nano: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Now in unix nanoseconds.
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// An exchange in progress: its start on both clocks.
pub(crate) struct Pending {
    pub exchange: Exchange,
    pub started: Instant,
}

impl Pending {
    /// Closes the exchange with `outcome`, counts a cancelled call or an upstream failure, and
    /// hands the exchange to the recorder.
    pub(crate) fn finish(mut self, outcome: Outcome, recorder: &Recorder) {
        match outcome {
            Outcome::Cancelled => recorder.counters().cancelled(),
            Outcome::Timeout(_) | Outcome::Unreachable(_) | Outcome::UpstreamError(_) => {
                recorder.counters().upstream_error();
            }
            Outcome::Complete | Outcome::Rejected(_) => {}
        }
        let elapsed = self.started.elapsed().as_nanos() as u64;
        self.exchange.end_unix_nano = self.exchange.start_unix_nano + elapsed;
        self.exchange.outcome = outcome;
        recorder.submit(self.exchange);
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Passes the upstream body through and captures it.
pub(crate) struct Tee {
    inner: ByteStream,
    pending: Option<Pending>,
    recorder: Recorder,
    budget: usize,
    /// The upstream's `content-length`: once that many bytes passed, the response is complete
    /// even if the server never polls the body again.
    expected_len: Option<u64>,
}

impl Tee {
    pub(crate) fn new(
        inner: ByteStream,
        pending: Pending,
        recorder: Recorder,
        budget: usize,
        expected_len: Option<u64>,
    ) -> Self {
        Self {
            inner,
            pending: Some(pending),
            recorder,
            budget,
            expected_len,
        }
    }
}

impl Stream for Tee {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(p) = this.pending.as_mut() {
                    let ex = &mut p.exchange;
                    if ex.first_chunk_ns.is_none() {
                        ex.first_chunk_ns = Some(p.started.elapsed().as_nanos() as u64);
                    }
                    ex.response_bytes += chunk.len() as u64;
                    if chunk.len() <= this.budget {
                        this.budget -= chunk.len();
                        ex.chunks.push(chunk.clone());
                    } else {
                        ex.capture_truncated = true;
                        this.budget = 0;
                    }
                    if this.expected_len.is_some_and(|n| ex.response_bytes >= n) {
                        if let Some(p) = this.pending.take() {
                            p.finish(Outcome::Complete, &this.recorder);
                        }
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                // The URL may carry a key in its query string: it is never recorded.
                let e = e.without_url();
                let outcome = if e.is_timeout() {
                    Outcome::Timeout(format!("upstream stopped sending: {e}"))
                } else {
                    Outcome::UpstreamError(format!("upstream response broke off: {e}"))
                };
                if let Some(p) = this.pending.take() {
                    p.finish(outcome, &this.recorder);
                }
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => {
                if let Some(p) = this.pending.take() {
                    p.finish(Outcome::Complete, &this.recorder);
                }
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish(Outcome::Cancelled, &self.recorder);
        }
    }
}
