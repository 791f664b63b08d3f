//! The Responses API (`POST /v1/responses`) through `tower::ServiceExt::oneshot`: shapes, usage,
//! tools, limits, streams and errors.
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

    /// Each server-sent event as `(event name, JSON data)`.
    fn events(&self) -> Vec<(String, Value)> {
        String::from_utf8(self.body.clone())
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
                let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                (name.to_string(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    fn content_type(&self) -> &str {
        self.headers["content-type"].to_str().unwrap()
    }
}

async fn call_with(config: MockConfig, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::post("/v1/responses").header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router(config)
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    }
}

const KEY: (&str, &str) = ("authorization", "Bearer k");

async fn call(body: &Value) -> Answer {
    call_with(MockConfig::default(), body, &[KEY]).await
}

/// A request for `input` "Hello there", with `extra` fields added.
fn request(extra: Value) -> Value {
    let mut body = json!({"model": "gpt-4o", "input": "Hello there"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

fn tokens(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "name": "get_time", "description": "Current time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
        {"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string"}, "days": {"type": "integer"},
                "unit": {"enum": ["c", "f"]}}, "required": ["city", "days", "unit"]},
            "strict": true}
    ])
}

/// The text of the only output item, a message.
fn output_text(response: &Value) -> String {
    let item = &response["output"][0];
    assert_eq!(item["type"], "message", "{response}");
    item["content"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn text_answer_has_the_api_shape_and_usage() {
    let a = call(&request(json!({}))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type(), "application/json");
    assert!(a.headers["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let r = a.json();
    let id = r["id"].as_str().unwrap();
    assert!(
        id.starts_with("resp_") && id.len() == "resp_".len() + 48,
        "{id}"
    );
    assert_eq!(r["object"], "response");
    assert!(r["created_at"].as_u64().unwrap() >= 1_700_000_000);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["incomplete_details"], Value::Null);
    assert_eq!(r["model"], "gpt-4o");
    // What the request left out comes back as the API's defaults.
    assert_eq!(r["instructions"], Value::Null);
    assert_eq!(r["max_output_tokens"], Value::Null);
    assert_eq!(r["previous_response_id"], Value::Null);
    assert_eq!(r["user"], Value::Null);
    assert_eq!(r["parallel_tool_calls"], true);
    assert_eq!(r["store"], true);
    assert_eq!(r["temperature"], 1.0);
    assert_eq!(r["top_p"], 1.0);
    assert_eq!(r["tool_choice"], "auto");
    assert_eq!(r["tools"], json!([]));
    assert_eq!(r["text"], json!({"format": {"type": "text"}}));
    assert_eq!(r["reasoning"], json!({"effort": null, "summary": null}));
    assert_eq!(r["truncation"], "disabled");
    assert_eq!(r["metadata"], json!({}));

    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    let item = &output[0];
    assert_eq!(item["type"], "message");
    assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(item["status"], "completed");
    assert_eq!(item["role"], "assistant");
    let part = &item["content"][0];
    assert_eq!(part["type"], "output_text");
    assert_eq!(part["annotations"], json!([]));
    assert_eq!(part["logprobs"], json!([]));
    let text = part["text"].as_str().unwrap();
    assert!(text.ends_with('.'));

    // 3 to prime the reply, 3 for the message, "user" (1) and "Hello there" (2).
    let usage = &r["usage"];
    assert_eq!(usage["input_tokens"], 3 + 3 + 1 + 2);
    assert_eq!(usage["output_tokens"], tokens(text));
    assert_eq!(usage["total_tokens"], 9 + tokens(text));
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn request_fields_are_echoed() {
    let body = request(json!({
        "instructions": "Answer briefly.", "max_output_tokens": 500, "temperature": 0.2,
        "top_p": 0.5, "store": false, "user": "u-1", "metadata": {"team": "search"},
        "previous_response_id": "resp_0123", "parallel_tool_calls": false,
        "tools": weather_tools(), "tool_choice": "none"}));
    let r = call(&body).await.json();
    assert_eq!(r["status"], "completed");
    assert_eq!(r["instructions"], "Answer briefly.");
    assert_eq!(r["max_output_tokens"], 500);
    assert_eq!(r["temperature"], 0.2);
    assert_eq!(r["top_p"], 0.5);
    assert_eq!(r["store"], false);
    assert_eq!(r["user"], "u-1");
    assert_eq!(r["metadata"], json!({"team": "search"}));
    assert_eq!(r["previous_response_id"], "resp_0123");
    assert_eq!(r["parallel_tool_calls"], false);
    assert_eq!(r["tools"], weather_tools());
    assert_eq!(r["tool_choice"], "none");
    assert_eq!(r["output"][0]["type"], "message");
}

#[tokio::test]
async fn same_request_same_bytes_other_seed_other_bytes() {
    let body = request(json!({"tools": weather_tools()}));
    let a = call(&body).await;
    let b = call(&body).await;
    assert_eq!(a.body, b.body);
    assert_eq!(a.headers["x-request-id"], b.headers["x-request-id"]);
    let other = MockConfig {
        seed: 9,
        ..MockConfig::default()
    };
    let c = call_with(other, &body, &[KEY]).await;
    assert_ne!(a.body, c.body);
    // Another input, another answer.
    let d = call(&request(json!({"input": "Hello again"}))).await;
    assert_ne!(
        output_text(&call(&request(json!({}))).await.json()),
        output_text(&d.json())
    );
}

#[tokio::test]
async fn string_and_item_inputs_are_counted_alike() {
    let plain = call(&request(json!({}))).await.json();
    for input in [
        json!([{"role": "user", "content": "Hello there"}]),
        json!([{"type": "message", "role": "user", "content": "Hello there"}]),
        json!([{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hello there"},
                {"type": "input_image", "image_url": "https://example.com/a.png"}]}]),
    ] {
        let r = call(&request(json!({"input": input}))).await;
        assert_eq!(r.status, StatusCode::OK, "{input}");
        assert_eq!(
            r.json()["usage"]["input_tokens"],
            plain["usage"]["input_tokens"]
        );
    }
}

#[tokio::test]
async fn instructions_count_as_chat_counts_a_developer_message() {
    let instructions = "You are a terse assistant.";
    let r = call(&request(json!({"instructions": instructions})))
        .await
        .json();
    let chat = json!({"model": "gpt-4o", "messages": [
        {"role": "developer", "content": instructions},
        {"role": "user", "content": "Hello there"}]});
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header(KEY.0, KEY.1)
        .body(Body::from(chat.to_string()))
        .unwrap();
    let res = router(MockConfig::default()).oneshot(req).await.unwrap();
    let chat: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        r["usage"]["input_tokens"], chat["usage"]["prompt_tokens"],
        "{r}"
    );
}

#[tokio::test]
async fn every_input_item_and_the_tools_are_counted() {
    let instructions = "Use the tools.";
    let question = "What is the weather in Paris?";
    let args = r#"{"city":"Paris","days":1,"unit":"c"}"#;
    let result = r#"{"temperature":18,"sky":"light rain"}"#;
    let body = request(json!({
        "instructions": instructions,
        "tools": weather_tools(),
        "input": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": [{"type": "input_text", "text": question}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                "arguments": args},
            {"type": "function_call_output", "call_id": "call_1", "output": result},
        ],
    }));
    let r = call(&body).await;
    assert_eq!(r.status, StatusCode::OK);
    let expected = 3
        + (3 + tokens("developer") + tokens(instructions))
        + (3 + tokens("system") + tokens("Be kind."))
        + (3 + tokens("user") + tokens(question))
        + (3 + tokens("get_weather") + tokens(args))
        + (3 + tokens(result))
        + tokens(&weather_tools().to_string());
    assert_eq!(r.json()["usage"]["input_tokens"], expected);
    // Right after a function call's output the model answers in text.
    let r = r.json();
    assert_eq!(r["output"][0]["type"], "message");
    assert_eq!(r["output"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn offered_tools_are_called_as_tool_choice_allows() {
    // Auto calls the first tool offered.
    let r = call(&request(json!({"tools": weather_tools()})))
        .await
        .json();
    let item = &r["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "get_time");
    assert_eq!(r["status"], "completed");

    // A named function is called, with arguments that follow its parameters.
    let choice = json!({"type": "function", "name": "get_weather"});
    let r = call(&request(
        json!({"tools": weather_tools(), "tool_choice": choice}),
    ))
    .await
    .json();
    assert_eq!(r["tool_choice"], choice);
    let item = &r["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "get_weather");
    assert_eq!(item["status"], "completed");
    assert!(item["id"].as_str().unwrap().starts_with("fc_"));
    let call_id = item["call_id"].as_str().unwrap();
    assert!(call_id.starts_with("call_") && call_id.len() == "call_".len() + 24);
    let arguments = item["arguments"].as_str().unwrap();
    let args: Value = serde_json::from_str(arguments).unwrap();
    assert!(args["city"].is_string());
    assert!(args["days"].is_u64());
    assert_eq!(args["unit"], "c");
    assert_eq!(
        r["usage"]["output_tokens"],
        tokens("get_weather") + tokens(arguments)
    );

    // `none` answers in text.
    let r = call(&request(
        json!({"tools": weather_tools(), "tool_choice": "none"}),
    ))
    .await
    .json();
    assert_eq!(r["output"][0]["type"], "message");
}

#[tokio::test]
async fn no_tool_after_a_function_call_output_unless_forced() {
    let input = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
            "arguments": "{\"city\":\"Paris\"}", "id": "fc_1", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
    ]);
    let r = call(&request(json!({"input": input, "tools": weather_tools()})))
        .await
        .json();
    assert_eq!(r["output"][0]["type"], "message");
    for choice in [
        json!("required"),
        json!({"type": "function", "name": "get_weather"}),
    ] {
        let r = call(&request(
            json!({"input": input, "tools": weather_tools(), "tool_choice": choice}),
        ))
        .await
        .json();
        assert_eq!(r["output"][0]["type"], "function_call", "{choice}");
    }
}

#[tokio::test]
async fn max_output_tokens_cuts_the_answer_as_incomplete() {
    let r = call(&request(json!({"max_output_tokens": 3}))).await.json();
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(r["max_output_tokens"], 3);
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["usage"]["output_tokens"], 3);
    let cut = output_text(&r);
    assert_eq!(tokens(&cut), 3);
    assert!(!cut.ends_with('.'), "{cut}");

    // A limit the answer fits in leaves it whole.
    let r = call(&request(json!({"max_output_tokens": 1000})))
        .await
        .json();
    assert_eq!(r["status"], "completed");
    assert_eq!(r["incomplete_details"], Value::Null);
    assert_eq!(r["output"][0]["status"], "completed");
    let whole = output_text(&r);
    assert!(whole.ends_with('.'));
    assert_eq!(r["usage"]["output_tokens"], tokens(&whole));

    // A function call's name and arguments share the limit.
    let r = call(&request(
        json!({"tools": weather_tools(), "max_output_tokens": 4}),
    ))
    .await
    .json();
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["output"][0]["type"], "function_call");
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn text_format_gives_json_text() {
    let format = json!({"type": "json_schema", "name": "person", "strict": true, "schema": {
        "type": "object", "properties": {
            "name": {"type": "string"}, "age": {"type": "integer", "minimum": 18, "maximum": 99}},
        "required": ["name", "age"], "additionalProperties": false}});
    let r = call(&request(json!({"text": {"format": format}})))
        .await
        .json();
    assert_eq!(r["text"], json!({"format": format}));
    let v: Value = serde_json::from_str(&output_text(&r)).unwrap();
    assert!(v["name"].is_string());
    assert!((18..=99).contains(&v["age"].as_u64().unwrap()));

    let r = call(&request(
        json!({"text": {"format": {"type": "json_object"}}}),
    ))
    .await
    .json();
    let v: Value = serde_json::from_str(&output_text(&r)).unwrap();
    assert!(v.is_object());
}

/// Each event's name matches its `type`, and `sequence_number` counts from 0.
fn check_sequence(events: &[(String, Value)]) {
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i, "{name}");
    }
}

#[tokio::test]
async fn text_stream_ends_in_the_non_streamed_response() {
    let plain = call(&request(json!({}))).await;
    let a = call(&request(json!({"stream": true}))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type(), "text/event-stream");
    assert!(!String::from_utf8_lossy(&a.body).contains("[DONE]"));
    let events = a.events();
    check_sequence(&events);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names.len() - 8;
    assert!(deltas > 1);
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);

    let done = plain.json();
    let text = output_text(&done);
    let item_id = done["output"][0]["id"].clone();
    for (_, data) in &events[..2] {
        let r = &data["response"];
        assert_eq!(r["id"], done["id"]);
        assert_eq!(r["status"], "in_progress");
        assert_eq!(r["output"], json!([]));
        assert_eq!(r["usage"], Value::Null);
    }
    let added = &events[2].1;
    assert_eq!(added["output_index"], 0);
    assert_eq!(
        added["item"],
        json!({"type": "message", "id": item_id, "status": "in_progress",
            "role": "assistant", "content": []})
    );
    let part = &events[3].1;
    assert_eq!(part["item_id"], item_id);
    assert_eq!(
        (&part["output_index"], &part["content_index"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(part["part"]["text"], "");
    assert_eq!(part["part"]["type"], "output_text");

    let streamed: String = events[4..4 + deltas]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["item_id"], item_id);
            assert_eq!(d["logprobs"], json!([]));
            d["delta"].as_str().unwrap()
        })
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(events[4 + deltas].1["text"], text.as_str());
    assert_eq!(
        events[5 + deltas].1["part"],
        done["output"][0]["content"][0]
    );
    assert_eq!(events[6 + deltas].1["item"], done["output"][0]);
    assert_eq!(events[7 + deltas].1["response"], done);
}

#[tokio::test]
async fn tool_call_stream_ends_in_the_non_streamed_response() {
    let body = request(json!({"tools": weather_tools(),
        "tool_choice": {"type": "function", "name": "get_weather"}}));
    let done = call(&body).await.json();
    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let events = call(&streamed_body).await.events();
    check_sequence(&events);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names.len() - 6;
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ];
    expected.extend(std::iter::repeat_n(
        "response.function_call_arguments.delta",
        deltas,
    ));
    expected.extend([
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    let item = &done["output"][0];
    let mut added = item.clone();
    added["arguments"] = json!("");
    added["status"] = json!("in_progress");
    assert_eq!(events[2].1["item"], added);
    let arguments: String = events[3..3 + deltas]
        .iter()
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, item["arguments"].as_str().unwrap());
    assert_eq!(events[3 + deltas].1["arguments"], item["arguments"]);
    assert_eq!(events[4 + deltas].1["item"], *item);
    assert_eq!(events[5 + deltas].1["response"], done);
}

#[tokio::test]
async fn cut_stream_ends_in_response_incomplete() {
    let body = request(json!({"max_output_tokens": 2}));
    let done = call(&body).await.json();
    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let events = call(&streamed_body).await.events();
    check_sequence(&events);
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "response.incomplete");
    assert_eq!(data["response"], done);
    assert_eq!(data["response"]["status"], "incomplete");
    assert!(events.iter().all(|(n, _)| n != "response.completed"));
}

#[tokio::test]
async fn malformed_fault_breaks_one_stream_event() {
    let body = request(json!({"stream": true}));
    let whole = call(&body).await;
    let malformed = call_with(
        MockConfig::default(),
        &body,
        &[KEY, ("x-mock-fault", "malformed")],
    )
    .await;
    assert_eq!(malformed.status, StatusCode::OK);
    assert_ne!(malformed.body, whole.body);
    let bodies = String::from_utf8(malformed.body).unwrap();
    let broken = bodies
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| serde_json::from_str::<Value>(d).is_err())
        .count();
    assert_eq!(broken, 1);
}

#[tokio::test]
async fn invalid_requests_are_a_400_naming_the_field() {
    let cases = [
        (json!({"input": "Hello there"}), "model"),
        (json!({"model": "gpt-4o"}), "input"),
        (request(json!({"input": []})), "input"),
        (request(json!({"input": 7})), "input"),
        (
            request(json!({"input": [{"role": "robot", "content": "hi"}]})),
            "input",
        ),
        (request(json!({"input": [{"role": "user"}]})), "input"),
        (
            request(json!({"input": [{"type": "function_call", "name": "f"}]})),
            "input",
        ),
        (
            request(json!({"input": [{"type": "reasoning", "summary": []}]})),
            "input",
        ),
        (
            request(json!({"tools": weather_tools(),
                "tool_choice": {"type": "function", "name": "book_flight"}})),
            "tool_choice",
        ),
        (request(json!({"tool_choice": "required"})), "tool_choice"),
        (
            request(json!({"tools": weather_tools(), "tool_choice": "sometimes"})),
            "tool_choice",
        ),
        (request(json!({"tools": [{"type": "web_search"}]})), "tools"),
        (
            request(json!({"max_output_tokens": 0})),
            "max_output_tokens",
        ),
        (
            request(json!({"max_output_tokens": -5})),
            "max_output_tokens",
        ),
        (
            request(json!({"max_output_tokens": "ten"})),
            "max_output_tokens",
        ),
        (
            request(json!({"max_output_tokens": 1.5})),
            "max_output_tokens",
        ),
        (request(json!({"temperature": 3})), "temperature"),
        (request(json!({"top_p": -0.1})), "top_p"),
        (request(json!({"instructions": ["a"]})), "instructions"),
        (request(json!({"metadata": "x"})), "metadata"),
        (
            request(json!({"text": {"format": {"type": "json_schema", "schema": {}}}})),
            "text.format.name",
        ),
        (
            request(json!({"text": {"format": {"type": "json_schema", "name": "x"}}})),
            "text.format.schema",
        ),
        (
            request(json!({"text": {"format": {"type": "yaml"}}})),
            "text.format.type",
        ),
    ];
    for (body, field) in cases {
        let a = call(&body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        let error = &a.json()["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], field, "{body}: {error}");
        assert_eq!(error["field"], field, "{body}");
    }
}

#[tokio::test]
async fn missing_key_is_a_401() {
    let a = call_with(MockConfig::default(), &request(json!({})), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn fault_header_gives_a_429() {
    let a = call_with(
        MockConfig::default(),
        &request(json!({})),
        &[KEY, ("x-mock-fault", "429")],
    )
    .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.headers["retry-after"], "1");
    assert_eq!(a.json()["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn allowed_tools_limit_which_function_is_called() {
    let allowed = |mode: &str, names: &[&str]| {
        json!({"type": "allowed_tools", "mode": mode,
            "tools": names.iter().map(|n| json!({"type": "function", "name": n})).collect::<Vec<_>>()})
    };
    let r = call(&request(json!({"tools": weather_tools(),
        "tool_choice": allowed("auto", &["get_weather"])})))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["output"][0]["type"], "function_call");
    assert_eq!(v["output"][0]["name"], "get_weather");
    assert_eq!(v["tool_choice"], allowed("auto", &["get_weather"]));

    let after = json!([
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]);
    let r = call(&request(json!({"tools": weather_tools(), "input": after,
        "tool_choice": allowed("auto", &["get_weather"])})))
    .await;
    assert_eq!(r.json()["output"][0]["type"], "message");
    let r = call(&request(json!({"tools": weather_tools(), "input": after,
        "tool_choice": allowed("required", &["get_time"])})))
    .await;
    assert_eq!(r.json()["output"][0]["name"], "get_time");

    for choice in [
        allowed("auto", &["missing"]),
        allowed("often", &["get_time"]),
        allowed("auto", &[]),
    ] {
        let r = call(&request(
            json!({"tools": weather_tools(), "tool_choice": choice}),
        ))
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{choice}");
        assert_eq!(r.json()["error"]["param"], "tool_choice");
    }
}
