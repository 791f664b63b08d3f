//! OTel GenAI semantic conventions, current (v1.37 and later): `gen_ai.provider.name`,
//! `gen_ai.input.messages` / `gen_ai.output.messages` / `gen_ai.system_instructions` in the
//! `parts` format, `gen_ai.usage.*` including cache and reasoning counts.
//!
//! The same attributes may arrive on the span or on a `gen_ai.client.inference.operation.details`
//! event (attributes, or the body of the log record that carried it); the span's own values win
//! and the event fills the rest. Content attributes are accepted both as JSON strings and as
//! structured values. A span is recognised here by `gen_ai.provider.name` or the content
//! attributes, or by the operation/model attributes when no legacy `gen_ai.system` is present.
//! Tool and agent spans (`execute_tool`, `invoke_agent`, ...) are calls too:
//! the tool call becomes the input message and its result the output message.

use serde_json::Value;

use super::common::normalize_provider;
use super::messages::parse_messages;
use super::partial::Partial;
use super::value::{as_i64, as_json, as_string, as_string_list, has_any_prefix, to_text, Attrs};
use crate::llm::{Message, ToolCall};
use crate::span::Span;

/// Name of the event that carries a whole inference's details.
pub(crate) const DETAILS_EVENT: &str = "gen_ai.client.inference.operation.details";

/// Reads the current GenAI convention from a span and its details events.
pub(crate) fn extract(span: &Span) -> Option<Partial> {
    if !has_any_prefix(&span.attributes, &["gen_ai.", "error.type"])
        && !span.events.iter().any(|e| e.name == DETAILS_EVENT)
    {
        return None;
    }
    let mut partial = read(Attrs::new(&span.attributes));
    for event in span.events.iter().filter(|e| e.name == DETAILS_EVENT) {
        let body = event.body.as_ref().and_then(Value::as_object);
        let mut from_event = read(Attrs::with_fallback(&event.attributes, body));
        from_event.recognised = true;
        partial.fill_from(from_event);
    }
    partial.non_empty()
}

/// Reads the convention from one attribute view.
fn read(a: Attrs<'_>) -> Partial {
    let operation = a
        .str("gen_ai.operation.name")
        .map(|o| canonical_operation(&o));
    let provider = a
        .str("gen_ai.provider.name")
        .and_then(|p| normalize_provider(&p));
    let request_model = a.str("gen_ai.request.model");
    let response_model = a.str("gen_ai.response.model");
    let input_messages = a
        .get("gen_ai.input.messages")
        .map(|v| parse_messages(v, "user"))
        .unwrap_or_default();
    let output_messages = a
        .get("gen_ai.output.messages")
        .map(|v| parse_messages(v, "assistant"))
        .unwrap_or_default();
    // `gen_ai.provider.name` and the content attributes exist only in the current convention;
    // the operation and model attributes are shared with the legacy one, whose `gen_ai.system`
    // then marks the span as legacy.
    let shared = operation.is_some() || request_model.is_some() || response_model.is_some();
    let recognised = provider.is_some()
        || !input_messages.is_empty()
        || !output_messages.is_empty()
        || (shared && a.get("gen_ai.system").is_none());

    let mut p = Partial {
        recognised,
        operation,
        provider,
        request_model,
        response_model,
        response_id: a.str("gen_ai.response.id"),
        input_messages,
        output_messages,
        system_instructions: a
            .get("gen_ai.system_instructions")
            .and_then(instructions_text),
        tool_definitions: a
            .get("gen_ai.tool.definitions")
            .map(|v| as_json(v).into_owned()),
        finish_reasons: a
            .get("gen_ai.response.finish_reasons")
            .map(as_string_list)
            .unwrap_or_default(),
        session_id: a.str("gen_ai.conversation.id"),
        ttft_ms: a
            .f64("gen_ai.response.time_to_first_chunk")
            .or_else(|| a.f64("gen_ai.server.time_to_first_token"))
            .map(|s| s * 1e3),
        ..Partial::default()
    };

    p.params.temperature = a.f64("gen_ai.request.temperature");
    p.params.top_p = a.f64("gen_ai.request.top_p");
    p.params.top_k = a.f64("gen_ai.request.top_k");
    p.params.max_tokens = a.u64("gen_ai.request.max_tokens");
    p.params.frequency_penalty = a.f64("gen_ai.request.frequency_penalty");
    p.params.presence_penalty = a.f64("gen_ai.request.presence_penalty");
    p.params.stop_sequences = a
        .get("gen_ai.request.stop_sequences")
        .map(as_string_list)
        .unwrap_or_default();
    p.params.seed = a.get("gen_ai.request.seed").and_then(as_i64);
    p.params.choice_count = a.u64("gen_ai.request.choice.count");
    p.params.stream = a.bool("gen_ai.request.stream");

    p.usage.input_tokens = a.u64("gen_ai.usage.input_tokens");
    p.usage.output_tokens = a.u64("gen_ai.usage.output_tokens");
    p.usage.total_tokens = a.u64("gen_ai.usage.total_tokens");
    p.usage.cache_read_tokens = a.first_u64(&[
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.input_tokens.cached",
    ]);
    p.usage.cache_write_tokens = a.first_u64(&[
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.input_tokens.cache_write",
    ]);
    p.usage.reasoning_tokens = a.first_u64(&[
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.output_tokens.reasoning",
    ]);

    if let Some(error_type) = a.str("error.type") {
        p.error = true;
        p.error_type = Some(error_type);
    }

    for key in [
        "gen_ai.agent.name",
        "gen_ai.agent.id",
        "gen_ai.tool.name",
        "gen_ai.tool.type",
        "gen_ai.output.type",
        "gen_ai.data_source.id",
    ] {
        if let Some(v) = a.get(key) {
            p.metadata.insert(key.to_string(), v.clone());
        }
    }

    if p.input_messages.is_empty() {
        if let Some(name) = a.str("gen_ai.tool.name") {
            p.input_messages.push(Message {
                role: "assistant".into(),
                tool_calls: vec![ToolCall {
                    id: a.str("gen_ai.tool.call.id"),
                    name,
                    arguments: a.get("gen_ai.tool.call.arguments").and_then(to_text),
                }],
                ..Message::default()
            });
        }
    }
    if p.output_messages.is_empty() {
        if let Some(result) = a.get("gen_ai.tool.call.result") {
            p.output_messages.push(Message {
                role: "tool".into(),
                content: to_text(result),
                tool_call_id: a.str("gen_ai.tool.call.id"),
                ..Message::default()
            });
        }
    }
    p
}

/// `gen_ai.system_instructions`: a list of parts, a JSON string of one, or plain text.
fn instructions_text(v: &Value) -> Option<String> {
    match &*as_json(v) {
        Value::Array(parts) => {
            let texts: Vec<String> = parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => {
                        o.get("content").or_else(|| o.get("text")).and_then(to_text)
                    }
                    _ => None,
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        Value::String(s) => (!s.is_empty()).then(|| s.clone()),
        Value::Object(o) => o
            .get("content")
            .or_else(|| o.get("text"))
            .and_then(as_string),
        _ => None,
    }
}

/// Maps operation names to the canonical spelling (`completion` → `text_completion`, ...).
pub(crate) fn canonical_operation(op: &str) -> String {
    let op = op.trim().to_ascii_lowercase();
    match op.as_str() {
        "completion" | "completions" | "text_completions" => "text_completion".into(),
        "embedding" | "embed" => "embeddings".into(),
        "chat_completion" | "chat_completions" | "chat.completions" => "chat".into(),
        _ => op,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Event;
    use serde_json::json;

    fn span_with(attrs: Value) -> Span {
        let mut s = crate::semconv::test_span();
        s.attributes = attrs.as_object().cloned().unwrap_or_default();
        s
    }

    #[test]
    fn reads_current_attributes() {
        let s = span_with(json!({
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.request.temperature": 0.5,
            "gen_ai.request.max_tokens": "200",
            "gen_ai.request.stop_sequences": ["x"],
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 40,
            "gen_ai.usage.cache_creation.input_tokens": 5,
            "gen_ai.usage.reasoning.output_tokens": 8,
            "gen_ai.input.messages": "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}]",
            "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}],
            "gen_ai.system_instructions": [{"type": "text", "content": "be nice"}],
            "gen_ai.tool.definitions": "[{\"type\":\"function\",\"name\":\"f\"}]",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.conversation.id": "conv-1",
            "gen_ai.response.time_to_first_chunk": 0.25,
        }));
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.operation.as_deref(), Some("chat"));
        assert_eq!(p.provider.as_deref(), Some("openai"));
        assert_eq!(p.response_model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(p.params.max_tokens, Some(200));
        assert_eq!(p.params.stop_sequences, vec!["x"]);
        assert_eq!(p.usage.cache_read_tokens, Some(40));
        assert_eq!(p.usage.cache_write_tokens, Some(5));
        assert_eq!(p.usage.reasoning_tokens, Some(8));
        assert_eq!(p.input_messages[0].content.as_deref(), Some("hi"));
        assert_eq!(p.output_messages[0].content.as_deref(), Some("hello"));
        assert_eq!(p.system_instructions.as_deref(), Some("be nice"));
        assert_eq!(
            p.tool_definitions,
            Some(json!([{"type": "function", "name": "f"}]))
        );
        assert_eq!(p.session_id.as_deref(), Some("conv-1"));
        assert_eq!(p.ttft_ms, Some(250.0));
    }

    #[test]
    fn details_event_fills_the_span() {
        let mut s = span_with(json!({"gen_ai.request.model": "m-span"}));
        s.events.push(Event {
            time_unix_nano: 0,
            name: DETAILS_EVENT.into(),
            attributes: json!({
                "gen_ai.request.model": "m-event",
                "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "q"}]}],
            })
            .as_object()
            .cloned()
            .unwrap(),
            body: Some(json!({"gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "a"}]}]})),
        });
        let p = extract(&s).unwrap();
        assert_eq!(p.request_model.as_deref(), Some("m-span"));
        assert_eq!(p.input_messages[0].content.as_deref(), Some("q"));
        assert_eq!(p.output_messages[0].content.as_deref(), Some("a"));
    }

    #[test]
    fn tool_span() {
        let s = span_with(json!({
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": {"city": "Paris"},
            "gen_ai.tool.call.result": "rainy",
            "error.type": "timeout",
        }));
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.operation.as_deref(), Some("execute_tool"));
        assert_eq!(p.input_messages[0].tool_calls[0].name, "get_weather");
        assert_eq!(
            p.input_messages[0].tool_calls[0].arguments.as_deref(),
            Some("{\"city\":\"Paris\"}")
        );
        assert_eq!(p.output_messages[0].role, "tool");
        assert_eq!(p.output_messages[0].content.as_deref(), Some("rainy"));
        assert!(p.error);
        assert_eq!(p.error_type.as_deref(), Some("timeout"));
    }

    #[test]
    fn unrelated_span_gives_nothing() {
        assert!(extract(&span_with(json!({"http.method": "GET"}))).is_none());
    }

    #[test]
    fn operation_spellings() {
        assert_eq!(canonical_operation("Completion"), "text_completion");
        assert_eq!(canonical_operation("embedding"), "embeddings");
        assert_eq!(canonical_operation("invoke_agent"), "invoke_agent");
    }
}
