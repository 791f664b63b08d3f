//! The OpenAI API: chat completions, legacy completions, embeddings and models.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use crate::gen::{self, count_tokens, Finish, Pieces, Reply, Rng};
use crate::respond::{bad_field, event_stream, json_response, sse, Api, Ctx, Incoming, ToolChoice};
use crate::MockConfig;

const MODELS: [&str; 6] = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
];

/// Text of a message `content`: a string, or the text parts of a list.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Prompt tokens the way OpenAI counts chat input: 3 per message, its role, content, name and
/// tool calls, 3 to prime the reply, plus the tool definitions.
fn chat_prompt_tokens(messages: &[Value], tools: Option<&Value>) -> u64 {
    let mut n = 3;
    for m in messages {
        n += 3;
        n += count_tokens(m.get("role").and_then(Value::as_str).unwrap_or(""));
        n += count_tokens(&content_text(m.get("content")));
        if m.get("name").is_some() {
            n += 1;
        }
        if let Some(calls) = m.get("tool_calls") {
            n += count_tokens(&calls.to_string());
        }
    }
    if let Some(tools) = tools {
        n += count_tokens(&tools.to_string());
    }
    n
}

/// `max_completion_tokens`, or else the older `max_tokens`; a null counts as absent.
#[allow(clippy::result_large_err)]
fn max_tokens(req: &Value) -> Result<Option<u64>, Response> {
    for field in ["max_completion_tokens", "max_tokens"] {
        match req.get(field) {
            None | Some(Value::Null) => continue,
            Some(v) => {
                return v.as_u64().map(Some).ok_or_else(|| {
                    bad_field(
                        Api::OpenAi,
                        field,
                        &format!("{field} must be a non-negative integer"),
                    )
                })
            }
        }
    }
    Ok(None)
}

/// `stop`: a string or a list of up to 4 strings.
#[allow(clippy::result_large_err)]
fn stop_sequences(req: &Value) -> Result<Vec<String>, Response> {
    let bad = || {
        bad_field(
            Api::OpenAi,
            "stop",
            "stop must be a string or a list of up to 4 strings",
        )
    };
    match req.get("stop") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if items.len() <= 4 => items
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// What the content must be: chat's `response_format`, the Responses API's `text.format`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Format {
    Text,
    JsonObject,
    /// JSON valid against this schema.
    JsonSchema(Value),
}

impl Format {
    /// Content in this format.
    pub(crate) fn generate(&self, rng: &mut Rng) -> String {
        match self {
            Format::Text => gen::reply_text(rng),
            Format::JsonObject => gen::json_object(rng),
            Format::JsonSchema(schema) => gen::json_for_schema(rng, schema),
        }
    }
}

#[allow(clippy::result_large_err)]
fn response_format(req: &Value) -> Result<Format, Response> {
    let bad = |message: &str| bad_field(Api::OpenAi, "response_format", message);
    let Some(format) = req.get("response_format").filter(|f| !f.is_null()) else {
        return Ok(Format::Text);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::JsonObject),
        Some("json_schema") => {
            let Some(spec) = format.get("json_schema").filter(|s| s.is_object()) else {
                return Err(bad("response_format.json_schema must be an object"));
            };
            match spec.get("schema") {
                None | Some(Value::Null) => Ok(Format::JsonSchema(json!({"type": "object"}))),
                Some(schema) if schema.is_object() => Ok(Format::JsonSchema(schema.clone())),
                Some(_) => Err(bad("response_format.json_schema.schema must be an object")),
            }
        }
        _ => Err(bad(
            "response_format.type must be text, json_object or json_schema",
        )),
    }
}

/// The name of a chat function tool (`{"type": "function", "function": {"name": ...}}`).
fn function_name(tool: &Value) -> Option<&str> {
    tool.get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
}

/// `tool_choice`, refused as the API would: one other than `none`/`auto` without `tools`, or one
/// naming a function that `tools` does not offer (alone, or in an `allowed_tools` list).
#[allow(clippy::result_large_err)]
fn tool_choice<'a>(req: &'a Value, tools: &[Value]) -> Result<ToolChoice<'a>, Response> {
    let bad = |message: &str| bad_field(Api::OpenAi, "tool_choice", message);
    let Some(choice) = req.get("tool_choice").filter(|c| !c.is_null()) else {
        return Ok(ToolChoice::Auto);
    };
    let offered = |name: &str| tools.iter().any(|t| function_name(t) == Some(name));
    match choice {
        Value::String(mode) if mode == "none" => Ok(ToolChoice::None),
        Value::String(mode) if mode == "auto" => Ok(ToolChoice::Auto),
        Value::String(mode) if mode == "required" => {
            if tools.is_empty() {
                Err(bad("tool_choice is only allowed when tools are specified"))
            } else {
                Ok(ToolChoice::Required)
            }
        }
        Value::String(_) => Err(bad(
            "tool_choice must be none, auto, required or a named function",
        )),
        _ if choice.get("type").and_then(Value::as_str) == Some("allowed_tools") => {
            let allowed = choice.get("allowed_tools");
            let required = match allowed.and_then(|a| a.get("mode")).and_then(Value::as_str) {
                Some("auto") => false,
                Some("required") => true,
                _ => {
                    return Err(bad(
                        "tool_choice.allowed_tools.mode must be auto or required",
                    ))
                }
            };
            let Some(list) = allowed
                .and_then(|a| a.get("tools"))
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
            else {
                return Err(bad(
                    "tool_choice.allowed_tools.tools must be a non-empty list",
                ));
            };
            let mut names = Vec::with_capacity(list.len());
            for (i, tool) in list.iter().enumerate() {
                match function_name(tool) {
                    Some(name) if offered(name) => names.push(name),
                    Some(name) => {
                        return Err(bad(&format!(
                            "tool_choice.allowed_tools.tools[{i}] names function {name:?}, \
                             which tools does not offer"
                        )))
                    }
                    None => {
                        return Err(bad(&format!(
                            "tool_choice.allowed_tools.tools[{i}].function.name is required"
                        )))
                    }
                }
            }
            Ok(ToolChoice::Allowed { names, required })
        }
        _ => {
            let Some(name) = function_name(choice) else {
                return Err(bad("tool_choice.function.name is required"));
            };
            if offered(name) {
                Ok(ToolChoice::Function(name))
            } else {
                Err(bad(&format!(
                    "tool_choice names function {name:?}, which tools does not offer"
                )))
            }
        }
    }
}

/// What shapes every choice of a chat completion.
struct Options<'a> {
    max_tokens: Option<u64>,
    stops: Vec<String>,
    top: Option<u64>,
    format: Format,
    /// The tools offered, and which of them may be called.
    tools: &'a [Value],
    choice: ToolChoice<'a>,
}

struct Choice {
    /// The content, or the tool call's arguments.
    pieces: Pieces,
    finish: Finish,
    /// `(id, name, tokens of the name)` of a tool call.
    tool_call: Option<(String, String, u64)>,
    logprobs: Vec<Value>,
}

impl Choice {
    fn finish_reason(&self) -> &'static str {
        match (&self.finish, &self.tool_call) {
            (Finish::Length, _) => "length",
            (_, Some(_)) => "tool_calls",
            _ => "stop",
        }
    }

    fn completion_tokens(&self) -> u64 {
        self.tool_call.as_ref().map_or(0, |(_, _, n)| *n) + self.pieces.tokens
    }
}

fn make_choice(rng: &mut Rng, messages: &[Value], opts: &Options<'_>) -> Choice {
    // No tool is called right after a tool's result, unless one is required or named.
    let after_result = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("tool");
    let chosen = opts
        .choice
        .pick(opts.tools, |t| t.get("function"), after_result);
    if let Some(function) = chosen {
        let gen::ToolCall {
            id,
            name,
            name_tokens,
            pieces,
        } = gen::tool_call(
            rng,
            function.get("name").and_then(Value::as_str),
            function.get("parameters"),
            "call",
            opts.max_tokens,
        );
        let finish = if pieces.truncated {
            Finish::Length
        } else {
            Finish::Complete
        };
        return Choice {
            pieces,
            finish,
            tool_call: Some((id, name, name_tokens)),
            logprobs: Vec::new(),
        };
    }
    let text = opts.format.generate(rng);
    let Reply { pieces, finish } = gen::finish_text(&text, opts.max_tokens, &opts.stops);
    let logprobs = match opts.top {
        Some(top) => pieces
            .pieces
            .iter()
            .map(|p| gen::token_logprob(rng, p, top))
            .collect(),
        None => Vec::new(),
    };
    Choice {
        pieces,
        finish,
        tool_call: None,
        logprobs,
    }
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(config): State<Arc<MockConfig>>,
    request: Incoming,
) -> Response {
    let (path, headers, body) = request.parts();
    let (mut ctx, req, model) = match Ctx::with_model(Api::OpenAi, config, path, headers, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(messages) = req
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return bad_field(
            Api::OpenAi,
            "messages",
            "messages must be a non-empty array",
        );
    };
    let n = req.get("n").and_then(Value::as_u64).unwrap_or(1);
    if !(1..=8).contains(&n) {
        return bad_field(Api::OpenAi, "n", "n must be between 1 and 8");
    }
    let top = if req.get("logprobs").and_then(Value::as_bool) == Some(true) {
        let top = req.get("top_logprobs").and_then(Value::as_u64).unwrap_or(0);
        if top > 20 {
            return bad_field(
                Api::OpenAi,
                "top_logprobs",
                "top_logprobs must be at most 20",
            );
        }
        Some(top)
    } else {
        None
    };
    let tools = req
        .get("tools")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let opts = match (
        max_tokens(&req),
        stop_sequences(&req),
        response_format(&req),
        tool_choice(&req, tools),
    ) {
        (Ok(max_tokens), Ok(stops), Ok(format), Ok(choice)) => Options {
            max_tokens,
            stops,
            top,
            format,
            tools,
            choice,
        },
        (Err(r), _, _, _) | (_, Err(r), _, _) | (_, _, Err(r), _) | (_, _, _, Err(r)) => return r,
    };
    if let Err(r) = ctx.before_response(Api::OpenAi).await {
        return r;
    }
    let prompt_tokens = chat_prompt_tokens(messages, req.get("tools"));
    let choices: Vec<Choice> = (0..n)
        .map(|_| make_choice(&mut ctx.rng, messages, &opts))
        .collect();
    let completion_tokens: u64 = choices.iter().map(Choice::completion_tokens).sum();
    let id = format!("chatcmpl-{}", ctx.rng.alnum(29));
    let created = ctx.created();
    let stream = req.get("stream").and_then(Value::as_bool) == Some(true);

    if !stream {
        let out: Vec<Value> = choices
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut message = json!({"role": "assistant", "content": null, "refusal": null});
                match &c.tool_call {
                    Some((id, name, _)) => {
                        message["tool_calls"] = json!([{"id": id, "type": "function",
                            "function": {"name": name, "arguments": c.pieces.text()}}]);
                    }
                    None => message["content"] = json!(c.pieces.text()),
                }
                let logprobs = if top.is_some() && c.tool_call.is_none() {
                    json!({"content": c.logprobs, "refusal": null})
                } else {
                    Value::Null
                };
                json!({"index": i, "message": message, "logprobs": logprobs,
                    "finish_reason": c.finish_reason()})
            })
            .collect();
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": out,
            "usage": usage(prompt_tokens, completion_tokens),
            "system_fingerprint": "fp_sightline_mock",
        });
        return json_response(&ctx, &body);
    }

    let include_usage = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_sightline_mock",
            "choices": choices,
        });
        if include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        sse(None, &c.to_string())
    };
    let mut head = Vec::new();
    let mut paced = Vec::new();
    let mut tail = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        let first = match &c.tool_call {
            Some((call_id, name, _)) => json!({"role": "assistant", "content": null,
                "tool_calls": [{"index": 0, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": ""}}], "refusal": null}),
            None => json!({"role": "assistant", "content": "", "refusal": null}),
        };
        head.push(chunk(
            json!([{"index": i, "delta": first, "logprobs": null, "finish_reason": null}]),
            None,
        ));
        for (k, piece) in c.pieces.pieces.iter().enumerate() {
            let (delta, logprobs) = match &c.tool_call {
                Some(_) => (
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    Value::Null,
                ),
                None => (
                    json!({"content": piece}),
                    c.logprobs
                        .get(k)
                        .map_or(Value::Null, |lp| json!({"content": [lp], "refusal": null})),
                ),
            };
            paced.push(chunk(
                json!([{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": null}]),
                None,
            ));
        }
        tail.push(chunk(
            json!([{"index": i, "delta": {}, "logprobs": null,
                "finish_reason": c.finish_reason()}]),
            None,
        ));
    }
    if include_usage {
        tail.push(chunk(
            json!([]),
            Some(usage(prompt_tokens, completion_tokens)),
        ));
    }
    tail.push(sse(None, "[DONE]"));
    event_stream(&ctx, head, paced, tail)
}

/// Most prompts in one legacy completion request, and most inputs in one embeddings request.
const MAX_INPUTS: usize = 2048;

/// A legacy completion's prompts as `(text, tokens)`: a string, a list of strings, a list of
/// token ids, or a list of lists of token ids.
#[allow(clippy::result_large_err)]
fn prompts(req: &Value) -> Result<Vec<(String, u64)>, Response> {
    let bad = |message: &str| bad_field(Api::OpenAi, "prompt", message);
    let tokens = |ids: &[Value]| -> Result<(String, u64), Response> {
        let ranks = ids
            .iter()
            .map(|id| id.as_u64().and_then(|id| u32::try_from(id).ok()))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| bad("prompt token ids must be non-negative integers"))?;
        let bytes = gen::bpe().decode_bytes(&ranks).map_err(|e| {
            bad(&format!(
                "prompt holds token id {}, unknown to the tokenizer",
                e.token
            ))
        })?;
        Ok((
            String::from_utf8_lossy(&bytes).into_owned(),
            ranks.len() as u64,
        ))
    };
    let items = match req.get("prompt") {
        Some(Value::String(s)) => return Ok(vec![(s.clone(), count_tokens(s))]),
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(bad("prompt must be a string or a non-empty list")),
    };
    if items.iter().all(Value::is_number) {
        return Ok(vec![tokens(items)?]);
    }
    if items.len() > MAX_INPUTS {
        return Err(bad(&format!("prompt holds at most {MAX_INPUTS} prompts")));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok((s.clone(), count_tokens(s))),
            Value::Array(ids) if !ids.is_empty() => tokens(ids),
            _ => Err(bad(
                "prompt must be strings, a list of token ids, or lists of token ids",
            )),
        })
        .collect()
}

/// `POST /v1/completions` (legacy text completions).
pub(crate) async fn completions(
    State(config): State<Arc<MockConfig>>,
    request: Incoming,
) -> Response {
    let (path, headers, body) = request.parts();
    let (mut ctx, req, model) = match Ctx::with_model(Api::OpenAi, config, path, headers, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let prompts = match prompts(&req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let logprobs = req.get("logprobs").and_then(Value::as_u64);
    if logprobs.is_some_and(|l| l > 5) {
        return bad_field(Api::OpenAi, "logprobs", "logprobs must be at most 5");
    }
    let n = match req.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=8).contains(&n) => n,
            _ => return bad_field(Api::OpenAi, "n", "n must be between 1 and 8"),
        },
    };
    let echo = match req.get("echo") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return bad_field(Api::OpenAi, "echo", "echo must be a boolean"),
    };
    let (max, stops) = match (max_tokens(&req), stop_sequences(&req)) {
        (Ok(max), Ok(stops)) => (max, stops),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(r) = ctx.before_response(Api::OpenAi).await {
        return r;
    }
    // One choice per prompt and `n`, in order: prompt 0's n choices, then prompt 1's, ...
    let replies: Vec<(&str, Reply)> = prompts
        .iter()
        .flat_map(|(prompt, _)| std::iter::repeat_n(prompt.as_str(), n as usize))
        .map(|prompt| {
            let text = gen::reply_text(&mut ctx.rng);
            (prompt, gen::finish_text(&text, max, &stops))
        })
        .collect();
    let finish = |r: &Reply| {
        if r.finish == Finish::Length {
            "length"
        } else {
            "stop"
        }
    };
    let prompt_tokens: u64 = prompts.iter().map(|(_, t)| t).sum();
    let completion_tokens: u64 = replies.iter().map(|(_, r)| r.pieces.tokens).sum();
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens});
    let legacy_logprobs = |rng: &mut Rng, pieces: &[String], offset: usize| -> Value {
        let Some(top) = logprobs else {
            return Value::Null;
        };
        let mut tokens = Vec::new();
        let mut token_logprobs = Vec::new();
        let mut tops = Vec::new();
        let mut offsets = Vec::new();
        let mut at = offset;
        for p in pieces {
            let lp = gen::token_logprob(rng, p, top.max(1));
            tokens.push(json!(p));
            token_logprobs.push(lp["logprob"].clone());
            let mut alts = serde_json::Map::new();
            if let Some(list) = lp["top_logprobs"].as_array() {
                for a in list.iter().take(top as usize) {
                    if let Some(t) = a["token"].as_str() {
                        alts.insert(t.to_string(), a["logprob"].clone());
                    }
                }
            }
            tops.push(Value::Object(alts));
            offsets.push(json!(at));
            at += p.len();
        }
        json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops,
            "text_offset": offsets})
    };
    let id = format!("cmpl-{}", ctx.rng.alnum(29));
    let created = ctx.created();
    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        let choices: Vec<Value> = replies
            .iter()
            .enumerate()
            .map(|(i, (prompt, reply))| {
                let lp = legacy_logprobs(&mut ctx.rng, &reply.pieces.pieces, prompt.len());
                let text = if echo {
                    format!("{prompt}{}", reply.pieces.text())
                } else {
                    reply.pieces.text()
                };
                json!({"text": text, "index": i, "logprobs": lp, "finish_reason": finish(reply)})
            })
            .collect();
        let body = json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage,
            "system_fingerprint": "fp_sightline_mock",
        });
        return json_response(&ctx, &body);
    }
    let include_usage = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut c = json!({"id": id, "object": "text_completion", "created": created,
            "model": model, "system_fingerprint": "fp_sightline_mock", "choices": choices});
        if include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        sse(None, &c.to_string())
    };
    let mut paced = Vec::new();
    for (i, (prompt, reply)) in replies.iter().enumerate() {
        if echo {
            paced.push(chunk(
                json!([{"text": prompt, "index": i, "logprobs": null, "finish_reason": null}]),
                None,
            ));
        }
        let pieces = &reply.pieces.pieces;
        let mut offset = prompt.len();
        for (k, piece) in pieces.iter().enumerate() {
            let lp = legacy_logprobs(&mut ctx.rng, std::slice::from_ref(piece), offset);
            offset += piece.len();
            let finish_reason = if k + 1 == pieces.len() {
                json!(finish(reply))
            } else {
                Value::Null
            };
            paced.push(chunk(
                json!([{"text": piece, "index": i, "logprobs": lp,
                    "finish_reason": finish_reason}]),
                None,
            ));
        }
        // Nothing generated (max_tokens 0, or a stop sequence at once): the finish still comes.
        if pieces.is_empty() {
            paced.push(chunk(
                json!([{"text": "", "index": i, "logprobs": null,
                    "finish_reason": finish(reply)}]),
                None,
            ));
        }
    }
    let mut tail = Vec::new();
    if include_usage {
        tail.push(chunk(json!([]), Some(usage)));
    }
    tail.push(sse(None, "[DONE]"));
    event_stream(&ctx, Vec::new(), paced, tail)
}

/// `POST /v1/embeddings`: unit vectors derived from each input, as floats or base64 of
/// little-endian f32 (what the OpenAI SDKs ask for by default).
pub(crate) async fn embeddings(
    State(config): State<Arc<MockConfig>>,
    request: Incoming,
) -> Response {
    let (path, headers, body) = request.parts();
    let (ctx, req, model) = match Ctx::with_model(Api::OpenAi, config, path, headers, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Inputs as (bytes to embed, token count).
    let inputs: Vec<(Vec<u8>, u64)> = match req.get("input") {
        Some(Value::String(s)) => vec![(s.clone().into_bytes(), count_tokens(s))],
        Some(Value::Array(items))
            if items.len() > MAX_INPUTS && !items.iter().all(Value::is_u64) =>
        {
            return bad_field(
                Api::OpenAi,
                "input",
                &format!(
                    "input holds at most {MAX_INPUTS} inputs, got {}",
                    items.len()
                ),
            )
        }
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_string) {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| (s.as_bytes().to_vec(), count_tokens(s)))
                    .collect()
            } else if items.iter().all(Value::is_u64) {
                vec![(
                    Value::Array(items.clone()).to_string().into_bytes(),
                    items.len() as u64,
                )]
            } else if items.iter().all(Value::is_array) {
                items
                    .iter()
                    .map(|t| {
                        let len = t.as_array().map_or(0, Vec::len) as u64;
                        (t.to_string().into_bytes(), len)
                    })
                    .collect()
            } else {
                return bad_field(
                    Api::OpenAi,
                    "input",
                    "input must be strings or token arrays",
                );
            }
        }
        _ => {
            return bad_field(
                Api::OpenAi,
                "input",
                "input must be a non-empty string or list",
            )
        }
    };
    // The model's own size, which `dimensions` may shorten but not exceed.
    let native_dims: u64 = if model.contains("large") { 3072 } else { 1536 };
    let dims = match req.get("dimensions") {
        None | Some(Value::Null) => native_dims,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=native_dims).contains(&d) => d,
            _ => {
                return bad_field(
                    Api::OpenAi,
                    "dimensions",
                    &format!("dimensions must be between 1 and {native_dims} for {model}"),
                )
            }
        },
    } as usize;
    let base64_format = match req.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return bad_field(
                Api::OpenAi,
                "encoding_format",
                "encoding_format must be float or base64",
            )
        }
    };
    if let Err(r) = ctx.before_response(Api::OpenAi).await {
        return r;
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let v = gen::embedding(ctx.config.seed, text, dims);
            let embedding = if base64_format {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|(_, n)| n).sum();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    json_response(&ctx, &body)
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "sightline-mock"})
}

/// `GET /v1/models`.
pub(crate) async fn models(State(config): State<Arc<MockConfig>>, request: Incoming) -> Response {
    let (path, headers, _) = request.parts();
    let (ctx, _) = match Ctx::new(Api::OpenAi, config, path, headers, b"") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = ctx.before_response(Api::OpenAi).await {
        return r;
    }
    let data: Vec<Value> = MODELS.iter().map(|m| model_object(m)).collect();
    json_response(&ctx, &json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}`.
pub(crate) async fn model(
    State(config): State<Arc<MockConfig>>,
    Path(id): Path<String>,
    request: Incoming,
) -> Response {
    let (path, headers, _) = request.parts();
    let id = id.as_str();
    let (ctx, _) = match Ctx::new(Api::OpenAi, config, path, headers, b"") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = ctx.before_response(Api::OpenAi).await {
        return r;
    }
    if !MODELS.contains(&id) {
        return crate::respond::error(
            Api::OpenAi,
            axum::http::StatusCode::NOT_FOUND,
            "model_not_found",
            &format!("The model `{id}` does not exist"),
            Some("model"),
        );
    }
    json_response(&ctx, &model_object(id))
}
