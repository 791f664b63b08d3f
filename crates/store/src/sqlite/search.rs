//! The indexes over calls: the full-text index over their messages and the filter keys that call
//! lists walk, in their own database file, kept up to date by their own thread.
//!
//! Indexing message text (tokenizing, then merging FTS5 segments at every commit) cost the writer
//! thread more than everything else it does for a span together, and the six
//! `(project, <filter>, start_ns)` indexes that serve call lists cost it a quarter of its
//! throughput more: their keys follow time, so every group commit dirtied the newest leaf of each
//! and wrote it again. The writer is the one serial resource of the store. So the writer only
//! appends `(call id, op)` to `search_queue` in the same transaction as the call, which makes the
//! work durable, and the indexer thread turns queue entries into FTS5 rows and `call_keys` rows
//! (with their filter indexes) in `search.db`, in large transactions on the other core, where a
//! leaf is written once per few thousand calls instead of once per commit.
//!
//! - **Progress** is the last queue sequence number indexed, stored in `search.db` in the same
//!   transaction as the rows it covers; after a crash the indexer resumes from there. The writer
//!   deletes queue entries the indexer has passed.
//! - **A missing or new `search.db`** (first start after an upgrade, or the file deleted) is
//!   rebuilt from `llm_calls`: every call up to the newest id is indexed, and the queue is taken up
//!   from the sequence number current when that started.
//! - **A `search.db` of an older layout** (see [`INDEX_VERSION`]) is emptied and rebuilt the same
//!   way.
//! - **Read your writes**: a query that reads the index (a call list, a full-text query, a
//!   session or user list filtered by its calls) first waits (up to [`CATCH_UP_WAIT`]) until the
//!   index covers every call committed before it started, so a list right after an acknowledged
//!   write shows it. Under sustained overload it answers after the wait with what is indexed.
//! - Readers attach `search.db` as schema `search`; `calls_fts` and `call_keys` resolve there.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::watch;

use super::codec::{db_err, read_call};
use super::packed;
use crate::error::StoreError;

/// File name of the full-text index inside the data directory.
pub const SEARCH_FILE: &str = "search.db";

/// Queue entries indexed per transaction.
const CHUNK: i64 = 5_000;

/// How long the indexer sleeps when it is not woken by a commit.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// Most bytes of text handed from the writer to the indexer in memory at once; beyond it the
/// indexer reads those calls back from the database instead.
const HANDOFF_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Most queue entries the index may trail the writer's commits by before the writer waits for
/// it: beyond this the indexer, not the writer, bounds ingest, and lists would wait long.
const MAX_LAG: i64 = 2 * CHUNK;

/// Longest the writer waits for the indexer before one transaction (an indexer that fails slows
/// ingest down but does not stop it).
const LAG_WAIT: Duration = Duration::from_millis(500);

/// How long a query of the index waits for it to catch up with earlier commits.
pub(crate) const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// Layout of `search.db`; an index of another version is emptied and rebuilt from the calls.
/// 1: the full-text index alone. 2: with `call_keys`. 3: its model indexes carry the call's
/// session and user, so that the groups a model was used in are read from the index alone.
const INDEX_VERSION: i64 = 3;

/// The columns of `llm_calls` that `call_keys` copies, in [`CallKeys`] order.
const KEY_COLUMNS: &str = "project, trace_ref, span_id, start_ns, status, service, provider, \
     request_model, response_model, user_id, session_id";

/// What a queue entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub(crate) enum QueueOp {
    /// A new call: index its text.
    Insert = 0,
    /// A call whose text may have changed: drop its entry and index it again.
    Replace = 1,
    /// A removed call: drop its entry.
    Delete = 2,
}

/// What call lists filter and sort by: a copy of the keys of an `llm_calls` row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallKeys {
    pub project: String,
    pub trace_ref: i64,
    pub span_id: [u8; 8],
    pub start_ns: i64,
    pub status: i64,
    pub service: String,
    pub provider: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
}

impl CallKeys {
    /// Reads the [`KEY_COLUMNS`] starting at column `at`.
    fn read(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
        let span: Vec<u8> = row.get(at + 2)?;
        let mut span_id = [0; 8];
        if span.len() == 8 {
            span_id.copy_from_slice(&span);
        }
        Ok(Self {
            project: row.get(at)?,
            trace_ref: row.get(at + 1)?,
            span_id,
            start_ns: row.get(at + 3)?,
            status: row.get(at + 4)?,
            service: row.get(at + 5)?,
            provider: row.get(at + 6)?,
            request_model: row.get(at + 7)?,
            response_model: row.get(at + 8)?,
            user_id: row.get(at + 9)?,
            session_id: row.get(at + 10)?,
        })
    }

    /// Approximate bytes held, for the handoff's budget.
    fn size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        64 + self.project.len()
            + self.service.len()
            + opt(&self.provider)
            + opt(&self.request_model)
            + opt(&self.response_model)
            + opt(&self.user_id)
            + opt(&self.session_id)
    }
}

/// What the index holds of one call: its keys and its searchable text.
#[derive(Debug, Clone)]
pub(crate) struct CallDoc {
    pub keys: CallKeys,
    pub text: Arc<str>,
}

/// Documents of queue entries, by sequence number, as the writer committed them.
pub(crate) type Docs = Vec<(i64, CallDoc)>;

/// Shared between the writer (what is committed), the indexer (what is indexed) and readers.
pub(crate) struct SearchProgress {
    committed: AtomicI64,
    /// Documents of committed queue entries not yet taken by the indexer, and their total size.
    handoff: Mutex<(Docs, usize)>,
    indexed: watch::Sender<i64>,
    /// Signalled after each indexer transaction, for a writer waiting in [`Self::keep_pace`].
    advanced: (Mutex<()>, Condvar),
    wake: Mutex<bool>,
    woken: Condvar,
    stop: AtomicBool,
}

impl SearchProgress {
    fn new(committed: i64, indexed: i64) -> Self {
        Self {
            committed: AtomicI64::new(committed),
            handoff: Mutex::new((Vec::new(), 0)),
            indexed: watch::Sender::new(indexed),
            advanced: (Mutex::new(()), Condvar::new()),
            wake: Mutex::new(false),
            woken: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// The writer committed queue entries up to `seq`, with the documents of some of them.
    pub fn committed(&self, seq: i64, docs: Docs) {
        if !docs.is_empty() {
            if let Ok(mut handoff) = self.handoff.lock() {
                let bytes: usize = docs.iter().map(|(_, d)| d.text.len() + d.keys.size()).sum();
                if handoff.1 + bytes <= HANDOFF_MAX_BYTES {
                    handoff.0.extend(docs);
                    handoff.1 += bytes;
                }
            }
        }
        self.committed.fetch_max(seq, Ordering::AcqRel);
        self.wake();
    }

    fn take_docs(&self) -> Docs {
        match self.handoff.lock() {
            Ok(mut handoff) => {
                handoff.1 = 0;
                std::mem::take(&mut handoff.0)
            }
            Err(_) => Vec::new(),
        }
    }

    /// The last queue entry indexed.
    pub fn indexed(&self) -> i64 {
        *self.indexed.borrow()
    }

    /// For the writer, before a transaction: while the index trails the commits by more than
    /// [`MAX_LAG`] entries, waits for the indexer (up to [`LAG_WAIT`]), so that under sustained
    /// load ingest slows to what the index keeps up with instead of the index falling ever
    /// further behind. Not during a rebuild, which may take minutes on a large store.
    pub fn keep_pace(&self) {
        let lagging = || self.committed.load(Ordering::Acquire) - self.indexed() > MAX_LAG;
        if self.indexed() < 0 || !lagging() {
            return;
        }
        let deadline = std::time::Instant::now() + LAG_WAIT;
        let Ok(mut guard) = self.advanced.0.lock() else {
            return;
        };
        self.wake();
        while lagging() {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                return;
            };
            guard = match self.advanced.1.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(_) => return,
            };
        }
    }

    /// The indexer covered queue entries up to `seq`.
    fn advance(&self, seq: i64) {
        self.indexed.send_replace(seq);
        let _guard = self.advanced.0.lock();
        self.advanced.1.notify_all();
    }

    /// Waits until everything committed so far is indexed, or `timeout` passes.
    pub async fn caught_up(&self, timeout: Duration) {
        let target = self.committed.load(Ordering::Acquire);
        let mut rx = self.indexed.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|seq| *seq >= target)).await;
    }

    fn wake(&self) {
        if let Ok(mut flag) = self.wake.lock() {
            *flag = true;
            self.woken.notify_one();
        }
    }

    fn sleep(&self) {
        let Ok(flag) = self.wake.lock() else {
            return;
        };
        if let Ok((mut flag, _)) = self
            .woken
            .wait_timeout_while(flag, IDLE_WAIT, |woken| !*woken)
        {
            *flag = false;
        }
    }

    /// Asks the indexer to finish the queue and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }
}

/// Where the index of the database `db_path` lives: `search.db` beside it.
pub(crate) fn index_path(db_path: &Path) -> std::path::PathBuf {
    db_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(SEARCH_FILE)
}

/// Opens (creating if needed) `search.db`; one of another [`INDEX_VERSION`] is emptied first,
/// so that it is rebuilt.
fn open_index(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
    // The index can always be rebuilt from the queue and the calls, so its commits need not
    // be fsynced: WAL with synchronous=NORMAL survives a crash of the process consistently.
    conn.execute_batch(
        "PRAGMA page_size = 8192;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -65536;
         PRAGMA wal_autocheckpoint = 8000;
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(db_err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if version != INDEX_VERSION {
        // Without `progress` the indexer rebuilds everything from the calls.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             DROP TABLE IF EXISTS calls_fts;
             DROP TABLE IF EXISTS call_keys;
             DROP TABLE IF EXISTS progress;
             PRAGMA user_version = {INDEX_VERSION};
             COMMIT;"
        ))
        .map_err(db_err)?;
    }
    conn.execute_batch(
        "CREATE VIRTUAL TABLE IF NOT EXISTS calls_fts USING fts5 (
             text,
             content = '',
             contentless_delete = 1,
             tokenize = 'unicode61 remove_diacritics 2'
         );
         CREATE TABLE IF NOT EXISTS progress (
             id  INTEGER PRIMARY KEY CHECK (id = 1),
             seq INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS call_keys (
             id             INTEGER PRIMARY KEY,
             project        TEXT NOT NULL,
             trace_ref      INTEGER NOT NULL,
             span_id        BLOB NOT NULL,
             start_ns       INTEGER NOT NULL,
             status         INTEGER NOT NULL,
             service        TEXT NOT NULL,
             provider       TEXT,
             request_model  TEXT,
             response_model TEXT,
             user_id        TEXT,
             session_id     TEXT
         );
         CREATE INDEX IF NOT EXISTS call_keys_time ON call_keys (project, start_ns);
         CREATE INDEX IF NOT EXISTS call_keys_trace ON call_keys (trace_ref);
         CREATE INDEX IF NOT EXISTS call_keys_service ON call_keys (project, service, start_ns);
         CREATE INDEX IF NOT EXISTS call_keys_request_model
             ON call_keys (project, request_model, start_ns, id, session_id, user_id)
             WHERE request_model IS NOT NULL;
         CREATE INDEX IF NOT EXISTS call_keys_response_model
             ON call_keys (project, response_model, start_ns, id, session_id, user_id)
             WHERE response_model IS NOT NULL;
         CREATE INDEX IF NOT EXISTS call_keys_errors ON call_keys (project, start_ns)
             WHERE status = 1;",
    )
    .map_err(db_err)?;
    Ok(conn)
}

/// The index thread's state.
pub(crate) struct Indexer {
    main: Connection,
    index: Connection,
    progress: Arc<SearchProgress>,
    /// Set while a rebuild from `llm_calls` is due: (next call id, newest call id to cover,
    /// queue sequence number to resume from).
    rebuild: Option<(i64, i64, i64)>,
    /// Documents handed over by the writer, by queue sequence number.
    docs: HashMap<i64, CallDoc>,
}

impl Indexer {
    /// Opens the index next to the database `db_path` (whose schema is already migrated) and
    /// prepares the indexer; also returns the progress shared with writer and readers.
    pub fn open(db_path: &Path) -> Result<(Self, Arc<SearchProgress>), StoreError> {
        let index = open_index(&index_path(db_path))?;
        let main = Connection::open_with_flags(
            db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", db_path.display())))?;
        main.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
        packed::register(&main)?;
        let committed: i64 = main
            .query_row("SELECT coalesce(max(seq), 0) FROM search_queue", [], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        let done: Option<i64> = index
            .query_row("SELECT seq FROM progress WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        let (indexed, rebuild) = match done {
            Some(seq) => (seq, None),
            None => {
                // A new index: start from the calls themselves. Entries queued before now
                // describe calls the rebuild reads in their current state.
                let newest: i64 = main
                    .query_row("SELECT coalesce(max(id), 0) FROM llm_calls", [], |r| {
                        r.get(0)
                    })
                    .map_err(db_err)?;
                index
                    .execute(
                        "INSERT INTO calls_fts (calls_fts) VALUES ('delete-all')",
                        [],
                    )
                    .map_err(db_err)?;
                // -1: below anything committed, so searches wait for the rebuild.
                (-1, Some((1, newest, committed)))
            }
        };
        let progress = Arc::new(SearchProgress::new(committed, indexed));
        Ok((
            Self {
                main,
                index,
                progress: progress.clone(),
                rebuild,
                docs: HashMap::new(),
            },
            progress,
        ))
    }

    /// The thread body: indexes until asked to stop, then drains the queue and returns.
    pub fn run(mut self) {
        crate::background::enter_background();
        crate::background::lower_current_thread(crate::background::Priority::Low);
        loop {
            let stopping = self.progress.stop.load(Ordering::Acquire);
            if stopping && self.rebuild.is_some() {
                // A rebuild can be long; it starts over at the next start.
                break;
            }
            match self.step() {
                Ok(0) if stopping => break,
                Ok(0) => self.progress.sleep(),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "indexing calls failed; retrying");
                    if stopping {
                        break;
                    }
                    std::thread::sleep(IDLE_WAIT * 4);
                }
            }
        }
        if let Err((_, e)) = self.index.close() {
            tracing::warn!(error = %e, "closing the call index failed");
        }
    }

    /// Indexes one chunk; returns how many entries it covered (0: nothing to do).
    fn step(&mut self) -> Result<usize, StoreError> {
        if let Some((next, newest, resume)) = self.rebuild {
            let rows = self.rebuild_chunk(next, newest)?;
            match rows {
                Some(last) => self.rebuild = Some((last + 1, newest, resume)),
                None => {
                    self.set_progress(resume)?;
                    self.rebuild = None;
                    tracing::info!("call index rebuilt (full text and filter keys)");
                }
            }
            return Ok(1);
        }
        self.queue_chunk()
    }

    /// Indexes calls with ids in `[next, newest]`, a chunk at a time; returns the last id read,
    /// or `None` when there were none left.
    fn rebuild_chunk(&mut self, next: i64, newest: i64) -> Result<Option<i64>, StoreError> {
        let docs = {
            let mut st = self
                .main
                .prepare_cached(&format!(
                    "SELECT id, {KEY_COLUMNS}, call FROM llm_calls \
                     WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(db_err)?;
            let mut rows = st.query(params![next, newest, CHUNK]).map_err(db_err)?;
            let mut docs = Vec::new();
            while let Some(row) = rows.next().map_err(db_err)? {
                let id: i64 = row.get(0).map_err(db_err)?;
                docs.push((id, QueueOp::Insert, Some(doc_of(row, 1)?)));
            }
            docs
        };
        let Some(last) = docs.last().map(|d| d.0) else {
            return Ok(None);
        };
        self.apply(&docs, None)?;
        Ok(Some(last))
    }

    /// Indexes the next chunk of queue entries.
    fn queue_chunk(&mut self) -> Result<usize, StoreError> {
        let after = self.progress.indexed().max(0);
        self.docs.extend(
            self.progress
                .take_docs()
                .into_iter()
                .filter(|(seq, _)| *seq > after),
        );
        let entries: Vec<(i64, i64, QueueOp)> = {
            let mut st = self
                .main
                .prepare_cached(
                    "SELECT seq, call_id, op FROM search_queue WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![after, CHUNK], |r| {
                    let op = match r.get::<_, i64>(2)? {
                        0 => QueueOp::Insert,
                        1 => QueueOp::Replace,
                        _ => QueueOp::Delete,
                    };
                    Ok((r.get(0)?, r.get(1)?, op))
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)?
        };
        let Some(&(last, _, _)) = entries.last() else {
            return Ok(0);
        };
        let mut docs = Vec::with_capacity(entries.len());
        for (seq, id, op) in entries {
            let doc = match (op, self.docs.remove(&seq)) {
                (QueueOp::Delete, _) => None,
                (_, Some(doc)) => Some(doc),
                (_, None) => self.read_doc(id)?,
            };
            docs.push((id, op, doc));
        }
        self.apply(&docs, Some(last))?;
        Ok(docs.len())
    }

    /// The keys and searchable text of stored call `id` (`None` when it is gone).
    fn read_doc(&self, id: i64) -> Result<Option<CallDoc>, StoreError> {
        let mut st = self
            .main
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS}, call FROM llm_calls WHERE id = ?1"
            ))
            .map_err(db_err)?;
        let mut rows = st.query([id]).map_err(db_err)?;
        match rows.next().map_err(db_err)? {
            Some(row) => Ok(Some(doc_of(row, 0)?)),
            None => Ok(None),
        }
    }

    /// Writes `docs` to the index in one transaction, with the new progress when given. A
    /// document that is `None` (a deleted call, or one gone before it was indexed) leaves the
    /// call out of the index.
    fn apply(
        &mut self,
        docs: &[(i64, QueueOp, Option<CallDoc>)],
        progress: Option<i64>,
    ) -> Result<(), StoreError> {
        let tx = self.index.transaction().map_err(db_err)?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM calls_fts WHERE rowid = ?1")
                .map_err(db_err)?;
            let mut insert = tx
                .prepare_cached("INSERT INTO calls_fts (rowid, text) VALUES (?1, ?2)")
                .map_err(db_err)?;
            let mut drop_keys = tx
                .prepare_cached("DELETE FROM call_keys WHERE id = ?1")
                .map_err(db_err)?;
            let mut put_keys = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO call_keys (id, {KEY_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))
                .map_err(db_err)?;
            // Plain statements that cannot fail halfway: one that could (`OR REPLACE`, an
            // upsert) makes SQLite journal every page it touches in case it must roll back.
            for (id, op, doc) in docs {
                if *op != QueueOp::Insert {
                    delete.execute([id]).map_err(db_err)?;
                    drop_keys.execute([id]).map_err(db_err)?;
                }
                // An insert of a call already indexed (by a rebuild) leaves it as it is.
                let Some(doc) = doc else {
                    continue;
                };
                let k = &doc.keys;
                put_keys
                    .execute(params![
                        id,
                        k.project,
                        k.trace_ref,
                        &k.span_id[..],
                        k.start_ns,
                        k.status,
                        k.service,
                        k.provider,
                        k.request_model,
                        k.response_model,
                        k.user_id,
                        k.session_id,
                    ])
                    .map_err(db_err)?;
                if !doc.text.trim().is_empty() {
                    insert.execute(params![id, &*doc.text]).map_err(db_err)?;
                }
            }
            if let Some(seq) = progress {
                tx.execute(
                    "INSERT INTO progress (id, seq) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                    [seq],
                )
                .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)?;
        if let Some(seq) = progress {
            self.progress.advance(seq);
        }
        Ok(())
    }

    fn set_progress(&mut self, seq: i64) -> Result<(), StoreError> {
        self.apply(&[], Some(seq))
    }
}

/// The document of a call row: its [`KEY_COLUMNS`] from column `at`, then its `call`. A call that
/// cannot be decoded keeps its keys but is not searchable, and says so in the log.
fn doc_of(row: &rusqlite::Row<'_>, at: usize) -> Result<CallDoc, StoreError> {
    let keys = CallKeys::read(row, at).map_err(db_err)?;
    let text = match read_call(row, at + 11) {
        Ok(call) => call.searchable_text(),
        Err(e) => {
            tracing::warn!(error = %e, "a stored call cannot be indexed for search");
            String::new()
        }
    };
    Ok(CallDoc {
        keys,
        text: text.into(),
    })
}

/// Creates an empty index next to `db_path` and attaches it to `conn` (for tests that query a
/// bare connection).
#[cfg(test)]
pub(crate) fn attach_new(conn: &Connection, db_path: &Path) -> Result<(), StoreError> {
    let path = index_path(db_path);
    open_index(&path)?;
    conn.execute("ATTACH DATABASE ?1 AS search", [path.to_string_lossy()])
        .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::schema::open_writer;
    use crate::sqlite::Synchronous;

    fn keys_of(index: &Connection) -> Vec<(i64, Option<String>, i64)> {
        let mut st = index
            .prepare("SELECT id, request_model, status FROM call_keys ORDER BY id")
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(|r| r.unwrap()).collect()
    }

    fn queue(main: &Connection, id: i64, op: QueueOp) -> i64 {
        main.execute(
            "INSERT INTO search_queue (call_id, op) VALUES (?1, ?2)",
            params![id, op as i64],
        )
        .unwrap();
        main.last_insert_rowid()
    }

    /// Entries the writer did not hand over are read back from `llm_calls`; a replaced call's
    /// keys are replaced, a removed call's dropped, and a rebuild of an index of an older layout
    /// files every stored call again.
    #[test]
    fn call_keys_follow_the_queue_and_rebuilds() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("main.db");
        let main = open_writer(&db, Synchronous::Normal).unwrap();
        let insert = |model: &str, start: i64| {
            main.execute(
                "INSERT INTO llm_calls (project, trace_ref, span_id, start_ns, status, service, \
                 request_model, operation, call) VALUES ('p', 1, ?1, ?2, 0, 's', ?3, 'chat', 'x')",
                params![start.to_be_bytes(), start, model],
            )
            .unwrap();
            main.last_insert_rowid()
        };
        let (mut indexer, progress) = Indexer::open(&db).unwrap();
        // A new index rebuilds from the (empty) calls first.
        while indexer.rebuild.is_some() {
            indexer.step().unwrap();
        }
        let a = insert("a", 10);
        let b = insert("b", 20);
        queue(&main, a, QueueOp::Insert);
        let seq = queue(&main, b, QueueOp::Insert);
        progress.committed(seq, Vec::new());
        assert_eq!(indexer.step().unwrap(), 2);
        assert_eq!(
            keys_of(&indexer.index),
            vec![(a, Some("a".into()), 0), (b, Some("b".into()), 0)]
        );

        main.execute(
            "UPDATE llm_calls SET request_model = 'c', status = 1 WHERE id = ?1",
            [a],
        )
        .unwrap();
        queue(&main, a, QueueOp::Replace);
        main.execute("DELETE FROM llm_calls WHERE id = ?1", [b])
            .unwrap();
        let seq = queue(&main, b, QueueOp::Delete);
        progress.committed(seq, Vec::new());
        assert_eq!(indexer.step().unwrap(), 2);
        assert_eq!(keys_of(&indexer.index), vec![(a, Some("c".into()), 1)]);
        assert_eq!(progress.indexed(), seq);
        drop(indexer);

        // An index of the first layout (full text only) is emptied and rebuilt with its keys.
        {
            let index = Connection::open(index_path(&db)).unwrap();
            index
                .execute_batch("DROP TABLE call_keys; PRAGMA user_version = 1;")
                .unwrap();
        }
        let c = insert("d", 30);
        let (mut indexer, progress) = Indexer::open(&db).unwrap();
        assert_eq!(progress.indexed(), -1, "lists wait for the rebuild");
        while indexer.rebuild.is_some() {
            indexer.step().unwrap();
        }
        assert_eq!(
            keys_of(&indexer.index),
            vec![(a, Some("c".into()), 1), (c, Some("d".into()), 0)]
        );
        let version: i64 = indexer
            .index
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, INDEX_VERSION);
    }

    /// The writer waits while the index trails by more than `MAX_LAG`, until the indexer
    /// advances or `LAG_WAIT` passes; it never waits during a rebuild.
    #[test]
    fn the_writer_keeps_pace_with_the_index() {
        let rebuilding = SearchProgress::new(10 * MAX_LAG, -1);
        let started = std::time::Instant::now();
        rebuilding.keep_pace();
        assert!(started.elapsed() < LAG_WAIT);

        let progress = Arc::new(SearchProgress::new(3 * MAX_LAG, 0));
        let started = std::time::Instant::now();
        progress.keep_pace();
        assert!(
            started.elapsed() >= LAG_WAIT,
            "an index that never advances"
        );

        let indexer = {
            let progress = progress.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                progress.advance(MAX_LAG);
                std::thread::sleep(Duration::from_millis(20));
                progress.advance(2 * MAX_LAG);
            })
        };
        progress.keep_pace();
        assert!(progress.indexed() >= 2 * MAX_LAG, "waited for the indexer");
        indexer.join().unwrap();
    }
}
