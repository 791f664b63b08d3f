//! The full-text index over call messages: its own database file, kept up to date by its own
//! thread.
//!
//! Indexing message text (tokenizing, then merging FTS5 segments at every commit) cost the writer
//! thread more than everything else it does for a span together, and the writer is the one serial
//! resource of the store. So the writer only appends `(call id, op)` to `search_queue` in the same
//! transaction as the call, which makes the work durable, and the indexer thread turns queue
//! entries into FTS5 rows in `search.db` in large transactions, on the other core.
//!
//! - **Progress** is the last queue sequence number indexed, stored in `search.db` in the same
//!   transaction as the rows it covers; after a crash the indexer resumes from there. The writer
//!   deletes queue entries the indexer has passed.
//! - **A missing or new `search.db`** (first start after an upgrade, or the file deleted) is
//!   rebuilt from `llm_calls`: every call up to the newest id is indexed, and the queue is taken up
//!   from the sequence number current when that started.
//! - **Read your writes**: a full-text query first waits (up to [`CATCH_UP_WAIT`]) until the index
//!   covers every call committed before it started, so a search right after an acknowledged write
//!   finds it. Under sustained overload it answers after the wait with what is indexed.
//! - Readers attach `search.db` as schema `search`; `calls_fts` resolves there.

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

/// How long a full-text query waits for the index to catch up with earlier commits.
pub(crate) const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

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

/// Texts of full-text queue entries, by sequence number: shared with the call that holds them.
pub(crate) type Texts = Vec<(i64, Arc<str>)>;

/// Shared between the writer (what is committed), the indexer (what is indexed) and readers.
pub(crate) struct SearchProgress {
    committed: AtomicI64,
    /// Texts of committed queue entries not yet taken by the indexer, and their total size.
    handoff: Mutex<(Texts, usize)>,
    indexed: watch::Sender<i64>,
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
            wake: Mutex::new(false),
            woken: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// The writer committed queue entries up to `seq`, with the texts of some of them.
    pub fn committed(&self, seq: i64, texts: Texts) {
        if !texts.is_empty() {
            if let Ok(mut handoff) = self.handoff.lock() {
                let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum();
                if handoff.1 + bytes <= HANDOFF_MAX_BYTES {
                    handoff.0.extend(texts);
                    handoff.1 += bytes;
                }
            }
        }
        self.committed.fetch_max(seq, Ordering::AcqRel);
        self.wake();
    }

    fn take_texts(&self) -> Texts {
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

/// Opens (creating if needed) `search.db`.
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
         PRAGMA cache_size = -65536;
         PRAGMA journal_size_limit = 67108864;
         CREATE VIRTUAL TABLE IF NOT EXISTS calls_fts USING fts5 (
             text,
             content = '',
             contentless_delete = 1,
             tokenize = 'unicode61 remove_diacritics 2'
         );
         CREATE TABLE IF NOT EXISTS progress (
             id  INTEGER PRIMARY KEY CHECK (id = 1),
             seq INTEGER NOT NULL
         );",
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
    /// Texts handed over by the writer, by queue sequence number.
    texts: HashMap<i64, Arc<str>>,
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
                texts: HashMap::new(),
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
                    tracing::error!(error = %e, "full-text indexing failed; retrying");
                    if stopping {
                        break;
                    }
                    std::thread::sleep(IDLE_WAIT * 4);
                }
            }
        }
        if let Err((_, e)) = self.index.close() {
            tracing::warn!(error = %e, "closing the full-text index failed");
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
                    tracing::info!("full-text index rebuilt");
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
                .prepare_cached(
                    "SELECT id, call FROM llm_calls WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(db_err)?;
            let mut rows = st.query(params![next, newest, CHUNK]).map_err(db_err)?;
            let mut docs = Vec::new();
            while let Some(row) = rows.next().map_err(db_err)? {
                let id: i64 = row.get(0).map_err(db_err)?;
                docs.push((id, QueueOp::Insert, text_of(row, 1).into()));
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
        self.texts.extend(
            self.progress
                .take_texts()
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
            let text = match (op, self.texts.remove(&seq)) {
                (QueueOp::Delete, _) => Arc::from(""),
                (_, Some(text)) => text,
                (_, None) => self.read_text(id)?.into(),
            };
            docs.push((id, op, text));
        }
        self.apply(&docs, Some(last))?;
        Ok(docs.len())
    }

    /// The searchable text of stored call `id` (empty when it is gone).
    fn read_text(&self, id: i64) -> Result<String, StoreError> {
        let mut st = self
            .main
            .prepare_cached("SELECT call FROM llm_calls WHERE id = ?1")
            .map_err(db_err)?;
        let mut rows = st.query([id]).map_err(db_err)?;
        Ok(match rows.next().map_err(db_err)? {
            Some(row) => text_of(row, 0),
            None => String::new(),
        })
    }

    /// Writes `docs` to the index in one transaction, with the new progress when given.
    fn apply(
        &mut self,
        docs: &[(i64, QueueOp, Arc<str>)],
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
            for (id, op, text) in docs {
                if *op != QueueOp::Insert {
                    delete.execute([id]).map_err(db_err)?;
                }
                if *op != QueueOp::Delete && !text.trim().is_empty() {
                    insert.execute(params![id, &**text]).map_err(db_err)?;
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
            self.progress.indexed.send_replace(seq);
        }
        Ok(())
    }

    fn set_progress(&mut self, seq: i64) -> Result<(), StoreError> {
        self.apply(&[], Some(seq))
    }
}

/// The searchable text of the call in column `idx` (empty when it cannot be decoded: such a
/// call is not searchable, and says so in the log).
fn text_of(row: &rusqlite::Row<'_>, idx: usize) -> String {
    match read_call(row, idx) {
        Ok(call) => call.searchable_text(),
        Err(e) => {
            tracing::warn!(error = %e, "a stored call cannot be indexed for search");
            String::new()
        }
    }
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
