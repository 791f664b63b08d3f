//! The pipeline's body budget for gRPC requests, as the HTTP receiver takes it: tonic reads a
//! whole message (up to `max_decompressed_bytes`) before any handler runs, so without this any
//! number of concurrent exports could each hold that much. Each request body takes budget for
//! the bytes it brings as they arrive and gives it back when tonic has done with it; a request
//! that does not fit is answered `RESOURCE_EXHAUSTED` with a retry hint, as HTTP answers 429.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;

use crate::error::IngestError;
use crate::otlp::status;
use crate::pipeline::limit::InflightPermit;
use crate::pipeline::Pipeline;

/// A request body that holds budget for the bytes it has delivered.
pub(crate) struct BudgetedBody {
    inner: Body,
    pipeline: Arc<Pipeline>,
    permit: Option<InflightPermit>,
}

impl BudgetedBody {
    /// Wraps `inner`, taking budget from `pipeline` as it is read.
    pub(crate) fn wrap(inner: Body, pipeline: Arc<Pipeline>) -> Body {
        Body::new(Self {
            inner,
            pipeline,
            permit: None,
        })
    }

    fn take(&mut self, bytes: usize) -> Result<(), IngestError> {
        let budget = self.pipeline.body_budget();
        match self.permit.as_mut() {
            Some(permit) => budget.try_grow(permit, bytes),
            None => {
                self.permit = Some(budget.try_acquire(bytes)?);
                Ok(())
            }
        }
    }
}

impl HttpBody for BudgetedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let bytes = frame.data_ref().map_or(0, Bytes::len);
                if let Err(e) = this.take(bytes) {
                    this.pipeline.record_failure(&e);
                    return Poll::Ready(Some(Err(status::grpc_status(&e))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
