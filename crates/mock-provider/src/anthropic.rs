//! The Anthropic Messages API, with and without streaming, tool use included.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use crate::gen::{self, count_tokens, Finish, Reply};
use crate::respond::{bad_field, event_stream, json_response, sse, Api, Ctx, Incoming, ToolChoice};
use crate::MockConfig;

/// Text of a `content` (string or blocks) or `system` value, tool inputs and results included.
fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                Some("tool_use") => b.get("input").map(Value::to_string).unwrap_or_default(),
                Some("tool_result") => text_of(b.get("content")),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Whether the last message is the user returning tool results.
fn ends_with_tool_result(messages: &[Value]) -> bool {
    messages
        .last()
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        })
}

/// `stop_sequences`: a list of strings.
#[allow(clippy::result_large_err)]
fn stop_sequences(req: &Value) -> Result<Vec<String>, Response> {
    let bad = || {
        bad_field(
            Api::Anthropic,
            "stop_sequences",
            "stop_sequences: must be a list of strings",
        )
    };
    match req.get("stop_sequences") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// `tool_choice`, refused as the API would: `any` or `tool` without `tools`, or a `tool` that
/// `tools` does not offer.
#[allow(clippy::result_large_err)]
fn tool_choice(req: &Value) -> Result<ToolChoice<'_>, Response> {
    let bad = |message: &str| bad_field(Api::Anthropic, "tool_choice", message);
    let Some(choice) = req.get("tool_choice").filter(|c| !c.is_null()) else {
        return Ok(ToolChoice::Auto);
    };
    let tools = req
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty());
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(ToolChoice::Auto),
        Some("none") => Ok(ToolChoice::None),
        Some("any") if tools.is_some() => Ok(ToolChoice::Required),
        Some("tool") => {
            let Some(name) = choice.get("name").and_then(Value::as_str) else {
                return Err(bad("tool_choice.name: field required"));
            };
            let offered = tools
                .into_iter()
                .flatten()
                .any(|t| t.get("name").and_then(Value::as_str) == Some(name));
            if offered {
                Ok(ToolChoice::Function(name))
            } else {
                Err(bad(&format!(
                    "tool_choice.name: no tool named {name:?} in tools"
                )))
            }
        }
        Some("any") => Err(bad("tool_choice: any requires tools")),
        _ => Err(bad("tool_choice.type must be auto, any, tool or none")),
    }
}

/// `messages`: a list of at least one message.
#[allow(clippy::result_large_err)]
fn messages_of(req: &Value) -> Result<&[Value], Response> {
    req.get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .map(Vec::as_slice)
        .ok_or_else(|| {
            bad_field(
                Api::Anthropic,
                "messages",
                "messages: at least one message is required",
            )
        })
}

/// What a request's input counts in tokens: the system prompt, each message with its framing,
/// and the tool definitions. `/v1/messages/count_tokens` answers the same number that
/// `/v1/messages` reports as `usage.input_tokens`.
fn input_tokens(req: &Value, messages: &[Value]) -> u64 {
    let mut tokens = count_tokens(&text_of(req.get("system")));
    for m in messages {
        tokens += 4 + count_tokens(&text_of(m.get("content")));
    }
    if let Some(tools) = req.get("tools") {
        tokens += count_tokens(&tools.to_string());
    }
    tokens
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_message_tokens(
    State(config): State<Arc<MockConfig>>,
    request: Incoming,
) -> Response {
    let (path, headers, body) = request.parts();
    let (ctx, req, _model) = match Ctx::with_model(Api::Anthropic, config, path, headers, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let messages = match (messages_of(&req), tool_choice(&req)) {
        (Ok(m), Ok(_)) => m,
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(r) = ctx.before_response(Api::Anthropic).await {
        return r;
    }
    json_response(&ctx, &json!({"input_tokens": input_tokens(&req, messages)}))
}

/// `POST /v1/messages`.
pub(crate) async fn messages(State(config): State<Arc<MockConfig>>, request: Incoming) -> Response {
    let (path, headers, body) = request.parts();
    let (mut ctx, req, model) = match Ctx::with_model(Api::Anthropic, config, path, headers, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let max_tokens = match req.get("max_tokens") {
        None | Some(Value::Null) => {
            return bad_field(Api::Anthropic, "max_tokens", "max_tokens: field required")
        }
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => {
                return bad_field(
                    Api::Anthropic,
                    "max_tokens",
                    "max_tokens: must be an integer of at least 1",
                )
            }
        },
    };
    let (messages, stops, choice) =
        match (messages_of(&req), stop_sequences(&req), tool_choice(&req)) {
            (Ok(m), Ok(s), Ok(c)) => (m, s, c),
            (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
        };
    if let Err(r) = ctx.before_response(Api::Anthropic).await {
        return r;
    }
    let input_tokens = input_tokens(&req, messages);

    let tools = req
        .get("tools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let tool = choice.pick(tools, Some, ends_with_tool_result(messages));
    let (pieces, block, stop_reason, stop_sequence, output_tokens) = match tool {
        Some(t) => {
            let gen::ToolCall {
                id,
                name,
                name_tokens,
                pieces,
            } = gen::tool_call(
                &mut ctx.rng,
                t.get("name").and_then(Value::as_str),
                t.get("input_schema"),
                "toolu",
                Some(max_tokens),
            );
            // Arguments cut by max_tokens are not a whole object; the input is then empty.
            let input: Value = serde_json::from_str(&pieces.text()).unwrap_or_else(|_| json!({}));
            let tokens = name_tokens + pieces.tokens;
            let stop_reason = if pieces.truncated {
                "max_tokens"
            } else {
                "tool_use"
            };
            (
                pieces,
                json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                stop_reason,
                Value::Null,
                tokens,
            )
        }
        None => {
            let text = gen::reply_text(&mut ctx.rng);
            let Reply { pieces, finish } = gen::finish_text(&text, Some(max_tokens), &stops);
            let (stop_reason, stop_sequence) = match finish {
                Finish::Complete => ("end_turn", Value::Null),
                Finish::Length => ("max_tokens", Value::Null),
                Finish::Stop(s) => ("stop_sequence", json!(s)),
            };
            let tokens = pieces.tokens;
            (
                pieces.clone(),
                json!({"type": "text", "text": pieces.text()}),
                stop_reason,
                stop_sequence,
                tokens,
            )
        }
    };
    let id = format!("msg_{}", ctx.rng.alnum(24));
    let usage = json!({"input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});

    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        let body = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        });
        return json_response(&ctx, &body);
    }

    let is_tool = block.get("type").and_then(Value::as_str) == Some("tool_use");
    let start_block = if is_tool {
        let mut b = block.clone();
        b["input"] = json!({});
        b
    } else {
        json!({"type": "text", "text": ""})
    };
    let head = vec![
        sse(
            Some("message_start"),
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
            .to_string(),
        ),
        sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block": start_block})
                .to_string(),
        ),
        sse(Some("ping"), r#"{"type": "ping"}"#),
    ];
    let paced = pieces
        .pieces
        .iter()
        .map(|p| {
            let delta = if is_tool {
                json!({"type": "input_json_delta", "partial_json": p})
            } else {
                json!({"type": "text_delta", "text": p})
            };
            sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta": delta}).to_string(),
            )
        })
        .collect();
    let tail = vec![
        sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": 0}).to_string(),
        ),
        sse(
            Some("message_delta"),
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": output_tokens}})
            .to_string(),
        ),
        sse(Some("message_stop"), r#"{"type":"message_stop"}"#),
    ];
    event_stream(&ctx, head, paced, tail)
}
