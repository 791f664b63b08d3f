//! OpenLLMetry (Traceloop): its own `llm.*` attributes (`llm.request.type`,
//! `llm.usage.total_tokens`, `llm.is_streaming`, `llm.request.functions.N.*`, ...) and the
//! `traceloop.*` context (`traceloop.association.properties.*`, entity and workflow names).
//!
//! OpenLLMetry writes its prompts, completions and token counts as legacy `gen_ai.*` attributes,
//! which the legacy module reads at higher precedence; this module adds what only OpenLLMetry
//! says. A span is a model call here when it carries `llm.request.type`. Association properties
//! become metadata, and the usual session and user keys among them become the call's session and
//! user.

use serde_json::{json, Map, Value};

use super::gen_ai::canonical_operation;
use super::partial::Partial;
use super::value::{as_json, as_string, as_string_list, field, has_any_prefix, Attrs};
use crate::span::Span;

const ASSOCIATION_PREFIX: &str = "traceloop.association.properties.";
const SESSION_KEYS: [&str; 5] = [
    "session_id",
    "sessionId",
    "session",
    "conversation_id",
    "thread_id",
];
const USER_KEYS: [&str; 4] = ["user_id", "userId", "user", "customer_id"];
const CONTEXT_KEYS: [&str; 4] = [
    "traceloop.entity.name",
    "traceloop.entity.path",
    "traceloop.workflow.name",
    "traceloop.span.kind",
];

/// Reads OpenLLMetry-specific attributes from a span.
pub(crate) fn extract(span: &Span) -> Option<Partial> {
    if !has_any_prefix(&span.attributes, &["llm.", "traceloop."]) {
        return None;
    }
    let a = Attrs::new(&span.attributes);
    let request_type = a.str("llm.request.type");
    let mut p = Partial {
        recognised: request_type.is_some(),
        operation: request_type.map(|t| match t.to_ascii_lowercase().as_str() {
            "completion" => "text_completion".to_string(),
            "embedding" => "embeddings".to_string(),
            other => canonical_operation(other),
        }),
        user_id: a.str("llm.user"),
        prompt_name: a.str("traceloop.prompt.key"),
        prompt_version: a.str("traceloop.prompt.version"),
        finish_reasons: a
            .first(&["llm.response.finish_reason", "llm.response.stop_reason"])
            .map(as_string_list)
            .unwrap_or_default(),
        ..Partial::default()
    };
    p.usage.total_tokens = a.u64("llm.usage.total_tokens");
    p.params.stream = a
        .bool("llm.is_streaming")
        .or_else(|| a.bool("gen_ai.is_streaming"));
    p.params.top_k = a.f64("llm.top_k");
    p.params.frequency_penalty = a.f64("llm.frequency_penalty");
    p.params.presence_penalty = a.f64("llm.presence_penalty");
    p.params.stop_sequences = a
        .get("llm.chat.stop_sequences")
        .map(as_string_list)
        .unwrap_or_default();

    let functions: Vec<Value> = a
        .indexed("llm.request.functions")
        .values()
        .filter_map(|e| {
            let name = field(e, "name").and_then(as_string)?;
            let mut def = Map::new();
            def.insert("type".into(), json!("function"));
            def.insert("name".into(), Value::String(name));
            if let Some(d) = field(e, "description") {
                def.insert("description".into(), d.clone());
            }
            if let Some(params) = field(e, "parameters") {
                def.insert("parameters".into(), as_json(params).into_owned());
            }
            Some(Value::Object(def))
        })
        .collect();
    if !functions.is_empty() {
        p.tool_definitions = Some(Value::Array(functions));
    }

    for (key, value) in a.iter() {
        let Some(prop) = key.strip_prefix(ASSOCIATION_PREFIX) else {
            continue;
        };
        if p.session_id.is_none() && SESSION_KEYS.contains(&prop) {
            p.session_id = as_string(value);
        }
        if p.user_id.is_none() && USER_KEYS.contains(&prop) {
            p.user_id = as_string(value);
        }
        p.metadata
            .entry(prop.to_string())
            .or_insert_with(|| value.clone());
    }
    for key in CONTEXT_KEYS {
        if let Some(v) = a.get(key) {
            p.metadata.insert(key.to_string(), v.clone());
        }
    }
    p.non_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span_with(attrs: Value) -> Span {
        let mut s = crate::semconv::test_span();
        s.attributes = attrs.as_object().cloned().unwrap_or_default();
        s
    }

    #[test]
    fn reads_traceloop_attributes() {
        let s = span_with(json!({
            "llm.request.type": "chat",
            "llm.usage.total_tokens": 42,
            "llm.is_streaming": true,
            "llm.request.functions.0.name": "get_weather",
            "llm.request.functions.0.description": "weather",
            "llm.request.functions.0.parameters": "{\"type\":\"object\"}",
            "llm.response.finish_reason": "stop",
            "traceloop.association.properties.session_id": "s-9",
            "traceloop.association.properties.user_id": "u-9",
            "traceloop.association.properties.tenant": "acme",
            "traceloop.workflow.name": "support",
            "traceloop.entity.name": "answer",
            "traceloop.prompt.key": "greeting",
            "traceloop.prompt.version": 3,
        }));
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.operation.as_deref(), Some("chat"));
        assert_eq!(p.usage.total_tokens, Some(42));
        assert_eq!(p.params.stream, Some(true));
        assert_eq!(
            p.tool_definitions,
            Some(
                json!([{"type": "function", "name": "get_weather", "description": "weather", "parameters": {"type": "object"}}])
            )
        );
        assert_eq!(p.finish_reasons, vec!["stop"]);
        assert_eq!(p.session_id.as_deref(), Some("s-9"));
        assert_eq!(p.user_id.as_deref(), Some("u-9"));
        assert_eq!(p.metadata["tenant"], json!("acme"));
        assert_eq!(p.metadata["traceloop.workflow.name"], json!("support"));
        assert_eq!(p.prompt_name.as_deref(), Some("greeting"));
        assert_eq!(p.prompt_version.as_deref(), Some("3"));
    }

    #[test]
    fn request_types() {
        let p = extract(&span_with(json!({"llm.request.type": "completion"}))).unwrap();
        assert_eq!(p.operation.as_deref(), Some("text_completion"));
        let p = extract(&span_with(json!({"llm.request.type": "embedding"}))).unwrap();
        assert_eq!(p.operation.as_deref(), Some("embeddings"));
    }

    #[test]
    fn workflow_span_is_context_only() {
        let p = extract(&span_with(json!({"traceloop.workflow.name": "w"}))).unwrap();
        assert!(!p.recognised);
        assert!(extract(&span_with(json!({"other": 1}))).is_none());
    }
}
