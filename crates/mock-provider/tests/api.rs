//! The mock's HTTP API through `tower::ServiceExt::oneshot`: shapes, determinism, usage, faults
//! and errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sightline_mock::{router, MockConfig};
use tower::ServiceExt;

async fn call(
    config: MockConfig,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router(config)
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    (
        status,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

const KEY: (&str, &str) = ("authorization", "Bearer k");

fn chat() -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello there"}]})
}

#[tokio::test]
async fn same_request_same_bytes_other_seed_other_bytes() {
    let a = call(
        MockConfig::default(),
        "/v1/chat/completions",
        chat(),
        &[KEY],
    )
    .await;
    let b = call(
        MockConfig::default(),
        "/v1/chat/completions",
        chat(),
        &[KEY],
    )
    .await;
    assert_eq!(a, b);
    let c = call(
        MockConfig {
            seed: 9,
            ..MockConfig::default()
        },
        "/v1/chat/completions",
        chat(),
        &[KEY],
    )
    .await;
    assert_ne!(a.1, c.1);
    let v: Value = serde_json::from_slice(&a.1).unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    // Usage comes from the real tokenizer: 3 to prime the reply + 3 per message + "user" (1) + "Hello there" (2).
    assert_eq!(v["usage"]["prompt_tokens"], json!(3 + 3 + 1 + 2));
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() >= text.split(' ').count() as u64);
}

#[tokio::test]
async fn stream_carries_usage_last_and_done() {
    let mut body = chat();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, bytes) = call(MockConfig::default(), "/v1/chat/completions", body, &[KEY]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let usage: Value =
        serde_json::from_str(events[events.len() - 2].trim_start_matches("data: ")).unwrap();
    assert_eq!(usage["choices"], json!([]));
    let content_chunks = events.len() - 4; // role, finish, usage, done
    assert_eq!(usage["usage"]["completion_tokens"], json!(content_chunks));
}

#[tokio::test]
async fn embeddings_in_base64_decode_to_unit_vectors() {
    let (status, bytes) = call(
        MockConfig::default(),
        "/v1/embeddings",
        json!({"model": "text-embedding-3-small", "input": "hi", "encoding_format": "base64", "dimensions": 8}),
        &[KEY],
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats.len(), 8);
    assert!((floats.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
}

#[tokio::test]
async fn anthropic_tool_use_and_errors() {
    let body = json!({"model": "claude-3-5-haiku-20241022", "max_tokens": 100,
        "tools": [{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "find x"}]});
    let (status, bytes) = call(
        MockConfig::default(),
        "/v1/messages",
        body.clone(),
        &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    assert!(v["content"][0]["input"]["q"].is_string());

    let (status, bytes) = call(
        MockConfig::default(),
        "/v1/messages",
        body.clone(),
        &[
            ("x-api-key", "k"),
            ("anthropic-version", "2023-06-01"),
            ("x-mock-fault", "429"),
        ],
    )
    .await;
    assert_eq!(status, 429);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let (status, _) = call(MockConfig::default(), "/v1/messages", body, &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let (status, bytes) = call(
        MockConfig::default(),
        "/v1/chat/completions",
        json!({"model": "m"}),
        &[KEY],
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"]["field"], "messages");
    assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string());
}

#[tokio::test]
async fn configured_error_rate_is_deterministic() {
    let config = MockConfig {
        error_rate_500: 1.0,
        ..MockConfig::default()
    };
    let (status, _) = call(config, "/v1/chat/completions", chat(), &[KEY]).await;
    assert_eq!(status, 500);
}
