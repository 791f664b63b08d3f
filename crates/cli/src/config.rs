//! Configuration: flags > environment (`SIGHTLINE_*`) > TOML file > defaults.
//!
//! clap resolves flags and environment variables together (a flag wins over its variable); the
//! TOML file named by `--config` fills whatever neither set; [`ServeConfig`] holds the result.
//! Each crate owns its section's type (`Limits` and `PipelineConfig` in ingest, `SqliteConfig`
//! in store); this file only assembles them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use sightline_gateway::GatewayConfig;
use sightline_ingest::otlp::decode::Limits;
use sightline_ingest::pipeline::PipelineConfig;
use sightline_model::prices::PriceTable;

/// Flags shared by every command that opens the data directory or runs the server.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML configuration file; flags and SIGHTLINE_* variables override what it sets.
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address of the HTTP listener: OTLP/HTTP (/v1/traces, /v1/logs), the Langfuse-compatible
    /// OTLP path, the gateway (/gateway/openai/v1/..., /gateway/anthropic/v1/...), the JSON API
    /// (/api/v1/...) and health checks. [default: 127.0.0.1:4318]
    #[arg(long, env = "SIGHTLINE_HTTP_ADDR", value_name = "HOST:PORT")]
    pub http_addr: Option<SocketAddr>,

    /// Address of the OTLP/gRPC listener (TraceService, LogsService). [default: 127.0.0.1:4317]
    #[arg(long, env = "SIGHTLINE_GRPC_ADDR", value_name = "HOST:PORT")]
    pub grpc_addr: Option<SocketAddr>,

    /// Directory holding the embedded store; created if missing. [default: ./sightline-data]
    #[arg(long, env = "SIGHTLINE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// How hard the store syncs each commit: `full` fsyncs the write-ahead log before any
    /// acknowledgement (survives power loss); `normal` survives a crash of Sightline but not of
    /// the machine. [default: full]
    #[arg(long, env = "SIGHTLINE_SYNC", value_name = "full|normal")]
    pub sync: Option<SyncMode>,

    /// Largest request body accepted, in bytes, before decompression (larger: 413).
    /// [default: 16777216]
    #[arg(long, env = "SIGHTLINE_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Largest body after gzip/zstd decompression, in bytes (larger: 413; reading stops at the
    /// limit, so a decompression bomb never allocates past it). [default: 67108864]
    #[arg(long, env = "SIGHTLINE_MAX_DECOMPRESSED_BYTES", value_name = "BYTES")]
    pub max_decompressed_bytes: Option<usize>,

    /// Longest attribute string value, span or event name, or status message kept, in bytes;
    /// longer ones are truncated and counted. [default: 65536]
    #[arg(
        long,
        env = "SIGHTLINE_MAX_ATTRIBUTE_VALUE_BYTES",
        value_name = "BYTES"
    )]
    pub max_attribute_value_bytes: Option<usize>,

    /// Most spans (or log records) accepted in one request (more: 413). [default: 50000]
    #[arg(long, env = "SIGHTLINE_MAX_SPANS_PER_REQUEST", value_name = "N")]
    pub max_spans_per_request: Option<usize>,

    /// Most spans and log records held in memory between decoding and commit; when full, new
    /// requests get 429 / RESOURCE_EXHAUSTED with a retry hint. [default: 200000]
    #[arg(long, env = "SIGHTLINE_MAX_INFLIGHT_SPANS", value_name = "N")]
    pub max_inflight_spans: Option<usize>,

    /// TOML file of prices that override or extend the built-in table (same format as the
    /// built-in `prices.toml`).
    #[arg(long, env = "SIGHTLINE_PRICES_FILE", value_name = "FILE")]
    pub prices_file: Option<PathBuf>,

    /// Models named in the Prometheus `/metrics` labels: the N most called keep their name, the
    /// rest are reported as `other`, which bounds label cardinality. [default: 20]
    #[arg(long, env = "SIGHTLINE_METRICS_TOP_MODELS", value_name = "N")]
    pub metrics_top_models: Option<usize>,

    /// Where the gateway forwards `/gateway/openai/v1/...`: the base URL of an OpenAI-compatible
    /// API (`/v1/...` is appended). [default: https://api.openai.com]
    #[arg(long, env = "SIGHTLINE_OPENAI_UPSTREAM", value_name = "URL")]
    pub openai_upstream: Option<String>,

    /// Where the gateway forwards `/gateway/anthropic/v1/...`: the base URL of the Anthropic API
    /// (`/v1/...` is appended). [default: https://api.anthropic.com]
    #[arg(long, env = "SIGHTLINE_ANTHROPIC_UPSTREAM", value_name = "URL")]
    pub anthropic_upstream: Option<String>,

    /// Seconds the gateway waits for an upstream to connect, to answer, or to send the next chunk
    /// of a streamed body before it gives up (504, recorded as a timeout). [default: 600]
    #[arg(long, env = "SIGHTLINE_GATEWAY_TIMEOUT", value_name = "SECONDS")]
    pub gateway_timeout: Option<f64>,

    /// Gateway calls waiting to be recorded; when the queue is full further calls are still
    /// forwarded but counted as unrecorded. [default: 10000]
    #[arg(long, env = "SIGHTLINE_GATEWAY_QUEUE", value_name = "N")]
    pub gateway_queue: Option<usize>,

    /// Bytes of request and response bodies that gateway calls waiting to be recorded may hold;
    /// a call that would pass it is still forwarded but counted as unrecorded (a call alone is
    /// always queued). [default: 268435456, 256 MiB]
    #[arg(long, env = "SIGHTLINE_GATEWAY_QUEUE_BYTES", value_name = "BYTES")]
    pub gateway_queue_bytes: Option<usize>,
}

/// The `[gateway]` section of the TOML file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
struct FileGateway {
    /// See `--openai-upstream`.
    openai_upstream: Option<String>,
    /// See `--anthropic-upstream`.
    anthropic_upstream: Option<String>,
    /// See `--gateway-timeout`.
    timeout_secs: Option<f64>,
    /// See `--gateway-queue`.
    queue_capacity: Option<usize>,
    /// See `--gateway-queue-bytes`.
    queue_max_bytes: Option<usize>,
}

/// How the store syncs commits.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync the write-ahead log on every commit.
    #[default]
    Full,
    /// Leave syncing to checkpoints: survives a process crash, not a power loss.
    Normal,
}

/// The TOML file's shape. Every field is optional; flags and environment override it.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// See `--http-addr`.
    http_addr: Option<SocketAddr>,
    /// See `--grpc-addr`.
    grpc_addr: Option<SocketAddr>,
    /// See `--data-dir`.
    data_dir: Option<PathBuf>,
    /// See `--sync`.
    sync: Option<SyncMode>,
    /// See `--prices-file`.
    prices_file: Option<PathBuf>,
    /// Ingest limits (`[limits]`).
    limits: Option<Limits>,
    /// Pipeline settings (`[pipeline]`).
    pipeline: Option<PipelineConfig>,
    /// See `--metrics-top-models`.
    metrics_top_models: Option<usize>,
    /// Gateway settings (`[gateway]`).
    gateway: Option<FileGateway>,
}

/// The resolved configuration of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// HTTP listener.
    pub http_addr: SocketAddr,
    /// gRPC listener.
    pub grpc_addr: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Commit sync mode.
    pub sync: SyncMode,
    /// Ingest limits.
    pub limits: Limits,
    /// Pipeline settings.
    pub pipeline: PipelineConfig,
    /// User price overrides.
    pub prices_file: Option<PathBuf>,
    /// Models named in `/metrics` labels.
    pub metrics_top_models: usize,
    /// Gateway settings.
    pub gateway: GatewayConfig,
}

impl ServeConfig {
    /// Resolves flags, environment, the config file and defaults.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let mut limits = file.limits.unwrap_or_default();
        if let Some(v) = args.max_body_bytes {
            limits.max_body_bytes = v;
        }
        if let Some(v) = args.max_decompressed_bytes {
            limits.max_decompressed_bytes = v;
        }
        if let Some(v) = args.max_attribute_value_bytes {
            limits.max_attribute_value_bytes = v;
        }
        if let Some(v) = args.max_spans_per_request {
            limits.max_spans_per_request = v;
        }
        let mut pipeline = file.pipeline.unwrap_or_default();
        if let Some(v) = args.max_inflight_spans {
            pipeline.max_inflight_spans = v;
        }
        let file_gateway = file.gateway.clone().unwrap_or_default();
        let mut gateway = GatewayConfig::default();
        if let Some(v) = args
            .openai_upstream
            .clone()
            .or(file_gateway.openai_upstream)
        {
            gateway.openai_upstream = v;
        }
        if let Some(v) = args
            .anthropic_upstream
            .clone()
            .or(file_gateway.anthropic_upstream)
        {
            gateway.anthropic_upstream = v;
        }
        if let Some(v) = args.gateway_timeout.or(file_gateway.timeout_secs) {
            if !v.is_finite() || v <= 0.0 {
                anyhow::bail!("--gateway-timeout must be a positive number of seconds, got {v}");
            }
            gateway.timeout = std::time::Duration::from_secs_f64(v);
        }
        if let Some(v) = args.gateway_queue.or(file_gateway.queue_capacity) {
            if v == 0 {
                anyhow::bail!("--gateway-queue must be at least 1");
            }
            gateway.queue_capacity = v;
        }
        if let Some(v) = args.gateway_queue_bytes.or(file_gateway.queue_max_bytes) {
            if v == 0 {
                anyhow::bail!("--gateway-queue-bytes must be at least 1");
            }
            gateway.queue_max_bytes = v;
        }
        Ok(Self {
            gateway,
            http_addr: args
                .http_addr
                .or(file.http_addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4318))),
            grpc_addr: args
                .grpc_addr
                .or(file.grpc_addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4317))),
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("sightline-data")),
            sync: args.sync.or(file.sync).unwrap_or_default(),
            limits,
            pipeline,
            prices_file: args.prices_file.clone().or(file.prices_file),
            metrics_top_models: args
                .metrics_top_models
                .or(file.metrics_top_models)
                .unwrap_or(20),
        })
    }

    /// The built-in price table with the user's overrides applied.
    pub fn price_table(&self) -> anyhow::Result<PriceTable> {
        let builtin = PriceTable::builtin();
        match &self.prices_file {
            None => Ok(builtin),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read prices file {}", path.display()))?;
                let user = PriceTable::from_toml_str(&text)
                    .with_context(|| format!("invalid prices file {}", path.display()))?;
                Ok(builtin.with_overrides(user))
            }
        }
    }
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sightline.toml");
        std::fs::write(
            &path,
            "http_addr = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/x\"\n[limits]\nmax_body_bytes = 1000\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            data_dir: Some(PathBuf::from("/flag")),
            ..Default::default()
        };
        let c = ServeConfig::load(&args).unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.grpc_addr, "127.0.0.1:4317".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.limits.max_body_bytes, 1000);
        assert_eq!(c.sync, SyncMode::Full);
    }

    #[test]
    fn gateway_settings_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sightline.toml");
        std::fs::write(
            &path,
            "[gateway]\nopenai_upstream = \"http://file:1\"\nanthropic_upstream = \"http://file:2\"\ntimeout_secs = 5\nqueue_max_bytes = 4096\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            openai_upstream: Some("http://flag:1".into()),
            gateway_queue: Some(7),
            ..Default::default()
        };
        let c = ServeConfig::load(&args).unwrap();
        assert_eq!(c.gateway.openai_upstream, "http://flag:1");
        assert_eq!(c.gateway.anthropic_upstream, "http://file:2");
        assert_eq!(c.gateway.timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.gateway.queue_capacity, 7);
        assert_eq!(c.gateway.queue_max_bytes, 4096);
        let defaults = ServeConfig::load(&ServeArgs::default()).unwrap();
        assert_eq!(defaults.gateway.openai_upstream, "https://api.openai.com");
        assert_eq!(defaults.gateway.queue_max_bytes, 256 * 1024 * 1024);
        assert!(ServeConfig::load(&ServeArgs {
            gateway_queue_bytes: Some(0),
            ..Default::default()
        })
        .is_err());
        assert!(ServeConfig::load(&ServeArgs {
            gateway_timeout: Some(0.0),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "htp_addr = \"127.0.0.1:9000\"\n").unwrap();
        let err = ServeConfig::load(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("htp_addr"), "{err:#}");
    }
}
