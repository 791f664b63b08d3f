//! The embedded SQLite backend: one file in the data directory, WAL mode, one writer thread with
//! group commit, a pool of read-only connections.
//!
//! Design decisions and the invariants they rely on:
//!
//! - **Durable acknowledgement.** `write` resolves only after the transaction holding its batch
//!   has committed; with `synchronous = FULL` (the default) the WAL is fsynced by then. Concurrent
//!   writes are committed together (group commit), which is what makes fsync-per-commit cheap.
//! - **One writer.** A dedicated OS thread owns the only write connection ([`writer`]); SQLite
//!   allows one writer anyway, and a single thread keeps the summary maintenance free of races.
//!   Since it is the one serial resource, batches are turned into ready-to-bind rows (JSON,
//!   index text, user/session context) on the caller's side first ([`encode`]). Readers use their
//!   own read-only connections and never wait for it.
//! - **Every list walks an index newest first** and stops after a page ([`read`]); keyset cursors
//!   make page *n* as cheap as page 1. The exceptions are chosen on purpose: user and session
//!   filters start from the (few) traces of that user or session; a rare model or a full-text
//!   query with few matches starts from the matching calls; a full-text query with many matches
//!   probes the index row by row. Attribute filters are checked row by row (attributes are
//!   arbitrary, so unindexed): combine them with a time window on large stores.
//! - **Summaries at write time.** `traces`, `sessions` and `users` rows are updated in the same
//!   transaction as the spans they summarize, so lists never aggregate raw rows. A span that is
//!   sent twice (a retrying client) is stored once and counted once: spans are inserted with
//!   `INSERT OR IGNORE` and only a new row contributes.
//! - **GenAI log events** stay in `logs`. Whenever a span and its GenAI events meet (whichever
//!   arrives second), the span with the events appended is passed to the [`Enricher`] again and the
//!   call row, its full-text entry and every summary are adjusted by the difference. Reads show
//!   the events on the span; the `spans` row keeps the span as sent.
//! - **Time-local keys.** Trace ids are random; an index led by them takes every insert at a
//!   random place, which at millions of spans means hundreds of scattered pages dirtied (and
//!   written twice) per commit. So only `traces` is keyed by trace id: spans, calls and trace
//!   memberships refer to their trace by `traces.id` (`trace_ref`), which grows with time, and
//!   `spans` is clustered on `(trace_ref, span_id)` so a trace's spans are read together.
//! - **Schema** changes only through numbered migrations in `migrations/`, tracked by
//!   `PRAGMA user_version`.

mod codec;
mod dictionary;
mod encode;
mod metric_points;
mod packed;
mod read;
mod rollup;
pub use rollup::{import_rollups, set_rollups_enabled};
mod rollup_read;
mod schema;
mod search;
pub mod telemetry;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sightline_model::prices::PriceTable;
use sightline_model::{LlmCall, TraceId};
use tokio::sync::{mpsc, oneshot};

use self::codec::db_err;
use self::dictionary::Dictionaries;
use self::encode::EncodedBatch;
use self::read::ReadPool;
use self::search::{Indexer, SearchProgress, CATCH_UP_WAIT};
use self::writer::{Command, Writer};
use crate::error::StoreError;
use crate::metrics::{MetricPoint, MetricQuery, MetricSeries, RollupQuery, RollupRow};
use crate::query::{
    Filter, Page, PageRequest, SessionDetail, SessionSummary, TraceDetail, TraceSummary,
    UserSummary,
};
use crate::{Enricher, Store, WriteBatch, WriteReceipt};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "sightline.db";

pub use self::search::SEARCH_FILE;

/// Largest batch (spans plus logs) encoded on the calling task rather than the blocking pool.
const ENCODE_INLINE_MAX: usize = 64;

/// Writes that may wait for the writer before `write` itself waits (backpressure).
const QUEUE_CAPACITY: usize = 1024;

/// How hard SQLite works to make a commit survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: an acknowledged write survives power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: an acknowledged write survives a crash of Sightline but the
    /// last commits may be lost on power loss. Faster on slow disks.
    Normal,
}

/// Configuration of the embedded store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Data directory; created if missing. The database is `sightline.db` inside it.
    pub path: PathBuf,
    /// Commit durability (`full` or `normal`).
    pub synchronous: Synchronous,
    /// Most items (spans plus log records) committed in one group transaction.
    pub max_batch_spans: usize,
    /// Read-only connections serving queries concurrently.
    pub read_connections: usize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("sightline-data"),
            synchronous: Synchronous::Full,
            max_batch_spans: 20_000,
            read_connections: 4,
        }
    }
}

/// Row counts and file sizes, for self-telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreStats {
    /// Spans stored.
    pub spans: u64,
    /// LLM calls stored.
    pub llm_calls: u64,
    /// Traces stored.
    pub traces: u64,
    /// Log records stored.
    pub logs: u64,
    /// Size of the database file in bytes.
    pub db_bytes: u64,
    /// Size of the write-ahead log in bytes.
    pub wal_bytes: u64,
    /// Write requests waiting for the writer thread.
    pub queued_writes: u64,
}

/// The embedded SQLite store. Cheap to share behind an `Arc`; every method is safe to call
/// concurrently.
pub struct SqliteStore {
    db_path: PathBuf,
    sender: mpsc::Sender<Command>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    indexer: Mutex<Option<JoinHandle<()>>>,
    search: Arc<SearchProgress>,
    readers: Arc<ReadPool>,
    dictionaries: Arc<Dictionaries>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db_path", &self.db_path)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The writer stops when its channel closes; the indexer and a dictionary training need
        // telling.
        self.search.stop();
        self.dictionaries.close();
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `config.path`, migrates its schema and starts the
    /// writer thread. Blocking: call it at startup, not on a request path.
    pub fn open(config: SqliteConfig, enricher: Arc<dyn Enricher>) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.path).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                config.path.display()
            ))
        })?;
        let db_path = config.path.join(DB_FILE);
        let conn = schema::open_writer(&db_path, config.synchronous)?;
        let dictionaries = Dictionaries::open(&conn, &db_path, dictionary::SAMPLE_BYTES)?;
        rollup::backfill(&conn)?;
        let (indexer, search) = Indexer::open(&db_path)?;
        let indexer = std::thread::Builder::new()
            .name("sightline-search-indexer".into())
            .spawn(move || indexer.run())
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the indexer thread: {e}"))
            })?;
        let (sender, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = match Writer::new(
            conn,
            enricher,
            rx,
            config.max_batch_spans,
            search.clone(),
            dictionaries.clone(),
        ) {
            Ok(writer) => writer,
            Err(e) => {
                search.stop();
                let _ = indexer.join();
                return Err(e);
            }
        };
        let handle = std::thread::Builder::new()
            .name("sightline-sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        let readers = Arc::new(ReadPool::new(db_path.clone(), config.read_connections));
        Ok(Self {
            db_path,
            sender,
            closed: AtomicBool::new(false),
            writer: Mutex::new(Some(handle)),
            indexer: Mutex::new(Some(indexer)),
            search,
            readers,
            dictionaries,
        })
    }

    /// Path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Row counts, file sizes and the write queue depth.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let counts = self
            .readers
            .run(|conn| {
                let mut st = conn
                    .prepare_cached("SELECT name, value FROM counters")
                    .map_err(db_err)?;
                let rows = st
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await?;
        let mut stats = StoreStats::default();
        for (name, value) in counts {
            let value = codec::to_u64(value);
            match name.as_str() {
                "spans" => stats.spans = value,
                "llm_calls" => stats.llm_calls = value,
                "traces" => stats.traces = value,
                "logs" => stats.logs = value,
                _ => {}
            }
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        stats.db_bytes = size(&self.db_path);
        let mut wal = self.db_path.clone().into_os_string();
        wal.push("-wal");
        stats.wal_bytes = size(Path::new(&wal));
        stats.queued_writes = (self.sender.max_capacity() - self.sender.capacity()) as u64;
        Ok(stats)
    }

    /// Fails with [`StoreError::Closed`] once the store is closed.
    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Before a list that reads `search.db` ([`read::reads_index`]): lets the index catch up
    /// with what was committed before it.
    async fn search_caught_up(&self, list: read::List, filter: &Filter) {
        if read::reads_index(list, filter) {
            self.search.caught_up(CATCH_UP_WAIT).await;
        }
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the sqlite writer stopped".into()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, StoreError> {
        if batch.is_empty() {
            return if self.closed.load(Ordering::Acquire) {
                Err(StoreError::Closed)
            } else {
                Ok(WriteReceipt::default())
            };
        }
        // Encoding runs on the caller's side so that the writer thread only binds values; big
        // batches go to the blocking pool to keep the async workers responsive.
        let batch = if batch.len() > ENCODE_INLINE_MAX {
            let dictionaries = self.dictionaries.clone();
            tokio::task::spawn_blocking(move || EncodedBatch::new(batch, &dictionaries))
                .await
                .map_err(|e| StoreError::Database(format!("encoding task failed: {e}")))??
        } else {
            EncodedBatch::new(batch, &self.dictionaries)?
        };
        self.send(|reply| Command::Write { batch, reply }).await
    }

    async fn list_traces(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<TraceSummary>, StoreError> {
        self.check_open()?;
        self.search_caught_up(read::List::Traces, filter).await;
        let (filter, page) = (filter.clone(), page.clone());
        self.readers
            .run(move |conn| read::list_traces(conn, &filter, &page))
            .await
    }

    async fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError> {
        self.check_open()?;
        let project = project.to_string();
        self.readers
            .run(move |conn| read::get_trace(conn, &project, trace_id))
            .await
    }

    async fn list_calls(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<LlmCall>, StoreError> {
        self.check_open()?;
        self.search_caught_up(read::List::Calls, filter).await;
        let (filter, page) = (filter.clone(), page.clone());
        self.readers
            .run(move |conn| read::list_calls(conn, &filter, &page))
            .await
    }

    async fn list_sessions(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<SessionSummary>, StoreError> {
        self.check_open()?;
        self.search_caught_up(read::List::Groups, filter).await;
        let (filter, page) = (filter.clone(), page.clone());
        self.readers
            .run(move |conn| read::list_sessions(conn, &filter, &page))
            .await
    }

    async fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError> {
        self.check_open()?;
        let (project, session_id) = (project.to_string(), session_id.to_string());
        self.readers
            .run(move |conn| read::get_session(conn, &project, &session_id))
            .await
    }

    async fn list_users(
        &self,
        filter: &Filter,
        page: &PageRequest,
    ) -> Result<Page<UserSummary>, StoreError> {
        self.check_open()?;
        self.search_caught_up(read::List::Groups, filter).await;
        let (filter, page) = (filter.clone(), page.clone());
        self.readers
            .run(move |conn| read::list_users(conn, &filter, &page))
            .await
    }

    async fn rollups(&self, query: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        let query = query.clone();
        self.readers
            .run(move |conn| rollup_read::read(conn, &query))
            .await
    }

    async fn write_metrics(&self, points: Vec<MetricPoint>) -> Result<usize, StoreError> {
        if points.is_empty() {
            return if self.closed.load(Ordering::Acquire) {
                Err(StoreError::Closed)
            } else {
                Ok(0)
            };
        }
        let n = points.len();
        let encode = move || {
            points
                .into_iter()
                .map(metric_points::EncodedPoint::new)
                .collect::<Result<Vec<_>, _>>()
        };
        let metrics = if n > ENCODE_INLINE_MAX {
            tokio::task::spawn_blocking(encode)
                .await
                .map_err(|e| StoreError::Database(format!("encoding task failed: {e}")))??
        } else {
            encode()?
        };
        let batch = EncodedBatch {
            origins: Vec::new(),
            spans: Vec::new(),
            logs: Vec::new(),
            metrics,
        };
        self.send(|reply| Command::Write { batch, reply }).await?;
        Ok(n)
    }

    async fn metric_series(&self, query: &MetricQuery) -> Result<Vec<MetricSeries>, StoreError> {
        let query = query.clone();
        self.readers
            .run(move |conn| metric_points::read(conn, &query))
            .await
    }

    async fn recompute_costs(&self, prices: &PriceTable) -> Result<u64, StoreError> {
        let prices = prices.clone();
        self.send(|reply| Command::Recompute { prices, reply })
            .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Waits (off the async workers) for a dictionary being stored right now, if any.
        let dictionaries = self.dictionaries.clone();
        let _ = tokio::task::spawn_blocking(move || dictionaries.close()).await;
        let (reply, answer) = oneshot::channel();
        let result = match self.sender.send(Command::Close { reply }).await {
            Ok(()) => answer.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable("the sqlite writer stopped".into()))
            }),
            // The writer is already gone: nothing left to flush.
            Err(_) => Ok(()),
        };
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            // The writer has answered and is returning; joining only reaps the thread.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        // The indexer finishes the queue (what it leaves is taken up at the next start).
        self.search.stop();
        let indexer = self.indexer.lock().ok().and_then(|mut h| h.take());
        if let Some(indexer) = indexer {
            let _ = tokio::task::spawn_blocking(move || indexer.join()).await;
        }
        result
    }
}

#[cfg(test)]
mod tests;
