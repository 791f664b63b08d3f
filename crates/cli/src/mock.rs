//! `sightline mock-provider`: the OpenAI/Anthropic mock on a socket of its own.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use sightline_mock::{MockConfig, RunningMock};

/// Options of `sightline mock-provider`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct MockArgs {
    /// Address to listen on; port 0 picks a free port (the address is printed on start).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8090")]
    pub addr: SocketAddr,

    /// Seed of the generated content: the same seed and request give the same response.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Milliseconds before every response.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    pub latency_ms: f64,

    /// For streams: further milliseconds before the first content chunk.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    pub ttft_ms: f64,

    /// For streams: content chunks (tokens) per second; 0 sends them all at once.
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub tokens_per_s: f64,

    /// Fraction of requests (0 to 1) answered 429 with `retry-after`.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub error_rate_429: f64,

    /// Fraction of requests (0 to 1) answered 500.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub error_rate_500: f64,

    /// Fraction of requests (0 to 1) that hang for --timeout-ms and then get a 504.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub timeout_rate: f64,

    /// How long a timed-out request hangs, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 60_000.0)]
    pub timeout_ms: f64,
}

fn ms(name: &str, v: f64) -> anyhow::Result<Duration> {
    match sightline_mock::delay_from_ms(v) {
        Some(d) => Ok(d),
        None => bail!(
            "--{name} must be a number of milliseconds from 0 to {}, got {v}",
            sightline_mock::MAX_DELAY.as_millis()
        ),
    }
}

impl MockArgs {
    /// The mock's configuration, after checking every value.
    pub fn config(&self) -> anyhow::Result<MockConfig> {
        for (name, rate) in [
            ("error-rate-429", self.error_rate_429),
            ("error-rate-500", self.error_rate_500),
            ("timeout-rate", self.timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bail!("--{name} must be between 0 and 1, got {rate}");
            }
        }
        if self.error_rate_429 + self.error_rate_500 + self.timeout_rate > 1.0 {
            bail!("--error-rate-429, --error-rate-500 and --timeout-rate add up to more than 1");
        }
        if !sightline_mock::valid_token_rate(self.tokens_per_s) {
            bail!(
                "--tokens-per-s must be 0 (no pacing) or at least one token a day, got {}",
                self.tokens_per_s
            );
        }
        Ok(MockConfig {
            seed: self.seed,
            latency: ms("latency-ms", self.latency_ms)?,
            ttft: ms("ttft-ms", self.ttft_ms)?,
            tokens_per_s: self.tokens_per_s,
            error_rate_429: self.error_rate_429,
            error_rate_500: self.error_rate_500,
            timeout_rate: self.timeout_rate,
            timeout: ms("timeout-ms", self.timeout_ms)?,
        })
    }
}

/// Serves the mock until Ctrl-C or SIGTERM.
pub async fn run(args: &MockArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let mock = RunningMock::start(args.addr, config)
        .await
        .with_context(|| format!("cannot listen on {} (--addr)", args.addr))?;
    println!("mock provider listening on {}", mock.base_url());
    println!(
        "  OpenAI:    {0}/v1/chat/completions, /v1/responses, /v1/completions, /v1/embeddings, /v1/models\n  Anthropic: {0}/v1/messages, /v1/messages/count_tokens",
        mock.base_url()
    );
    crate::server::wait_for_signal().await;
    mock.shutdown().await.context("mock provider failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> MockArgs {
        MockArgs {
            addr: "127.0.0.1:0".parse().unwrap(),
            seed: 1,
            latency_ms: 5.0,
            ttft_ms: 0.0,
            tokens_per_s: 100.0,
            error_rate_429: 0.1,
            error_rate_500: 0.1,
            timeout_rate: 0.0,
            timeout_ms: 1000.0,
        }
    }

    #[test]
    fn values_are_checked() {
        let c = args().config().unwrap();
        assert_eq!(c.latency, Duration::from_millis(5));
        assert!(MockArgs {
            error_rate_429: 1.5,
            ..args()
        }
        .config()
        .is_err());
        assert!(MockArgs {
            error_rate_429: 0.6,
            error_rate_500: 0.6,
            ..args()
        }
        .config()
        .is_err());
        assert!(MockArgs {
            latency_ms: -1.0,
            ..args()
        }
        .config()
        .is_err());
        // Regression: a value too large for a Duration panicked instead of being refused.
        for latency_ms in [1e30, f64::MAX, f64::INFINITY] {
            assert!(MockArgs {
                latency_ms,
                ..args()
            }
            .config()
            .is_err());
        }
        assert!(MockArgs {
            timeout_ms: 1e30,
            ..args()
        }
        .config()
        .is_err());
        assert!(MockArgs {
            tokens_per_s: 1e-300,
            ..args()
        }
        .config()
        .is_err());
        assert!(MockArgs {
            tokens_per_s: f64::NAN,
            ..args()
        }
        .config()
        .is_err());
    }
}
