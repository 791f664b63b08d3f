//! `GET /api/v1/traces` and `GET /api/v1/traces/{trace_id}`: store rows mapped to the public JSON.
//!
//! Identifiers are hex strings and times are both unix nanoseconds and RFC 3339 text, so the UI
//! needs no id or date handling of its own; a span's call is embedded as the model's `LlmCall`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use sightline_model::{
    Attributes, CallStatus, Event, Link, LlmCall, Scope, SpanKind, StatusCode, TraceId,
};
use sightline_store::{SharedStore, SpanWithCall, TraceDetail, TraceSummary};

use super::params::{ListParams, Project};
use super::timestamp::format_unix_nanos;
use crate::error::ApiError;

/// Body of `GET /api/v1/traces`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TraceListResponse {
    /// Traces, newest first.
    pub traces: Vec<TraceRow>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One trace in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TraceRow {
    /// 32 hex digits.
    pub trace_id: String,
    /// Root span name.
    pub name: String,
    /// Root span's service.
    pub service: String,
    /// Earliest span start, RFC 3339 UTC with nanoseconds.
    pub start_time: String,
    /// Earliest span start, unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// Latest end minus earliest start, milliseconds.
    pub duration_ms: f64,
    /// Spans in the trace.
    pub span_count: u64,
    /// LLM calls among them.
    pub llm_call_count: u64,
    /// Summed input tokens.
    pub input_tokens: u64,
    /// Summed output tokens.
    pub output_tokens: u64,
    /// Summed cost in USD; `null` when no call had a known price.
    pub cost_usd: Option<f64>,
    /// `ok`, or `error` when any span failed.
    pub status: CallStatus,
    /// End user, when known.
    pub user_id: Option<String>,
    /// Session, when known.
    pub session_id: Option<String>,
}

impl From<TraceSummary> for TraceRow {
    fn from(t: TraceSummary) -> Self {
        Self {
            trace_id: t.trace_id.to_hex(),
            name: t.name,
            service: t.service,
            start_time: format_unix_nanos(t.start_time_unix_nano),
            start_time_unix_nano: t.start_time_unix_nano,
            duration_ms: t.duration_ms,
            span_count: t.span_count,
            llm_call_count: t.llm_call_count,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cost_usd: t.cost_usd,
            status: t.status,
            user_id: t.user_id,
            session_id: t.session_id,
        }
    }
}

/// Body of `GET /api/v1/traces/{trace_id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TraceDetailResponse {
    /// 32 hex digits.
    pub trace_id: String,
    /// Spans, parents before children, siblings by start time.
    pub spans: Vec<SpanRow>,
}

impl From<TraceDetail> for TraceDetailResponse {
    fn from(t: TraceDetail) -> Self {
        Self {
            trace_id: t.trace_id.to_hex(),
            spans: t.spans.into_iter().map(SpanRow::from).collect(),
        }
    }
}

/// One span of a trace, with everything the client sent and its LLM call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SpanRow {
    /// 16 hex digits.
    pub span_id: String,
    /// Parent's 16 hex digits; `null` for a root span.
    pub parent_span_id: Option<String>,
    /// Span name.
    pub name: String,
    /// `unspecified`, `internal`, `server`, `client`, `producer` or `consumer`.
    pub kind: SpanKind,
    /// `service.name`.
    pub service: String,
    /// Start, unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// End minus start, milliseconds.
    pub duration_ms: f64,
    /// `unset`, `ok` or `error`.
    pub status: StatusCode,
    /// The status description, empty when none.
    pub status_message: String,
    /// Span attributes.
    pub attributes: Attributes,
    /// Resource attributes.
    pub resource: Attributes,
    /// Instrumentation scope.
    pub scope: Scope,
    /// Events, including GenAI events that arrived as log records.
    pub events: Vec<Event>,
    /// Links to other spans.
    pub links: Vec<Link>,
    /// The normalized call; `null` when the span is not a model call.
    pub llm: Option<LlmCall>,
}

impl From<SpanWithCall> for SpanRow {
    fn from(SpanWithCall { span, llm }: SpanWithCall) -> Self {
        Self {
            duration_ms: span.duration_ms(),
            span_id: span.span_id.to_hex(),
            parent_span_id: span.parent_span_id.map(|id| id.to_hex()),
            name: span.name,
            kind: span.kind,
            service: span.service,
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            status: span.status.code,
            status_message: span.status.message,
            attributes: span.attributes,
            resource: span.resource,
            scope: span.scope,
            events: span.events,
            links: span.links,
            llm,
        }
    }
}

/// `GET /api/v1/traces`.
pub async fn list_traces(
    State(store): State<SharedStore>,
    params: ListParams,
) -> Result<Json<TraceListResponse>, ApiError> {
    let page = store.list_traces(&params.filter, &params.page).await?;
    Ok(Json(TraceListResponse {
        traces: page.items.into_iter().map(TraceRow::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/traces/{trace_id}`.
pub async fn get_trace(
    State(store): State<SharedStore>,
    Project(project): Project,
    trace_id: Result<Path<String>, PathRejection>,
) -> Result<Json<TraceDetailResponse>, ApiError> {
    let invalid = |message: String| ApiError::InvalidPath {
        field: "trace_id",
        message,
    };
    let Path(raw) = trace_id.map_err(|e| invalid(e.body_text()))?;
    let trace_id = if raw.len() == 2 * TraceId::LEN {
        TraceId::from_hex(&raw).map_err(|e| invalid(e.to_string()))?
    } else {
        return Err(invalid(format!(
            "expected {} hex digits, got {} characters",
            2 * TraceId::LEN,
            raw.chars().count()
        )));
    };
    match store.get_trace(&project, trace_id).await? {
        Some(detail) => Ok(Json(detail.into())),
        None => Err(ApiError::NotFound(format!(
            "trace {trace_id} not found in project `{project}`"
        ))),
    }
}
