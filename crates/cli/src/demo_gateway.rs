//! The gateway part of `sightline demo`: an in-process mock provider as the gateway's upstream,
//! and a gentle stream of OpenAI and Anthropic calls sent through `/gateway/...`, so the demo
//! shows recorded gateway calls (chat completions, the Responses API and Anthropic messages,
//! streamed and not, tool calls, embeddings, a few errors) next to the OTLP traffic.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use sightline_mock::{MockConfig, RunningMock};

use crate::config::ServeConfig;
use crate::demo::DemoArgs;

/// Starts the mock provider and points the gateway's upstreams at it.
pub async fn start_mock(config: &mut ServeConfig) -> anyhow::Result<RunningMock> {
    let mock = RunningMock::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        MockConfig {
            seed: rand::random(),
            latency: Duration::from_millis(120),
            ttft: Duration::from_millis(180),
            tokens_per_s: 90.0,
            error_rate_429: 0.03,
            error_rate_500: 0.02,
            ..MockConfig::default()
        },
    )
    .await
    .context("cannot start the demo's mock provider")?;
    config.gateway.openai_upstream = mock.base_url();
    config.gateway.anthropic_upstream = mock.base_url();
    Ok(mock)
}

const USERS: [&str; 5] = ["ana", "bo", "chen", "dev", "eli"];
const QUESTIONS: [&str; 6] = [
    "What is the weather in Paris?",
    "Summarize the quarterly report in two sentences.",
    "Which regions grew fastest last month?",
    "Draft a short reply to the customer about the delay.",
    "List three risks in the launch plan.",
    "Translate 'good morning' into French.",
];

/// One call's path and body, by its number in the sequence.
fn call(n: u64) -> (&'static str, &'static str, Value) {
    // Each kind of call (n % KINDS) cycles through the questions, so no request body repeats
    // forever (the mock's faults are a function of the body, so a repeated one could always fail).
    const KINDS: u64 = 7;
    let q = QUESTIONS[((n / KINDS) % QUESTIONS.len() as u64) as usize];
    let weather_tool = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}}}]);
    match n % KINDS {
        0 => (
            "openai",
            "chat/completions",
            json!({"model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": q}], "temperature": 0.3,
            "logprobs": true, "top_logprobs": 3}),
        ),
        1 => (
            "openai",
            "chat/completions",
            json!({"model": "gpt-4o", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": q}], "max_tokens": 60}),
        ),
        2 => (
            "openai",
            "chat/completions",
            json!({"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": weather_tool}),
        ),
        3 => (
            "anthropic",
            "messages",
            json!({"model": "claude-haiku-4-5-20251001",
            "max_tokens": 200, "system": "Answer briefly.",
            "messages": [{"role": "user", "content": q}]}),
        ),
        4 => (
            "anthropic",
            "messages",
            json!({"model": "claude-opus-4-5",
            "max_tokens": 200, "stream": true, "messages": [{"role": "user", "content": q}]}),
        ),
        5 => (
            "openai",
            "responses",
            json!({"model": "gpt-4.1-mini", "stream": true,
            "instructions": "You are a concise analyst.", "input": q,
            "max_output_tokens": 80}),
        ),
        _ => (
            "openai",
            "embeddings",
            json!({"model": "text-embedding-3-small", "input": q}),
        ),
    }
}

/// Sends about one gateway call per second until the demo stops; failures are part of the show
/// (the mock injects some) and never end the demo.
pub async fn run(_demo: &DemoArgs, http_addr: SocketAddr) -> anyhow::Result<()> {
    let base = format!("http://{}", crate::demo::reachable(http_addr));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the demo's HTTP client")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("  Gateway calls to a mock provider: {base}/api/v1/calls?service=demo-gateway-app");
    let mut ticker = tokio::time::interval(Duration::from_millis(1200));
    for n in 0u64.. {
        ticker.tick().await;
        let (provider, path, body) = call(n);
        let user = USERS[(n % USERS.len() as u64) as usize];
        let request = client
            .post(format!("{base}/gateway/{provider}/v1/{path}"))
            .header("authorization", "Bearer demo-key")
            .header("x-api-key", "demo-key")
            .header("anthropic-version", "2023-06-01")
            .header("x-sightline-service", "demo-gateway-app")
            .header("x-sightline-user-id", user)
            .header("x-sightline-session-id", format!("gw-{user}-{}", n / 12))
            .header("x-sightline-tags", "demo,gateway")
            .header("x-sightline-prompt-name", "assistant")
            .header("x-sightline-prompt-version", "2")
            .json(&body);
        match request.send().await {
            Ok(r) => {
                let _ = r.bytes().await;
            }
            Err(e) => tracing::debug!(error = %e, "demo gateway call failed"),
        }
    }
    Ok(())
}
