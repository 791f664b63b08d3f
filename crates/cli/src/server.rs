//! Assembles and runs the server: store → pipeline → receivers and API, and tears it down in the
//! reverse order so that every request that was acknowledged is committed before exit.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sightline_ingest::pipeline::enrich::StandardEnricher;
use sightline_ingest::pipeline::Pipeline;
use sightline_serve::prometheus::{LlmMetrics, LlmMetricsConfig, MetricsSources};
use sightline_store::sqlite::{SqliteConfig, SqliteStore, Synchronous};
use sightline_store::{Enricher, SharedStore, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ServeConfig, SyncMode};

/// A started server.
pub struct RunningServer {
    /// Where the HTTP listener is bound (the real port when 0 was asked for).
    pub http_addr: SocketAddr,
    /// Where the gRPC listener is bound.
    pub grpc_addr: SocketAddr,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    grpc: JoinHandle<anyhow::Result<()>>,
    store: SharedStore,
}

fn open_store(
    config: &ServeConfig,
    enricher: Arc<dyn Enricher>,
) -> anyhow::Result<Arc<SqliteStore>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let sqlite = SqliteConfig {
        path: config.data_dir.clone(),
        synchronous: match config.sync {
            SyncMode::Full => Synchronous::Full,
            SyncMode::Normal => Synchronous::Normal,
        },
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open(sqlite, enricher)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Opens the store and starts both listeners.
pub async fn start(config: &ServeConfig) -> anyhow::Result<RunningServer> {
    let enricher: Arc<dyn Enricher> = Arc::new(StandardEnricher::new(config.price_table()?));
    let sqlite = open_store(config, enricher.clone())?;
    let store: SharedStore = sqlite.clone();
    let pipeline = Pipeline::new(store.clone(), enricher, config.pipeline.clone());

    let mut metrics = MetricsSources::default();
    metrics.push(Arc::new(LlmMetrics::new(
        store.clone(),
        LlmMetricsConfig {
            top_models: config.metrics_top_models,
        },
    )));
    metrics.push(Arc::new(crate::telemetry::PipelineMetrics(
        pipeline.clone(),
    )));
    metrics.push(Arc::new(crate::telemetry::StoreMetrics(sqlite)));
    let app = sightline_ingest::otlp::http::router(pipeline.clone(), config.limits.clone())
        .merge(sightline_serve::router_with_metrics(store.clone(), metrics));

    let http_listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--http-addr)", config.http_addr))?;
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--grpc-addr)", config.grpc_addr))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;

    let (stop, stopped) = watch::channel(false);
    let mut http_stop = stopped.clone();
    let http = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let mut grpc_stop = stopped;
    let grpc_pipeline = pipeline.clone();
    let limits = config.limits.clone();
    let grpc = tokio::spawn(async move {
        sightline_ingest::otlp::grpc::serve(grpc_listener, grpc_pipeline, limits, async move {
            let _ = grpc_stop.wait_for(|s| *s).await;
        })
        .await
        .context("gRPC server failed")
    });

    tracing::info!(
        http = %http_addr,
        grpc = %grpc_addr,
        data_dir = %config.data_dir.display(),
        "sightline is serving"
    );
    Ok(RunningServer {
        http_addr,
        grpc_addr,
        stop,
        http,
        grpc,
        store,
    })
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish (each one's batch is committed
    /// before it is answered), then flushes and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: draining in-flight requests");
        let _ = self.stop.send(true);
        let http = self.http.await;
        let grpc = self.grpc.await;
        self.store.close().await.context("cannot close the store")?;
        http.context("HTTP server task failed")?
            .context("HTTP server failed")?;
        grpc.context("gRPC server task failed")??;
        tracing::info!("store flushed and closed");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Re-costs every stored call with the configured price table.
pub async fn recompute_prices(config: &ServeConfig) -> anyhow::Result<u64> {
    let prices = config.price_table()?;
    let enricher: Arc<dyn Enricher> = Arc::new(StandardEnricher::new(prices.clone()));
    let store = open_store(config, enricher)?;
    let changed = store.recompute_costs(&prices).await?;
    store.close().await?;
    Ok(changed)
}
