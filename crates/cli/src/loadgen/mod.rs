//! `sightline loadgen`: realistic agent traces over OTLP, at a set rate or flat out.
//!
//! The design decision is to keep the generator off the critical path. Traces are built once into
//! a pool of encoded templates (`traffic.rs` builds, `template.rs` encodes) and each request is a
//! copy of a few templates with fresh ids and times, so one core produces millions of spans per
//! second and the measurement is of the server, not of the generator. One task produces request
//! bodies, paced by a timer when `--rate` is set; every request then runs as its own task under a
//! semaphore of `--concurrency` permits (`transport.rs` sends, `report.rs` counts). Nothing is
//! cancelled at the end: the run stops producing and waits for every in-flight answer, so every
//! span is accounted for as acknowledged, rejected or failed.

mod corpus;
mod generator;
mod report;
mod template;
mod traffic;
mod transport;

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use generator::{Batch, Generator, Stamp};
pub use report::LoadReport;
use report::{add, Stats};
use template::Written;
use transport::{Outcome, Transport};

/// How traces travel to the server.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies (`application/x-protobuf`).
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies (`application/json`: hex ids, lowerCamelCase names).
    HttpJson,
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HttpProtobuf => "http-protobuf",
            Self::HttpJson => "http-json",
            Self::Grpc => "grpc",
        })
    }
}

impl Protocol {
    /// Where a local server listens for this protocol by default.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Self::HttpProtobuf | Self::HttpJson => "http://127.0.0.1:4318",
            Self::Grpc => "http://127.0.0.1:4317",
        }
    }
}

const DEFAULT_DURATION_S: f64 = 10.0;
const DEFAULT_CONCURRENCY: usize = 8;
const DEFAULT_BATCH_TRACES: usize = 20;
const DEFAULT_USERS: u32 = 200;
const DEFAULT_SESSIONS: u32 = 1000;
const DEFAULT_TEMPLATE_POOL: usize = 1024;
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_TIMEOUT_S: f64 = 30.0;
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Options of `sightline loadgen`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct LoadgenArgs {
    /// Server to send to: a base URL (`/v1/traces` is appended for HTTP) or, for HTTP, the full
    /// URL of a traces endpoint such as `http://host:4318/api/public/otel/v1/traces`.
    /// [default: http://127.0.0.1:4318, or http://127.0.0.1:4317 with --protocol grpc]
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// OTLP transport and encoding.
    #[arg(long, value_enum, default_value_t = Protocol::HttpProtobuf)]
    pub protocol: Protocol,

    /// Traces per second to send (in requests of --batch-traces traces); 0 sends as fast as the
    /// server acknowledges, with --concurrency requests in flight.
    #[arg(long, value_name = "TRACES_PER_S", default_value_t = 0.0)]
    pub rate: f64,

    /// Stop after this many seconds. With neither --duration nor --traces the run lasts 10 s; with
    /// both it stops at whichever comes first.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Stop after sending this many traces.
    #[arg(long, value_name = "N")]
    pub traces: Option<u64>,

    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,

    /// Traces per request (each trace has 3 to 12 spans, about 5 on average).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH_TRACES)]
    pub batch_traces: usize,

    /// Compress request bodies with gzip (`Content-Encoding: gzip`, or gRPC gzip compression).
    #[arg(long)]
    pub gzip: bool,

    /// Seed of the traffic: the same seed sends the same traces with the same ids (a rerun resends
    /// duplicates). [default: random, printed in the report]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Project to send to (the `x-sightline-project` header); the server's default project when
    /// absent.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,

    /// Append `TRACE_ID SPAN_COUNT` (32 hex digits, a space, a number) for every trace of every
    /// fully acknowledged request to this file, one trace per line, written as each answer
    /// arrives; used to check that nothing acknowledged was lost.
    #[arg(long, value_name = "PATH")]
    pub acked_log: Option<PathBuf>,

    /// Distinct end users (`user.id`).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_USERS)]
    pub users: u32,

    /// Distinct conversations (`gen_ai.conversation.id`); each belongs to one user.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SESSIONS)]
    pub sessions: u32,

    /// Distinct traces built before sending and then resent with fresh ids and times, so that the
    /// generator costs next to nothing; 0 builds every trace as it is sent (more variety, about
    /// 100k spans/s per core at most).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TEMPLATE_POOL)]
    pub template_pool: usize,

    /// Leave out prompts, completions and tool payloads, as OpenTelemetry GenAI instrumentations
    /// do unless content capture is turned on (spans get about four times smaller).
    #[arg(long)]
    pub no_content: bool,

    /// Stamp traces as if they ended at random times over the last SECONDS instead of now, to
    /// give dashboards some history.
    #[arg(long, value_name = "SECONDS")]
    pub backdate: Option<f64>,

    /// Times a request refused as overloaded or unavailable (HTTP 429 or 503, gRPC UNAVAILABLE, or
    /// RESOURCE_EXHAUSTED with a retry hint) is sent again, after the server's retry hint (at most
    /// 2 s) or an exponential backoff from 100 ms.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRIES)]
    pub retries: u32,

    /// Seconds to wait for an answer before counting a request as failed.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_S)]
    pub timeout: f64,

    /// Also write the final report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,

    /// Do not print progress lines to stderr every 5 seconds.
    #[arg(long)]
    pub quiet: bool,

    /// Seed of the session and user identifiers when they must not follow --seed: the demo's
    /// live traffic continues the conversations of its back-dated history this way. Not a flag.
    #[arg(skip)]
    pub identity_seed: Option<u64>,
}

impl Default for LoadgenArgs {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: Protocol::HttpProtobuf,
            rate: 0.0,
            duration: None,
            traces: None,
            concurrency: DEFAULT_CONCURRENCY,
            batch_traces: DEFAULT_BATCH_TRACES,
            gzip: false,
            seed: None,
            project: None,
            acked_log: None,
            users: DEFAULT_USERS,
            sessions: DEFAULT_SESSIONS,
            template_pool: DEFAULT_TEMPLATE_POOL,
            no_content: false,
            backdate: None,
            retries: DEFAULT_RETRIES,
            timeout: DEFAULT_TIMEOUT_S,
            report_json: None,
            quiet: false,
            identity_seed: None,
        }
    }
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        anyhow::anyhow!("{flag} must be a non-negative number of seconds, got {value}")
    })
}

/// The arguments, checked.
#[derive(Debug)]
struct Plan {
    endpoint: String,
    duration: Option<Duration>,
    traces: Option<u64>,
    /// Time between requests when rate-limited.
    interval: Option<Duration>,
    timeout: Duration,
    backdate: Option<u64>,
}

impl Plan {
    /// `default_duration` applies when neither --duration nor --traces is set.
    fn new(args: &LoadgenArgs, default_duration: Option<Duration>) -> anyhow::Result<Self> {
        if args.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if args.batch_traces == 0 {
            bail!("--batch-traces must be at least 1");
        }
        if args.users == 0 || args.sessions == 0 {
            bail!("--users and --sessions must be at least 1");
        }
        if !args.rate.is_finite() || args.rate < 0.0 {
            bail!(
                "--rate must be 0 (flat out) or a positive number of traces per second, got {}",
                args.rate
            );
        }
        let duration = args
            .duration
            .map(|d| seconds(d, "--duration"))
            .transpose()?
            .or(match args.traces {
                None => default_duration,
                Some(_) => None,
            });
        let interval = (args.rate > 0.0)
            .then(|| {
                seconds(
                    args.batch_traces as f64 / args.rate,
                    "--batch-traces / --rate",
                )
            })
            .transpose()?;
        let backdate = args
            .backdate
            .map(|b| {
                seconds(b, "--backdate").map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
            })
            .transpose()?;
        let timeout = seconds(args.timeout, "--timeout")?;
        if timeout.is_zero() {
            bail!("--timeout must be more than 0 seconds");
        }
        Ok(Self {
            endpoint: args
                .endpoint
                .clone()
                .unwrap_or_else(|| args.protocol.default_endpoint().to_string()),
            duration,
            traces: args.traces,
            interval,
            timeout,
            backdate,
        })
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
}

/// What every in-flight request shares.
struct Shared {
    transport: Transport,
    stats: Stats,
    acked_log: Option<Mutex<std::fs::File>>,
    retries: u32,
}

impl Shared {
    /// Sends one batch, retrying retryable refusals, and accounts for it.
    async fn send(&self, batch: Batch) {
        let Batch {
            body,
            traces,
            spans,
        } = batch;
        let spans = spans as u64;
        add(&self.stats.requests.sent, 1);
        add(&self.stats.spans.sent, spans);
        let prepared = match self.transport.prepare(body) {
            Ok(p) => p,
            Err(e) => {
                self.fail(spans, &format!("{e:#}"));
                return;
            }
        };
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            add(&self.stats.bytes_sent, prepared.len() as u64);
            match self.transport.export(&prepared).await {
                Outcome::Acked { rejected_spans } => {
                    self.stats.record_latency(started.elapsed());
                    let rejected = rejected_spans.min(spans);
                    add(&self.stats.requests.acked, 1);
                    add(&self.stats.spans.acked, spans - rejected);
                    if rejected > 0 {
                        add(&self.stats.spans.failed, rejected);
                        self.stats
                            .record_error("spans refused through partial_success");
                    } else {
                        add(&self.stats.traces_acked, traces.len() as u64);
                        self.log_acked(&traces);
                    }
                    return;
                }
                Outcome::Retryable {
                    retry_after,
                    reason,
                } => {
                    if attempt < self.retries {
                        attempt += 1;
                        add(&self.stats.retries, 1);
                        let backoff = Duration::from_millis(100 << (attempt - 1).min(4));
                        let wait = retry_after.unwrap_or(backoff).min(Duration::from_secs(2));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    add(&self.stats.requests.rejected, 1);
                    add(&self.stats.spans.rejected, spans);
                    self.stats.record_error(&reason);
                    return;
                }
                Outcome::Failed { reason } => {
                    self.fail(spans, &reason);
                    return;
                }
            }
        }
    }

    fn fail(&self, spans: u64, reason: &str) {
        add(&self.stats.requests.failed, 1);
        add(&self.stats.spans.failed, spans);
        self.stats.record_error(reason);
    }

    /// Appends the batch's traces to the acknowledged log in one write, so a line is never torn.
    fn log_acked(&self, traces: &[Written]) {
        let Some(log) = &self.acked_log else { return };
        let mut lines = String::with_capacity(traces.len() * 40);
        for t in traces {
            for b in t.trace_id {
                lines.push(char::from(HEX[usize::from(b >> 4)]));
                lines.push(char::from(HEX[usize::from(b & 15)]));
            }
            lines.push(' ');
            lines.push_str(&t.spans.to_string());
            lines.push('\n');
        }
        let written = match log.lock() {
            Ok(mut file) => file.write_all(lines.as_bytes()).map_err(|e| e.to_string()),
            Err(_) => Err("lock poisoned".to_string()),
        };
        if let Err(e) = written {
            self.stats
                .record_error(&format!("cannot append to --acked-log: {e}"));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Runs until `--duration` or `--traces` is reached (10 seconds when neither is set) and returns
/// the report, also written to `--report-json` when set. Prints only progress lines, to stderr.
pub async fn run(args: &LoadgenArgs) -> anyhow::Result<LoadReport> {
    let plan = Plan::new(args, Some(Duration::from_secs_f64(DEFAULT_DURATION_S)))?;
    drive(args, plan, std::future::pending()).await
}

/// Like [`run`], but runs until `stop` resolves when neither `--duration` nor `--traces` is set,
/// and stops early when it resolves otherwise. Requests in flight are awaited either way.
pub async fn run_until(
    args: &LoadgenArgs,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<LoadReport> {
    let plan = Plan::new(args, None)?;
    drive(args, plan, stop).await
}

async fn drive(
    args: &LoadgenArgs,
    plan: Plan,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<LoadReport> {
    // 52 bits, so that the seed survives the report's JSON in any reader.
    let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() >> 12);
    let transport = Transport::new(
        args.protocol,
        &plan.endpoint,
        args.gzip,
        args.project.as_deref(),
        args.concurrency,
        plan.timeout,
    )?;
    let acked_log = match &args.acked_log {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open --acked-log {}", path.display()))?,
        )),
        None => None,
    };
    let shape = traffic::Shape {
        users: args.users,
        sessions: args.sessions,
        content: !args.no_content,
        salt: traffic::mix(args.identity_seed.unwrap_or(seed)),
    };
    let pool = args.template_pool;
    let mut generator = tokio::task::spawn_blocking(move || Generator::new(seed, shape, pool))
        .await
        .context("building the trace pool panicked")??;
    if !args.quiet && args.template_pool > 0 {
        eprintln!(
            "built {} distinct traces to resend, {} bytes per span on average",
            args.template_pool,
            generator.mean_span_bytes()
        );
    }

    let shared = Arc::new(Shared {
        transport,
        stats: Stats::new()?,
        acked_log,
        retries: args.retries,
    });
    let target = shared.transport.target();
    let started = Instant::now();
    // Dropping the set when this function returns, however it returns, stops the progress task.
    let mut background = JoinSet::new();
    if !args.quiet {
        background.spawn(progress(shared.clone(), started));
    }

    let semaphore = Arc::new(Semaphore::new(args.concurrency));
    let mut inflight = JoinSet::new();
    let mut ticker = plan.interval.map(|period| {
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let deadline = sleep_until(plan.duration.map(|d| started + d));
    tokio::pin!(stop, deadline);
    let mut remaining = plan.traces;
    let produced: anyhow::Result<()> = async {
        loop {
            let n = match remaining {
                Some(0) => break,
                Some(r) => r.min(args.batch_traces as u64),
                None => args.batch_traces as u64,
            };
            if let Some(ticker) = ticker.as_mut() {
                tokio::select! {
                    biased;
                    () = &mut stop => break,
                    () = &mut deadline => break,
                    _ = ticker.tick() => {}
                }
            }
            let permit = tokio::select! {
                biased;
                () = &mut stop => break,
                () = &mut deadline => break,
                permit = semaphore.clone().acquire_owned() => permit.context("request semaphore closed")?,
            };
            let stamp = match plan.backdate {
                Some(window) => Stamp::Spread {
                    end: now_ns(),
                    window,
                },
                None => Stamp::At(now_ns()),
            };
            let batch = generator.next_batch(n as usize, stamp)?;
            remaining = remaining.map(|r| r - n);
            let shared = shared.clone();
            inflight.spawn(async move {
                shared.send(batch).await;
                drop(permit);
            });
            while let Some(done) = inflight.try_join_next() {
                done.context("a request task panicked")?;
            }
        }
        Ok(())
    }
    .await;
    while let Some(done) = inflight.join_next().await {
        done.context("a request task panicked")?;
    }
    produced?;
    let elapsed = started.elapsed();
    background.abort_all();
    let report = shared.stats.report(args.protocol, target, seed, elapsed);
    if let Some(path) = &args.report_json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write --report-json {}", path.display()))?;
    }
    Ok(report)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn progress(shared: Arc<Shared>, started: Instant) {
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    let mut last = 0;
    loop {
        ticker.tick().await;
        let acked = shared.stats.spans_acked();
        let s = &shared.stats;
        eprintln!(
            "{:>6.1}s  acked {} spans ({:.0}/s now), requests rejected {} failed {}",
            started.elapsed().as_secs_f64(),
            acked,
            (acked - last) as f64 / PROGRESS_EVERY.as_secs_f64(),
            s.requests.rejected.load(Ordering::Relaxed),
            s.requests.failed.load(Ordering::Relaxed),
        );
        last = acked;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;
    use std::sync::atomic::AtomicU64;

    #[derive(Clone, Copy)]
    enum Answer {
        Ok,
        PartiallyRejected(i64),
        Overloaded,
    }

    /// What a test server received.
    #[derive(Default)]
    struct Seen {
        requests: AtomicU64,
        spans: AtomicU64,
        headers: Mutex<Vec<(String, String)>>,
    }

    impl Seen {
        fn record(&self, body: &[u8], project: Option<&str>, content_type: Option<&str>) {
            let request = ExportTraceServiceRequest::decode(body).unwrap();
            let spans: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            add(&self.requests, 1);
            add(&self.spans, spans as u64);
            self.headers.lock().unwrap().push((
                project.unwrap_or_default().to_string(),
                content_type.unwrap_or_default().to_string(),
            ));
        }
    }

    async fn http_sink(answer: Answer) -> (String, Arc<Seen>) {
        async fn handler(
            State((answer, seen)): State<(Answer, Arc<Seen>)>,
            headers: HeaderMap,
            body: bytes::Bytes,
        ) -> Response {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            seen.record(&body, header("x-sightline-project"), header("content-type"));
            let response = |rejected: i64| ExportTraceServiceResponse {
                partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: "bad spans".into(),
                }),
            };
            match answer {
                Answer::Ok => response(0).encode_to_vec().into_response(),
                Answer::PartiallyRejected(n) => response(n).encode_to_vec().into_response(),
                Answer::Overloaded => (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "0")],
                    "full",
                )
                    .into_response(),
            }
        }
        let seen = Arc::new(Seen::default());
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(handler))
            .with_state((answer, seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }

    struct GrpcSink(Arc<Seen>);

    #[tonic::async_trait]
    impl TraceService for GrpcSink {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let project = request
                .metadata()
                .get("x-sightline-project")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            self.0.record(
                &request.into_inner().encode_to_vec(),
                project.as_deref(),
                Some("application/grpc"),
            );
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    async fn grpc_sink() -> (String, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(GrpcSink(seen.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (format!("http://{addr}"), seen)
    }

    fn args(endpoint: &str, log: &std::path::Path) -> LoadgenArgs {
        LoadgenArgs {
            endpoint: Some(endpoint.to_string()),
            traces: Some(50),
            batch_traces: 20,
            template_pool: 8,
            seed: Some(3),
            project: Some("team-a".into()),
            acked_log: Some(log.to_path_buf()),
            quiet: true,
            ..LoadgenArgs::default()
        }
    }

    fn logged(path: &std::path::Path) -> Vec<(String, u64)> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (id, n) = l.split_once(' ').unwrap();
                (id.to_string(), n.parse().unwrap())
            })
            .collect()
    }

    #[tokio::test]
    async fn acknowledged_traces_are_counted_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("acked");
        let (endpoint, seen) = http_sink(Answer::Ok).await;
        let report = run(&args(&endpoint, &log)).await.unwrap();
        assert_eq!(report.requests.sent, 3); // 20 + 20 + 10 traces
        assert_eq!(report.requests.acked, 3);
        assert_eq!(report.traces_acked, 50);
        assert_eq!(report.spans.acked, seen.spans.load(Ordering::Relaxed));
        assert_eq!(report.latency.count, 3);
        let lines = logged(&log);
        assert_eq!(lines.len(), 50);
        assert_eq!(
            lines.iter().map(|(_, n)| n).sum::<u64>(),
            report.spans.acked
        );
        assert!(lines
            .iter()
            .all(|(id, _)| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let headers = seen.headers.lock().unwrap().clone();
        assert!(headers
            .iter()
            .all(|(p, ct)| p == "team-a" && ct == "application/x-protobuf"));
    }

    #[tokio::test]
    async fn refusals_are_retried_then_counted_as_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("acked");
        let (endpoint, seen) = http_sink(Answer::Overloaded).await;
        let report = run(&LoadgenArgs {
            traces: Some(20),
            retries: 2,
            ..args(&endpoint, &log)
        })
        .await
        .unwrap();
        assert_eq!(seen.requests.load(Ordering::Relaxed), 3);
        assert_eq!(report.retries, 2);
        assert_eq!(report.requests.rejected, 1);
        assert_eq!(report.spans.rejected, report.spans.sent);
        assert_eq!(report.spans.acked, 0);
        assert_eq!(report.errors[0].reason, "HTTP 429: full");
        assert!(logged(&log).is_empty());
    }

    #[tokio::test]
    async fn partially_rejected_requests_are_not_logged_as_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("acked");
        let (endpoint, _) = http_sink(Answer::PartiallyRejected(2)).await;
        let report = run(&LoadgenArgs {
            traces: Some(20),
            ..args(&endpoint, &log)
        })
        .await
        .unwrap();
        assert_eq!(report.requests.acked, 1);
        assert_eq!(report.spans.failed, 2);
        assert_eq!(report.spans.acked, report.spans.sent - 2);
        assert_eq!(report.traces_acked, 0);
        assert!(logged(&log).is_empty());
    }

    #[tokio::test]
    async fn grpc_sends_the_pre_encoded_requests() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("acked");
        let (endpoint, seen) = grpc_sink().await;
        let report = run(&LoadgenArgs {
            protocol: Protocol::Grpc,
            gzip: true,
            ..args(&endpoint, &log)
        })
        .await
        .unwrap();
        assert_eq!(report.requests.acked, 3, "{report}");
        assert_eq!(report.spans.acked, seen.spans.load(Ordering::Relaxed));
        assert_eq!(logged(&log).len(), 50);
        let headers = seen.headers.lock().unwrap().clone();
        assert!(headers.iter().all(|(p, _)| p == "team-a"));
    }

    #[tokio::test]
    async fn the_same_seed_sends_the_same_traces() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, _) = http_sink(Answer::Ok).await;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        run(&args(&endpoint, &a)).await.unwrap();
        run(&args(&endpoint, &b)).await.unwrap();
        let (mut a, mut b) = (logged(&a), logged(&b));
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[tokio::test]
    async fn run_until_stops_when_asked_and_awaits_what_is_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, seen) = http_sink(Answer::Ok).await;
        let started = Instant::now();
        let report = run_until(
            &LoadgenArgs {
                traces: None,
                rate: 50.0,
                batch_traces: 5,
                ..args(&endpoint, &dir.path().join("acked"))
            },
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(report.requests.sent >= 2, "{report}");
        assert_eq!(report.requests.sent, report.requests.acked);
        assert_eq!(report.requests.sent, seen.requests.load(Ordering::Relaxed));
    }

    #[test]
    fn plans_check_their_numbers() {
        let base = LoadgenArgs::default();
        let plan = Plan::new(&base, Some(Duration::from_secs(10))).unwrap();
        assert_eq!(plan.duration, Some(Duration::from_secs(10)));
        assert_eq!(plan.endpoint, "http://127.0.0.1:4318");
        assert_eq!(plan.interval, None);
        let grpc = LoadgenArgs {
            protocol: Protocol::Grpc,
            traces: Some(5),
            rate: 40.0,
            ..base.clone()
        };
        let plan = Plan::new(&grpc, Some(Duration::from_secs(10))).unwrap();
        assert_eq!(plan.endpoint, "http://127.0.0.1:4317");
        assert_eq!(plan.duration, None);
        assert_eq!(plan.interval, Some(Duration::from_millis(500)));
        assert_eq!(Plan::new(&base, None).unwrap().duration, None);
        for (bad, flag) in [
            (
                LoadgenArgs {
                    concurrency: 0,
                    ..base.clone()
                },
                "--concurrency",
            ),
            (
                LoadgenArgs {
                    rate: f64::NAN,
                    ..base.clone()
                },
                "--rate",
            ),
            (
                LoadgenArgs {
                    duration: Some(-1.0),
                    ..base.clone()
                },
                "--duration",
            ),
            (
                LoadgenArgs {
                    timeout: 0.0,
                    ..base.clone()
                },
                "--timeout",
            ),
            (
                LoadgenArgs {
                    users: 0,
                    ..base.clone()
                },
                "--users",
            ),
        ] {
            let err = Plan::new(&bad, None).unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
    }
}

/// The server's ingest path, stage by stage, in one process: decode → normalize and price →
/// store. Ignored by default; it is a profiling harness (run it under `perf` or
/// `valgrind --tool=callgrind` to see where a span's cost goes):
///
/// ```text
/// cargo test --release -p sightline-cli profile_ingest_path -- --ignored --nocapture
/// ```
#[cfg(test)]
mod profile {
    use std::sync::Arc;
    use std::time::Instant;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use sightline_ingest::otlp::decode::{spans_from_owned_request, Limits};
    use sightline_ingest::pipeline::enrich::{enrich_all, StandardEnricher};
    use sightline_store::sqlite::{SqliteConfig, SqliteStore};
    use sightline_store::{Enricher, Store, WriteBatch};

    use super::generator::tests::shape;
    use super::generator::{Generator, Stamp};

    fn env(name: &str, default: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// `PROFILE_REQUESTS` request bodies (default `requests`) of `PROFILE_BATCH_TRACES` traces
    /// each (default `traces`), with message content unless `PROFILE_NO_CONTENT` is set; the same
    /// seed every run.
    fn request_bodies(requests: usize, traces: usize) -> Vec<Vec<u8>> {
        let requests = env("PROFILE_REQUESTS", requests);
        let traces = env("PROFILE_BATCH_TRACES", traces);
        let content = std::env::var_os("PROFILE_NO_CONTENT").is_none();
        let mut generator = Generator::new(42, shape(2_000, 10_000, content, 42), 1024).unwrap();
        (0..requests)
            .map(|i| {
                generator
                    .next_batch(traces, Stamp::At(1_760_000_000_000_000_000 + i as u64))
                    .unwrap()
                    .body
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "profiling harness"]
    async fn profile_ingest_path() {
        let bodies = request_bodies(100, 20);
        let dir = tempfile::tempdir().unwrap();
        let enricher: Arc<dyn Enricher> = Arc::new(StandardEnricher::builtin());
        let store = SqliteStore::open(
            SqliteConfig {
                path: dir.path().to_path_buf(),
                ..SqliteConfig::default()
            },
            enricher.clone(),
        )
        .unwrap();
        let limits = Limits::default();
        let (mut decode, mut enrich, mut write, mut spans) = (0.0, 0.0, 0.0, 0);
        for body in bodies {
            let t = Instant::now();
            let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            let decoded = spans_from_owned_request(req, "default", &limits);
            decode += t.elapsed().as_secs_f64();
            spans += decoded.items.len();
            let t = Instant::now();
            let batch = enrich_all(enricher.as_ref(), decoded.items);
            enrich += t.elapsed().as_secs_f64();
            let t = Instant::now();
            store
                .write(WriteBatch {
                    spans: batch,
                    logs: Vec::new(),
                })
                .await
                .unwrap();
            write += t.elapsed().as_secs_f64();
        }
        store.close().await.unwrap();
        let per = |s: f64| s * 1e6 / spans as f64;
        println!(
            "{spans} spans: decode {:.1} µs/span, normalize+price {:.1} µs/span, store {:.1} µs/span",
            per(decode),
            per(enrich),
            per(write)
        );
    }

    /// A row of the floor's one table: trace id, span id, compressed document.
    type Row = (Vec<u8>, Vec<u8>, Vec<u8>);

    /// Thread CPU time, in seconds: what a stage costs, whatever it waits for.
    fn thread_cpu_s() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }

    /// The floor under the ingest path: what each part of it costs for the load generator's spans
    /// when it runs alone, without the store's indexes, summaries, HTTP or threads around it.
    /// Every figure is CPU time on one thread (fsync waits excluded), per span:
    ///
    /// - decoding the protobuf request, and normalizing and pricing the spans (Sightline's own);
    /// - encoding each span's attributes and call as JSON, and compressing both with a zstd
    ///   dictionary trained on the first 4 MiB of them, level 3 (what the store keeps);
    /// - SQLite alone: the compressed documents inserted into one rowid table with no index but
    ///   its primary key, a WAL commit with `synchronous = FULL` per request of spans;
    /// - FTS5 alone: each call's message text into a contentless FTS5 table with the store's
    ///   tokenizer, 5,000 calls per transaction, as the search indexer does.
    ///
    /// Against a target rate, the sum says how many cores the parts alone need.
    ///
    /// ```text
    /// cargo test --release -p sightline-cli ingest_floor -- --ignored --nocapture
    /// ```
    #[test]
    #[ignore = "measurement harness"]
    fn ingest_floor() {
        let bodies = request_bodies(200, 50);
        let enricher = StandardEnricher::builtin();
        let limits = Limits::default();
        let stages_of = |body: &[u8]| {
            let req = ExportTraceServiceRequest::decode(body).unwrap();
            let spans = spans_from_owned_request(req, "default", &limits).items;
            enrich_all(&enricher, spans)
        };
        let documents_of = |s: &sightline_store::SpanWithCall| {
            let attributes = serde_json::to_vec(&s.span.attributes).unwrap();
            let call = s.llm.as_ref().map(|c| serde_json::to_vec(c).unwrap());
            std::iter::once(attributes).chain(call)
        };

        // The dictionary, trained as the store trains it: on the first 4 MiB of documents.
        let mut samples = Vec::new();
        let mut sampled = 0;
        'sample: for body in &bodies {
            for doc in stages_of(body).iter().flat_map(documents_of) {
                if sampled >= 4 << 20 {
                    break 'sample;
                }
                sampled += doc.len();
                samples.push(doc);
            }
        }
        let dictionary = zstd::dict::from_samples(&samples, 64 * 1024).unwrap();
        let mut compressor = zstd::bulk::Compressor::with_dictionary(3, &dictionary).unwrap();

        // Request by request, as the server sees them. Nothing is kept across requests here:
        // memory that grows is paid for in page faults by whichever stage touches it first.
        let (mut decode, mut normalize, mut json, mut compress) = (0.0, 0.0, 0.0, 0.0);
        let (mut spans, mut raw_bytes, mut packed_bytes) = (0, 0, 0);
        for body in &bodies {
            let t = thread_cpu_s();
            let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            let items = spans_from_owned_request(req, "default", &limits).items;
            decode += thread_cpu_s() - t;
            spans += items.len();

            let t = thread_cpu_s();
            let batch = enrich_all(&enricher, items);
            normalize += thread_cpu_s() - t;

            let t = thread_cpu_s();
            let documents: Vec<Vec<Vec<u8>>> =
                batch.iter().map(|s| documents_of(s).collect()).collect();
            json += thread_cpu_s() - t;

            let t = thread_cpu_s();
            let frames: Vec<Vec<Vec<u8>>> = documents
                .iter()
                .map(|docs| {
                    docs.iter()
                        .map(|d| compressor.compress(d).unwrap())
                        .collect()
                })
                .collect();
            compress += thread_cpu_s() - t;

            raw_bytes += documents.iter().flatten().map(Vec::len).sum::<usize>();
            packed_bytes += frames.iter().flatten().map(Vec::len).sum::<usize>();
        }

        // What SQLite and FTS5 are given: each request's rows, and each call's message text.
        let mut rows: Vec<Vec<Row>> = Vec::new();
        let mut texts = Vec::new();
        for body in &bodies {
            let mut request_rows = Vec::new();
            for s in stages_of(body) {
                for doc in documents_of(&s) {
                    let (trace, span) = (s.span.trace_id.as_bytes(), s.span.span_id.as_bytes());
                    let frame = compressor.compress(&doc).unwrap();
                    request_rows.push((trace.to_vec(), span.to_vec(), frame));
                }
                texts.extend(s.llm.as_ref().map(|c| c.searchable_text()));
            }
            rows.push(request_rows);
        }

        let dir = tempfile::tempdir().unwrap();
        let db = rusqlite::Connection::open(dir.path().join("floor.db")).unwrap();
        db.execute_batch(
            "PRAGMA page_size = 8192;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA cache_size = -131072;
             PRAGMA wal_autocheckpoint = 4000;
             CREATE TABLE docs (id INTEGER PRIMARY KEY, trace BLOB, span BLOB, doc BLOB);",
        )
        .unwrap();
        let t = thread_cpu_s();
        for request_rows in &rows {
            let tx = db.unchecked_transaction().unwrap();
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO docs (trace, span, doc) VALUES (?1, ?2, ?3)")
                    .unwrap();
                for (trace, span, frame) in request_rows {
                    insert
                        .execute(rusqlite::params![trace, span, frame])
                        .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let sqlite = thread_cpu_s() - t;

        let text_bytes: usize = texts.iter().map(String::len).sum();
        let fts = rusqlite::Connection::open(dir.path().join("fts.db")).unwrap();
        fts.execute_batch(
            "PRAGMA page_size = 8192;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -65536;
             CREATE VIRTUAL TABLE calls_fts USING fts5 (
                 text, content = '', contentless_delete = 1,
                 tokenize = 'unicode61 remove_diacritics 2');",
        )
        .unwrap();
        let t = thread_cpu_s();
        for chunk in texts.chunks(5_000) {
            let tx = fts.unchecked_transaction().unwrap();
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO calls_fts (text) VALUES (?1)")
                    .unwrap();
                for text in chunk {
                    insert.execute([text]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let index = thread_cpu_s() - t;

        let per = |s: f64| s * 1e6 / spans as f64;
        let stages = [
            ("decode protobuf", decode),
            ("normalize + price", normalize),
            ("JSON-encode attributes and call", json),
            ("zstd with dictionary, level 3", compress),
            ("SQLite: one table, no index, fsynced commits", sqlite),
            ("FTS5: message text", index),
        ];
        println!(
            "{spans} spans, {} calls; documents {:.0} B/span raw, {:.0} B/span compressed; \
             message text {:.0} B/call",
            texts.len(),
            raw_bytes as f64 / spans as f64,
            packed_bytes as f64 / spans as f64,
            text_bytes as f64 / texts.len().max(1) as f64
        );
        let mut total = 0.0;
        for (stage, s) in stages {
            total += per(s);
            println!("{stage:<48} {:>6.2} µs/span", per(s));
        }
        println!(
            "{:<48} {total:>6.2} µs/span: {:.2} cores at 100,000 spans/s",
            "sum",
            total / 10.0
        );
    }

    /// Fills a data directory through the same stages, without HTTP: `FILL_DIR` (required),
    /// `FILL_SPANS` spans (default 10,000,000) of traces ending over the last `FILL_DAYS` days
    /// (default 7), `FILL_TASKS` concurrent writers (default 16), no message content unless
    /// `FILL_CONTENT` is set. For query benchmarks over stores too big to fill over the network
    /// in reasonable time (`benches/query.sh` with `FILL=direct`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "fills a data directory for benchmarks"]
    async fn fill_data_dir() {
        let Some(dir) = std::env::var_os("FILL_DIR") else {
            panic!("set FILL_DIR");
        };
        let target = env("FILL_SPANS", 10_000_000);
        let days = env("FILL_DAYS", 7) as u64;
        let tasks = env("FILL_TASKS", 16);
        let content = std::env::var_os("FILL_CONTENT").is_some();
        let enricher: Arc<dyn Enricher> = Arc::new(StandardEnricher::builtin());
        let store = Arc::new(
            SqliteStore::open(
                SqliteConfig {
                    path: dir.into(),
                    // A fill needs no fsync per commit; the rows are the same.
                    synchronous: sightline_store::sqlite::Synchronous::Normal,
                    ..SqliteConfig::default()
                },
                enricher.clone(),
            )
            .unwrap(),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let stored = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for task in 0..tasks {
            let (store, enricher, stored) = (store.clone(), enricher.clone(), stored.clone());
            workers.push(tokio::spawn(async move {
                let seed = 1_000 + task as u64;
                let mut generator =
                    Generator::new(seed, shape(20_000, 100_000, content, seed), 4096).unwrap();
                let limits = Arc::new(Limits::default());
                while stored.load(std::sync::atomic::Ordering::Relaxed) < target {
                    let stamp = Stamp::Spread {
                        end: now,
                        window: days * 86_400 * 1_000_000_000,
                    };
                    let body = generator.next_batch(100, stamp).unwrap().body;
                    let (enricher, limits) = (enricher.clone(), limits.clone());
                    let batch = tokio::task::spawn_blocking(move || {
                        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                        let decoded = spans_from_owned_request(req, "default", &limits);
                        enrich_all(enricher.as_ref(), decoded.items)
                    })
                    .await
                    .unwrap();
                    let receipt = store
                        .write(WriteBatch {
                            spans: batch,
                            logs: Vec::new(),
                        })
                        .await
                        .unwrap();
                    let n = stored
                        .fetch_add(receipt.spans_written, std::sync::atomic::Ordering::Relaxed)
                        + receipt.spans_written;
                    if n / 500_000 != (n - receipt.spans_written) / 500_000 {
                        println!(
                            "{n} spans stored, {:.0} spans/s",
                            n as f64 / started.elapsed().as_secs_f64()
                        );
                    }
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        store.close().await.unwrap();
        let n = stored.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "filled: {n} spans in {:.0} s ({:.0} spans/s)",
            started.elapsed().as_secs_f64(),
            n as f64 / started.elapsed().as_secs_f64()
        );
    }
}
