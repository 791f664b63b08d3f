//! Vercel AI SDK telemetry: `ai.model.id`, `ai.model.provider`, `ai.prompt` /
//! `ai.prompt.messages` (JSON), `ai.response.text` / `ai.response.toolCalls`, `ai.usage.*`,
//! `ai.settings.*`, `ai.telemetry.metadata.*`.
//!
//! The SDK nests an outer span per user-facing function (`ai.generateText`, `ai.streamText`)
//! around one inner span per provider request (`ai.generateText.doGenerate`,
//! `ai.streamText.doStream`, `ai.embed.doEmbed`). Only the inner spans are model calls — counting
//! the outer ones would double every token — so the operation id (`ai.operationId`, else the
//! first word of `operation.name`, else the span name) decides. Both the v4 token names
//! (`promptTokens`/`completionTokens`) and the v5 ones (`inputTokens`/`outputTokens`) are read.

use serde_json::{Map, Value};

use super::common::{normalize_provider, params_from_object};
use super::messages::{parse_messages, parse_messages_or_text, parse_tool_call, text_message};
use super::partial::Partial;
use super::value::{as_json, as_string, as_string_list, to_text, Attrs};
use crate::llm::Message;
use crate::span::Span;

const SETTINGS_PREFIX: &str = "ai.settings.";
const METADATA_PREFIX: &str = "ai.telemetry.metadata.";
const SESSION_KEYS: [&str; 4] = ["sessionId", "session_id", "conversationId", "threadId"];
const USER_KEYS: [&str; 3] = ["userId", "user_id", "userID"];

#[derive(PartialEq)]
enum Kind {
    Generate,
    Stream,
    Embed,
    Outer,
}

fn kind_of(operation_id: &str) -> Kind {
    if operation_id.ends_with(".doGenerate") {
        Kind::Generate
    } else if operation_id.ends_with(".doStream") {
        Kind::Stream
    } else if operation_id.ends_with(".doEmbed") {
        Kind::Embed
    } else {
        Kind::Outer
    }
}

/// Reads Vercel AI SDK attributes from a span.
pub(crate) fn extract(span: &Span) -> Option<Partial> {
    let a = Attrs::new(&span.attributes);
    if !a.any_prefix("ai.") {
        return None;
    }
    let operation_id = a
        .str("ai.operationId")
        .or_else(|| {
            a.str("operation.name")
                .and_then(|o| o.split_whitespace().next().map(str::to_string))
        })
        .or_else(|| span.name.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    let kind = kind_of(&operation_id);
    let model_id = a.str("ai.model.id");

    let mut p = Partial {
        recognised: kind != Kind::Outer && model_id.is_some(),
        operation: match kind {
            Kind::Generate | Kind::Stream => Some("chat".into()),
            Kind::Embed => Some("embeddings".into()),
            Kind::Outer => None,
        },
        provider: a.str("ai.model.provider").and_then(|p| provider(&p)),
        request_model: model_id,
        response_model: a.str("ai.response.model"),
        response_id: a.str("ai.response.id"),
        ttft_ms: a
            .first(&["ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"])
            .and_then(super::value::as_f64)
            .or_else(|| first_chunk_event(span)),
        ..Partial::default()
    };

    p.usage.input_tokens = a.first_u64(&[
        "ai.usage.inputTokens",
        "ai.usage.promptTokens",
        "ai.usage.tokens",
    ]);
    p.usage.output_tokens = a.first_u64(&["ai.usage.outputTokens", "ai.usage.completionTokens"]);
    p.usage.total_tokens = a.u64("ai.usage.totalTokens");
    p.usage.reasoning_tokens = a.u64("ai.usage.reasoningTokens");
    p.usage.cache_read_tokens = a.u64("ai.usage.cachedInputTokens");

    let mut settings = Map::new();
    for (key, value) in a.iter() {
        if let Some(name) = key.strip_prefix(SETTINGS_PREFIX) {
            settings.entry(name.to_string()).or_insert(value.clone());
        } else if let Some(name) = key.strip_prefix(METADATA_PREFIX) {
            if p.session_id.is_none() && SESSION_KEYS.contains(&name) {
                p.session_id = as_string(value);
            }
            if p.user_id.is_none() && USER_KEYS.contains(&name) {
                p.user_id = as_string(value);
            }
            p.metadata
                .entry(name.to_string())
                .or_insert_with(|| value.clone());
        }
    }
    p.params = params_from_object(&settings);
    if kind == Kind::Stream {
        p.params.stream = Some(true);
    }
    if let Some(f) = a.get("ai.telemetry.functionId") {
        p.metadata
            .insert("ai.telemetry.functionId".into(), f.clone());
    }

    read_prompt(&a, &mut p);
    read_response(&a, &mut p);
    if let Some(Value::Array(tools)) = a.get("ai.prompt.tools").map(as_json).as_deref() {
        p.tool_definitions = Some(Value::Array(
            tools.iter().map(|t| as_json(t).into_owned()).collect(),
        ));
    }
    p.non_empty()
}

/// `openai.chat` → `openai`; known names go through the shared provider table.
fn provider(raw: &str) -> Option<String> {
    let mapped = normalize_provider(raw)?;
    if mapped != raw.trim().to_ascii_lowercase() {
        return Some(mapped);
    }
    match raw.split_once('.') {
        Some((head, _)) => normalize_provider(head),
        None => Some(mapped),
    }
}

fn first_chunk_event(span: &Span) -> Option<f64> {
    let e = span
        .events
        .iter()
        .find(|e| e.name == "ai.stream.firstChunk")?;
    Attrs::new(&e.attributes)
        .first(&["ai.response.msToFirstChunk", "ai.stream.msToFirstChunk"])
        .and_then(super::value::as_f64)
}

fn read_prompt(a: &Attrs<'_>, p: &mut Partial) {
    if let Some(v) = a.get("ai.prompt.messages") {
        p.input_messages = parse_messages(v, "user");
    }
    if let Some(Value::Object(prompt)) = a.get("ai.prompt").map(as_json).as_deref() {
        p.system_instructions = prompt.get("system").and_then(as_string);
        if p.input_messages.is_empty() {
            if let Some(m) = prompt.get("messages").filter(|v| !v.is_null()) {
                p.input_messages = parse_messages(m, "user");
            }
        }
        if p.input_messages.is_empty() {
            if let Some(m) = prompt.get("prompt").filter(|v| !v.is_null()) {
                p.input_messages = parse_messages_or_text(m, "user");
            }
        }
    }
    if p.input_messages.is_empty() {
        if let Some(values) = a.get("ai.values") {
            p.input_messages = as_string_list(values)
                .iter()
                .map(|t| text_message("user", t))
                .collect();
        } else if let Some(value) = a.get("ai.value").and_then(to_text) {
            p.input_messages = vec![text_message("user", &value)];
        }
    }
}

fn read_response(a: &Attrs<'_>, p: &mut Partial) {
    let finish = a.str("ai.response.finishReason");
    let text = a
        .first(&["ai.response.text", "ai.response.object"])
        .and_then(to_text);
    let tool_calls: Vec<_> = match a.get("ai.response.toolCalls").map(as_json).as_deref() {
        Some(Value::Array(calls)) => calls
            .iter()
            .filter_map(|c| c.as_object().and_then(parse_tool_call))
            .collect(),
        _ => Vec::new(),
    };
    if text.is_some() || !tool_calls.is_empty() {
        p.output_messages.push(Message {
            role: "assistant".into(),
            content: text,
            tool_calls,
            finish_reason: finish.clone(),
            ..Message::default()
        });
    }
    p.finish_reasons = finish.into_iter().collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Event;
    use serde_json::json;

    fn span_with(name: &str, attrs: Value) -> Span {
        let mut s = crate::semconv::test_span();
        s.name = name.into();
        s.attributes = attrs.as_object().cloned().unwrap_or_default();
        s
    }

    #[test]
    fn do_generate_span() {
        let s = span_with(
            "ai.generateText.doGenerate",
            json!({
                "operation.name": "ai.generateText.doGenerate support-bot",
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.id": "gpt-4o",
                "ai.model.provider": "openai.chat",
                "ai.prompt.messages": "[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]",
                "ai.prompt.tools": ["{\"type\":\"function\",\"name\":\"w\"}"],
                "ai.response.text": "hello",
                "ai.response.toolCalls": "[{\"toolCallType\":\"function\",\"toolCallId\":\"c\",\"toolName\":\"w\",\"args\":\"{}\"}]",
                "ai.response.finishReason": "stop",
                "ai.response.id": "r1",
                "ai.response.model": "gpt-4o-2024-08-06",
                "ai.usage.promptTokens": 10,
                "ai.usage.completionTokens": 4,
                "ai.settings.temperature": 0.3,
                "ai.settings.maxTokens": 64,
                "ai.telemetry.functionId": "support-bot",
                "ai.telemetry.metadata.userId": "u1",
                "ai.telemetry.metadata.sessionId": "s1",
                "ai.telemetry.metadata.plan": "pro",
            }),
        );
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.operation.as_deref(), Some("chat"));
        assert_eq!(p.provider.as_deref(), Some("openai"));
        assert_eq!(p.request_model.as_deref(), Some("gpt-4o"));
        assert_eq!(p.response_model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(p.input_messages.len(), 2);
        assert_eq!(p.input_messages[1].content.as_deref(), Some("hi"));
        assert_eq!(p.output_messages[0].content.as_deref(), Some("hello"));
        assert_eq!(p.output_messages[0].tool_calls[0].name, "w");
        assert_eq!(p.finish_reasons, vec!["stop"]);
        assert_eq!(p.usage.input_tokens, Some(10));
        assert_eq!(p.usage.output_tokens, Some(4));
        assert_eq!(p.params.temperature, Some(0.3));
        assert_eq!(p.params.max_tokens, Some(64));
        assert_eq!(p.user_id.as_deref(), Some("u1"));
        assert_eq!(p.session_id.as_deref(), Some("s1"));
        assert_eq!(p.metadata["plan"], json!("pro"));
        assert_eq!(
            p.tool_definitions,
            Some(json!([{"type": "function", "name": "w"}]))
        );
    }

    #[test]
    fn do_stream_v5_names_and_ttft() {
        let mut s = span_with(
            "ai.streamText.doStream",
            json!({
                "ai.model.id": "claude-sonnet-4-5",
                "ai.model.provider": "anthropic.messages",
                "ai.usage.inputTokens": "7",
                "ai.usage.outputTokens": 3,
                "ai.usage.reasoningTokens": 1,
                "ai.usage.cachedInputTokens": 2,
                "ai.prompt": "{\"system\":\"be kind\",\"prompt\":\"q\"}",
            }),
        );
        s.events.push(Event {
            time_unix_nano: 0,
            name: "ai.stream.firstChunk".into(),
            attributes: json!({"ai.response.msToFirstChunk": 120.5})
                .as_object()
                .cloned()
                .unwrap(),
            body: None,
        });
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.provider.as_deref(), Some("anthropic"));
        assert_eq!(p.params.stream, Some(true));
        assert_eq!(p.ttft_ms, Some(120.5));
        assert_eq!(p.usage.input_tokens, Some(7));
        assert_eq!(p.usage.reasoning_tokens, Some(1));
        assert_eq!(p.usage.cache_read_tokens, Some(2));
        assert_eq!(p.system_instructions.as_deref(), Some("be kind"));
        assert_eq!(p.input_messages[0].content.as_deref(), Some("q"));
    }

    #[test]
    fn outer_span_is_not_a_call() {
        let s = span_with(
            "ai.generateText",
            json!({"ai.model.id": "gpt-4o", "ai.operationId": "ai.generateText", "ai.usage.promptTokens": 10}),
        );
        assert!(!extract(&s).unwrap().recognised);
    }

    #[test]
    fn embed_span() {
        let s = span_with(
            "ai.embedMany.doEmbed",
            json!({"ai.model.id": "text-embedding-3-small", "ai.values": ["a", "b"], "ai.usage.tokens": 4}),
        );
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.operation.as_deref(), Some("embeddings"));
        assert_eq!(p.input_messages.len(), 2);
        assert_eq!(p.usage.input_tokens, Some(4));
    }
}
