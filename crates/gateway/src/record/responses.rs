//! OpenAI's Responses API (`/v1/responses`), read into the same convention terms as a chat
//! completion: its input items become chat messages, `instructions` the system instructions,
//! its output items one assistant message (text and function calls), and its `status` a finish
//! reason. A stream is read from its final `response.*` event, which carries the whole response;
//! a stream cut before it is rebuilt from the deltas received, and recorded as failed unless the
//! client cut it. Output text is the text parts of every message item in order, joined as the
//! SDKs' `output_text` joins them (with nothing between).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sightline_model::Attributes;

use super::{copy, json_events, u64_at, ResponseInfo};

/// Request fields the Responses API names differently from chat completions.
pub(super) fn request_attributes(attrs: &mut Attributes, req: &Value) {
    if let Some(max) = req.get("max_output_tokens").filter(|v| !v.is_null()) {
        attrs.insert("gen_ai.request.max_tokens".into(), max.clone());
    }
    copy(attrs, "gen_ai.system_instructions", req, "instructions");
    let input = match req.get("input") {
        Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
        Some(Value::Array(items)) => input_messages(items),
        _ => Vec::new(),
    };
    if !input.is_empty() {
        attrs.insert("gen_ai.input.messages".into(), Value::Array(input));
    }
}

/// Input items as chat messages: messages keep their role, a function or custom tool call
/// becomes an assistant message with a tool call (consecutive calls share one), and a call's
/// output a tool message. Other items (reasoning, references to stored items) are left out.
fn input_messages(items: &[Value]) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some(kind @ ("function_call" | "custom_tool_call")) => {
                // A custom tool's call carries free text as its `input`.
                let arguments = if kind == "function_call" {
                    "arguments"
                } else {
                    "input"
                };
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": item.get("name").cloned().unwrap_or_else(|| json!("")),
                        "arguments": item.get(arguments).cloned().unwrap_or_else(|| json!("")),
                    },
                });
                let previous = messages.last_mut().filter(|m| {
                    m.get("role").and_then(Value::as_str) == Some("assistant")
                        && m.get("content").is_some_and(Value::is_null)
                });
                match previous
                    .and_then(|m| m.get_mut("tool_calls"))
                    .and_then(Value::as_array_mut)
                {
                    Some(calls) => calls.push(call),
                    None => messages
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            Some("function_call_output" | "custom_tool_call_output") => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => json!(s),
                    Some(other) => content(other),
                    None => Value::Null,
                };
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "content": output,
                }));
            }
            None | Some("message") => {
                if let Some(role) = item.get("role").and_then(Value::as_str) {
                    let content = item.get("content").map_or(Value::Null, content);
                    messages.push(json!({"role": role, "content": content}));
                }
            }
            Some(_) => {}
        }
    }
    messages
}

/// A Responses content value in chat form: a string as it is; a list of parts as the text of its
/// text parts when that is all it has, else as chat content parts (text and image URLs).
fn content(value: &Value) -> Value {
    let Value::Array(parts) = value else {
        return value.clone();
    };
    if parts.iter().all(|p| text_of(p).is_some()) {
        let texts: Vec<&str> = parts.iter().filter_map(text_of).collect();
        return json!(texts.join("\n"));
    }
    Value::Array(
        parts
            .iter()
            .filter_map(
                |part| match (text_of(part), part.get("type").and_then(Value::as_str)) {
                    (Some(text), _) => Some(json!({"type": "text", "text": text})),
                    (None, Some("input_image")) => part
                        .get("image_url")
                        .filter(|u| u.is_string())
                        .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
                    _ => None,
                },
            )
            .collect(),
    )
}

/// The text of a text part (`input_text`, `output_text`, `text`).
fn text_of(part: &Value) -> Option<&str> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => part.get("text").and_then(Value::as_str),
        _ => None,
    }
}

/// A non-streamed response body.
pub(super) fn json_body(text: &str) -> ResponseInfo {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => response_object(&v),
        Err(e) => ResponseInfo {
            malformed: Some(format!("response body is not valid JSON: {e}")),
            ..ResponseInfo::default()
        },
    }
}

/// Usage in Responses terms (`input_tokens` already counts the cached ones).
fn usage(info: &mut ResponseInfo, usage: &Value) {
    info.input_tokens = u64_at(usage, &["input_tokens"]);
    info.output_tokens = u64_at(usage, &["output_tokens"]);
    info.total_tokens = u64_at(usage, &["total_tokens"]);
    info.cache_read = u64_at(usage, &["input_tokens_details", "cached_tokens"]);
    info.cache_write = u64_at(usage, &["input_tokens_details", "cache_write_tokens"]);
    info.reasoning = u64_at(usage, &["output_tokens_details", "reasoning_tokens"]);
}

/// A whole response object: the body of a non-streamed call, or the `response` of a stream's
/// final event.
fn response_object(v: &Value) -> ResponseInfo {
    let mut info = ResponseInfo {
        id: v.get("id").and_then(Value::as_str).map(str::to_string),
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        ..ResponseInfo::default()
    };
    if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
        usage(&mut info, u);
    }
    let mut output = Output::default();
    for item in v
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            output.push_text(part.get("text").and_then(Value::as_str));
                            if let Some(Value::Array(lp)) = part.get("logprobs") {
                                output.logprobs.extend(lp.iter().cloned());
                            }
                        }
                        Some("refusal") => {
                            output.push_text(part.get("refusal").and_then(Value::as_str));
                        }
                        _ => {}
                    }
                }
            }
            Some("function_call" | "custom_tool_call") => output.calls.push(ToolCall::of(item)),
            _ => {}
        }
    }
    let status = v.get("status").and_then(Value::as_str);
    if status == Some("failed") {
        let error = v.get("error").filter(|e| !e.is_null());
        let kind = error
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("response_failed");
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("the response failed");
        info.stream_error = Some((kind.to_string(), message.to_string()));
    }
    let finish = match status {
        Some("completed") if !output.calls.is_empty() => Some("tool_calls".to_string()),
        Some("completed") => Some("stop".to_string()),
        Some("incomplete") => Some(
            match v
                .get("incomplete_details")
                .and_then(|d| d.get("reason"))
                .and_then(Value::as_str)
            {
                Some("max_output_tokens") => "length".to_string(),
                Some(other) => other.to_string(),
                None => "incomplete".to_string(),
            },
        ),
        _ => None,
    };
    output.finish(&mut info, finish);
    info
}

/// One function call the model made.
#[derive(Debug, Default, Clone)]
struct ToolCall {
    call_id: Option<String>,
    name: String,
    arguments: String,
}

impl ToolCall {
    /// A `function_call` item, or a `custom_tool_call` one (whose free-text `input` stands for
    /// the arguments).
    fn of(item: &Value) -> Self {
        let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_string);
        Self {
            call_id: text("call_id"),
            name: text("name").unwrap_or_default(),
            arguments: text("arguments")
                .or_else(|| text("input"))
                .unwrap_or_default(),
        }
    }
}

/// The assistant's output, gathered from output items or stream deltas.
#[derive(Debug, Default)]
struct Output {
    text: Option<String>,
    calls: Vec<ToolCall>,
    logprobs: Vec<Value>,
}

impl Output {
    fn push_text(&mut self, text: Option<&str>) {
        if let Some(t) = text {
            self.text.get_or_insert_with(String::new).push_str(t);
        }
    }

    /// Writes the output into `info` as one assistant message, as a chat completion's would be.
    fn finish(self, info: &mut ResponseInfo, finish: Option<String>) {
        if self.text.is_none() && self.calls.is_empty() && finish.is_none() {
            return;
        }
        info.push_message(
            "assistant",
            self.text,
            self.calls
                .into_iter()
                .map(|c| (c.call_id, c.name, c.arguments)),
            finish,
        );
        if !self.logprobs.is_empty() {
            info.logprobs = Some(Value::Array(self.logprobs));
        }
    }
}

/// A streamed response: the final event's response when it came, else what the deltas built.
pub(super) fn stream(text: &str) -> ResponseInfo {
    let mut info = ResponseInfo::default();
    let mut output = Output::default();
    // Function calls by output index, their arguments as they stream.
    let mut calls: BTreeMap<u64, ToolCall> = BTreeMap::new();
    for (event, v) in json_events(text, &mut info.malformed) {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event.event.as_str());
        let index = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(response) = v.get("response").filter(|r| r.is_object()) {
                    let mut whole = response_object(response);
                    whole.malformed = info.malformed.take();
                    return whole;
                }
            }
            "response.created" | "response.in_progress" => {
                if let Some(r) = v.get("response") {
                    info.id = r.get("id").and_then(Value::as_str).map(str::to_string);
                    info.model = r.get("model").and_then(Value::as_str).map(str::to_string);
                }
            }
            "response.output_text.delta" => {
                output.push_text(v.get("delta").and_then(Value::as_str));
                if let Some(Value::Array(lp)) = v.get("logprobs") {
                    output.logprobs.extend(lp.iter().cloned());
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                let item = v.get("item").unwrap_or(&Value::Null);
                if matches!(
                    item.get("type").and_then(Value::as_str),
                    Some("function_call" | "custom_tool_call")
                ) {
                    let call = ToolCall::of(item);
                    let entry = calls.entry(index).or_default();
                    // The done item carries the whole arguments; the added one, none yet.
                    if kind == "response.output_item.done" || entry.name.is_empty() {
                        let streamed = std::mem::take(&mut entry.arguments);
                        *entry = call;
                        if entry.arguments.is_empty() {
                            entry.arguments = streamed;
                        }
                    }
                }
            }
            "response.refusal.delta" => {
                output.push_text(v.get("delta").and_then(Value::as_str));
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let Some(d) = v.get("delta").and_then(Value::as_str) {
                    calls.entry(index).or_default().arguments.push_str(d);
                }
            }
            "error" => {
                // Documented with `code` and `message` on the event; sent nested in `error` too.
                let e = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
                let code = e
                    .get("code")
                    .or_else(|| e.get("type").filter(|_| !std::ptr::eq(e, &v)))
                    .and_then(Value::as_str)
                    .unwrap_or("stream_error");
                let message = e.get("message").and_then(Value::as_str).unwrap_or("");
                info.stream_error = Some((code.to_string(), message.to_string()));
            }
            _ => {}
        }
    }
    // Every Responses stream ends in one of the final events; one that stops before it was cut
    // off upstream (a client that left is recorded as cancelled instead).
    if info.stream_error.is_none() {
        info.malformed
            .get_or_insert_with(|| "the stream ended before its final response event".into());
    }
    output.calls = calls.into_values().collect();
    output.finish(&mut info, None);
    info
}
