//! Span builders shared by the integration tests.

#![allow(dead_code)]

use serde_json::Value;
use sightline_model::{Event, Scope, Span, SpanId, SpanKind, SpanStatus, TraceId};

/// A client span of two seconds with the given attributes.
pub fn span(attributes: Value) -> Span {
    Span {
        project: sightline_model::DEFAULT_PROJECT.to_string(),
        trace_id: TraceId([7; 16]),
        span_id: SpanId([9; 8]),
        parent_span_id: None,
        name: "chat".to_string(),
        kind: SpanKind::Client,
        service: "checkout".to_string(),
        start_time_unix_nano: 1_751_328_000_000_000_000,
        end_time_unix_nano: 1_751_328_002_000_000_000,
        status: SpanStatus::default(),
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        resource: Default::default(),
        scope: Scope::default(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

/// An event at the span's start with the given attributes and body.
pub fn event(name: &str, attributes: Value, body: Option<Value>) -> Event {
    Event {
        time_unix_nano: 1_751_328_000_000_000_000,
        name: name.to_string(),
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        body,
    }
}
