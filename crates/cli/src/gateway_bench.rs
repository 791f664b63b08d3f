//! `sightline gateway-bench`: the latency the gateway adds, measured in one run.
//!
//! One process starts the mock provider (latency 0) and a full Sightline server (store, pipeline,
//! gateway recording into it) on loopback ports, then sends the same request to the mock directly
//! and through the gateway, so every figure has a same-run baseline:
//!
//! 1. concurrency 1: requests alternate direct / gateway, one at a time;
//! 2. open loop at each `--rates` step: for `--step-s` seconds requests start on a fixed schedule,
//!    in alternating 500 ms blocks of direct and gateway traffic (so both see the same machine
//!    noise), each block at the full rate;
//! 3. streams: paced streams (`--stream-tokens` chunks at `--stream-tokens-per-s`) alternate
//!    direct / gateway; time to first chunk and the gaps between chunks are compared, and every
//!    gateway stream's bytes must equal the direct stream's (no chunk lost or reordered).
//!
//! "Added" figures are gateway percentile minus direct percentile. Loads 1 and 2 send through
//! [`crate::bench_client`], which costs the shared CPUs a fraction of what a general-purpose
//! client does; the streams use reqwest.
//!
//! With `--mock-url` and `--server-url` the mock provider and the server are processes of their
//! own (as in a deployment, where the application, Sightline and the provider do not share a
//! runtime); this process is then only the client, and reads the recording counters from the
//! server's `/metrics`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use hdrhistogram::Histogram;
use sightline_mock::{MockConfig, RunningMock};
use tokio::sync::Semaphore;

use crate::bench_client::Target;
use crate::config::{ServeArgs, ServeConfig, SyncMode};

/// Options of `sightline gateway-bench`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct BenchArgs {
    /// Requests per path (direct and gateway) at concurrency 1.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub sequential: u64,

    /// Open-loop request rates to step through, requests per second, comma-separated.
    #[arg(long, value_name = "R,R,...", value_delimiter = ',', default_values_t = vec![500.0, 1000.0, 2000.0, 5000.0])]
    pub rates: Vec<f64>,

    /// Seconds of each open-loop step (half direct, half through the gateway).
    #[arg(long, value_name = "SECONDS", default_value_t = 6.0)]
    pub step_s: f64,

    /// Most requests in flight in the open-loop steps.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_inflight: usize,

    /// Streams per path (direct and gateway).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub streams: u64,

    /// Chunks (tokens) in each stream.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub stream_tokens: u64,

    /// Pace of the streams, in chunks per second.
    #[arg(long, value_name = "N", default_value_t = 1000.0)]
    pub stream_tokens_per_s: f64,

    /// Base URL of a running mock provider (`sightline mock-provider`) to call directly, instead
    /// of starting one in this process. Use with `--server-url`.
    #[arg(long, value_name = "URL", requires = "server_url")]
    pub mock_url: Option<String>,

    /// Base URL of a running Sightline server whose gateway forwards to `--mock-url`
    /// (`sightline serve --openai-upstream <mock-url>`), instead of starting one in this process.
    #[arg(long, value_name = "URL", requires = "mock_url")]
    pub server_url: Option<String>,
}

/// Latency percentiles of one path, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Pct {
    count: u64,
    p50: f64,
    p99: f64,
}

fn pct(samples_ns: &[u64]) -> Pct {
    let mut h = match Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3) {
        Ok(h) => h,
        Err(_) => return Pct::default(),
    };
    for s in samples_ns {
        let _ = h.record((*s).max(1));
    }
    Pct {
        count: h.len(),
        p50: h.value_at_quantile(0.50) as f64 / 1e3,
        p99: h.value_at_quantile(0.99) as f64 / 1e3,
    }
}

/// One row: direct vs gateway.
#[derive(Debug, Clone)]
struct Row {
    label: String,
    direct: Pct,
    gateway: Pct,
    errors: u64,
    achieved_rps: f64,
}

impl Row {
    fn added_p50(&self) -> f64 {
        self.gateway.p50 - self.direct.p50
    }
    fn added_p99(&self) -> f64 {
        self.gateway.p99 - self.direct.p99
    }
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    rows: Vec<Row>,
    ttft: Row,
    gaps: Row,
    streams_compared: u64,
    streams_identical: u64,
    chunks_direct: u64,
    chunks_gateway: u64,
    /// Requests sent through the gateway (or the proxy under test), warm-up included: what
    /// the proxy's CPU time is divided by.
    through_proxy: u64,
    recorded: sightline_gateway::GatewayStatsSnapshot,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gateway latency (µs): same mock provider (latency 0), direct vs through the gateway"
        )?;
        writeln!(
            f,
            "{:<22} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7}",
            "load",
            "achieved",
            "n/path",
            "direct p50",
            "gw p50",
            "added p50",
            "direct p99",
            "gw p99",
            "added p99",
            "errors"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<22} {:>9.0} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>7}",
                r.label,
                r.achieved_rps,
                r.gateway.count,
                r.direct.p50,
                r.gateway.p50,
                r.added_p50(),
                r.direct.p99,
                r.gateway.p99,
                r.added_p99(),
                r.errors
            )?;
        }
        let best = self
            .rows
            .iter()
            .filter(|r| r.label.starts_with("open loop") && r.errors == 0 && r.added_p99() < 1000.0)
            .max_by(|a, b| a.achieved_rps.total_cmp(&b.achieved_rps));
        match best {
            Some(r) => writeln!(
                f,
                "highest open-loop rate with added p99 < 1 ms: {:.0} req/s (added p50 {:.1} µs, p99 {:.1} µs)",
                r.achieved_rps,
                r.added_p50(),
                r.added_p99()
            )?,
            None => writeln!(f, "no open-loop rate kept the added p99 under 1 ms")?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "streams (µs)           direct p50  gw p50  added p50  direct p99  gw p99  added p99"
        )?;
        for r in [&self.ttft, &self.gaps] {
            writeln!(
                f,
                "{:<22} {:>10.1} {:>7.1} {:>10.1} {:>11.1} {:>7.1} {:>10.1}",
                r.label,
                r.direct.p50,
                r.gateway.p50,
                r.added_p50(),
                r.direct.p99,
                r.gateway.p99,
                r.added_p99()
            )?;
        }
        writeln!(
            f,
            "stream bytes identical to direct: {}/{} streams; chunks received direct {} / gateway {}",
            self.streams_identical, self.streams_compared, self.chunks_direct, self.chunks_gateway
        )?;
        writeln!(f, "requests through the proxy: {}", self.through_proxy)?;
        writeln!(
            f,
            "recorded: {} calls stored, {} dropped (queue full), {} failed, {} requests through the gateway",
            self.recorded.records_stored,
            self.recorded.records_dropped_queue_full,
            self.recorded.records_failed,
            self.recorded.requests
        )
    }
}

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}"#;

/// The benchmark's chat request to `url`, ready to send again and again.
fn chat_target(url: &str) -> anyhow::Result<Arc<Target>> {
    Ok(Arc::new(Target::post_json(
        url,
        BODY,
        &[("authorization", "Bearer bench")],
    )?))
}

/// Requests at `rate` per second for `duration`, open loop; returns latencies and errors.
async fn open_loop(
    target: &Arc<Target>,
    rate: f64,
    duration: Duration,
    limit: Arc<Semaphore>,
    sink: Arc<Mutex<Vec<u64>>>,
    errors: Arc<Mutex<u64>>,
) -> u64 {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let due = start + interval.mul_f64(sent as f64);
        if due.duration_since(start) >= duration {
            break;
        }
        tokio::time::sleep_until(due).await;
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let (target, sink, errors) = (target.clone(), sink.clone(), errors.clone());
        tasks.spawn(async move {
            let r = target.send().await;
            drop(permit);
            match r {
                Ok(ns) => {
                    if let Ok(mut s) = sink.lock() {
                        s.push(ns);
                    }
                }
                Err(_) => {
                    if let Ok(mut e) = errors.lock() {
                        *e += 1;
                    }
                }
            }
        });
        sent += 1;
    }
    while tasks.join_next().await.is_some() {}
    sent
}

/// One paced stream: (time to first chunk, gaps between chunks, the whole body, chunk count).
async fn stream_once(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    tokens_per_s: f64,
) -> anyhow::Result<(u64, Vec<u64>, Vec<u8>, u64)> {
    let start = Instant::now();
    let r = client
        .post(url)
        .header("authorization", "Bearer bench")
        .header("content-type", "application/json")
        .header("x-mock-tokens-per-s", tokens_per_s.to_string())
        .body(body.to_string())
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("stream answered {}", r.status());
    }
    let mut stream = r.bytes_stream();
    let mut first = None;
    let mut last = None::<Instant>;
    let mut gaps = Vec::new();
    let mut all = Vec::new();
    let mut chunks = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let now = Instant::now();
        if first.is_none() {
            first = Some(now.duration_since(start).as_nanos() as u64);
        }
        if let Some(prev) = last {
            gaps.push(now.duration_since(prev).as_nanos() as u64);
        }
        last = Some(now);
        chunks += 1;
        all.extend_from_slice(&chunk);
    }
    Ok((first.unwrap_or(0), gaps, all, chunks))
}

/// The mock provider and the server: started in this process, or running elsewhere.
enum Parts {
    InProcess {
        mock: RunningMock,
        server: crate::server::RunningServer,
        _dir: tempfile::TempDir,
    },
    External {
        mock: String,
        server: String,
    },
}

impl Parts {
    async fn start() -> anyhow::Result<Self> {
        let mock = RunningMock::start(([127, 0, 0, 1], 0).into(), MockConfig::default()).await?;
        let dir = tempfile::tempdir().context("cannot create a temporary data directory")?;
        let mut config = ServeConfig::load(&ServeArgs {
            http_addr: Some(([127, 0, 0, 1], 0).into()),
            grpc_addr: Some(([127, 0, 0, 1], 0).into()),
            data_dir: Some(dir.path().to_path_buf()),
            sync: Some(SyncMode::Full),
            openai_upstream: Some(mock.base_url()),
            ..ServeArgs::default()
        })?;
        config.gateway.queue_capacity = 100_000;
        let server = crate::server::start(&config).await?;
        Ok(Self::InProcess {
            mock,
            server,
            _dir: dir,
        })
    }

    fn mock_url(&self) -> String {
        match self {
            Self::InProcess { mock, .. } => mock.base_url(),
            Self::External { mock, .. } => mock.clone(),
        }
    }

    fn server_url(&self) -> String {
        match self {
            Self::InProcess { server, .. } => format!("http://{}", server.http_addr),
            Self::External { server, .. } => server.clone(),
        }
    }

    /// Waits for the recorder to catch up, reads its counters, and stops what was started.
    async fn finish(
        self,
        client: &reqwest::Client,
    ) -> anyhow::Result<sightline_gateway::GatewayStatsSnapshot> {
        let deadline = Instant::now() + Duration::from_secs(60);
        match self {
            Self::InProcess { mock, server, _dir } => {
                let stats = server.gateway_stats.clone();
                while stats.snapshot().queue_depth > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let recorded = stats.snapshot();
                server.shutdown().await?;
                mock.shutdown().await?;
                Ok(recorded)
            }
            Self::External { server, .. } => loop {
                let text = client
                    .get(format!("{server}/metrics"))
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await?;
                let stats = scrape_gateway_stats(&text);
                if stats.queue_depth == 0 || Instant::now() >= deadline {
                    break Ok(stats);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            },
        }
    }
}

/// The gateway's counters from a Prometheus exposition (`/metrics`); absent ones are 0.
fn scrape_gateway_stats(text: &str) -> sightline_gateway::GatewayStatsSnapshot {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
                rest.trim().parse::<f64>().ok()
            })
            .map_or(0, |v| v as u64)
    };
    let mut stats = sightline_gateway::GatewayStatsSnapshot::default();
    for (name, _, _, field) in crate::telemetry::GATEWAY_SERIES {
        *field(&mut stats) = value(name);
    }
    stats
}

/// Runs the whole benchmark.
pub async fn run(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    if args.rates.iter().any(|r| !r.is_finite() || *r <= 0.0) || args.step_s <= 0.0 {
        bail!("--rates must be positive numbers and --step-s positive");
    }
    let parts = match (&args.mock_url, &args.server_url) {
        (Some(mock), Some(server)) => Parts::External {
            mock: mock.trim_end_matches('/').to_string(),
            server: server.trim_end_matches('/').to_string(),
        },
        _ => Parts::start().await?,
    };
    let direct = format!("{}/v1/chat/completions", parts.mock_url());
    let gateway = format!("{}/gateway/openai/v1/chat/completions", parts.server_url());
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.max_inflight)
        .timeout(Duration::from_secs(30))
        .build()?;

    let (direct_target, gateway_target) = (chat_target(&direct)?, chat_target(&gateway)?);

    // Warm up connections, the tokenizer and the store.
    const WARM_UP: u64 = 200;
    let mut through_proxy = WARM_UP + args.sequential + args.streams;
    for _ in 0..WARM_UP {
        let _ = direct_target.send().await;
        let _ = gateway_target.send().await;
    }

    let mut rows = Vec::new();
    // 1. Concurrency 1.
    let (mut d, mut g, mut errors) = (Vec::new(), Vec::new(), 0u64);
    let started = Instant::now();
    for _ in 0..args.sequential {
        match direct_target.send().await {
            Ok(ns) => d.push(ns),
            Err(_) => errors += 1,
        }
        match gateway_target.send().await {
            Ok(ns) => g.push(ns),
            Err(_) => errors += 1,
        }
    }
    rows.push(Row {
        label: "concurrency 1".into(),
        direct: pct(&d),
        gateway: pct(&g),
        errors,
        achieved_rps: (2 * args.sequential) as f64 / started.elapsed().as_secs_f64(),
    });

    // 2. Open loop, alternating 500 ms blocks.
    let block = Duration::from_millis(500);
    for &rate in &args.rates {
        let limit = Arc::new(Semaphore::new(args.max_inflight.max(1)));
        let d = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(0u64));
        let blocks = ((args.step_s / block.as_secs_f64()) as u64).max(2);
        let mut sent_gateway = 0;
        let mut gateway_time = Duration::ZERO;
        for b in 0..blocks {
            let (target, sink) = if b % 2 == 0 {
                (&direct_target, &d)
            } else {
                (&gateway_target, &g)
            };
            let t = Instant::now();
            let sent = open_loop(
                target,
                rate,
                block,
                limit.clone(),
                sink.clone(),
                errors.clone(),
            )
            .await;
            if b % 2 == 1 {
                sent_gateway += sent;
                gateway_time += t.elapsed();
            }
        }
        through_proxy += sent_gateway;
        let take = |m: &Arc<Mutex<Vec<u64>>>| m.lock().map(|v| v.clone()).unwrap_or_default();
        rows.push(Row {
            label: format!("open loop {rate:.0}/s"),
            direct: pct(&take(&d)),
            gateway: pct(&take(&g)),
            errors: errors.lock().map(|e| *e).unwrap_or(0),
            achieved_rps: sent_gateway as f64 / gateway_time.as_secs_f64().max(1e-9),
        });
    }

    // 3. Streams.
    let stream_body = format!(
        r#"{{"model":"gpt-4o-mini","stream":true,"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"Tell me a story."}}],"max_tokens":{}}}"#,
        args.stream_tokens
    );
    let (mut ttft_d, mut ttft_g, mut gaps_d, mut gaps_g) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut identical, mut chunks_d, mut chunks_g, mut stream_errors) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..args.streams {
        let a = stream_once(&client, &direct, &stream_body, args.stream_tokens_per_s).await;
        let b = stream_once(&client, &gateway, &stream_body, args.stream_tokens_per_s).await;
        match (a, b) {
            (Ok(a), Ok(b)) => {
                ttft_d.push(a.0);
                ttft_g.push(b.0);
                gaps_d.extend(a.1);
                gaps_g.extend(b.1);
                chunks_d += a.3;
                chunks_g += b.3;
                if a.2 == b.2 {
                    identical += 1;
                }
            }
            _ => stream_errors += 1,
        }
    }

    let recorded = parts.finish(&client).await?;

    Ok(BenchReport {
        rows,
        ttft: Row {
            label: "time to first chunk".into(),
            direct: pct(&ttft_d),
            gateway: pct(&ttft_g),
            errors: stream_errors,
            achieved_rps: 0.0,
        },
        gaps: Row {
            label: "inter-chunk gap".into(),
            direct: pct(&gaps_d),
            gateway: pct(&gaps_g),
            errors: stream_errors,
            achieved_rps: 0.0,
        },
        streams_compared: args.streams - stream_errors,
        streams_identical: identical,
        chunks_direct: chunks_d,
        chunks_gateway: chunks_g,
        through_proxy,
        recorded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_counters_are_read_from_metrics() {
        let text = "# HELP sightline_gateway_requests_total Requests received.\n\
                    # TYPE sightline_gateway_requests_total counter\n\
                    sightline_gateway_requests_total 27900\n\
                    sightline_gateway_records_stored_total 27899\n\
                    sightline_gateway_records_dropped_total 1\n\
                    sightline_gateway_record_queue_depth 0\n\
                    sightline_gateway_record_queue_capacity 100000\n";
        let s = scrape_gateway_stats(text);
        assert_eq!(s.requests, 27_900);
        assert_eq!(s.records_stored, 27_899);
        assert_eq!(s.records_dropped_queue_full, 1);
        assert_eq!(s.records_failed, 0, "absent is zero");
        assert_eq!(s.queue_capacity, 100_000);
    }
}
