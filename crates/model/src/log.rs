//! OTLP log records as stored.

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};
use crate::span::{Attributes, Scope};

/// One log record, with the span it belongs to when it carries a span context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Project the record belongs to.
    pub project: String,
    /// `service.name` from the resource.
    pub service: String,
    /// Time of the event in unix nanoseconds (observed time when the client set none).
    pub time_unix_nano: u64,
    /// When the client's SDK observed the record, unix nanoseconds (0 when unset). Two lines
    /// logged with the same coarse time differ here; a retried export repeats it.
    #[serde(default)]
    pub observed_time_unix_nano: u64,
    /// Severity number (0 when unset).
    pub severity_number: i32,
    /// Severity text.
    pub severity_text: String,
    /// Event name (`event_name` field or the `event.name` attribute), e.g. `gen_ai.choice`.
    pub event_name: Option<String>,
    /// Body converted to JSON.
    pub body: Option<serde_json::Value>,
    /// Record attributes.
    pub attributes: Attributes,
    /// Resource attributes.
    pub resource: Attributes,
    /// Instrumentation scope.
    pub scope: Scope,
    /// Trace of the span the record belongs to.
    pub trace_id: Option<TraceId>,
    /// Span the record belongs to.
    pub span_id: Option<SpanId>,
}

impl LogRecord {
    /// Whether this record is a GenAI event that belongs on its span (prompts, completions,
    /// tool messages, inference details), so the span's LLM call must be normalized again with it.
    pub fn is_genai_event(&self) -> bool {
        self.span_id.is_some()
            && self
                .event_name
                .as_deref()
                .is_some_and(|n| n.starts_with("gen_ai."))
    }
}
