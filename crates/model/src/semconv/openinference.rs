//! OpenInference (Arize Phoenix): `openinference.span.kind`, `llm.*`, flattened
//! `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*`, `llm.token_count.*`,
//! `input.value` / `output.value`, `session.id`, `user.id`, `metadata`, `tag.tags`.
//!
//! Only `LLM` and `EMBEDDING` spans are model calls; other kinds (CHAIN, TOOL, AGENT, ...) still
//! contribute context when another convention recognises the span. Flattened message lists are
//! also accepted in structured form (an array under `llm.input_messages`). `input.value` /
//! `output.value` are used only when no structured messages were sent.

use serde_json::Value;

use super::common::{normalize_provider, params_from_object};
use super::messages::parse_messages_or_text;
use super::partial::Partial;
use super::value::{
    as_f64, as_json, as_object, as_string, as_string_list, field, group_indexed_owned,
    has_any_prefix, to_text, Attrs,
};
use crate::llm::{Cost, Message, ToolCall, Usage};
use crate::span::Span;

/// Reads OpenInference attributes from a span.
pub(crate) fn extract(span: &Span) -> Option<Partial> {
    if !has_any_prefix(&span.attributes, &["openinference.", "llm.", "embedding."]) {
        return None;
    }
    let a = Attrs::new(&span.attributes);
    let kind = a
        .str("openinference.span.kind")
        .map(|k| k.to_ascii_uppercase());
    let is_llm = kind.as_deref() == Some("LLM");
    let is_embedding = kind.as_deref() == Some("EMBEDDING");

    let mut p = Partial {
        recognised: is_llm || is_embedding,
        provider: a
            .first_str(&["llm.provider", "llm.system"])
            .and_then(|s| normalize_provider(&s)),
        // The OpenAI instrumentation sets `llm.model_name` from the response; the requested model
        // is the `model` key of the invocation parameters (read below).
        request_model: a.str("llm.request.model_name"),
        response_model: a.first_str(&["llm.response.model_name", "llm.model_name"]),
        session_id: a.str("session.id"),
        user_id: a.str("user.id"),
        prompt_version: a.str("llm.prompt_template.version"),
        tags: a.get("tag.tags").map(as_string_list).unwrap_or_default(),
        finish_reasons: a
            .get("llm.finish_reason")
            .map(as_string_list)
            .unwrap_or_default(),
        ..Partial::default()
    };

    if let Some(params) = a
        .first(&[
            "llm.invocation_parameters",
            "embedding.invocation_parameters",
        ])
        .and_then(as_object)
    {
        p.params = params_from_object(&params);
        if p.request_model.is_none() {
            p.request_model = params.get("model").and_then(as_string);
        }
    }
    if p.request_model.is_none() {
        p.request_model = a.first_str(&["llm.model_name", "embedding.model_name"]);
    }

    p.usage.input_tokens = a.u64("llm.token_count.prompt");
    p.usage.output_tokens = a.u64("llm.token_count.completion");
    p.usage.total_tokens = a.u64("llm.token_count.total");
    p.usage.cache_read_tokens = a.u64("llm.token_count.prompt_details.cache_read");
    p.usage.cache_write_tokens = a.u64("llm.token_count.prompt_details.cache_write");
    p.usage.reasoning_tokens = a.u64("llm.token_count.completion_details.reasoning");

    p.input_messages = a
        .indexed("llm.input_messages")
        .values()
        .map(|e| message_from_group(e, "user"))
        .collect();
    p.output_messages = a
        .indexed("llm.output_messages")
        .values()
        .map(|e| message_from_group(e, "assistant"))
        .collect();
    if p.input_messages.is_empty() {
        p.input_messages = texts(&a, "llm.prompts", &["prompt.text", ""], "user");
    }
    if p.output_messages.is_empty() {
        p.output_messages = texts(&a, "llm.choices", &["completion.text", ""], "assistant");
    }
    if p.input_messages.is_empty() {
        p.input_messages = texts(&a, "embedding.embeddings", &["embedding.text"], "user");
    }
    if p.input_messages.is_empty() && p.recognised {
        if let Some(v) = a.get("input.value") {
            p.input_messages = parse_messages_or_text(v, "user");
        }
    }
    if p.output_messages.is_empty() && p.recognised {
        if let Some(v) = a.get("output.value") {
            p.output_messages = parse_messages_or_text(v, "assistant");
        }
    }

    p.operation = if is_embedding {
        Some("embeddings".into())
    } else if is_llm {
        let completion_api = a.any_prefix("llm.prompts") && !a.any_prefix("llm.input_messages");
        Some(
            if completion_api {
                "text_completion"
            } else {
                "chat"
            }
            .into(),
        )
    } else {
        None
    };

    let tools: Vec<Value> = a
        .indexed("llm.tools")
        .values()
        .filter_map(|e| field(e, "tool.json_schema").map(|v| as_json(v).into_owned()))
        .collect();
    if !tools.is_empty() {
        p.tool_definitions = Some(Value::Array(tools));
    }

    if let Some(meta) = a.get("metadata").and_then(as_object) {
        p.metadata = meta;
    }
    for key in [
        "llm.prompt_template.template",
        "llm.prompt_template.variables",
    ] {
        if let Some(v) = a.get(key) {
            p.metadata.insert(key.to_string(), as_json(v).into_owned());
        }
    }
    if is_llm || is_embedding || kind.is_none() {
        p.reported_cost = reported_cost(&a);
    }
    if kind.is_some() || p.request_model.is_some() || p.usage != Usage::default() {
        p.non_empty()
    } else {
        None
    }
}

/// One message from the entries of `llm.{input,output}_messages.N`.
fn message_from_group(entries: &[(String, Value)], default_role: &str) -> Message {
    let mut msg = Message {
        role: field(entries, "message.role")
            .and_then(as_string)
            .unwrap_or_else(|| default_role.to_string()),
        name: field(entries, "message.name").and_then(as_string),
        tool_call_id: field(entries, "message.tool_call_id").and_then(as_string),
        ..Message::default()
    };
    msg.content = field(entries, "message.content").and_then(to_text);
    if msg.content.is_none() {
        let parts: Vec<String> = group_indexed_owned(entries, "message.contents")
            .values()
            .filter(|c| {
                field(c, "message_content.type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "text")
            })
            .filter_map(|c| field(c, "message_content.text").and_then(to_text))
            .collect();
        if !parts.is_empty() {
            msg.content = Some(parts.join("\n"));
        }
    }
    for call in group_indexed_owned(entries, "message.tool_calls").values() {
        let name = field(call, "tool_call.function.name").and_then(as_string);
        let id = field(call, "tool_call.id").and_then(as_string);
        if name.is_none() && id.is_none() {
            continue;
        }
        msg.tool_calls.push(ToolCall {
            id,
            name: name.unwrap_or_default(),
            arguments: field(call, "tool_call.function.arguments").and_then(to_text),
        });
    }
    if let Some(name) = field(entries, "message.function_call_name").and_then(as_string) {
        msg.tool_calls.push(ToolCall {
            id: None,
            name,
            arguments: field(entries, "message.function_call_arguments_json").and_then(to_text),
        });
    }
    msg
}

/// Messages from an indexed list of texts (`llm.prompts.N.prompt.text`, `llm.prompts.N`, ...).
fn texts(a: &Attrs<'_>, prefix: &str, keys: &[&str], role: &str) -> Vec<Message> {
    let mut out: Vec<Message> = a
        .indexed(prefix)
        .values()
        .filter_map(|e| keys.iter().find_map(|k| field(e, k)).and_then(to_text))
        .map(|t| super::messages::text_message(role, &t))
        .collect();
    if out.is_empty() {
        if let Some(Value::Array(items)) = a.get(prefix).map(as_json).as_deref() {
            out = items
                .iter()
                .filter_map(Value::as_str)
                .map(|t| super::messages::text_message(role, t))
                .collect();
        }
    }
    out
}

/// `llm.cost.*` as a client-reported cost.
fn reported_cost(a: &Attrs<'_>) -> Option<Cost> {
    let input = a.get("llm.cost.prompt").and_then(as_f64);
    let output = a.get("llm.cost.completion").and_then(as_f64);
    let total = a.get("llm.cost.total").and_then(as_f64);
    if input.is_none() && output.is_none() && total.is_none() {
        return None;
    }
    let input_usd = input.unwrap_or(0.0);
    let output_usd = output.unwrap_or(0.0);
    Some(Cost {
        input_usd,
        output_usd,
        total_usd: total.unwrap_or(input_usd + output_usd),
        price_id: "reported".into(),
        price_table_version: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span_with(attrs: Value) -> Span {
        let mut s = crate::semconv::test_span();
        s.attributes = attrs.as_object().cloned().unwrap_or_default();
        s
    }

    #[test]
    fn llm_span() {
        let s = span_with(json!({
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "llm.provider": "openai",
            "llm.invocation_parameters": "{\"model\": \"gpt-4o-mini\", \"temperature\": 0.1, \"max_tokens\": 50}",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "sys",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "part one",
            "llm.input_messages.1.message.contents.1.message_content.type": "image",
            "llm.input_messages.1.message.contents.2.message_content.text": "part two",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "c1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "search",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{\"q\":\"x\"}",
            "llm.token_count.prompt": 30,
            "llm.token_count.completion": 10,
            "llm.token_count.prompt_details.cache_read": 5,
            "llm.token_count.completion_details.reasoning": 2,
            "llm.tools.0.tool.json_schema": "{\"type\":\"function\",\"function\":{\"name\":\"search\"}}",
            "session.id": "s1",
            "user.id": "u1",
            "metadata": "{\"team\": \"a\"}",
            "tag.tags": ["x", "y"],
            "llm.prompt_template.version": "v3",
            "input.value": "ignored because messages exist",
        }));
        let p = extract(&s).unwrap();
        assert!(p.recognised);
        assert_eq!(p.operation.as_deref(), Some("chat"));
        assert_eq!(p.request_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(p.response_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(p.provider.as_deref(), Some("openai"));
        assert_eq!(p.params.temperature, Some(0.1));
        assert_eq!(p.params.max_tokens, Some(50));
        assert_eq!(p.input_messages.len(), 2);
        assert_eq!(
            p.input_messages[1].content.as_deref(),
            Some("part one\npart two")
        );
        assert_eq!(p.output_messages[0].tool_calls[0].name, "search");
        assert_eq!(p.usage.cache_read_tokens, Some(5));
        assert_eq!(p.usage.reasoning_tokens, Some(2));
        assert_eq!(
            p.tool_definitions,
            Some(json!([{"type": "function", "function": {"name": "search"}}]))
        );
        assert_eq!(p.session_id.as_deref(), Some("s1"));
        assert_eq!(p.user_id.as_deref(), Some("u1"));
        assert_eq!(p.metadata["team"], json!("a"));
        assert_eq!(p.tags, vec!["x", "y"]);
        assert_eq!(p.prompt_version.as_deref(), Some("v3"));
    }

    #[test]
    fn structured_messages_and_value_fallback() {
        let s = span_with(json!({
            "openinference.span.kind": "llm",
            "llm.input_messages": [{"message.role": "user", "message.content": "structured"}],
            "output.value": "plain answer",
            "llm.cost.total": 0.5,
        }));
        let p = extract(&s).unwrap();
        assert_eq!(p.input_messages[0].content.as_deref(), Some("structured"));
        assert_eq!(
            p.output_messages[0].content.as_deref(),
            Some("plain answer")
        );
        assert_eq!(p.output_messages[0].role, "assistant");
        assert_eq!(p.reported_cost.unwrap().total_usd, 0.5);
    }

    #[test]
    fn embedding_and_chain() {
        let s = span_with(json!({
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "embedding.embeddings.0.embedding.text": "hello",
            "llm.token_count.prompt": 2,
        }));
        let p = extract(&s).unwrap();
        assert_eq!(p.operation.as_deref(), Some("embeddings"));
        assert_eq!(p.input_messages[0].content.as_deref(), Some("hello"));

        let chain = span_with(json!({"openinference.span.kind": "CHAIN", "input.value": "x"}));
        assert!(extract(&chain).is_none_or(|p| !p.recognised && p.input_messages.is_empty()));
    }
}
