//! The stored form of an OpenTelemetry span: everything the client sent, decoded from the wire.

use serde::{Deserialize, Serialize};

use crate::ids::{SpanId, TraceId};
use crate::llm::LlmCall;

/// Attribute map. OTLP `AnyValue`s become JSON: strings, booleans, integers (i64), doubles,
/// arrays, key-value lists as objects, and bytes as base64 strings.
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// The kind of a span, as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum SpanKind {
    /// Not specified by the client.
    #[default]
    Unspecified,
    /// An internal operation.
    Internal,
    /// The server side of a remote call.
    Server,
    /// The client side of a remote call.
    Client,
    /// A message producer.
    Producer,
    /// A message consumer.
    Consumer,
}

impl SpanKind {
    /// Maps the OTLP enum number; unknown numbers become `Unspecified`.
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// The OTLP enum number.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unspecified => 0,
            Self::Internal => 1,
            Self::Server => 2,
            Self::Client => 3,
            Self::Producer => 4,
            Self::Consumer => 5,
        }
    }
}

/// A span's status code, as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum StatusCode {
    /// The default: nothing was set.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error,
}

impl StatusCode {
    /// Maps the OTLP enum number; unknown numbers become `Unset`.
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    /// The OTLP enum number.
    pub fn to_otlp(self) -> i32 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error => 2,
        }
    }
}

/// A span's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SpanStatus {
    /// The status code.
    pub code: StatusCode,
    /// The description the client gave, empty when none.
    #[serde(default)]
    pub message: String,
}

/// The instrumentation scope that produced a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Scope {
    /// Scope name, e.g. `opentelemetry.instrumentation.openai_v2`.
    pub name: String,
    /// Scope version, empty when none.
    #[serde(default)]
    pub version: String,
    /// Scope attributes.
    #[serde(default)]
    pub attributes: Attributes,
}

/// A timestamped event on a span (or a log record attached to the span).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Event {
    /// Event time in unix nanoseconds.
    pub time_unix_nano: u64,
    /// Event name, e.g. `gen_ai.user.message`.
    pub name: String,
    /// Event attributes.
    #[serde(default)]
    pub attributes: Attributes,
    /// The event body when it came from a log record (OTLP logs carry GenAI event payloads there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// A link from a span to another span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Link {
    /// Linked trace.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub trace_id: TraceId,
    /// Linked span.
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub span_id: SpanId,
    /// Link attributes.
    #[serde(default)]
    pub attributes: Attributes,
}

/// One span as stored: identity, timing, status, and everything the client attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Project the span belongs to.
    pub project: String,
    /// Trace identifier.
    pub trace_id: TraceId,
    /// Span identifier.
    pub span_id: SpanId,
    /// Parent span, absent for a root span.
    pub parent_span_id: Option<SpanId>,
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// `service.name` from the resource, `unknown_service` when absent.
    pub service: String,
    /// Start time in unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End time in unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// Status.
    pub status: SpanStatus,
    /// Span attributes.
    pub attributes: Attributes,
    /// Resource attributes.
    pub resource: Attributes,
    /// Instrumentation scope.
    pub scope: Scope,
    /// Span events, in the order sent.
    pub events: Vec<Event>,
    /// Links to other spans.
    pub links: Vec<Link>,
}

impl Span {
    /// Duration in milliseconds (0 when the end precedes the start).
    pub fn duration_ms(&self) -> f64 {
        self.end_time_unix_nano
            .saturating_sub(self.start_time_unix_nano) as f64
            / 1e6
    }

    /// Looks an attribute up on the span, then on its resource.
    pub fn attr(&self, key: &str) -> Option<&serde_json::Value> {
        self.attributes.get(key).or_else(|| self.resource.get(key))
    }

    /// The span normalized into an LLM call, `None` when no convention recognises it as one
    /// (see [`crate::semconv::normalize`]).
    pub fn llm_call(&self) -> Option<LlmCall> {
        crate::semconv::normalize(self)
    }
}
