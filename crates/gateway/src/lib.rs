//! The Sightline gateway: an OpenAI- and Anthropic-compatible proxy that records every call.
//!
//! Teams that will not instrument their code change one base URL to
//! `http://sightline:4318/gateway/openai/v1` (or `/gateway/anthropic/v1`) and every call appears
//! in Sightline as a span with its normalized LLM call. The design decision is that the proxy
//! path does nothing but copy: the request is forwarded with its headers (API key included) to
//! the upstream, and the response's status, headers and body go back unchanged, chunk by chunk as
//! they arrive ([`proxy`]). While copying, the body's chunks are kept by reference
//! ([`capture`]); when the response ends — completely, by an upstream error, or because the
//! client went away — the whole exchange is handed to a bounded queue without waiting
//! ([`recorder`]). A background task turns exchanges into spans that follow the OTel GenAI
//! convention ([`record`]: parsing requests, JSON responses and event streams of both APIs) and
//! feeds them to the same [`Pipeline`] as OTLP, so normalization, pricing and storage are shared.
//! An exchange that cannot be queued is counted in [`GatewayStats`], never silently lost.
//!
//! The API key is never stored or logged: only `x-sightline-*` attribution headers are read
//! from the request, and none of the request headers are recorded.

pub mod capture;
pub mod proxy;
pub mod record;
pub mod recorder;
mod sse;
pub mod stats;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use axum::Router;
use sightline_ingest::Pipeline;
use tokio::task::JoinHandle;

pub use recorder::Recorder;
pub use stats::{GatewayStats, GatewayStatsSnapshot};

/// The real OpenAI API.
pub const DEFAULT_OPENAI_UPSTREAM: &str = "https://api.openai.com";
/// The real Anthropic API.
pub const DEFAULT_ANTHROPIC_UPSTREAM: &str = "https://api.anthropic.com";

/// Gateway settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Base URL of the OpenAI-compatible upstream; `/gateway/openai/v1/X` goes to `{this}/v1/X`.
    pub openai_upstream: String,
    /// Base URL of the Anthropic upstream; `/gateway/anthropic/v1/X` goes to `{this}/v1/X`.
    pub anthropic_upstream: String,
    /// Longest wait for the upstream to connect, answer, or send the next chunk of a body.
    pub timeout: Duration,
    /// Exchanges waiting to be recorded; when full, further ones are counted as dropped.
    pub queue_capacity: usize,
    /// Bytes of request and captured response bodies waiting to be recorded; an exchange that
    /// would take the queue past this is counted as dropped (one alone is always queued).
    pub queue_max_bytes: usize,
    /// Largest request body forwarded (larger: 413).
    pub max_request_bytes: usize,
    /// Most response bytes kept for recording per call; the response itself is never cut.
    pub max_capture_bytes: usize,
    /// Most exchanges written to the pipeline in one batch.
    pub batch_max: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            openai_upstream: DEFAULT_OPENAI_UPSTREAM.into(),
            anthropic_upstream: DEFAULT_ANTHROPIC_UPSTREAM.into(),
            timeout: Duration::from_secs(600),
            queue_capacity: 10_000,
            queue_max_bytes: 256 * 1024 * 1024,
            max_request_bytes: 32 * 1024 * 1024,
            max_capture_bytes: 8 * 1024 * 1024,
            batch_max: 512,
        }
    }
}

/// Which API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI (and OpenAI-compatible servers).
    OpenAi,
    /// Anthropic.
    Anthropic,
}

impl Provider {
    /// The `gen_ai.provider.name` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The start of the gateway's paths for this provider, up to the upstream path.
    pub(crate) fn path_prefix(self) -> &'static str {
        match self {
            Self::OpenAi => "/gateway/openai/v1/",
            Self::Anthropic => "/gateway/anthropic/v1/",
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// An upstream URL is not an absolute http(s) URL.
    #[error("invalid {flag} `{url}`: {message}")]
    InvalidUpstream {
        /// The flag that set it.
        flag: &'static str,
        /// The value.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The recording thread could not be started.
    #[error("cannot start the gateway recorder: {0}")]
    Recorder(#[from] std::io::Error),
}

/// A running gateway: the shared state of its routes and its recorder.
pub struct Gateway {
    pub(crate) config: GatewayConfig,
    pub(crate) openai: reqwest::Url,
    pub(crate) anthropic: reqwest::Url,
    pub(crate) client: reqwest::Client,
    pub(crate) recorder: Recorder,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn parse_upstream(flag: &'static str, url: &str) -> Result<reqwest::Url, GatewayError> {
    let invalid = |message: &str| GatewayError::InvalidUpstream {
        flag,
        url: url.to_string(),
        message: message.to_string(),
    };
    let parsed =
        reqwest::Url::parse(url.trim_end_matches('/')).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid("expected an http:// or https:// URL with a host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(parsed)
}

impl Gateway {
    /// Builds the gateway and starts its recorder, which writes into `pipeline`. The returned
    /// handle resolves once the gateway (and every response it is still streaming) is dropped
    /// and the last exchange has been written.
    pub fn start(
        config: GatewayConfig,
        pipeline: Arc<Pipeline>,
    ) -> Result<(Arc<Self>, JoinHandle<()>), GatewayError> {
        let openai = parse_upstream("--openai-upstream", &config.openai_upstream)?;
        let anthropic = parse_upstream("--anthropic-upstream", &config.anthropic_upstream)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .read_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        let (recorder, task) = recorder::spawn(
            pipeline,
            config.queue_capacity,
            config.queue_max_bytes,
            config.batch_max,
            Arc::new(GatewayStats::default()),
        )?;
        Ok((
            Arc::new(Self {
                config,
                openai,
                anthropic,
                client,
                recorder,
            }),
            task,
        ))
    }

    /// The gateway's counters.
    pub fn stats(&self) -> Arc<GatewayStats> {
        self.recorder.stats()
    }

    /// The routes `/gateway/openai/v1/...` and `/gateway/anthropic/v1/...`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/gateway/openai/v1/{*rest}", any(proxy::openai))
            .route("/gateway/anthropic/v1/{*rest}", any(proxy::anthropic))
            .with_state(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_checked() {
        assert!(parse_upstream("--x", "http://127.0.0.1:9000/").is_ok());
        assert!(parse_upstream("--x", "https://api.openai.com").is_ok());
        assert!(parse_upstream("--x", "ftp://host").is_err());
        assert!(parse_upstream("--x", "not a url").is_err());
        assert!(parse_upstream("--x", "http://h/?q=1").is_err());
    }
}
