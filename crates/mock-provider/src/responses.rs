//! The OpenAI Responses API (`POST /v1/responses`), with and without streaming, function tools
//! included.
//!
//! A stream ends in `response.completed` (or `response.incomplete`) carrying the very object the
//! same request answers without streaming: content, ids and `created_at` are derived from the
//! request without its stream fields, so streaming changes how the answer arrives and nothing
//! else.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use crate::gen::{self, count_tokens, Pieces, Rng};
use crate::openai::{content_text, Format};
use crate::respond::{bad_field, event_stream, json_response, sse, Api, Ctx, Incoming, ToolChoice};
use crate::MockConfig;

/// One item of `input`, as far as the answer depends on it.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// A message: its role and the text of its content.
    Message { role: String, text: String },
    /// A function call made earlier in the conversation.
    FunctionCall { name: String, arguments: String },
    /// What a function call returned.
    FunctionCallOutput { output: String },
}

/// The roles a message item may have.
const ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];

/// `input`: a string (one user message) or a non-empty list of items.
#[allow(clippy::result_large_err)]
fn input_items(req: &Value) -> Result<Vec<Item>, Response> {
    let bad = |message: &str| bad_field(Api::OpenAi, "input", message);
    let items = match req.get("input") {
        Some(Value::String(s)) => {
            return Ok(vec![Item::Message {
                role: "user".to_string(),
                text: s.clone(),
            }])
        }
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(bad("input must be a string or a non-empty list of items")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| input_item(item).map_err(|problem| bad(&format!("input[{i}]: {problem}"))))
        .collect()
}

/// One item of an `input` list: a message (with or without `"type": "message"`), a
/// `function_call` or a `function_call_output`. The error says what is wrong with it.
fn input_item(item: &Value) -> Result<Item, String> {
    let string = |field: &str| {
        item.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{field} must be a string"))
    };
    // Content and output are a string or a list of parts; the parts' text is what counts.
    let text_or_parts = |field: &str| {
        item.get(field)
            .filter(|v| v.is_string() || v.is_array())
            .map(|v| content_text(Some(v)))
            .ok_or_else(|| format!("{field} must be a string or a list of parts"))
    };
    match item.get("type").and_then(Value::as_str) {
        None | Some("message") => {
            let role = item
                .get("role")
                .and_then(Value::as_str)
                .filter(|r| ROLES.contains(r))
                .ok_or("role must be user, assistant, system or developer")?;
            Ok(Item::Message {
                role: role.to_string(),
                text: text_or_parts("content")?,
            })
        }
        Some("function_call") => {
            string("call_id")?;
            Ok(Item::FunctionCall {
                name: string("name")?,
                arguments: string("arguments")?,
            })
        }
        Some("function_call_output") => {
            string("call_id")?;
            Ok(Item::FunctionCallOutput {
                output: text_or_parts("output")?,
            })
        }
        Some(other) => Err(format!(
            "type {other:?} is not message, function_call or function_call_output"
        )),
    }
}

/// Input tokens the way chat completions count messages: 3 to prime the reply, and 3 per item
/// plus its text (a message's role, a call's name and arguments, a call's output), with
/// `instructions` counted as a developer message before the items; then the tool definitions.
fn input_tokens(instructions: Option<&str>, items: &[Item], tools: &[Value]) -> u64 {
    let mut n = 3;
    if let Some(instructions) = instructions {
        n += 3 + count_tokens("developer") + count_tokens(instructions);
    }
    for item in items {
        n += 3 + match item {
            Item::Message { role, text } => count_tokens(role) + count_tokens(text),
            Item::FunctionCall { name, arguments } => count_tokens(name) + count_tokens(arguments),
            Item::FunctionCallOutput { output } => count_tokens(output),
        };
    }
    if !tools.is_empty() {
        n += count_tokens(&json!(tools).to_string());
    }
    n
}

/// `tools`: function tools (`{"type": "function", "name", ...}`), each named. The mock runs no
/// built-in tools, so it refuses them rather than answering as if it had.
#[allow(clippy::result_large_err)]
fn tools(req: &Value) -> Result<&[Value], Response> {
    let bad = |message: &str| bad_field(Api::OpenAi, "tools", message);
    let tools = match req.get("tools") {
        None | Some(Value::Null) => return Ok(&[]),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(bad("tools must be a list")),
    };
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(bad(&format!(
                "tools[{i}].type must be function (the mock provider runs no built-in tools)"
            )));
        }
        if !tool.get("name").is_some_and(Value::is_string) {
            return Err(bad(&format!("tools[{i}].name must be a string")));
        }
    }
    Ok(tools)
}

/// The name of a flat function tool (`{"type": "function", "name": ...}`).
fn tool_name(tool: &Value) -> Option<&str> {
    tool.get("name").and_then(Value::as_str)
}

/// `tool_choice`, refused as the API would: `required` without `tools`, or a function that
/// `tools` does not offer (named alone or in an `allowed_tools` list).
#[allow(clippy::result_large_err)]
fn tool_choice<'a>(req: &'a Value, tools: &[Value]) -> Result<ToolChoice<'a>, Response> {
    let bad = |message: &str| bad_field(Api::OpenAi, "tool_choice", message);
    let choice = match req.get("tool_choice") {
        None | Some(Value::Null) => return Ok(ToolChoice::Auto),
        Some(choice) => choice,
    };
    let offered = |name: &str| tools.iter().any(|t| tool_name(t) == Some(name));
    if let Value::String(mode) = choice {
        return match mode.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" if !tools.is_empty() => Ok(ToolChoice::Required),
            "required" => Err(bad("tool_choice is only allowed when tools are specified")),
            _ => Err(bad(
                "tool_choice must be none, auto, required or a named function",
            )),
        };
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("function") => {
            let Some(name) = choice.get("name").and_then(Value::as_str) else {
                return Err(bad("tool_choice.name is required"));
            };
            if offered(name) {
                Ok(ToolChoice::Function(name))
            } else {
                Err(bad(&format!(
                    "tool_choice names function {name:?}, which tools does not offer"
                )))
            }
        }
        Some("allowed_tools") => {
            let required = match choice.get("mode").and_then(Value::as_str) {
                Some("auto") => false,
                Some("required") => true,
                _ => return Err(bad("tool_choice.mode must be auto or required")),
            };
            let Some(allowed) = choice
                .get("tools")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
            else {
                return Err(bad("tool_choice.tools must be a non-empty list"));
            };
            for (i, tool) in allowed.iter().enumerate() {
                match tool_name(tool) {
                    Some(name) if offered(name) => {}
                    Some(name) => {
                        return Err(bad(&format!(
                            "tool_choice.tools[{i}] names function {name:?}, which tools does not offer"
                        )))
                    }
                    None => return Err(bad(&format!("tool_choice.tools[{i}].name is required"))),
                }
            }
            Ok(ToolChoice::Allowed {
                names: allowed.iter().filter_map(tool_name).collect(),
                required,
            })
        }
        _ => Err(bad(
            "tool_choice must be none, auto, required, {\"type\": \"function\", \"name\": ...} \
             or {\"type\": \"allowed_tools\", ...}",
        )),
    }
}

/// `max_output_tokens`: at least 1 (the API asks for 16; the mock takes smaller limits, so tests
/// can cut a reply short); a null counts as absent.
#[allow(clippy::result_large_err)]
fn max_output_tokens(req: &Value) -> Result<Option<u64>, Response> {
    match req.get("max_output_tokens") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(bad_field(
                Api::OpenAi,
                "max_output_tokens",
                "max_output_tokens must be an integer of at least 1",
            )),
        },
    }
}

/// `text.format`: what the content must be, and the format as the response echoes it.
#[allow(clippy::result_large_err)]
fn text_format(req: &Value) -> Result<(Format, Value), Response> {
    let bad = |field: &str, message: &str| bad_field(Api::OpenAi, field, message);
    let plain = || Ok((Format::Text, json!({"type": "text"})));
    let text = match req.get("text") {
        None | Some(Value::Null) => return plain(),
        Some(text) if text.is_object() => text,
        Some(_) => return Err(bad("text", "text must be an object")),
    };
    let Some(format) = text.get("format").filter(|f| !f.is_null()) else {
        return plain();
    };
    let kind = match format.get("type").and_then(Value::as_str) {
        Some("text") => Format::Text,
        Some("json_object") => Format::JsonObject,
        Some("json_schema") => {
            if !format.get("name").is_some_and(Value::is_string) {
                return Err(bad(
                    "text.format.name",
                    "text.format.name is required for json_schema",
                ));
            }
            match format.get("schema") {
                Some(schema) if schema.is_object() => Format::JsonSchema(schema.clone()),
                _ => {
                    return Err(bad(
                        "text.format.schema",
                        "text.format.schema must be an object",
                    ))
                }
            }
        }
        _ => {
            return Err(bad(
                "text.format.type",
                "text.format.type must be text, json_object or json_schema",
            ))
        }
    };
    Ok((kind, format.clone()))
}

/// The request's `field` as given, `default` when absent or null; a value `valid` refuses is a
/// 400 naming the field.
#[allow(clippy::result_large_err)]
fn echoed(
    req: &Value,
    field: &str,
    valid: fn(&Value) -> bool,
    expected: &str,
    default: Value,
) -> Result<Value, Response> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) if valid(v) => Ok(v.clone()),
        Some(_) => Err(bad_field(
            Api::OpenAi,
            field,
            &format!("{field} must be {expected}"),
        )),
    }
}

/// `temperature` or `top_p`: a number from 0 to `max`, 1.0 when absent, echoed as a float.
#[allow(clippy::result_large_err)]
fn sampling(req: &Value, field: &str, max: f64) -> Result<Value, Response> {
    match req.get(field) {
        None | Some(Value::Null) => Ok(json!(1.0)),
        Some(v) => v
            .as_f64()
            .filter(|x| (0.0..=max).contains(x))
            .map(|x| json!(x))
            .ok_or_else(|| {
                bad_field(
                    Api::OpenAi,
                    field,
                    &format!("{field} must be a number from 0 to {max}"),
                )
            }),
    }
}

/// A request, checked: what shapes the answer, and what the response object echoes.
struct Checked<'a> {
    items: Vec<Item>,
    tools: &'a [Value],
    choice: ToolChoice<'a>,
    max_output_tokens: Option<u64>,
    format: Format,
    /// The response object but for `id`, `created_at`, `status`, `incomplete_details`,
    /// `output` and `usage`.
    echo: Value,
}

#[allow(clippy::result_large_err)]
fn check<'a>(req: &'a Value, model: &str) -> Result<Checked<'a>, Response> {
    let items = input_items(req)?;
    let tools = tools(req)?;
    let choice = tool_choice(req, tools)?;
    let max_output_tokens = max_output_tokens(req)?;
    let (format, format_echo) = text_format(req)?;
    let is_string: fn(&Value) -> bool = Value::is_string;
    let is_bool: fn(&Value) -> bool = Value::is_boolean;
    let echo = json!({
        "object": "response",
        "error": null,
        "instructions": echoed(req, "instructions", is_string, "a string", Value::Null)?,
        "max_output_tokens": max_output_tokens,
        "model": model,
        "parallel_tool_calls": echoed(req, "parallel_tool_calls", is_bool, "a boolean", json!(true))?,
        "previous_response_id":
            echoed(req, "previous_response_id", is_string, "a string", Value::Null)?,
        "reasoning": {"effort": null, "summary": null},
        "store": echoed(req, "store", is_bool, "a boolean", json!(true))?,
        "temperature": sampling(req, "temperature", 2.0)?,
        "text": {"format": format_echo},
        "tool_choice": req.get("tool_choice").filter(|c| !c.is_null()).unwrap_or(&json!("auto")),
        "tools": tools,
        "top_p": sampling(req, "top_p", 1.0)?,
        "truncation": "disabled",
        "user": echoed(req, "user", is_string, "a string", Value::Null)?,
        "metadata": echoed(req, "metadata", Value::is_object, "an object", json!({}))?,
    });
    Ok(Checked {
        items,
        tools,
        choice,
        max_output_tokens,
        format,
        echo,
    })
}

/// An id as the API makes them: `prefix_` and 48 hex digits.
fn hex_id(rng: &mut Rng, prefix: &str) -> String {
    format!(
        "{prefix}_{:016x}{:016x}{:016x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64()
    )
}

/// An `output_text` content part.
fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The answer's one output item: a message, or a call of the chosen function.
struct Output {
    /// `msg_…` or `fc_…`.
    id: String,
    /// `(call_id, name)` of a function call; `None` for a message.
    call: Option<(String, String)>,
    /// The text, or the call's arguments, as streamed.
    pieces: Pieces,
    /// Tokens generated, a call's name included.
    tokens: u64,
}

impl Output {
    /// What the model "says": `max_output_tokens` bounds text and a call's name and arguments
    /// alike.
    fn generate(rng: &mut Rng, checked: &Checked<'_>) -> Self {
        let max = checked.max_output_tokens;
        let after_output = matches!(checked.items.last(), Some(Item::FunctionCallOutput { .. }));
        if let Some(tool) = checked.choice.pick(checked.tools, Some, after_output) {
            let gen::ToolCall {
                id: call_id,
                name,
                name_tokens,
                pieces,
            } = gen::tool_call(rng, tool_name(tool), tool.get("parameters"), "call", max);
            return Self {
                id: hex_id(rng, "fc"),
                call: Some((call_id, name)),
                tokens: name_tokens + pieces.tokens,
                pieces,
            };
        }
        let text = checked.format.generate(rng);
        let reply = gen::finish_text(&text, max, &[]);
        Self {
            id: hex_id(rng, "msg"),
            call: None,
            tokens: reply.pieces.tokens,
            pieces: reply.pieces,
        }
    }

    fn truncated(&self) -> bool {
        self.pieces.truncated
    }

    /// The item as a stream announces it, before anything is generated.
    fn added(&self) -> Value {
        match &self.call {
            Some((call_id, name)) => json!({"type": "function_call", "id": self.id,
                "call_id": call_id, "name": name, "arguments": "", "status": "in_progress"}),
            None => json!({"type": "message", "id": self.id, "status": "in_progress",
                "role": "assistant", "content": []}),
        }
    }

    /// The item when done: `incomplete` where `max_output_tokens` cut it.
    fn done(&self) -> Value {
        let status = if self.truncated() {
            "incomplete"
        } else {
            "completed"
        };
        let text = self.pieces.text();
        match &self.call {
            Some((call_id, name)) => json!({"type": "function_call", "id": self.id,
                "call_id": call_id, "name": name, "arguments": text, "status": status}),
            None => json!({"type": "message", "id": self.id, "status": status,
                "role": "assistant", "content": [text_part(&text)]}),
        }
    }
}

fn usage(input: u64, output: u64) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output,
    })
}

/// The events of a response stream, numbered in the order they are made.
struct Sequence(u64);

impl Sequence {
    /// `data` as a server-sent event of type `kind`, with its `type` and `sequence_number`.
    fn event(&mut self, kind: &str, mut data: Value) -> Bytes {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.0);
        self.0 += 1;
        sse(Some(kind), &data.to_string())
    }
}

/// `POST /v1/responses`.
pub(crate) async fn create(State(config): State<Arc<MockConfig>>, request: Incoming) -> Response {
    let (path, headers, body) = request.parts();
    let (mut ctx, req, model) = match Ctx::with_model(Api::OpenAi, config, path, headers, body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let checked = match check(&req, &model) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(r) = ctx.before_response(Api::OpenAi).await {
        return r;
    }
    let stream = req.get("stream").and_then(Value::as_bool) == Some(true);
    // Streamed or not, the same request gets the same object (see the module comment).
    let mut canonical = req.clone();
    if let Some(fields) = canonical.as_object_mut() {
        fields.remove("stream");
        fields.remove("stream_options");
    }
    ctx.reseed(path, canonical.to_string().as_bytes());

    let input_tokens = input_tokens(
        req.get("instructions").and_then(Value::as_str),
        &checked.items,
        checked.tools,
    );
    let output = Output::generate(&mut ctx.rng, &checked);
    let mut base = checked.echo;
    base["id"] = json!(hex_id(&mut ctx.rng, "resp"));
    base["created_at"] = json!(ctx.created());
    let object = |status: &str, output: Value, usage: Value, incomplete: Value| {
        let mut o = base.clone();
        o["status"] = json!(status);
        o["output"] = output;
        o["usage"] = usage;
        o["incomplete_details"] = incomplete;
        o
    };
    let (status, incomplete, last_event) = if output.truncated() {
        (
            "incomplete",
            json!({"reason": "max_output_tokens"}),
            "response.incomplete",
        )
    } else {
        ("completed", Value::Null, "response.completed")
    };
    let done = object(
        status,
        json!([output.done()]),
        usage(input_tokens, output.tokens),
        incomplete,
    );
    if !stream {
        return json_response(&ctx, &done);
    }

    let started = object("in_progress", json!([]), Value::Null, Value::Null);
    let item_id = &output.id;
    let text = output.pieces.text();
    let mut seq = Sequence(0);
    let mut head = vec![
        seq.event("response.created", json!({"response": started})),
        seq.event("response.in_progress", json!({"response": started})),
        seq.event(
            "response.output_item.added",
            json!({"output_index": 0, "item": output.added()}),
        ),
    ];
    let is_call = output.call.is_some();
    if !is_call {
        head.push(seq.event(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                "part": text_part("")}),
        ));
    }
    let paced = output
        .pieces
        .pieces
        .iter()
        .map(|piece| {
            if is_call {
                seq.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": piece}),
                )
            } else {
                seq.event(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                        "delta": piece, "logprobs": []}),
                )
            }
        })
        .collect();
    let mut tail = if is_call {
        vec![seq.event(
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": 0, "arguments": text}),
        )]
    } else {
        vec![
            seq.event(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "text": text, "logprobs": []}),
            ),
            seq.event(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                    "part": text_part(&text)}),
            ),
        ]
    };
    tail.push(seq.event(
        "response.output_item.done",
        json!({"output_index": 0, "item": output.done()}),
    ));
    tail.push(seq.event(last_event, json!({"response": done})));
    event_stream(&ctx, head, paced, tail)
}
