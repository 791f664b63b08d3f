//! Query filters, pages and result rows shared by every backend and the JSON API.

use serde::{Deserialize, Serialize};
use sightline_model::{CallStatus, LlmCall, Span, TraceId};

/// Filters every list endpoint accepts (DESIGN §4). Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Project to read.
    pub project: String,
    /// Inclusive lower bound on start time, unix nanoseconds.
    pub from_unix_nano: Option<u64>,
    /// Exclusive upper bound on start time, unix nanoseconds.
    pub to_unix_nano: Option<u64>,
    /// `service.name`.
    pub service: Option<String>,
    /// Request or response model.
    pub model: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Ok or error.
    pub status: Option<CallStatus>,
    /// Full-text query over message content.
    pub q: Option<String>,
    /// Span attributes that must equal the given string (`attr.<key>=<value>`).
    pub attrs: Vec<(String, String)>,
}

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Maximum rows to return.
    pub limit: usize,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 50,
            cursor: None,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Rows.
    pub items: Vec<T>,
    /// Cursor for the next page, `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A span and its normalized call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanWithCall {
    /// The span as received (plus GenAI log events attached to it, when read back).
    pub span: Span,
    /// Its LLM call, when it is one.
    pub llm: Option<LlmCall>,
}

/// One row of the trace list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// Trace identifier.
    pub trace_id: TraceId,
    /// Root span name (the earliest span's when the root has not arrived).
    pub name: String,
    /// Root span's service.
    pub service: String,
    /// Earliest span start, unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// Latest end minus earliest start, milliseconds.
    pub duration_ms: f64,
    /// Spans stored.
    pub span_count: u64,
    /// LLM calls among them.
    pub llm_call_count: u64,
    /// Summed input tokens.
    pub input_tokens: u64,
    /// Summed output tokens.
    pub output_tokens: u64,
    /// Summed cost; `None` when no call in the trace has a known price.
    pub cost_usd: Option<f64>,
    /// `error` when any span failed, else `ok`.
    pub status: CallStatus,
    /// User, from any span of the trace.
    pub user_id: Option<String>,
    /// Session, from any span of the trace.
    pub session_id: Option<String>,
}

/// A whole trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceDetail {
    /// Trace identifier.
    pub trace_id: TraceId,
    /// Spans, parents before children, siblings by start time.
    pub spans: Vec<SpanWithCall>,
}

/// One row of the session list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
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
    /// Summed cost, `None` when nothing was priced.
    pub cost_usd: Option<f64>,
    /// First activity, unix nanoseconds.
    pub first_seen_unix_nano: u64,
    /// Last activity, unix nanoseconds.
    pub last_seen_unix_nano: u64,
}

/// A session with its traces, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// The session's totals.
    pub summary: SessionSummary,
    /// Its traces in order.
    pub traces: Vec<TraceSummary>,
}

/// One row of the user list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    /// User identifier.
    pub user_id: String,
    /// LLM calls.
    pub calls: u64,
    /// Traces.
    pub traces: u64,
    /// Sessions.
    pub sessions: u64,
    /// Failed calls.
    pub errors: u64,
    /// Summed input tokens.
    pub input_tokens: u64,
    /// Summed output tokens.
    pub output_tokens: u64,
    /// Summed cost, `None` when nothing was priced.
    pub cost_usd: Option<f64>,
    /// First call, unix nanoseconds.
    pub first_seen_unix_nano: u64,
    /// Last call, unix nanoseconds.
    pub last_seen_unix_nano: u64,
}
