//! `GET /api/v1/sessions` and `GET /api/v1/sessions/{session_id}`: conversations across traces.
//!
//! A session is addressed by the id the client chose, so any non-empty path segment is accepted;
//! its detail is its totals plus its traces, oldest first, each in the trace-list row shape.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use sightline_store::{SessionDetail, SessionSummary, SharedStore};

use super::params::{ListParams, Project};
use super::timestamp::format_unix_nanos;
use super::traces::TraceRow;
use crate::error::ApiError;

/// Body of `GET /api/v1/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SessionListResponse {
    /// Sessions, most recently active first.
    pub sessions: Vec<SessionRow>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A session's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SessionRow {
    /// Session identifier.
    pub session_id: String,
    /// User of the session (the latest seen).
    pub user_id: Option<String>,
    /// Traces in the session.
    pub trace_count: u64,
    /// LLM calls in the session.
    pub call_count: u64,
    /// Failed calls.
    pub errors: u64,
    /// Summed input tokens.
    pub input_tokens: u64,
    /// Summed output tokens.
    pub output_tokens: u64,
    /// Summed cost in USD; `null` when nothing was priced.
    pub cost_usd: Option<f64>,
    /// First activity, RFC 3339 UTC with nanoseconds.
    pub first_seen: String,
    /// First activity, unix nanoseconds.
    pub first_seen_unix_nano: u64,
    /// Last activity, RFC 3339 UTC with nanoseconds.
    pub last_seen: String,
    /// Last activity, unix nanoseconds.
    pub last_seen_unix_nano: u64,
}

impl From<SessionSummary> for SessionRow {
    fn from(s: SessionSummary) -> Self {
        Self {
            session_id: s.session_id,
            user_id: s.user_id,
            trace_count: s.trace_count,
            call_count: s.call_count,
            errors: s.errors,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cost_usd: s.cost_usd,
            first_seen: format_unix_nanos(s.first_seen_unix_nano),
            first_seen_unix_nano: s.first_seen_unix_nano,
            last_seen: format_unix_nanos(s.last_seen_unix_nano),
            last_seen_unix_nano: s.last_seen_unix_nano,
        }
    }
}

/// Body of `GET /api/v1/sessions/{session_id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SessionDetailResponse {
    /// The session's totals.
    pub session: SessionRow,
    /// Its traces, oldest first.
    pub traces: Vec<TraceRow>,
}

impl From<SessionDetail> for SessionDetailResponse {
    fn from(d: SessionDetail) -> Self {
        Self {
            session: d.summary.into(),
            traces: d.traces.into_iter().map(TraceRow::from).collect(),
        }
    }
}

/// `GET /api/v1/sessions`.
pub async fn list_sessions(
    State(store): State<SharedStore>,
    params: ListParams,
) -> Result<Json<SessionListResponse>, ApiError> {
    let page = store.list_sessions(&params.filter, &params.page).await?;
    Ok(Json(SessionListResponse {
        sessions: page.items.into_iter().map(SessionRow::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/sessions/{session_id}`.
pub async fn get_session(
    State(store): State<SharedStore>,
    Project(project): Project,
    session_id: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionDetailResponse>, ApiError> {
    let Path(session_id) = session_id.map_err(|e| ApiError::InvalidPath {
        field: "session_id",
        message: e.body_text(),
    })?;
    match store.get_session(&project, &session_id).await? {
        Some(detail) => Ok(Json(detail.into())),
        None => Err(ApiError::NotFound(format!(
            "session `{session_id}` not found in project `{project}`"
        ))),
    }
}
