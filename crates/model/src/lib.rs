//! Sightline's domain model.
//!
//! Everything a client sends is kept as a [`Span`] (resource, scope, attributes, events and links
//! untouched). A span that describes a model invocation is additionally normalized into an
//! [`LlmCall`]: one shape for every instrumentation convention, so that storage, analysis and the UI
//! never look at convention-specific attribute names. The mapping lives in [`semconv`], one module
//! per convention; [`prices`] turns usage into cost.
//!
//! This crate does no I/O and knows nothing about OTLP wire formats or storage; the receivers in
//! `sightline-ingest` decode into these types and the stores in `sightline-store` persist them.
#![deny(missing_docs)]

pub mod ids;
pub mod llm;
pub mod log;
pub mod prices;
pub mod semconv;
pub mod sketch;
pub mod span;

pub use ids::{IdError, SpanId, TraceId};
pub use llm::{CallStatus, Cost, LlmCall, Message, RequestParams, ToolCall, Usage};
pub use log::LogRecord;
pub use prices::{PriceEntry, PriceError, PriceTable};
pub use sketch::DdSketch;
pub use span::{Attributes, Event, Link, Scope, Span, SpanKind, SpanStatus, StatusCode};

/// The project every item belongs to when the client names none.
pub const DEFAULT_PROJECT: &str = "default";

/// Longest project name accepted.
pub const MAX_PROJECT_LEN: usize = 128;

/// Whether `name` is a project name: 1 to [`MAX_PROJECT_LEN`] ASCII letters, digits, `.`, `_`
/// or `-`. Ingest refuses other names, so the query side refuses them too rather than finding
/// nothing.
pub fn is_project_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PROJECT_LEN
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
