//! OTel GenAI semantic conventions up to v1.36 and the instrumentations that still emit them
//! (OpenLLMetry among them): `gen_ai.system`, indexed `gen_ai.prompt.N.*` /
//! `gen_ai.completion.N.*` attributes, `gen_ai.usage.prompt_tokens` / `completion_tokens`, and
//! content carried as per-message events (`gen_ai.{system,user,assistant,tool}.message`,
//! `gen_ai.choice`) or the older `gen_ai.content.prompt` / `gen_ai.content.completion` events.
//!
//! Message events may be span events with their payload in attributes, or log records attached
//! to the span with their payload in the body; both are read the same way. Indexed attributes
//! win over events, which win over a whole-prompt `gen_ai.prompt` JSON attribute.

use serde_json::{Map, Value};

use super::common::normalize_provider;
use super::messages::{parse_message, parse_messages_or_text};
use super::partial::Partial;
use super::value::{
    as_string, as_u64, field, group_indexed, group_indexed_owned, has_any_prefix, to_text, Attrs,
};
use crate::llm::{Message, ToolCall};
use crate::span::{Event, Span};

const INPUT_EVENTS: [(&str, &str); 4] = [
    ("gen_ai.system.message", "system"),
    ("gen_ai.user.message", "user"),
    ("gen_ai.assistant.message", "assistant"),
    ("gen_ai.tool.message", "tool"),
];
const CHOICE_EVENT: &str = "gen_ai.choice";
const PROMPT_EVENT: &str = "gen_ai.content.prompt";
const COMPLETION_EVENT: &str = "gen_ai.content.completion";

/// Reads the legacy GenAI convention from a span and its events.
pub(crate) fn extract(span: &Span) -> Option<Partial> {
    if !has_any_prefix(&span.attributes, &["gen_ai."])
        && !span.events.iter().any(|e| e.name.starts_with("gen_ai."))
    {
        return None;
    }
    let a = Attrs::new(&span.attributes);
    let mut p = Partial {
        provider: a.str("gen_ai.system").and_then(|s| normalize_provider(&s)),
        request_model: a.str("gen_ai.request.model"),
        response_model: a.str("gen_ai.response.model"),
        response_id: a.str("gen_ai.response.id"),
        ..Partial::default()
    };
    p.usage.input_tokens = a.u64("gen_ai.usage.prompt_tokens");
    p.usage.output_tokens = a.u64("gen_ai.usage.completion_tokens");
    p.usage.total_tokens = a.u64("gen_ai.usage.total_tokens");
    p.usage.cache_read_tokens = a.u64("gen_ai.usage.cache_read_input_tokens");
    p.usage.cache_write_tokens = a.u64("gen_ai.usage.cache_creation_input_tokens");
    p.usage.reasoning_tokens = a.u64("gen_ai.usage.reasoning_tokens");

    let prompts = group_indexed(a.iter(), "gen_ai.prompt");
    let completions = group_indexed(a.iter(), "gen_ai.completion");
    let indexed = !prompts.is_empty() || !completions.is_empty();
    p.input_messages = prompts
        .values()
        .map(|entries| message_from_group(entries, "user"))
        .collect();
    p.output_messages = completions
        .values()
        .map(|entries| message_from_group(entries, "assistant"))
        .collect();

    let (event_inputs, event_outputs, saw_events) = read_events(&span.events);
    if p.input_messages.is_empty() {
        p.input_messages = event_inputs;
    }
    if p.output_messages.is_empty() {
        p.output_messages = event_outputs;
    }
    if p.input_messages.is_empty() {
        if let Some(v) = a.get("gen_ai.prompt") {
            p.input_messages = parse_messages_or_text(v, "user");
        }
    }
    if p.output_messages.is_empty() {
        if let Some(v) = a.get("gen_ai.completion") {
            p.output_messages = parse_messages_or_text(v, "assistant");
        }
    }

    p.recognised = p.provider.is_some()
        || indexed
        || saw_events
        || p.usage.input_tokens.is_some()
        || p.usage.output_tokens.is_some();
    p.non_empty()
}

/// Builds one message from the entries of `gen_ai.prompt.N` / `gen_ai.completion.N`.
fn message_from_group(entries: &[(String, Value)], default_role: &str) -> Message {
    let mut obj = Map::new();
    for key in ["role", "content", "tool_call_id", "name", "finish_reason"] {
        if let Some(v) = field(entries, key) {
            obj.insert(key.to_string(), v.clone());
        }
    }
    let mut msg = parse_message(&obj, default_role).unwrap_or_else(|| Message {
        role: default_role.to_string(),
        ..Message::default()
    });
    for call in group_indexed_owned(entries, "tool_calls").values() {
        let name = field(call, "name")
            .or_else(|| field(call, "function.name"))
            .and_then(as_string);
        let id = field(call, "id").and_then(as_string);
        if name.is_none() && id.is_none() {
            continue;
        }
        msg.tool_calls.push(ToolCall {
            id,
            name: name.unwrap_or_default(),
            arguments: field(call, "arguments")
                .or_else(|| field(call, "function.arguments"))
                .and_then(to_text),
        });
    }
    if let Some(name) = field(entries, "function_call.name").and_then(as_string) {
        msg.tool_calls.push(ToolCall {
            id: None,
            name,
            arguments: field(entries, "function_call.arguments").and_then(to_text),
        });
    }
    msg
}

/// The payload of a message event: its body when that is an object, else its attributes.
fn payload(event: &Event) -> Map<String, Value> {
    match &event.body {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) if !s.is_empty() => {
            let mut m = Map::new();
            m.insert("content".into(), Value::String(s.clone()));
            m
        }
        _ => event.attributes.clone(),
    }
}

/// Input and output messages from the events, and whether any legacy event was present.
fn read_events(events: &[Event]) -> (Vec<Message>, Vec<Message>, bool) {
    let mut inputs = Vec::new();
    let mut choices: Vec<(u64, Message)> = Vec::new();
    let mut saw = false;
    for event in events {
        if let Some((_, role)) = INPUT_EVENTS.iter().find(|(n, _)| *n == event.name) {
            saw = true;
            let mut m = payload(event);
            if *role == "tool" && !m.contains_key("tool_call_id") {
                if let Some(id) = m.get("id").cloned() {
                    m.insert("tool_call_id".into(), id);
                }
            }
            if let Some(msg) = parse_message(&m, role) {
                inputs.push(msg);
            }
        } else if event.name == CHOICE_EVENT {
            saw = true;
            let m = payload(event);
            let index = m
                .get("index")
                .and_then(as_u64)
                .unwrap_or(choices.len() as u64);
            let mut msg = m
                .get("message")
                .and_then(Value::as_object)
                .and_then(|inner| parse_message(inner, "assistant"))
                .unwrap_or_else(|| Message {
                    role: "assistant".into(),
                    ..Message::default()
                });
            if msg.finish_reason.is_none() {
                msg.finish_reason = m.get("finish_reason").and_then(as_string);
            }
            if msg.tool_calls.is_empty() {
                if let Some(top) = parse_message(&m, "assistant") {
                    msg.tool_calls = top.tool_calls;
                }
            }
            choices.push((index, msg));
        } else if event.name == PROMPT_EVENT {
            saw = true;
            if let Some(v) = event.attributes.get("gen_ai.prompt") {
                inputs.extend(parse_messages_or_text(v, "user"));
            }
        } else if event.name == COMPLETION_EVENT {
            saw = true;
            if let Some(v) = event.attributes.get("gen_ai.completion") {
                choices.extend(
                    parse_messages_or_text(v, "assistant")
                        .into_iter()
                        .map(|m| (u64::MAX, m)),
                );
            }
        }
    }
    choices.sort_by_key(|(i, _)| *i);
    (inputs, choices.into_iter().map(|(_, m)| m).collect(), saw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span_with(attrs: Value, events: Vec<Event>) -> Span {
        let mut s = crate::semconv::test_span();
        s.attributes = attrs.as_object().cloned().unwrap_or_default();
        s.events = events;
        s
    }

    fn event(name: &str, attrs: Value, body: Option<Value>) -> Event {
        Event {
            time_unix_nano: 0,
            name: name.into(),
            attributes: attrs.as_object().cloned().unwrap_or_default(),
            body,
        }
    }

    #[test]
    fn indexed_attributes() {
        let s = span_with(
            json!({
                "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.prompt_tokens": 12,
                "gen_ai.usage.completion_tokens": "3",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "be brief",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "[{\"type\":\"text\",\"text\":\"hi\"}]",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.finish_reason": "tool_calls",
                "gen_ai.completion.0.tool_calls.0.id": "c1",
                "gen_ai.completion.0.tool_calls.0.name": "lookup",
                "gen_ai.completion.0.tool_calls.0.arguments": "{\"q\":1}",
            }),
            vec![],
        );
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.provider.as_deref(), Some("openai"));
        assert_eq!(p.usage.input_tokens, Some(12));
        assert_eq!(p.usage.output_tokens, Some(3));
        assert_eq!(p.input_messages.len(), 2);
        assert_eq!(p.input_messages[1].content.as_deref(), Some("hi"));
        let out = &p.output_messages[0];
        assert_eq!(out.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(out.tool_calls[0].name, "lookup");
        assert_eq!(out.tool_calls[0].id.as_deref(), Some("c1"));
    }

    #[test]
    fn message_events_with_bodies_and_attributes() {
        let s = span_with(
            json!({"gen_ai.system": "openai"}),
            vec![
                event("gen_ai.system.message", json!({"content": "sys"}), None),
                event(
                    "gen_ai.user.message",
                    json!({}),
                    Some(json!({"content": "q"})),
                ),
                event(
                    "gen_ai.assistant.message",
                    json!({}),
                    Some(
                        json!({"tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}),
                    ),
                ),
                event(
                    "gen_ai.tool.message",
                    json!({}),
                    Some(json!({"id": "t1", "content": "42"})),
                ),
                event(
                    "gen_ai.choice",
                    json!({}),
                    Some(
                        json!({"index": 1, "finish_reason": "length", "message": {"content": "second"}}),
                    ),
                ),
                event(
                    "gen_ai.choice",
                    json!({}),
                    Some(
                        json!({"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "first"}}),
                    ),
                ),
            ],
        );
        let p = extract(&s).unwrap();
        let roles: Vec<&str> = p.input_messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(p.input_messages[0].content.as_deref(), Some("sys"));
        assert_eq!(
            p.input_messages[2].tool_calls[0].arguments.as_deref(),
            Some("{\"x\":1}")
        );
        assert_eq!(p.input_messages[3].tool_call_id.as_deref(), Some("t1"));
        assert_eq!(p.output_messages[0].content.as_deref(), Some("first"));
        assert_eq!(
            p.output_messages[1].finish_reason.as_deref(),
            Some("length")
        );
    }

    #[test]
    fn events_alone_are_recognised() {
        let s = span_with(
            json!({}),
            vec![event(
                "gen_ai.user.message",
                json!({}),
                Some(json!("plain body")),
            )],
        );
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.input_messages[0].content.as_deref(), Some("plain body"));
    }

    #[test]
    fn content_events_and_whole_prompt() {
        let s = span_with(
            json!({"gen_ai.completion": "done"}),
            vec![event(
                "gen_ai.content.prompt",
                json!({"gen_ai.prompt": "[{\"role\":\"user\",\"content\":\"hey\"}]"}),
                None,
            )],
        );
        let p = extract(&s).unwrap();
        assert_eq!(p.input_messages[0].content.as_deref(), Some("hey"));
        assert_eq!(p.output_messages[0].content.as_deref(), Some("done"));
        assert_eq!(p.output_messages[0].role, "assistant");
    }
}
