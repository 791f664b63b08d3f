//! Convention mapping: from span attributes and events to an [`LlmCall`].
//!
//! One module per convention, each reading only its own attributes into a `Partial` (every
//! field optional). Precedence (highest first): Langfuse > OTel `gen_ai.*` current >
//! `gen_ai.*` legacy > OpenInference > OpenLLMetry > Vercel AI SDK. The partials are merged in that
//! order, a lower convention only filling fields still empty, then Sightline's own attributes
//! (`sightline.tags`, `sightline.metadata.*`, prompt name/version, logprobs; see `sightline.rs`),
//! and generic context attributes (`session.id`, `user.id`, `deployment.environment`, ...) fill
//! last. A span is a call when at
//! least one convention recognises it; the call's `convention` is the highest one that did.
//!
//! Convention attributes are read from the span's own attributes (each module first checks, in
//! one pass over the keys, that its prefixes occur at all); resource attributes supply only
//! context: service version, environment, session and user, and Langfuse's trace-level values.
//!
//! Every reader accepts attribute values as JSON strings or already structured, numbers as
//! numbers or strings, and answers "absent" for anything else: normalization never fails and
//! never panics, whatever a client sends.

mod common;
mod gen_ai;
mod gen_ai_legacy;
mod langfuse;
mod messages;
mod openinference;
mod openllmetry;
mod partial;
mod sightline;
pub(crate) mod value;
mod vercel_ai;

use crate::llm::LlmCall;
use crate::span::Span;

/// Convention names as they appear in [`LlmCall::convention`], highest precedence first.
pub const CONVENTIONS: [&str; 6] = [
    "langfuse",
    "gen_ai",
    "gen_ai_legacy",
    "openinference",
    "openllmetry",
    "vercel_ai",
];

/// Attribute-key prefixes at least one of which every recognisable span carries on the span
/// itself; a span with none of them (and no `gen_ai.*` event) is skipped in one pass.
const MARKER_PREFIXES: [&str; 6] = [
    "gen_ai.",
    "llm.",
    "langfuse.",
    "ai.",
    "openinference.",
    "embedding.",
];

fn may_be_a_call(span: &Span) -> bool {
    span.attributes
        .keys()
        .any(|k| MARKER_PREFIXES.iter().any(|p| k.starts_with(p)))
        || span.events.iter().any(|e| e.name.starts_with("gen_ai."))
}

/// Normalizes a span into an LLM call, or `None` when no convention recognises it as one.
pub fn normalize(span: &Span) -> Option<LlmCall> {
    if !may_be_a_call(span) {
        return None;
    }
    let readings = [
        langfuse::extract(span),
        gen_ai::extract(span),
        gen_ai_legacy::extract(span),
        openinference::extract(span),
        openllmetry::extract(span),
        vercel_ai::extract(span),
    ];
    let convention = CONVENTIONS
        .iter()
        .zip(&readings)
        .find(|(_, r)| r.as_ref().is_some_and(|p| p.recognised))
        .map(|(name, _)| *name)?;
    let mut merged = partial::Partial::default();
    for reading in readings.into_iter().flatten() {
        merged.fill_from(reading);
    }
    merged.fill_from(sightline::extract(span));
    merged.fill_from(common::extract(span));
    let convention = if sightline::from_gateway(span) {
        "gateway"
    } else {
        convention
    };
    Some(common::finish(span, merged, convention))
}

/// A minimal span for unit tests of the convention modules.
#[cfg(test)]
pub(crate) fn test_span() -> Span {
    use crate::ids::{SpanId, TraceId};
    use crate::span::{Scope, SpanKind, SpanStatus};
    Span {
        project: crate::DEFAULT_PROJECT.into(),
        trace_id: TraceId([1; 16]),
        span_id: SpanId([2; 8]),
        parent_span_id: None,
        name: "test".into(),
        kind: SpanKind::Client,
        service: "svc".into(),
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 3_000_000_000,
        status: SpanStatus::default(),
        attributes: Default::default(),
        resource: Default::default(),
        scope: Scope::default(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::CallStatus;
    use crate::span::{Event, StatusCode};
    use serde_json::{json, Value};

    fn span_with(attrs: Value) -> Span {
        let mut s = test_span();
        s.attributes = attrs.as_object().cloned().unwrap_or_default();
        s
    }

    #[test]
    fn plain_span_is_not_a_call() {
        assert!(normalize(&span_with(json!({"http.method": "GET"}))).is_none());
        assert!(normalize(&span_with(json!({"session.id": "s"}))).is_none());
        assert!(normalize(&span_with(json!({"langfuse.observation.type": "span"}))).is_none());
    }

    #[test]
    fn common_fields_and_derived_timings() {
        let mut s = span_with(json!({
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 101,
            "gen_ai.response.time_to_first_chunk": 0.5,
            "session.id": "sess",
            "enduser.id": "alice",
        }));
        s.resource = json!({"service.version": "1.0", "deployment.environment.name": "prod"})
            .as_object()
            .cloned()
            .unwrap();
        let c = normalize(&s).unwrap();
        assert_eq!(c.convention, "gen_ai");
        assert_eq!(c.duration_ms, 2000.0);
        assert_eq!(c.usage.total_tokens, Some(111));
        assert_eq!(c.ttft_ms, Some(500.0));
        assert_eq!(c.output_tokens_per_s, Some(50.5));
        assert_eq!(c.time_per_output_token_ms, Some(15.0));
        assert_eq!(c.service_name, "svc");
        assert_eq!(c.service_version.as_deref(), Some("1.0"));
        assert_eq!(c.environment.as_deref(), Some("prod"));
        assert_eq!(c.session_id.as_deref(), Some("sess"));
        assert_eq!(c.user_id.as_deref(), Some("alice"));
        assert_eq!(c.status, CallStatus::Ok);
        assert_eq!(c.trace_id, s.trace_id);
    }

    #[test]
    fn errors_from_status_and_exception_events() {
        let mut s = span_with(json!({"gen_ai.request.model": "m"}));
        s.status.code = StatusCode::Error;
        s.events.push(Event {
            time_unix_nano: 0,
            name: "exception".into(),
            attributes:
                json!({"exception.type": "RateLimitError", "exception.message": "slow down"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            body: None,
        });
        let c = normalize(&s).unwrap();
        assert_eq!(c.status, CallStatus::Error);
        assert_eq!(c.error_type.as_deref(), Some("RateLimitError"));
        assert_eq!(c.error_message.as_deref(), Some("slow down"));

        s.status.message = "429 from provider".into();
        let c = normalize(&s).unwrap();
        assert_eq!(c.error_message.as_deref(), Some("429 from provider"));

        let typed = span_with(json!({"gen_ai.request.model": "m", "error.type": "timeout"}));
        let c = normalize(&typed).unwrap();
        assert_eq!(c.status, CallStatus::Error);
        assert_eq!(c.error_type.as_deref(), Some("timeout"));
    }

    #[test]
    fn ttft_from_first_chunk_event() {
        let mut s =
            span_with(json!({"gen_ai.system": "openai", "gen_ai.usage.completion_tokens": 1}));
        s.events.push(Event {
            time_unix_nano: 1_250_000_000,
            name: "gen_ai.content.completion.chunk".into(),
            attributes: Default::default(),
            body: None,
        });
        let c = normalize(&s).unwrap();
        assert_eq!(c.convention, "gen_ai_legacy");
        assert_eq!(c.ttft_ms, Some(250.0));
        assert_eq!(c.time_per_output_token_ms, None);
        assert_eq!(c.operation, "chat");
    }

    #[test]
    fn implausible_ttft_is_dropped() {
        let s = span_with(json!({
            "gen_ai.request.model": "m",
            "gen_ai.response.time_to_first_chunk": 99.0,
        }));
        assert_eq!(normalize(&s).unwrap().ttft_ms, None);
    }

    #[test]
    fn finish_reasons_from_output_messages() {
        let s = span_with(json!({
            "gen_ai.request.model": "m",
            "gen_ai.output.messages": [{"role": "assistant", "parts": [], "finish_reason": "length"}],
        }));
        assert_eq!(normalize(&s).unwrap().finish_reasons, vec!["length"]);
    }
}
