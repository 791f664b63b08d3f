//! One test per fixed bug, named after it: each failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sightline_mock::{router, MockConfig};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The JSON data of each server-sent event, `[DONE]` left out.
    fn events(&self) -> Vec<Value> {
        String::from_utf8(self.body.clone())
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

async fn call(path: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router(MockConfig::default())
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    }
}

const OPENAI: (&str, &str) = ("authorization", "Bearer k");
const ANTHROPIC: (&str, &str) = ("x-api-key", "k");
const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

async fn openai(body: Value) -> Answer {
    call("/v1/chat/completions", body, &[OPENAI]).await
}

async fn anthropic(body: Value) -> Answer {
    call("/v1/messages", body, &[ANTHROPIC, VERSION]).await
}

fn chat(extra: Value) -> Value {
    let mut body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello there"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn message(extra: Value) -> Value {
    let mut body = json!({"model": "claude-haiku-4-5", "max_tokens": 200,
        "messages": [{"role": "user", "content": "Hello there"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Concatenated `content` deltas of a chat stream, and its last finish reason.
fn streamed_content(events: &[Value]) -> (String, Value) {
    let mut text = String::new();
    let mut finish = Value::Null;
    for e in events {
        if let Some(c) = e["choices"][0]["delta"]["content"].as_str() {
            text.push_str(c);
        }
        if let Some(args) =
            e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
        {
            text.push_str(args);
        }
        if !e["choices"][0]["finish_reason"].is_null() {
            finish = e["choices"][0]["finish_reason"].clone();
        }
    }
    (text, finish)
}

/// Concatenated deltas of an Anthropic stream, and its `message_delta`.
fn anthropic_streamed(events: &[Value]) -> (String, Value) {
    let mut text = String::new();
    let mut delta = Value::Null;
    for e in events {
        match e["type"].as_str() {
            Some("content_block_delta") => {
                let d = &e["delta"];
                text.push_str(d["text"].as_str().or(d["partial_json"].as_str()).unwrap());
            }
            Some("message_delta") => delta = e.clone(),
            _ => {}
        }
    }
    (text, delta)
}

// 1. Huge timing values panicked in `Duration::from_secs_f64`.

#[tokio::test]
async fn timing_headers_out_of_range_are_a_400_naming_the_header() {
    for (name, value) in [
        ("x-mock-latency-ms", "1e30"),
        ("x-mock-ttft-ms", "1e300"),
        ("x-mock-tokens-per-s", "1e-300"),
        ("x-mock-latency-ms", "-1"),
        ("x-mock-latency-ms", "soon"),
        ("x-mock-tokens-per-s", "NaN"),
    ] {
        let body = chat(json!({"stream": true}));
        let a = call("/v1/chat/completions", body, &[OPENAI, (name, value)]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}: {value}");
        assert_eq!(a.json()["error"]["field"], name);
        assert_eq!(a.json()["error"]["param"], name);

        let a = call(
            "/v1/messages",
            message(json!({})),
            &[ANTHROPIC, VERSION, (name, value)],
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(a.json()["type"], "error");
        assert_eq!(a.json()["error"]["type"], "invalid_request_error");
        assert_eq!(a.json()["error"]["field"], name);
    }
    // Values in range still work.
    let a = call(
        "/v1/chat/completions",
        chat(json!({"stream": true})),
        &[
            OPENAI,
            ("x-mock-latency-ms", "0"),
            ("x-mock-tokens-per-s", "1e300"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[test]
fn delays_out_of_range_are_refused_for_the_cli() {
    assert_eq!(
        sightline_mock::delay_from_ms(1500.0),
        Some(std::time::Duration::from_millis(1500))
    );
    for ms in [1e30, f64::MAX, f64::INFINITY, f64::NAN, -1.0] {
        assert_eq!(sightline_mock::delay_from_ms(ms), None, "{ms}");
    }
    assert!(sightline_mock::valid_token_rate(0.0));
    assert!(sightline_mock::valid_token_rate(20.0));
    for rate in [1e-300, -1.0, f64::NAN, f64::INFINITY] {
        assert!(!sightline_mock::valid_token_rate(rate), "{rate}");
    }
}

#[tokio::test]
async fn unknown_fault_header_is_a_400() {
    let a = call(
        "/v1/chat/completions",
        chat(json!({})),
        &[OPENAI, ("x-mock-fault", "boom")],
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["field"], "x-mock-fault");
}

// 2. Embeddings had no limit on inputs or dimensions.

#[tokio::test]
async fn embeddings_refuse_more_than_2048_inputs() {
    let inputs: Vec<String> = (0..2049).map(|i| format!("text {i}")).collect();
    let a = call(
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": inputs, "dimensions": 4}),
        &[OPENAI],
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["field"], "input");
    let a = call(
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": &inputs[..2048], "dimensions": 4}),
        &[OPENAI],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"].as_array().unwrap().len(), 2048);
}

#[tokio::test]
async fn embeddings_dimensions_are_bounded_by_the_model() {
    for (model, native) in [
        ("text-embedding-3-small", 1536),
        ("text-embedding-3-large", 3072),
        ("text-embedding-ada-002", 1536),
    ] {
        let body = |d: u64| json!({"model": model, "input": "hi", "dimensions": d});
        let a = call("/v1/embeddings", body(native + 1), &[OPENAI]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{model}");
        assert_eq!(a.json()["error"]["field"], "dimensions");
        let a = call("/v1/embeddings", body(native), &[OPENAI]).await;
        assert_eq!(a.status, StatusCode::OK, "{model}");
        assert_eq!(
            a.json()["data"][0]["embedding"].as_array().unwrap().len() as u64,
            native
        );
    }
}

// 3. `stop` and `stop_sequences` were ignored.

#[tokio::test]
async fn openai_stop_cuts_the_text_and_the_stream_alike() {
    for stop in [json!("e"), json!(["zzz", " "]), json!(["e", "o", "a", "i"])] {
        let a = openai(chat(json!({"stop": stop, "logprobs": true}))).await;
        assert_eq!(a.status, StatusCode::OK);
        let v = a.json();
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let stops: Vec<&str> = match &stop {
            Value::String(s) => vec![s.as_str()],
            _ => stop
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect(),
        };
        assert!(
            stops.iter().all(|s| !text.contains(s)),
            "{text:?} holds a stop"
        );
        let tokens = v["usage"]["completion_tokens"].as_u64().unwrap();
        assert_eq!(
            v["choices"][0]["logprobs"]["content"]
                .as_array()
                .unwrap()
                .len() as u64,
            tokens
        );
        assert!(tokens < 6, "{text:?} was not cut");

        let s = openai(chat(json!({"stop": stop, "logprobs": true, "stream": true,
            "stream_options": {"include_usage": true}})))
        .await;
        let events = s.events();
        let (streamed, finish) = streamed_content(&events);
        assert_eq!(finish, "stop");
        assert!(stops.iter().all(|s| !streamed.contains(s)));
        // The stream's own usage counts what it sent (its body, so its text, differs).
        let usage = &events.last().unwrap()["usage"];
        let chunks = events
            .iter()
            .filter(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            })
            .count();
        assert_eq!(usage["completion_tokens"], chunks);
    }
    let a = openai(chat(json!({"stop": ["zzz"]}))).await;
    assert_eq!(a.json()["choices"][0]["finish_reason"], "stop");
    let bad = openai(chat(json!({"stop": ["a", "b", "c", "d", "e"]}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["field"], "stop");
}

#[tokio::test]
async fn anthropic_stop_sequences_end_the_message() {
    let a = anthropic(message(json!({"stop_sequences": ["zzz", "e"]}))).await;
    let v = a.json();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "e");
    let text = v["content"][0]["text"].as_str().unwrap();
    assert!(!text.contains('e'), "{text:?}");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() < 6);

    let s = anthropic(message(
        json!({"stop_sequences": ["zzz", "e"], "stream": true}),
    ))
    .await;
    let (streamed, delta) = anthropic_streamed(&s.events());
    assert!(!streamed.contains('e') && !streamed.is_empty());
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "e");
    let tokens = delta["usage"]["output_tokens"].as_u64().unwrap();
    let deltas = s
        .events()
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .count();
    assert_eq!(tokens, deltas as u64);

    let a = anthropic(message(json!({"stop_sequences": ["zzz"]}))).await;
    assert_eq!(a.json()["stop_reason"], "end_turn");
    assert_eq!(a.json()["stop_sequence"], Value::Null);
}

// 4. Streamed tool arguments were decoded token by token and broke non-ASCII characters.

fn unicode_tool_schema() -> Value {
    json!({"type": "object", "properties": {
        "city": {"type": "string", "enum": ["東京 🌧️ naïve Ωmega 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]},
        "days": {"type": "integer"}}})
}

#[tokio::test]
async fn streamed_tool_arguments_keep_non_ascii_characters() {
    let tools = json!([{"type": "function", "function": {"name": "weather",
        "parameters": unicode_tool_schema()}}]);
    let a = openai(chat(json!({"tools": tools}))).await;
    let args = a.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(args.contains("東京 🌧️"));
    let s = openai(chat(json!({"tools": tools, "stream": true}))).await;
    let (streamed, finish) = streamed_content(&s.events());
    assert_eq!(finish, "tool_calls");
    let parsed: Value = serde_json::from_str(&streamed).unwrap();
    assert_eq!(
        parsed["city"],
        unicode_tool_schema()["properties"]["city"]["enum"][0]
    );
    assert!(!streamed.contains('\u{FFFD}'));

    let tools = json!([{"name": "weather", "input_schema": unicode_tool_schema()}]);
    let s = anthropic(message(json!({"tools": tools, "stream": true}))).await;
    let (streamed, _) = anthropic_streamed(&s.events());
    let a = anthropic(message(json!({"tools": tools}))).await;
    let parsed: Value = serde_json::from_str(&streamed).unwrap();
    assert_eq!(parsed["city"], a.json()["content"][0]["input"]["city"]);
    assert!(!streamed.contains('\u{FFFD}'));
}

// 5. A null `max_completion_tokens` hid `max_tokens`.

#[tokio::test]
async fn null_max_completion_tokens_leaves_max_tokens_in_force() {
    let a = openai(chat(
        json!({"max_completion_tokens": null, "max_tokens": 2}),
    ))
    .await;
    let v = a.json();
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let bad = openai(chat(json!({"max_tokens": "two"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["field"], "max_tokens");
}

// 6. `tool_choice: "required"` did not force a call after a tool result.

#[tokio::test]
async fn required_tool_choice_calls_a_tool_after_a_tool_result() {
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
    let messages = json!([
        {"role": "user", "content": "find x"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x is 1"}]);
    let auto = openai(chat(json!({"tools": tools, "messages": messages}))).await;
    assert_eq!(auto.json()["choices"][0]["finish_reason"], "stop");
    let a = openai(chat(
        json!({"tools": tools, "messages": messages, "tool_choice": "required"}),
    ))
    .await;
    let v = a.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );

    let tools = json!([{"name": "lookup", "input_schema": {"type": "object",
        "properties": {"q": {"type": "string"}}}}]);
    let messages = json!([
        {"role": "user", "content": "find x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup",
            "input": {"q": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
            "content": "x is 1"}]}]);
    let a = anthropic(message(json!({"tools": tools, "messages": messages,
        "tool_choice": {"type": "any"}})))
    .await;
    assert_eq!(a.json()["stop_reason"], "tool_use");
}

// 7. Tool calls ignored `max_tokens`.

#[tokio::test]
async fn tool_calls_stop_at_max_tokens() {
    let schema = json!({"type": "object", "properties": {
        "city": {"type": "string"}, "country": {"type": "string"}, "days": {"type": "integer"}}});
    let tools =
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": schema}}]);
    for max in [0u64, 1, 4] {
        let a = openai(chat(json!({"tools": tools, "max_tokens": max}))).await;
        let v = a.json();
        assert_eq!(
            v["choices"][0]["finish_reason"], "length",
            "max_tokens {max}"
        );
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= max);
        let args = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap()
            .to_string();
        let s = openai(chat(
            json!({"tools": tools, "max_tokens": max, "stream": true,
            "stream_options": {"include_usage": true}}),
        ))
        .await;
        let events = s.events();
        let (streamed, finish) = streamed_content(&events);
        assert_eq!(finish, "length");
        assert_eq!(streamed, args);
        assert!(
            events.last().unwrap()["usage"]["completion_tokens"]
                .as_u64()
                .unwrap()
                <= max
        );
    }
    let a = openai(chat(json!({"tools": tools, "max_tokens": 200}))).await;
    assert_eq!(a.json()["choices"][0]["finish_reason"], "tool_calls");

    let tools = json!([{"name": "get_weather", "input_schema": schema}]);
    for max in [1u64, 4] {
        let a = anthropic(message(json!({"tools": tools, "max_tokens": max}))).await;
        let v = a.json();
        assert_eq!(v["stop_reason"], "max_tokens");
        assert!(v["usage"]["output_tokens"].as_u64().unwrap() <= max);
        let s = anthropic(message(
            json!({"tools": tools, "max_tokens": max, "stream": true}),
        ))
        .await;
        let (_, delta) = anthropic_streamed(&s.events());
        assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
        assert!(delta["usage"]["output_tokens"].as_u64().unwrap() <= max);
    }
}

// 8. `response_format` was ignored.

#[tokio::test]
async fn response_format_gives_json_content() {
    let a = openai(chat(json!({"response_format": {"type": "json_object"}}))).await;
    let content = a.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(&content).unwrap();
    assert!(v.is_object());

    let schema = json!({"type": "object", "additionalProperties": false,
        "required": ["title", "year", "genres", "rating"],
        "properties": {
            "title": {"type": "string"},
            "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
            "genres": {"type": "array", "items": {"type": "string", "enum": ["drama", "comedy"]}},
            "rating": {"anyOf": [{"$ref": "#/$defs/Rating"}, {"type": "null"}]}},
        "$defs": {"Rating": {"type": "object", "required": ["stars"],
            "properties": {"stars": {"type": "number", "minimum": 0, "maximum": 5}}}}});
    let a = openai(chat(json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "movie", "strict": true, "schema": schema}}})))
    .await;
    let content = a.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(&content).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 4);
    assert!(v["title"].is_string());
    assert!((1900..=2030).contains(&v["year"].as_i64().unwrap()));
    assert!(v["genres"].as_array().unwrap().iter().all(|g| g == "drama"));
    let stars = v["rating"]["stars"].as_f64().unwrap();
    assert!((0.0..=5.0).contains(&stars));
    // Streaming sends the same kind of document.
    let s = openai(chat(
        json!({"stream": true, "response_format": {"type": "json_object"}}),
    ))
    .await;
    let (streamed, _) = streamed_content(&s.events());
    assert!(serde_json::from_str::<Value>(&streamed)
        .unwrap()
        .is_object());

    let bad = openai(chat(json!({"response_format": {"type": "yaml"}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["field"], "response_format");
}

// 9. A forced fault skipped the random draw, so the content differed.

#[tokio::test]
async fn fault_header_does_not_change_the_content() {
    let plain = openai(chat(json!({}))).await;
    // `disconnect` leaves a non-streamed answer whole.
    let forced = call(
        "/v1/chat/completions",
        chat(json!({})),
        &[OPENAI, ("x-mock-fault", "disconnect")],
    )
    .await;
    assert_eq!(plain.body, forced.body);
    let malformed = call(
        "/v1/chat/completions",
        chat(json!({})),
        &[OPENAI, ("x-mock-fault", "malformed")],
    )
    .await;
    assert!(plain.body.starts_with(&malformed.body));
    assert_eq!(malformed.body.len(), plain.body.len() / 2);
}

// 10. No request-id headers.

#[tokio::test]
async fn responses_carry_a_deterministic_request_id() {
    let id = |a: &Answer, name: &str| {
        a.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let a = openai(chat(json!({}))).await;
    let b = openai(chat(json!({}))).await;
    let c = openai(chat(json!({"n": 2}))).await;
    assert!(id(&a, "x-request-id").starts_with("req_"));
    assert_eq!(id(&a, "x-request-id"), id(&b, "x-request-id"));
    assert_ne!(id(&a, "x-request-id"), id(&c, "x-request-id"));
    let e = call(
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "x"}),
        &[OPENAI],
    )
    .await;
    assert!(id(&e, "x-request-id").starts_with("req_"));
    let bad = openai(json!({"model": "gpt-4o"})).await;
    assert!(id(&bad, "x-request-id").starts_with("req_"));

    let m = anthropic(message(json!({}))).await;
    let n = anthropic(message(json!({}))).await;
    assert!(id(&m, "request-id").starts_with("req_"));
    assert_eq!(id(&m, "request-id"), id(&n, "request-id"));
}

// 11. `top_logprobs` alternatives repeated, outranked the chosen token and summed above 1.

#[tokio::test]
async fn top_logprobs_are_distinct_and_less_likely() {
    let a = openai(chat(json!({"logprobs": true, "top_logprobs": 20}))).await;
    let v = a.json();
    for entry in v["choices"][0]["logprobs"]["content"].as_array().unwrap() {
        let chosen = entry["logprob"].as_f64().unwrap();
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 20);
        assert_eq!(top[0]["token"], entry["token"]);
        let tokens: std::collections::HashSet<&str> =
            top.iter().map(|t| t["token"].as_str().unwrap()).collect();
        assert_eq!(tokens.len(), 20);
        assert!(top[1..]
            .iter()
            .all(|t| t["logprob"].as_f64().unwrap() < chosen));
        let total: f64 = top
            .iter()
            .map(|t| t["logprob"].as_f64().unwrap().exp())
            .sum();
        assert!(total <= 1.0);
    }
}

// 12. Legacy completions: prompt lists, echo, n, token prompts and empty streams.

#[tokio::test]
async fn legacy_completions_answer_each_prompt() {
    let a = call(
        "/v1/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["Once upon", "In a galaxy"], "n": 2,
            "echo": true, "max_tokens": 5}),
        &[OPENAI],
    )
    .await;
    let v = a.json();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        let prompt = if i < 2 { "Once upon" } else { "In a galaxy" };
        assert!(c["text"].as_str().unwrap().starts_with(prompt), "{c}");
    }
    assert_eq!(v["usage"]["prompt_tokens"], 2 + 3);

    let ids = json!([12194, 8022, 1308]);
    let a = call(
        "/v1/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": ids}),
        &[OPENAI],
    )
    .await;
    assert_eq!(a.json()["usage"]["prompt_tokens"], 3);
    let a = call(
        "/v1/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": [ids, [1, 2]]}),
        &[OPENAI],
    )
    .await;
    assert_eq!(a.json()["usage"]["prompt_tokens"], 5);
    assert_eq!(a.json()["choices"].as_array().unwrap().len(), 2);
    let bad = call(
        "/v1/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": [u64::from(u32::MAX) + 1]}),
        &[OPENAI],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let s = call(
        "/v1/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "max_tokens": 0, "stream": true}),
        &[OPENAI],
    )
    .await;
    let events = s.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[0]["choices"][0]["text"], "");
}

// 13. A `tool_choice` naming a tool that `tools` does not offer fell back to text; the APIs
// refuse it, and `required`/`any` without tools.

#[tokio::test]
async fn tool_choice_must_name_an_offered_tool() {
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object"}}}]);
    let forced = |name: &str| json!({"type": "function", "function": {"name": name}});
    let ok = openai(chat(
        json!({"tools": tools, "tool_choice": forced("lookup")}),
    ))
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    for body in [
        chat(json!({"tools": tools, "tool_choice": forced("missing")})),
        chat(json!({"tool_choice": "required"})),
        chat(json!({"tools": tools, "tool_choice": "sometimes"})),
    ] {
        let a = openai(body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(a.json()["error"]["param"], "tool_choice");
    }

    let tools = json!([{"name": "lookup", "input_schema": {"type": "object"}}]);
    let ok = anthropic(message(
        json!({"tools": tools, "tool_choice": {"type": "tool", "name": "lookup"}}),
    ))
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["content"][0]["name"], "lookup");
    for body in [
        message(json!({"tools": tools, "tool_choice": {"type": "tool", "name": "missing"}})),
        message(json!({"tool_choice": {"type": "any"}})),
    ] {
        let a = anthropic(body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(a.json()["error"]["type"], "invalid_request_error");
        assert_eq!(a.json()["error"]["field"], "tool_choice");
    }
}

// 14. Anthropic `max_tokens: 0` was answered with an empty message; the API requires at
// least 1.

#[tokio::test]
async fn anthropic_max_tokens_must_be_at_least_one() {
    for max in [json!(0), json!(-1), json!("10")] {
        let a = anthropic(message(json!({"max_tokens": max}))).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{max}");
        assert_eq!(a.json()["error"]["field"], "max_tokens");
    }
    let a = anthropic(message(json!({"max_tokens": 1}))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["usage"]["output_tokens"], 1);
}

// 15. `/v1/messages/count_tokens` was missing (404).

#[tokio::test]
async fn anthropic_count_tokens_matches_the_message_usage() {
    let tools = json!([{"name": "lookup", "input_schema": {"type": "object"}}]);
    for extra in [
        json!({}),
        json!({"system": "Be brief.", "tools": tools}),
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "one"}]},
            {"role": "assistant", "content": "two"}, {"role": "user", "content": "three"}]}),
    ] {
        let body = message(extra);
        let used = anthropic(body.clone()).await.json()["usage"]["input_tokens"].clone();
        let mut counted_body = body;
        if let Some(b) = counted_body.as_object_mut() {
            b.remove("max_tokens");
        }
        let counted = call(
            "/v1/messages/count_tokens",
            counted_body,
            &[ANTHROPIC, VERSION],
        )
        .await;
        assert_eq!(counted.status, StatusCode::OK);
        assert!(counted.headers.contains_key("request-id"));
        assert_eq!(counted.json(), json!({"input_tokens": used}));
    }
    let bad = call(
        "/v1/messages/count_tokens",
        json!({"model": "claude-haiku-4-5", "messages": []}),
        &[ANTHROPIC, VERSION],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["field"], "messages");
}

// 16. A body over axum's default 2 MB got a plain-text 413; the limit is now explicit and the
// answer is in the API's error shape. An OpenAI 401 has OpenAI's type.

#[tokio::test]
async fn oversized_bodies_and_missing_keys_get_the_apis_errors() {
    let big = "x".repeat(sightline_mock::MAX_REQUEST_BYTES + 1);
    let a = openai(chat(json!({"user": big}))).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json()["error"]["type"], "invalid_request_error");
    assert_eq!(a.json()["error"]["code"], "request_too_large");
    let a = anthropic(message(json!({"metadata": {"user_id": big}}))).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "request_too_large");

    // 3 MB, past the old default, is read.
    let a = openai(chat(json!({"user": "y".repeat(3 << 20)}))).await;
    assert_eq!(a.status, StatusCode::OK);

    let a = call("/v1/chat/completions", chat(json!({})), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"]["type"], "invalid_request_error");
    assert_eq!(a.json()["error"]["code"], "invalid_api_key");
}

// 17. A chat `tool_choice` of type `allowed_tools` (valid in the API) was refused after the
// named-function check came in.

#[tokio::test]
async fn allowed_tools_tool_choice_limits_the_candidates() {
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name,
        "parameters": {"type": "object"}}})
    };
    let tools = json!([tool("first"), tool("second")]);
    let allowed = |mode: &str, names: &[&str]| {
        json!({"type": "allowed_tools", "allowed_tools": {"mode": mode,
            "tools": names.iter().map(|n| json!({"type": "function", "function": {"name": n}}))
                .collect::<Vec<_>>()}})
    };
    let a = openai(chat(
        json!({"tools": tools, "tool_choice": allowed("auto", &["second"])}),
    ))
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "second"
    );
    // After a tool result, `auto` may answer in text; `required` calls one anyway.
    let after = json!([{"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "second", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]);
    let a = openai(chat(json!({"tools": tools, "messages": after,
        "tool_choice": allowed("auto", &["second"])})))
    .await;
    assert!(a.json()["choices"][0]["message"]["tool_calls"].is_null());
    let a = openai(chat(json!({"tools": tools, "messages": after,
        "tool_choice": allowed("required", &["second"])})))
    .await;
    assert_eq!(
        a.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "second"
    );
    for choice in [
        allowed("auto", &["missing"]),
        allowed("sometimes", &["first"]),
        allowed("auto", &[]),
    ] {
        let a = openai(chat(json!({"tools": tools, "tool_choice": choice}))).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{choice}");
        assert_eq!(a.json()["error"]["param"], "tool_choice");
    }
}

// 18. Anthropic requests without `anthropic-version` were answered; the API refuses them.

#[tokio::test]
async fn anthropic_requests_must_name_the_api_version() {
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let a = call(path, message(json!({})), &[ANTHROPIC]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(a.json()["error"]["type"], "invalid_request_error");
        assert_eq!(a.json()["error"]["field"], "anthropic-version");
    }
    // The key is checked first, as the API does.
    let a = call("/v1/messages", message(json!({})), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = call("/v1/messages", message(json!({})), &[ANTHROPIC, VERSION]).await;
    assert_eq!(a.status, StatusCode::OK);
}
