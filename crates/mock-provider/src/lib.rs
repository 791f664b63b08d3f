//! A mock of the OpenAI and Anthropic HTTP APIs (`sightline mock-provider`, and in-process for
//! tests, the demo and the gateway benchmark).
//!
//! The design decision is determinism: every byte of a response — text, tool calls, logprobs,
//! embeddings, ids, `created` — is derived from the configured seed and the request's path and
//! body, so the same request always gets the same answer. A call made through the Sightline
//! gateway can therefore be compared byte for byte with the same call made directly. Usage is
//! counted with a real BPE tokenizer (`o200k_base`), so token counts behave like a provider's.
//!
//! Realism knobs ([`MockConfig`]): latency before the response, time to first token and a token
//! rate for streams, and rates of 429s, 500s and timeouts (chosen deterministically from the
//! request). Tests force a fault on one request with the `x-mock-fault` header (`429`, `500`,
//! `timeout`, `malformed`, `disconnect`) and override timings with `x-mock-latency-ms`,
//! `x-mock-ttft-ms` and `x-mock-tokens-per-s`; a value out of range ([`MAX_DELAY`]) is a 400
//! naming the header. A forced fault changes nothing else: the content stays what the seed, path
//! and body make it. Every response carries the provider's request id header (`x-request-id`
//! or `request-id`), derived the same way.
//!
//! Endpoints: OpenAI `/v1/chat/completions` (streaming, `stream_options.include_usage`, tools and
//! `tool_choice`, `logprobs`/`top_logprobs`, `n`, `stop`, `response_format` JSON modes),
//! `/v1/responses` (the Responses API: string or item `input`, `instructions`, function tools and
//! `tool_choice`, `max_output_tokens`, `text.format` JSON modes, streamed events whose last one
//! carries the object the same request gets without streaming), `/v1/completions` (prompt
//! lists, token prompts, `echo`, `n`), `/v1/embeddings` (float and base64, at most 2048 inputs,
//! `dimensions` up to the model's size), `/v1/models`; Anthropic `/v1/messages` (streaming
//! events, tools, `stop_sequences`) and `/v1/messages/count_tokens`. `max_tokens` bounds text and
//! tool calls alike, and streamed pieces always end at character boundaries. Requests the APIs
//! refuse are refused in their error shapes: a `tool_choice` naming a tool not offered, an
//! Anthropic `max_tokens` or a Responses `max_output_tokens` below 1, an Anthropic request
//! without `anthropic-version`, a body over [`MAX_REQUEST_BYTES`] (413).

mod anthropic;
mod gen;
mod openai;
mod respond;
mod responses;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use respond::{delay_from_ms, valid_token_rate, MAX_DELAY, MAX_REQUEST_BYTES};

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the mock behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Seed of all generated content; the same seed and request give the same response.
    pub seed: u64,
    /// Delay before any response is sent.
    pub latency: Duration,
    /// For streams: further delay before the first content chunk.
    pub ttft: Duration,
    /// For streams: content chunks (tokens) per second after the first; 0 sends them at once.
    pub tokens_per_s: f64,
    /// Fraction of requests answered 429 (rate limited), chosen deterministically per request.
    pub error_rate_429: f64,
    /// Fraction of requests answered 500.
    pub error_rate_500: f64,
    /// Fraction of requests that hang for [`MockConfig::timeout`] and then get a 504.
    pub timeout_rate: f64,
    /// How long a timed-out request hangs.
    pub timeout: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            latency: Duration::ZERO,
            ttft: Duration::ZERO,
            tokens_per_s: 0.0,
            error_rate_429: 0.0,
            error_rate_500: 0.0,
            timeout_rate: 0.0,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The mock's routes, ready to serve or to merge into another router.
pub fn router(config: MockConfig) -> Router {
    let state = Arc::new(config);
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{id}", get(openai::model))
        .route("/v1/responses", post(responses::create))
        .route("/v1/messages", post(anthropic::messages))
        .route(
            "/v1/messages/count_tokens",
            post(anthropic::count_message_tokens),
        )
        .fallback(respond::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            respond::add_request_id,
        ))
        .with_state(state)
}

/// Loads the tokenizer (a few hundred milliseconds the first time), so the first request is not
/// slower than the rest.
pub fn warm_up() {
    let _ = gen::count_tokens("warm up");
}

/// A mock provider serving on a socket of its own.
pub struct RunningMock {
    /// Where it listens (the real port when 0 was asked for).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningMock {
    /// Binds `addr` and serves the mock until [`RunningMock::shutdown`].
    pub async fn start(addr: SocketAddr, config: MockConfig) -> std::io::Result<Self> {
        tokio::task::spawn_blocking(warm_up)
            .await
            .map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let app = router(config);
        // Stream chunks leave as they are produced, as a provider's would.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(Self { addr, stop, task })
    }

    /// Base URL of the mock, e.g. `http://127.0.0.1:5000` (append `/v1/...`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving; open connections (hanging "timeout" requests included) are dropped.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.task.abort();
        match self.task.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
