//! One tolerant reader for every chat-message shape the conventions carry.
//!
//! The shapes differ in spelling more than in substance: OTel GenAI `parts`
//! (`{"type":"tool_call","id","name","arguments"}`), OpenAI messages (`content` string or blocks,
//! `tool_calls[].function`), Anthropic blocks (`tool_use`, `tool_result`), and the Vercel AI SDK
//! (`tool-call`/`tool-result` with `toolCallId`/`toolName`/`args`). Rather than one parser per
//! convention, a single reader accepts the union, so a convention that embeds another's format
//! (Langfuse carrying OpenAI messages, for instance) is understood without special cases.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::value::{as_json, as_string, to_text};
use crate::llm::{Message, ToolCall};

/// Parses a message list (array, JSON string, or an object with a `messages` array). A lone
/// message object gives a one-element list. Anything else gives an empty list.
pub(crate) fn parse_messages(v: &Value, default_role: &str) -> Vec<Message> {
    match &*as_json(v) {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::Object(m) => parse_message(m, default_role),
                Value::String(s) if !s.is_empty() => Some(text_message(default_role, s)),
                _ => None,
            })
            .collect(),
        Value::Object(m) => {
            if let Some(inner) = m.get("messages").filter(|v| !v.is_null()) {
                return parse_messages(inner, default_role);
            }
            if let Some(Value::Array(choices)) = m.get("choices") {
                // A whole chat-completion response: one message per choice.
                return choices
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(|c| {
                        let mut msg = c
                            .get("message")
                            .or_else(|| c.get("delta"))
                            .and_then(Value::as_object)
                            .and_then(|inner| parse_message(inner, default_role))
                            .or_else(|| {
                                c.get("text")
                                    .and_then(as_string)
                                    .map(|t| text_message(default_role, &t))
                            })?;
                        if msg.finish_reason.is_none() {
                            msg.finish_reason = c.get("finish_reason").and_then(as_string);
                        }
                        Some(msg)
                    })
                    .collect();
            }
            parse_message(m, default_role).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// Like [`parse_messages`], but plain text (or any other structured value) becomes one message
/// with `default_role` holding the text (or compact JSON).
pub(crate) fn parse_messages_or_text(v: &Value, default_role: &str) -> Vec<Message> {
    let parsed = parse_messages(v, default_role);
    if !parsed.is_empty() {
        return parsed;
    }
    match &*as_json(v) {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => vec![text_message(default_role, s)],
        Value::Array(a) if a.is_empty() => Vec::new(),
        other => to_text(other)
            .map(|t| vec![text_message(default_role, &t)])
            .unwrap_or_default(),
    }
}

/// A message with only a role and text.
pub(crate) fn text_message(role: &str, text: &str) -> Message {
    Message {
        role: role.to_string(),
        content: Some(text.to_string()),
        ..Message::default()
    }
}

fn first<'a>(m: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().filter_map(|k| m.get(*k)).find(|v| !v.is_null())
}

fn first_string(m: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().filter_map(|k| m.get(*k)).find_map(as_string)
}

/// Parses one message object in any supported shape.
pub(crate) fn parse_message(m: &Map<String, Value>, default_role: &str) -> Option<Message> {
    const MESSAGE_KEYS: [&str; 6] = [
        "role",
        "parts",
        "content",
        "tool_calls",
        "toolCalls",
        "function_call",
    ];
    if !MESSAGE_KEYS.iter().any(|k| m.contains_key(*k)) {
        return None;
    }
    let role = first_string(m, &["role"]).unwrap_or_else(|| default_role.to_string());
    let mut msg = Message {
        role,
        name: first_string(m, &["name"]),
        tool_call_id: first_string(m, &["tool_call_id", "toolCallId", "tool_use_id"]),
        finish_reason: first_string(m, &["finish_reason", "finishReason"]),
        ..Message::default()
    };
    let mut texts: Vec<String> = Vec::new();
    if let Some(parts) = first(m, &["parts"]) {
        read_parts(parts, &mut texts, &mut msg);
    }
    if let Some(content) = first(m, &["content"]) {
        read_content(content, &mut texts, &mut msg);
    }
    if let Some(Value::Array(calls)) = first(m, &["tool_calls", "toolCalls"])
        .map(as_json)
        .as_deref()
    {
        msg.tool_calls.extend(
            calls
                .iter()
                .filter_map(|c| c.as_object().and_then(parse_tool_call)),
        );
    }
    if let Some(Value::Object(fc)) = first(m, &["function_call"]).map(as_json).as_deref() {
        msg.tool_calls.extend(parse_tool_call(fc));
    }
    msg.content = match texts.len() {
        0 => None,
        // Most messages hold one text: moved, not joined into a copy.
        1 => texts.pop(),
        _ => Some(texts.join("\n")),
    };
    Some(msg)
}

fn read_content(content: &Value, texts: &mut Vec<String>, msg: &mut Message) {
    match content {
        Value::String(s) => {
            // Some instrumentations store a block list as a JSON string.
            let parsed = as_json(content);
            match &*parsed {
                Value::Array(items) if items.iter().all(is_typed_block) && !items.is_empty() => {
                    read_parts(&parsed, texts, msg);
                }
                _ if !s.is_empty() => texts.push(s.clone()),
                _ => {}
            }
        }
        Value::Array(_) => read_parts(content, texts, msg),
        Value::Object(o) if o.contains_key("type") => {
            read_parts(&Value::Array(vec![content.clone()]), texts, msg);
        }
        Value::Null => {}
        other => texts.extend(to_text(other)),
    }
}

fn is_typed_block(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key("type"))
}

fn read_parts(parts: &Value, texts: &mut Vec<String>, msg: &mut Message) {
    let parsed = as_json(parts);
    let Value::Array(items) = &*parsed else {
        return;
    };
    for part in items {
        let obj = match part {
            Value::String(s) => {
                if !s.is_empty() {
                    texts.push(s.clone());
                }
                continue;
            }
            Value::Object(o) => o,
            _ => continue,
        };
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or("text");
        let kind = if kind.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(kind.to_ascii_lowercase())
        } else {
            Cow::Borrowed(kind)
        };
        match &*kind {
            "text" | "input_text" | "output_text" => {
                if let Some(t) = first(obj, &["content", "text"]).and_then(to_text) {
                    texts.push(t);
                }
            }
            "tool_call" | "tool_use" | "tool-call" | "function_call" | "function" => {
                msg.tool_calls.extend(parse_tool_call(obj));
            }
            "tool_call_response" | "tool_result" | "tool-result" | "function_call_output" => {
                if msg.tool_call_id.is_none() {
                    msg.tool_call_id =
                        first_string(obj, &["id", "tool_use_id", "toolCallId", "call_id"]);
                }
                if let Some(r) = first(obj, &["response", "result", "content", "output"]) {
                    let mut inner = Message::default();
                    let mut inner_texts = Vec::new();
                    read_content(r, &mut inner_texts, &mut inner);
                    texts.extend(inner_texts);
                }
            }
            _ => {}
        }
    }
}

/// Parses one tool call: OTel part, OpenAI `{id, function:{name, arguments}}`, Anthropic
/// `tool_use`, Vercel `{toolCallId, toolName, args|input}`, OpenInference flattened keys.
pub(crate) fn parse_tool_call(m: &Map<String, Value>) -> Option<ToolCall> {
    let function = first(m, &["function"]).and_then(Value::as_object);
    let id = first_string(m, &["id", "toolCallId", "call_id", "tool_call.id"]);
    let name = first_string(
        m,
        &[
            "name",
            "toolName",
            "function.name",
            "tool_call.function.name",
        ],
    )
    .or_else(|| function.and_then(|f| first_string(f, &["name"])));
    let arguments = first(
        m,
        &[
            "arguments",
            "args",
            "input",
            "function.arguments",
            "tool_call.function.arguments",
        ],
    )
    .or_else(|| function.and_then(|f| first(f, &["arguments"])))
    .and_then(to_text);
    if id.is_none() && name.is_none() {
        return None;
    }
    Some(ToolCall {
        id,
        name: name.unwrap_or_default(),
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn otel_parts() {
        let v = json!([
            {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"location": "Paris"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "rainy"}]},
            {"role": "assistant", "parts": [{"type": "tool_call_response", "id": "c2", "result": {"t": 1}}]}
        ]);
        let m = parse_messages(&v, "user");
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].content.as_deref(), Some("Weather in Paris?"));
        assert_eq!(m[1].tool_calls[0].name, "get_weather");
        assert_eq!(
            m[1].tool_calls[0].arguments.as_deref(),
            Some("{\"location\":\"Paris\"}")
        );
        assert_eq!(m[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(m[2].content.as_deref(), Some("rainy"));
        assert_eq!(m[3].content.as_deref(), Some("{\"t\":1}"));
    }

    #[test]
    fn openai_and_anthropic_shapes() {
        let v = json!("[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\"},{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"x\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"g\",\"input\":{\"q\":1}}]}]");
        let m = parse_messages(&v, "user");
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].role, "system");
        assert_eq!(m[1].content.as_deref(), Some("a\nb"));
        assert_eq!(m[2].tool_calls[0].name, "f");
        assert_eq!(m[2].tool_calls[0].id.as_deref(), Some("x"));
        assert_eq!(m[3].tool_calls[0].name, "g");
        assert_eq!(m[3].tool_calls[0].arguments.as_deref(), Some("{\"q\":1}"));
    }

    #[test]
    fn vercel_shapes() {
        let v = json!([
            {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "1", "toolName": "w", "args": {"c": "x"}}]},
            {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "1", "toolName": "w", "result": "ok"}]}
        ]);
        let m = parse_messages(&v, "user");
        assert_eq!(m[0].tool_calls[0].name, "w");
        assert_eq!(m[1].tool_call_id.as_deref(), Some("1"));
        assert_eq!(m[1].content.as_deref(), Some("ok"));
    }

    #[test]
    fn text_fallbacks() {
        assert_eq!(
            parse_messages_or_text(&json!("hello"), "user")[0].role,
            "user"
        );
        assert_eq!(
            parse_messages_or_text(&json!({"query": 1}), "user")[0]
                .content
                .as_deref(),
            Some("{\"query\":1}")
        );
        assert!(parse_messages_or_text(&json!(null), "user").is_empty());
        assert_eq!(
            parse_messages(
                &json!({"messages": [{"role": "user", "content": "x"}]}),
                "user"
            )
            .len(),
            1
        );
        let response = json!({"id": "r", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]});
        let m = parse_messages(&response, "assistant");
        assert_eq!(m[0].content.as_deref(), Some("ok"));
        assert_eq!(m[0].finish_reason.as_deref(), Some("stop"));
    }
}
