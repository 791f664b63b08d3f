//! The `sightline` binary.
//!
//! The only crate that knows the concrete storage backend and the only user of `anyhow`: it parses
//! flags, environment and the TOML file into one [`config::ServeConfig`], builds the store, the
//! ingest pipeline and the routers, and runs them until a signal asks it to stop, flushing
//! everything on the way out.

mod bench_client;
mod config;
mod demo;
mod demo_gateway;
mod gateway_bench;
mod loadgen;
mod mock;
mod server;
mod telemetry;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: ingest allocates and frees many small buffers per
/// span on several threads at once, and glibc's malloc spent about 15% of the server's CPU on it
/// (see BENCHMARKS.md). Built with `no_thp`: mimalloc would ask for transparent huge pages, and a
/// request that touches a fresh one waits while the kernel zeroes 2 MB; in gateway runs with them,
/// some runs also stalled 80–100 ms (BENCHMARKS.md, "Transparent huge pages").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sightline: LLM observability in one binary.
///
/// Ingests OpenTelemetry traces and logs (OTLP over HTTP on :4318 and gRPC on :4317), normalizes
/// every LLM convention into one model of an LLM call, stores it durably in an embedded database
/// and serves it through a JSON API.
#[derive(Parser, Debug)]
#[command(name = "sightline", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter, e.g. `info`, `sightline=debug` (RUST_LOG syntax).
    #[arg(long, env = "SIGHTLINE_LOG", default_value = "info", global = true)]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: OTLP receivers, the OpenAI/Anthropic gateway, ingest pipeline, store and
    /// JSON API.
    Serve(config::ServeArgs),
    /// Run the server with a traffic generator at a gentle rate, so the API fills with data; part
    /// of the traffic goes through the gateway to an in-process mock provider.
    Demo {
        #[command(flatten)]
        serve: config::ServeArgs,
        #[command(flatten)]
        demo: demo::DemoArgs,
    },
    /// Send realistic agent traces to a running server and report throughput and latency.
    Loadgen(loadgen::LoadgenArgs),
    /// Run the mock OpenAI/Anthropic provider (deterministic responses, configurable latency,
    /// token rate and errors), for tests, demos and benchmarks.
    MockProvider(mock::MockArgs),
    /// Measure the latency the gateway adds: the same mock provider called directly and through
    /// the gateway, in one run, at several request rates and for streams.
    GatewayBench(gateway_bench::BenchArgs),
    /// Manage the price table used to compute cost.
    Prices {
        #[command(subcommand)]
        command: PricesCommand,
    },
}

#[derive(Subcommand, Debug)]
enum PricesCommand {
    /// Re-cost every stored call with the current price table (built-in plus --prices-file).
    Recompute(config::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = config::ServeConfig::load(&args)?;
            let server = server::start(&config).await?;
            server::wait_for_signal().await;
            server.shutdown().await
        }
        Command::Demo { serve, demo } => {
            let mut config = config::ServeConfig::load(&serve)?;
            // Part of the demo's traffic goes through the gateway to an in-process mock provider.
            let mock = demo_gateway::start_mock(&mut config).await?;
            let server = server::start(&config).await?;
            let addr = server.http_addr;
            println!(
                "Send your own traces too: OTLP/HTTP http://{addr}  OTLP/gRPC http://{}",
                server.grpc_addr
            );
            let outcome = tokio::select! {
                r = demo::run(&demo, addr) => r,
                r = demo_gateway::run(&demo, addr) => r,
                _ = server::wait_for_signal() => Ok(()),
            };
            server.shutdown().await?;
            mock.shutdown().await?;
            outcome
        }
        Command::MockProvider(args) => mock::run(&args).await,
        Command::GatewayBench(args) => {
            let report = gateway_bench::run(&args).await?;
            println!("{report}");
            Ok(())
        }
        Command::Loadgen(args) => {
            let report = loadgen::run(&args).await?;
            println!("{report}");
            Ok(())
        }
        Command::Prices { command } => match command {
            PricesCommand::Recompute(args) => {
                let config = config::ServeConfig::load(&args)?;
                let changed = server::recompute_prices(&config).await?;
                println!("re-costed {changed} stored calls");
                Ok(())
            }
        },
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
