//! From a captured exchange to a span in the OTel GenAI convention (current), so the shared
//! normalizer makes the LlmCall and the shared enricher prices it.
//!
//! Request and response bodies of both APIs are read here, JSON and event streams alike (OpenAI's
//! Responses API in [`responses`]). Anything
//! the gateway knows beyond the convention uses `sightline.*` attributes, which the normalizer
//! also reads: `sightline.tags`, `sightline.metadata.<key>`, `sightline.prompt.name`,
//! `sightline.prompt.version`, `sightline.response.logprobs`, `sightline.gateway.*`. Request
//! headers are never recorded (they carry the API key); only the `x-sightline-*` ones are read.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sightline_ingest::otlp::body::{decompress_prefix, ContentEncoding};
use sightline_model::{Attributes, Scope, Span, SpanKind, SpanStatus, StatusCode};

use crate::capture::{Exchange, Outcome};
use crate::sse;
use crate::Provider;

mod responses;

/// Scope name of the gateway's spans.
pub const SCOPE_NAME: &str = "sightline.gateway";
/// Service name when the caller does not send `x-sightline-service`.
pub const DEFAULT_SERVICE: &str = "sightline-gateway";
/// Largest decompressed response read for recording.
const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// What a response said, in convention terms.
#[derive(Debug, Default)]
struct ResponseInfo {
    id: Option<String>,
    model: Option<String>,
    output_messages: Vec<Value>,
    finish_reasons: Vec<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    reasoning: Option<u64>,
    logprobs: Option<Value>,
    /// Why (part of) the body could not be read.
    malformed: Option<String>,
    /// An error the stream itself reported.
    stream_error: Option<(String, String)>,
    embeddings: Option<u64>,
}

impl ResponseInfo {
    /// Adds one output message in chat form (`role`, `content`, `tool_calls` as
    /// `(id, name, arguments)`, `finish_reason`), and its finish reason to the call's.
    fn push_message(
        &mut self,
        role: &str,
        content: Option<String>,
        calls: impl IntoIterator<Item = (Option<String>, String, String)>,
        finish: Option<String>,
    ) {
        let mut message = Map::new();
        message.insert("role".into(), json!(role));
        message.insert("content".into(), json!(content));
        let calls: Vec<Value> = calls
            .into_iter()
            .map(|(id, name, args)| {
                json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": args}})
            })
            .collect();
        if !calls.is_empty() {
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        if let Some(f) = finish {
            message.insert("finish_reason".into(), json!(f));
            self.finish_reasons.push(f);
        }
        self.output_messages.push(Value::Object(message));
    }
}

/// Whether the path is OpenAI's Responses API, whose bodies are read by [`responses`].
fn is_responses(provider: Provider, path: &str) -> bool {
    provider == Provider::OpenAi && path.trim_end_matches('/') == "/responses"
}

/// The operation a path performs, when it is a model call.
fn operation(provider: Provider, path: &str) -> Option<&'static str> {
    match (provider, path.trim_end_matches('/')) {
        (Provider::OpenAi, "/chat/completions" | "/responses") => Some("chat"),
        (Provider::OpenAi, "/completions") => Some("text_completion"),
        (Provider::OpenAi, "/embeddings") => Some("embeddings"),
        (Provider::Anthropic, "/messages") => Some("chat"),
        _ => None,
    }
}

fn set(attrs: &mut Attributes, key: &str, value: impl Into<Value>) {
    let v = value.into();
    if !v.is_null() {
        attrs.insert(key.to_string(), v);
    }
}

fn copy(attrs: &mut Attributes, key: &str, from: &Value, field: &str) {
    if let Some(v) = from.get(field).filter(|v| !v.is_null()) {
        attrs.insert(key.to_string(), v.clone());
    }
}

/// The span for one exchange.
pub fn to_span(ex: &Exchange) -> Span {
    let mut attrs = Attributes::new();
    let mut resource = Attributes::new();
    let provider = ex.provider.name();
    set(&mut attrs, "http.request.method", ex.method.as_str());
    set(
        &mut attrs,
        "url.path",
        format!("/gateway/{provider}/v1{}", ex.path),
    );
    set(&mut attrs, "server.address", ex.upstream_host.as_str());
    set(&mut attrs, "sightline.gateway.provider", provider);
    set(
        &mut attrs,
        "sightline.gateway.response_bytes",
        ex.response_bytes,
    );
    if let Some(s) = ex.status {
        set(&mut attrs, "http.response.status_code", s);
    }

    let mut service = DEFAULT_SERVICE.to_string();
    let mut tags: Vec<Value> = Vec::new();
    for (key, value) in &ex.attribution {
        match key.as_str() {
            "user-id" => set(&mut attrs, "user.id", value.as_str()),
            "session-id" => set(&mut attrs, "session.id", value.as_str()),
            "prompt-name" => set(&mut attrs, "sightline.prompt.name", value.as_str()),
            "prompt-version" => set(&mut attrs, "sightline.prompt.version", value.as_str()),
            "service" => {
                if !value.trim().is_empty() {
                    service = value.trim().to_string();
                }
            }
            "environment" => {
                resource.insert("deployment.environment.name".into(), json!(value));
            }
            "tags" => tags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| json!(t)),
            ),
            other => {
                if let Some(meta) = other.strip_prefix("metadata-") {
                    if !meta.is_empty() {
                        set(
                            &mut attrs,
                            &format!("sightline.metadata.{meta}"),
                            value.as_str(),
                        );
                    }
                }
            }
        }
    }
    if !tags.is_empty() {
        attrs.insert("sightline.tags".into(), Value::Array(tags));
    }
    resource.insert("service.name".into(), json!(service));

    let op = operation(ex.provider, &ex.path);
    let request: Option<Value> = serde_json::from_slice(&ex.request_body).ok();
    let streamed = request
        .as_ref()
        .and_then(|r| r.get("stream"))
        .and_then(Value::as_bool)
        == Some(true);
    let responses_api = is_responses(ex.provider, &ex.path);
    let mut name = format!("{} {}", ex.method, ex.path);
    if let Some(op) = op {
        set(&mut attrs, "gen_ai.provider.name", provider);
        set(&mut attrs, "gen_ai.operation.name", op);
        if let Some(req) = &request {
            request_attributes(&mut attrs, ex.provider, op, req);
            if responses_api {
                responses::request_attributes(&mut attrs, req);
            }
            if let Some(model) = req.get("model").and_then(Value::as_str) {
                name = format!("{op} {model}");
            } else {
                name = op.to_string();
            }
        }
    }

    let mut status = SpanStatus::default();
    let mut fail = |attrs: &mut Attributes, kind: &str, message: String| {
        set(attrs, "error.type", kind);
        status = SpanStatus {
            code: StatusCode::Error,
            message,
        };
    };

    // The body is decoded (at most once) only where it is read: a model call's success, or an
    // upstream error's message.
    let ok_status = ex.status.is_some_and(|s| (200..300).contains(&s));
    if let (Some(op), true) = (op, ok_status) {
        let is_stream = ex
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let mut info = match decoded_body(ex) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                match (ex.provider, is_stream) {
                    _ if responses_api && is_stream => responses::stream(&text),
                    _ if responses_api => responses::json_body(&text),
                    (Provider::OpenAi, true) => openai_stream(&text, op),
                    (Provider::OpenAi, false) => openai_json(&text, op),
                    (Provider::Anthropic, true) => anthropic_stream(&text),
                    (Provider::Anthropic, false) => anthropic_json(&text),
                }
            }
            Err(e) => ResponseInfo {
                malformed: Some(e),
                ..ResponseInfo::default()
            },
        };
        let stream_error = info.stream_error.take();
        let malformed = info.malformed.take();
        response_attributes(&mut attrs, info);
        if is_stream || streamed {
            if let Some(ns) = ex.first_chunk_ns {
                set(
                    &mut attrs,
                    "gen_ai.response.time_to_first_chunk",
                    ns as f64 / 1e9,
                );
            }
        }
        if let Some((kind, message)) = stream_error {
            fail(&mut attrs, &kind, message);
        } else if let Some(m) = malformed {
            // A body cut at the capture limit reached the client whole; only the copy kept for
            // recording ends early, which is said by `capture_truncated` below.
            if ex.outcome == Outcome::Complete && !ex.capture_truncated {
                fail(&mut attrs, "malformed_response", m);
            }
        }
    }
    if ex.capture_truncated {
        set(&mut attrs, "sightline.gateway.capture_truncated", true);
    }

    match &ex.outcome {
        Outcome::Complete => {
            if let Some(s) = ex.status.filter(|s| *s >= 400) {
                let message = decoded_body(ex)
                    .ok()
                    .map(|b| upstream_error_message(&b))
                    .unwrap_or_default();
                fail(&mut attrs, &s.to_string(), message);
            }
        }
        Outcome::Cancelled => {
            set(&mut attrs, "sightline.gateway.cancelled", true);
            fail(
                &mut attrs,
                "cancelled",
                format!(
                    "client disconnected after {} bytes of the response",
                    ex.response_bytes
                ),
            );
        }
        Outcome::Timeout(m) => fail(&mut attrs, "timeout", m.clone()),
        Outcome::Unreachable(m) => fail(&mut attrs, "upstream_unreachable", m.clone()),
        Outcome::UpstreamError(m) => fail(&mut attrs, "upstream_error", m.clone()),
        Outcome::Rejected(m) => fail(&mut attrs, "request_too_large", m.clone()),
    }

    Span {
        project: ex.project.clone(),
        trace_id: ex.trace.trace_id,
        span_id: ex.trace.span_id,
        parent_span_id: ex.trace.parent_span_id,
        name,
        kind: SpanKind::Client,
        service,
        start_time_unix_nano: ex.start_unix_nano,
        end_time_unix_nano: ex.end_unix_nano.max(ex.start_unix_nano),
        status,
        attributes: attrs,
        resource,
        scope: Scope {
            name: SCOPE_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            attributes: Attributes::new(),
        },
        events: Vec::new(),
        links: Vec::new(),
    }
}

/// The response body with its content encoding undone (gzip, deflate, zstd with the same
/// decoders and zstd window bound as OTLP request bodies, and brotli, which browsers' and Node's
/// HTTP clients ask providers for), at most [`MAX_DECODED_BYTES`] of it.
fn decoded_body(ex: &Exchange) -> Result<Vec<u8>, String> {
    let raw: Vec<u8> = ex.chunks.concat();
    let named = ex.content_encoding.as_deref().map(str::trim);
    if named.is_some_and(|e| e.eq_ignore_ascii_case("br")) {
        return brotli_prefix(&raw);
    }
    let encoding = ContentEncoding::from_header(named).map_err(|_| {
        format!(
            "response content-encoding `{}` is not decoded",
            named.unwrap_or_default()
        )
    })?;
    if encoding == ContentEncoding::Identity {
        return Ok(raw);
    }
    decompress_prefix(&raw, encoding, MAX_DECODED_BYTES).map_err(|e| format!("response {e}"))
}

/// What could be decoded of a brotli body, as [`decompress_prefix`] does for the others: at most
/// [`MAX_DECODED_BYTES`], and what came before an error or a cut-off end.
fn brotli_prefix(raw: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut reader =
        brotli_decompressor::Decompressor::new(raw, 4096).take(MAX_DECODED_BYTES as u64);
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(_) if !out.is_empty() => Ok(out),
        Err(e) => Err(format!("response body cannot be decoded as br: {e}")),
    }
}

/// The message of an upstream error body (`error.message` in both APIs), else its start.
fn upstream_error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = v
            .get("error")
            .and_then(|e| e.get("message").or(Some(e)))
            .and_then(Value::as_str)
        {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    text.chars().take(500).collect()
}

fn request_attributes(attrs: &mut Attributes, provider: Provider, op: &str, req: &Value) {
    copy(attrs, "gen_ai.request.model", req, "model");
    copy(attrs, "gen_ai.request.temperature", req, "temperature");
    copy(attrs, "gen_ai.request.top_p", req, "top_p");
    copy(attrs, "gen_ai.request.top_k", req, "top_k");
    copy(
        attrs,
        "gen_ai.request.frequency_penalty",
        req,
        "frequency_penalty",
    );
    copy(
        attrs,
        "gen_ai.request.presence_penalty",
        req,
        "presence_penalty",
    );
    copy(attrs, "gen_ai.request.seed", req, "seed");
    copy(attrs, "gen_ai.request.stream", req, "stream");
    copy(
        attrs,
        "gen_ai.request.encoding_formats",
        req,
        "encoding_format",
    );
    if let Some(n) = req.get("n").filter(|n| n.as_u64().is_some_and(|n| n != 1)) {
        attrs.insert("gen_ai.request.choice.count".into(), n.clone());
    }
    if let Some(m) = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        attrs.insert("gen_ai.request.max_tokens".into(), m.clone());
    }
    match req.get("stop").or_else(|| req.get("stop_sequences")) {
        Some(Value::String(s)) => {
            attrs.insert("gen_ai.request.stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            attrs.insert(
                "gen_ai.request.stop_sequences".into(),
                Value::Array(a.clone()),
            );
        }
        _ => {}
    }
    copy(attrs, "gen_ai.tool.definitions", req, "tools");
    if let Some(user) = req
        .get("user")
        .or_else(|| req.get("metadata").and_then(|m| m.get("user_id")))
        .and_then(Value::as_str)
    {
        attrs
            .entry("user.id".to_string())
            .or_insert_with(|| json!(user));
    }
    if provider == Provider::Anthropic {
        copy(attrs, "gen_ai.system_instructions", req, "system");
    }
    let input = match op {
        "chat" => req.get("messages").cloned(),
        "text_completion" => req.get("prompt").map(|p| match p {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| json!({"role": "user", "content": i}))
                    .collect(),
            ),
            other => json!([{"role": "user", "content": other}]),
        }),
        "embeddings" => req.get("input").and_then(|i| match i {
            Value::String(_) => Some(json!([{"role": "user", "content": i}])),
            Value::Array(items) if items.iter().all(Value::is_string) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| json!({"role": "user", "content": i}))
                    .collect(),
            )),
            _ => None,
        }),
        _ => None,
    };
    if let Some(input) = input.filter(|v| !v.is_null()) {
        attrs.insert("gen_ai.input.messages".into(), input);
    }
}

fn response_attributes(attrs: &mut Attributes, info: ResponseInfo) {
    if let Some(v) = info.id {
        set(attrs, "gen_ai.response.id", v);
    }
    if let Some(v) = info.model {
        set(attrs, "gen_ai.response.model", v);
    }
    if !info.output_messages.is_empty() {
        attrs.insert(
            "gen_ai.output.messages".into(),
            Value::Array(info.output_messages),
        );
    }
    if !info.finish_reasons.is_empty() {
        attrs.insert(
            "gen_ai.response.finish_reasons".into(),
            json!(info.finish_reasons),
        );
    }
    let usage = [
        ("gen_ai.usage.input_tokens", info.input_tokens),
        ("gen_ai.usage.output_tokens", info.output_tokens),
        ("gen_ai.usage.total_tokens", info.total_tokens),
        ("gen_ai.usage.cache_read.input_tokens", info.cache_read),
        ("gen_ai.usage.cache_creation.input_tokens", info.cache_write),
        ("gen_ai.usage.reasoning.output_tokens", info.reasoning),
    ];
    for (key, value) in usage {
        if let Some(v) = value {
            set(attrs, key, v);
        }
    }
    if let Some(lp) = info.logprobs {
        attrs.insert("sightline.response.logprobs".into(), lp);
    }
    if let Some(n) = info.embeddings {
        set(attrs, "sightline.gateway.embeddings", n);
    }
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_u64()
}

fn openai_usage(info: &mut ResponseInfo, usage: &Value) {
    info.input_tokens = u64_at(usage, &["prompt_tokens"]);
    info.output_tokens = u64_at(usage, &["completion_tokens"]);
    info.total_tokens = u64_at(usage, &["total_tokens"]);
    info.cache_read = u64_at(usage, &["prompt_tokens_details", "cached_tokens"]);
    info.cache_write = u64_at(usage, &["prompt_tokens_details", "cache_write_tokens"]);
    info.reasoning = u64_at(usage, &["completion_tokens_details", "reasoning_tokens"]);
}

/// Logprobs of the choices: the token list of a single choice, or one list per choice.
fn collect_logprobs(per_choice: Vec<Value>) -> Option<Value> {
    if per_choice.iter().all(Value::is_null) {
        return None;
    }
    if per_choice.len() == 1 {
        return per_choice.into_iter().next();
    }
    Some(Value::Array(per_choice))
}

/// The token list of an OpenAI `logprobs` object (chat: `content`; legacy completions: as is).
fn logprob_tokens(lp: Option<&Value>) -> Value {
    match lp {
        Some(Value::Object(o)) => o
            .get("content")
            .filter(|c| !c.is_null())
            .cloned()
            .unwrap_or_else(|| Value::Object(o.clone())),
        _ => Value::Null,
    }
}

fn openai_json(text: &str, op: &str) -> ResponseInfo {
    let mut info = ResponseInfo::default();
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            info.malformed = Some(format!("response body is not valid JSON: {e}"));
            return info;
        }
    };
    info.id = v.get("id").and_then(Value::as_str).map(str::to_string);
    info.model = v.get("model").and_then(Value::as_str).map(str::to_string);
    if let Some(u) = v.get("usage") {
        openai_usage(&mut info, u);
    }
    if op == "embeddings" {
        info.embeddings = v
            .get("data")
            .and_then(Value::as_array)
            .map(|d| d.len() as u64);
        return info;
    }
    let mut logprobs = Vec::new();
    for c in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let finish = c.get("finish_reason").and_then(Value::as_str);
        if let Some(f) = finish {
            info.finish_reasons.push(f.to_string());
        }
        let mut message = match (c.get("message"), c.get("text")) {
            (Some(m), _) => m.clone(),
            (None, Some(t)) => json!({"role": "assistant", "content": t}),
            _ => continue,
        };
        if let (Some(f), Some(obj)) = (finish, message.as_object_mut()) {
            obj.insert("finish_reason".into(), json!(f));
        }
        info.output_messages.push(message);
        logprobs.push(logprob_tokens(c.get("logprobs")));
    }
    info.logprobs = collect_logprobs(logprobs);
    info
}

#[derive(Default)]
struct ChoiceAcc {
    role: Option<String>,
    content: String,
    has_content: bool,
    tool_calls: BTreeMap<u64, (Option<String>, String, String)>,
    finish: Option<String>,
    logprobs: Vec<Value>,
    legacy_logprobs: Option<Map<String, Value>>,
}

/// The events of a stream with their JSON data. OpenAI's closing `[DONE]` is left out; an event
/// whose data is not JSON is skipped, and the first one is noted in `malformed`.
fn json_events(text: &str, malformed: &mut Option<String>) -> Vec<(sse::Event, Value)> {
    sse::parse(text)
        .into_iter()
        .filter(|event| event.data.trim() != "[DONE]")
        .filter_map(|event| match serde_json::from_str(&event.data) {
            Ok(v) => Some((event, v)),
            Err(e) => {
                malformed.get_or_insert_with(|| format!("stream event is not valid JSON: {e}"));
                None
            }
        })
        .collect()
}

fn openai_stream(text: &str, op: &str) -> ResponseInfo {
    let mut info = ResponseInfo::default();
    let mut choices: BTreeMap<u64, ChoiceAcc> = BTreeMap::new();
    for (_, v) in json_events(text, &mut info.malformed) {
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let kind = err
                .get("type")
                .or_else(|| err.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("stream_error");
            let message = err.get("message").and_then(Value::as_str).unwrap_or("");
            info.stream_error = Some((kind.to_string(), message.to_string()));
            continue;
        }
        if info.id.is_none() {
            info.id = v.get("id").and_then(Value::as_str).map(str::to_string);
        }
        if info.model.is_none() {
            info.model = v.get("model").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            openai_usage(&mut info, u);
        }
        for c in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let acc = choices.entry(index).or_default();
            if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
                acc.finish = Some(f.to_string());
            }
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                acc.content.push_str(t);
                acc.has_content = true;
            }
            match c.get("logprobs") {
                Some(Value::Object(lp)) if op == "text_completion" => {
                    let merged = acc.legacy_logprobs.get_or_insert_with(Map::new);
                    for (k, v) in lp {
                        if let Value::Array(items) = v {
                            let entry = merged.entry(k.clone()).or_insert_with(|| json!([]));
                            if let Some(list) = entry.as_array_mut() {
                                list.extend(items.iter().cloned());
                            }
                        }
                    }
                }
                Some(Value::Object(lp)) => {
                    if let Some(Value::Array(tokens)) = lp.get("content") {
                        acc.logprobs.extend(tokens.iter().cloned());
                    }
                }
                _ => {}
            }
            let Some(delta) = c.get("delta") else {
                continue;
            };
            if let Some(r) = delta.get("role").and_then(Value::as_str) {
                acc.role = Some(r.to_string());
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                acc.content.push_str(t);
                acc.has_content = true;
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = tc.get("id").and_then(Value::as_str);
                let ti = match tc.get("index").and_then(Value::as_u64) {
                    Some(i) => i,
                    // Servers that leave out `index` start each call with its `id`: a new id is
                    // a new call, a delta without one continues the last.
                    None => match acc.tool_calls.last_key_value() {
                        Some((&last, call))
                            if id.is_some_and(|id| call.0.as_deref() != Some(id)) =>
                        {
                            last + 1
                        }
                        Some((&last, _)) => last,
                        None => 0,
                    },
                };
                let entry = acc.tool_calls.entry(ti).or_default();
                if let Some(id) = id {
                    entry.0 = Some(id.to_string());
                }
                if let Some(f) = tc.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        // Names come whole in the first delta (OpenAI), in pieces, or whole again
                        // in every delta (some compatible servers): a repeat is not appended.
                        if entry.1 != n {
                            entry.1.push_str(n);
                        }
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        entry.2.push_str(a);
                    }
                }
            }
        }
    }
    let mut logprobs = Vec::new();
    for acc in choices.into_values() {
        info.push_message(
            acc.role.as_deref().unwrap_or("assistant"),
            acc.has_content.then_some(acc.content),
            acc.tool_calls.into_values(),
            acc.finish,
        );
        logprobs.push(match acc.legacy_logprobs {
            Some(m) => Value::Object(m),
            None if acc.logprobs.is_empty() => Value::Null,
            None => Value::Array(acc.logprobs),
        });
    }
    info.logprobs = collect_logprobs(logprobs);
    info
}

fn anthropic_usage(info: &mut ResponseInfo, usage: &Value) {
    let uncached = u64_at(usage, &["input_tokens"]);
    let read = u64_at(usage, &["cache_read_input_tokens"]);
    let write = u64_at(usage, &["cache_creation_input_tokens"]);
    if uncached.is_some() {
        // Sightline counts input including cached tokens, as OpenAI reports it.
        info.input_tokens = Some(uncached.unwrap_or(0) + read.unwrap_or(0) + write.unwrap_or(0));
        info.cache_read = read;
        info.cache_write = write;
    }
    if let Some(o) = u64_at(usage, &["output_tokens"]) {
        info.output_tokens = Some(o);
    }
}

fn anthropic_json(text: &str) -> ResponseInfo {
    let mut info = ResponseInfo::default();
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            info.malformed = Some(format!("response body is not valid JSON: {e}"));
            return info;
        }
    };
    info.id = v.get("id").and_then(Value::as_str).map(str::to_string);
    info.model = v.get("model").and_then(Value::as_str).map(str::to_string);
    if let Some(u) = v.get("usage") {
        anthropic_usage(&mut info, u);
    }
    let stop = v.get("stop_reason").and_then(Value::as_str);
    if let Some(s) = stop {
        info.finish_reasons.push(s.to_string());
    }
    let mut message = json!({
        "role": v.get("role").and_then(Value::as_str).unwrap_or("assistant"),
        "content": v.get("content").cloned().unwrap_or(Value::Null),
    });
    if let (Some(s), Some(obj)) = (stop, message.as_object_mut()) {
        obj.insert("finish_reason".into(), json!(s));
    }
    info.output_messages.push(message);
    info
}

/// Appends a streamed delta's `key` text to content block `index` (a block of type `kind` when the
/// stream did not start it), in place: a long stream costs its length, not its length squared.
fn append_delta(
    blocks: &mut BTreeMap<u64, Value>,
    index: u64,
    delta: &Value,
    kind: &str,
    key: &str,
) {
    let piece = delta.get(key).and_then(Value::as_str).unwrap_or("");
    let block = blocks
        .entry(index)
        .or_insert_with(|| json!({"type": kind, key: ""}));
    let Some(fields) = block.as_object_mut() else {
        // The stream's own block start was not an object: the deltas stand in for it.
        *block = json!({"type": kind, key: piece});
        return;
    };
    match fields.get_mut(key) {
        Some(Value::String(text)) => text.push_str(piece),
        _ => {
            fields.insert(key.to_string(), json!(piece));
        }
    }
}

fn anthropic_stream(text: &str) -> ResponseInfo {
    let mut info = ResponseInfo::default();
    let mut blocks: BTreeMap<u64, Value> = BTreeMap::new();
    let mut partial_json: BTreeMap<u64, String> = BTreeMap::new();
    let mut stop: Option<String> = None;
    for (event, v) in json_events(text, &mut info.malformed) {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event.event.as_str());
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    info.id = m.get("id").and_then(Value::as_str).map(str::to_string);
                    info.model = m.get("model").and_then(Value::as_str).map(str::to_string);
                    if let Some(u) = m.get("usage") {
                        anthropic_usage(&mut info, u);
                    }
                }
            }
            "content_block_start" => {
                if let Some(b) = v.get("content_block").filter(|b| b.is_object()) {
                    blocks.insert(index, b.clone());
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => append_delta(&mut blocks, index, delta, "text", "text"),
                    Some("input_json_delta") => {
                        let piece = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        partial_json.entry(index).or_default().push_str(piece);
                    }
                    Some("thinking_delta") => {
                        append_delta(&mut blocks, index, delta, "thinking", "thinking");
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    stop = Some(s.to_string());
                }
                if let Some(u) = v.get("usage") {
                    anthropic_usage(&mut info, u);
                }
            }
            "error" => {
                let err = v.get("error").cloned().unwrap_or(Value::Null);
                let kind = err
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("stream_error");
                let message = err.get("message").and_then(Value::as_str).unwrap_or("");
                info.stream_error = Some((kind.to_string(), message.to_string()));
            }
            _ => {}
        }
    }
    for (index, json_text) in partial_json {
        let Some(fields) = blocks.get_mut(&index).and_then(Value::as_object_mut) else {
            continue;
        };
        if json_text.trim().is_empty() {
            // A tool called without arguments streams one empty piece: the block's own `{}`
            // stands.
            fields.entry("input").or_insert_with(|| json!({}));
            continue;
        }
        let input = serde_json::from_str(&json_text).unwrap_or(Value::String(json_text));
        fields.insert("input".into(), input);
    }
    if let Some(s) = &stop {
        info.finish_reasons.push(s.clone());
    }
    if !blocks.is_empty() || stop.is_some() {
        let mut message = json!({
            "role": "assistant",
            "content": Value::Array(blocks.into_values().collect()),
        });
        if let (Some(s), Some(obj)) = (stop, message.as_object_mut()) {
            obj.insert("finish_reason".into(), json!(s));
        }
        info.output_messages.push(message);
    }
    info
}

#[cfg(test)]
mod tests;
