//! OTLP/HTTP receiver: `POST /v1/traces`, `POST /v1/logs`, and the Langfuse SDK's trace path.
//!
//! A request is answered in its own encoding: protobuf in, protobuf out; JSON in, JSON out; errors
//! are a `google.rpc.Status` in that encoding too (see [`super::status`]). The body is read
//! through `max_body_bytes` (refused early from `Content-Length`, and counted while reading when
//! there is none), then decompressed, parsed and converted on a blocking thread under one of the
//! pipeline's decode slots, so a large body never stalls the async workers.
//!
//! While read and until decoded, body bytes count against the pipeline's body budget
//! (`max_inflight_body_bytes`), so many concurrent uploads get 429 rather than exhaust memory.
//!
//! The Langfuse SDK exports OTLP/HTTP protobuf to `/api/public/otel/v1/traces` with Basic
//! authentication; the same handler answers there and ignores the credentials (Sightline has no
//! authentication of its own yet; the project comes from `x-sightline-project` as everywhere).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;

use super::body::{self, ContentEncoding, Encoding};
use super::decode::Limits;
use super::{
    export_logs, export_spans, project_from_header, status, ExportOutcome, Signal, PROJECT_HEADER,
};
use crate::error::IngestError;
use crate::pipeline::limit::{InflightLimiter, InflightPermit};
use crate::pipeline::Pipeline;

/// OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";
/// OTLP/HTTP logs path.
pub const LOGS_PATH: &str = "/v1/logs";
/// Where the Langfuse SDK sends OTLP traces.
pub const LANGFUSE_TRACES_PATH: &str = "/api/public/otel/v1/traces";

#[derive(Clone)]
struct HttpState {
    pipeline: Arc<Pipeline>,
    limits: Arc<Limits>,
}

/// The OTLP/HTTP routes, ready to merge into the server's router.
pub fn router(pipeline: Arc<Pipeline>, limits: Limits) -> Router {
    let state = HttpState {
        pipeline,
        limits: Arc::new(limits),
    };
    Router::new()
        .route(TRACES_PATH, post(traces))
        .route(LANGFUSE_TRACES_PATH, post(traces))
        .route(LOGS_PATH, post(logs))
        .route(super::metrics::METRICS_PATH, post(metrics))
        // The body limit is enforced by `read_body`, so that its 413 carries an OTLP body.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn traces(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    state.pipeline.record_trace_request();
    handle(&state, &headers, body, Signal::Traces).await
}

async fn logs(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    state.pipeline.record_log_request();
    handle(&state, &headers, body, Signal::Logs).await
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    super::metrics::http_export(&state.pipeline, &state.limits, &headers, body).await
}

async fn handle(state: &HttpState, headers: &HeaderMap, body: Body, signal: Signal) -> Response {
    let encoding = match Encoding::from_content_type(header_str(headers, header::CONTENT_TYPE)) {
        Ok(encoding) => encoding,
        Err(e) => return failure(state, &e, None),
    };
    match export(state, headers, body, encoding, signal).await {
        Ok(outcome) => success(&outcome, encoding, signal),
        Err(e) => failure(state, &e, Some(encoding)),
    }
}

fn failure(state: &HttpState, err: &IngestError, encoding: Option<Encoding>) -> Response {
    state.pipeline.record_failure(err);
    status::http_response(err, encoding)
}

async fn export(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
    signal: Signal,
) -> Result<ExportOutcome, IngestError> {
    let content_encoding =
        ContentEncoding::from_header(header_str(headers, header::CONTENT_ENCODING))?;
    let project = project_from_header(headers.get(PROJECT_HEADER).map(HeaderValue::as_bytes))?;
    let (bytes, body_permit) = read_body(
        body,
        headers,
        state.limits.max_body_bytes,
        state.pipeline.body_budget(),
    )
    .await?;
    let limits = state.limits.clone();
    match signal {
        Signal::Traces => {
            let decoded = state
                .pipeline
                .decode(move || {
                    body::decode_trace_body(bytes, encoding, content_encoding, &project, &limits)
                })
                .await?;
            drop(body_permit);
            export_spans(&state.pipeline, decoded, &state.limits).await
        }
        Signal::Logs => {
            let decoded = state
                .pipeline
                .decode(move || {
                    body::decode_logs_body(bytes, encoding, content_encoding, &project, &limits)
                })
                .await?;
            drop(body_permit);
            export_logs(&state.pipeline, decoded, &state.limits).await
        }
    }
}

fn success(outcome: &ExportOutcome, encoding: Encoding, signal: Signal) -> Response {
    let body = match (encoding, signal) {
        (Encoding::Protobuf, Signal::Traces) => outcome.trace_response().encode_to_vec(),
        (Encoding::Protobuf, Signal::Logs) => outcome.logs_response().encode_to_vec(),
        (Encoding::Json, Signal::Traces) => outcome
            .json_response("rejectedSpans")
            .to_string()
            .into_bytes(),
        (Encoding::Json, Signal::Logs) => outcome
            .json_response("rejectedLogRecords")
            .to_string()
            .into_bytes(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("<non-ASCII value>"))
}

/// Reads the whole body, refusing with 413 as soon as it passes `max` bytes, and with 429 when
/// the pipeline's body budget cannot hold it. The returned permit holds the body's bytes in that
/// budget until it is dropped.
///
/// The budget is taken as bytes arrive (doubling towards the declared length), not for the
/// declared length up front: an upload that stalls after its headers holds only what it sent,
/// so a few stalled connections cannot lock everyone else out of ingest.
pub(super) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    budget: &InflightLimiter,
) -> Result<(Bytes, InflightPermit), IngestError> {
    let too_large = || IngestError::TooLarge {
        message: format!("request body exceeds {max} bytes (max_body_bytes)"),
    };
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut reserved = 0;
    let mut permit = budget.try_acquire(0)?;
    let mut frames = Limited::new(body, max);
    let mut buf = BytesMut::new();
    while let Some(frame) = frames.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
            Err(e) => {
                return Err(IngestError::invalid(
                    "body",
                    format!("failed to read request body: {e}"),
                ))
            }
        };
        if let Ok(data) = frame.into_data() {
            let needed = buf.len() + data.len();
            if needed > reserved {
                // Reserved before it is allocated: twice what is held, up to the declared length.
                let declared = declared.map_or(needed, |n| n as usize);
                let target = needed.max(reserved.saturating_mul(2).min(declared));
                budget.try_grow(&mut permit, target - reserved)?;
                buf.reserve(target - buf.len());
                reserved = target;
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((buf.freeze(), permit))
}
