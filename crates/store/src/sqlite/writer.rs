//! The single writer thread and its group commit.
//!
//! One OS thread owns the only write connection. Callers queue a batch with a oneshot reply; the
//! thread takes everything already queued (up to `max_batch_spans` items), applies it in ONE
//! transaction, takes in what was queued meanwhile (same cap), commits, and only then answers
//! every caller in the group. Summary rows (traces, sessions, users, counters) are accumulated in
//! memory over the whole group and written once per key at the end of the transaction, so a trace
//! of 50 spans costs one upsert, not 50.
//!
//! If a group's transaction fails, each batch is retried in a transaction of its own, so one bad
//! batch fails only its own caller.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use sightline_model::prices::PriceTable;
use sightline_model::{LlmCall, Span, TraceId};
use tokio::sync::{mpsc, oneshot};

use super::codec::{
    db_err, fnv1a, json_err, read_log_event, read_span, trace_ref, OriginReader, SpanKey,
    LOG_EVENT_COLUMNS, SPAN_COLUMNS,
};
use super::dictionary::Dictionaries;
use super::encode::{CallStats, EncodedBatch, EncodedCall, EncodedLog, EncodedSpan};
use super::packed::Packed;
use super::rollup::SeriesIds;
use super::search::{CallDoc, CallKeys, QueueOp, SearchProgress};
use crate::error::StoreError;
use crate::{Enricher, WriteReceipt};

/// What became of a log record.
enum LogInsert {
    /// Stored; with the span's key when it is a GenAI event for a span.
    Stored(Option<SpanKey>),
    /// The same record (time and fingerprint) was already stored: a retried export.
    Duplicate,
}

/// Work for the writer thread.
pub(crate) enum Command {
    /// Store a batch durably.
    Write {
        batch: EncodedBatch,
        reply: oneshot::Sender<Result<WriteReceipt, StoreError>>,
    },
    /// Recompute every call's cost.
    Recompute {
        prices: PriceTable,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Flush, checkpoint and stop.
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

type WriteReply = oneshot::Sender<Result<WriteReceipt, StoreError>>;

/// The commands waiting for the writer: those it set aside first, then its channel's.
struct Queued<'a> {
    rx: &'a mut mpsc::Receiver<Command>,
    stash: &'a mut VecDeque<Command>,
}

impl Queued<'_> {
    /// The next waiting command, without waiting for one.
    fn next(&mut self) -> Option<Command> {
        self.stash.pop_front().or_else(|| self.rx.try_recv().ok())
    }

    /// The next waiting command if it is a write; any other stays the next one, so that no write
    /// queued behind a close or a recompute overtakes it.
    fn next_write(&mut self) -> Option<(EncodedBatch, WriteReply)> {
        match self.next()? {
            Command::Write { batch, reply } => Some((batch, reply)),
            other => {
                self.stash.push_front(other);
                None
            }
        }
    }
}

/// Calls re-priced per transaction by `recompute_costs`; writes queued meanwhile run between
/// chunks.
const RECOMPUTE_CHUNK: usize = 1000;

/// Indexed full-text queue entries are deleted once at least this many have piled up.
const SEARCH_PRUNE_EVERY: i64 = 10_000;

pub(crate) struct Writer {
    conn: Connection,
    enricher: Arc<dyn Enricher>,
    rx: mpsc::Receiver<Command>,
    max_batch: usize,
    /// Whether any GenAI log event was ever stored; until then new spans skip the log lookup.
    genai_logs_exist: bool,
    origins: OriginCache,
    refs: TraceRefs,
    stash: VecDeque<Command>,
    search: Arc<SearchProgress>,
    /// Compression dictionaries, for calls the writer re-encodes.
    dictionaries: Arc<Dictionaries>,
    /// Rollup series ids known to be committed.
    series: SeriesIds,
    /// Queue entries up to this sequence number have been deleted.
    search_pruned: i64,
}

impl Writer {
    pub fn new(
        conn: Connection,
        enricher: Arc<dyn Enricher>,
        rx: mpsc::Receiver<Command>,
        max_batch: usize,
        search: Arc<SearchProgress>,
        dictionaries: Arc<Dictionaries>,
    ) -> Result<Self, StoreError> {
        let genai_logs_exist: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM logs WHERE genai = 1)",
                [],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        Ok(Self {
            conn,
            enricher,
            rx,
            max_batch: max_batch.max(1),
            genai_logs_exist,
            origins: OriginCache::default(),
            refs: TraceRefs::default(),
            stash: VecDeque::new(),
            search_pruned: 0,
            search,
            dictionaries,
            series: SeriesIds::default(),
        })
    }

    /// The thread body: runs until closed or until every store handle is dropped.
    pub fn run(mut self) {
        crate::background::enter_background();
        let mut lowered = false;
        loop {
            let cmd = match self.stash.pop_front() {
                Some(cmd) => cmd,
                None => match self.rx.blocking_recv() {
                    Some(cmd) => cmd,
                    None => break,
                },
            };
            // With only OTLP to serve, the writer's commits are what bound ingest; once the
            // gateway proxies calls, their latency comes first (see `background`).
            if !lowered && crate::background::requests_favoured() {
                crate::background::lower_current_thread(crate::background::Priority::Low);
                lowered = true;
            }
            match cmd {
                Command::Write { batch, reply } => {
                    // Writes that queue meanwhile join this group.
                    self.search.keep_pace();
                    let group = self.gather(batch, reply);
                    self.commit_group(group);
                }
                Command::Recompute { prices, reply } => {
                    let result = self.recompute(&prices);
                    let _ = reply.send(result);
                }
                Command::Close { reply } => {
                    self.rx.close();
                    let mut closers = vec![reply];
                    // Everything queued before the close is still honoured.
                    while let Some(cmd) = self.next_queued() {
                        match cmd {
                            Command::Write { batch, reply } => {
                                let group = self.gather(batch, reply);
                                self.commit_group(group);
                            }
                            Command::Recompute { prices, reply } => {
                                let result = self.recompute(&prices);
                                let _ = reply.send(result);
                            }
                            Command::Close { reply } => closers.push(reply),
                        }
                    }
                    let result = self.shutdown();
                    for closer in closers {
                        let _ = closer.send(result.as_ref().map(|_| ()).map_err(clone_err));
                    }
                    return;
                }
            }
        }
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "sqlite writer stopped uncleanly");
        }
    }

    fn queued(&mut self) -> Queued<'_> {
        Queued {
            rx: &mut self.rx,
            stash: &mut self.stash,
        }
    }

    fn next_queued(&mut self) -> Option<Command> {
        self.queued().next()
    }

    /// The first batch plus every write already queued behind it, up to the item cap.
    fn gather(
        &mut self,
        batch: EncodedBatch,
        reply: WriteReply,
    ) -> Vec<(EncodedBatch, WriteReply)> {
        let mut total = batch.len();
        let mut group = vec![(batch, reply)];
        let max_batch = self.max_batch;
        let mut queued = self.queued();
        while total < max_batch {
            let Some((batch, reply)) = queued.next_write() else {
                break;
            };
            total += batch.len();
            group.push((batch, reply));
        }
        group
    }

    fn commit_group(&mut self, mut group: Vec<(EncodedBatch, WriteReply)>) {
        let started = std::time::Instant::now();
        let max_batch = self.max_batch;
        let result = self.transaction(|tx, queued| {
            let mut receipts = group
                .iter()
                .map(|(batch, _)| tx.apply_batch(batch))
                .collect::<Result<Vec<_>, _>>()?;
            // Writes that arrived while the group was applied join it before the commit: under
            // load a commit then carries more spans, and the index pages it rewrites (the same
            // ones, however many calls land on them) are written once for all of them.
            let mut total: usize = group.iter().map(|(batch, _)| batch.len()).sum();
            while total < max_batch {
                let Some((batch, reply)) = queued.next_write() else {
                    break;
                };
                total += batch.len();
                // In the group before it is applied: if it fails, the group's fallback answers
                // it too.
                group.push((batch, reply));
                let (batch, _) = &group[group.len() - 1];
                receipts.push(tx.apply_batch(batch)?);
            }
            Ok(receipts)
        });
        super::telemetry::record_commit(started.elapsed());
        match result {
            Ok(receipts) => {
                for ((_, reply), receipt) in group.into_iter().zip(receipts) {
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(e) if group.len() > 1 => {
                tracing::warn!(error = %e, batches = group.len(), "group commit failed; retrying batches one by one");
                for (batch, reply) in group {
                    let result = self.transaction(|tx, _| tx.apply_batch(&batch));
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                for (_, reply) in group {
                    let _ = reply.send(Err(clone_err(&e)));
                }
            }
        }
    }

    /// Runs `f` inside `BEGIN IMMEDIATE … COMMIT`, flushing the accumulated summaries first; rolls
    /// back on any error. `f` may take in further queued commands.
    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Txn<'_>, &mut Queued<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let mut tx = Txn {
            conn: &self.conn,
            enricher: self.enricher.as_ref(),
            origins: &mut self.origins,
            refs: &mut self.refs,
            genai_logs_exist: &mut self.genai_logs_exist,
            dictionaries: &self.dictionaries,
            series: &mut self.series,
            deltas: Deltas::default(),
            new_traces: 0,
            queued: 0,
            docs: Vec::new(),
        };
        let mut queued = Queued {
            rx: &mut self.rx,
            stash: &mut self.stash,
        };
        let result = f(&mut tx, &mut queued).and_then(|value| tx.flush().map(|()| value));
        let queued = tx.queued;
        let docs = std::mem::take(&mut tx.docs);
        let indexed = self.search.indexed();
        let result = result.and_then(|value| {
            if indexed >= self.search_pruned + SEARCH_PRUNE_EVERY {
                self.conn
                    .prepare_cached("DELETE FROM search_queue WHERE seq <= ?1")
                    .and_then(|mut st| st.execute([indexed]))
                    .map_err(db_err)?;
            }
            self.conn.execute_batch("COMMIT").map_err(db_err)?;
            Ok(value)
        });
        if result.is_ok() {
            if indexed >= self.search_pruned + SEARCH_PRUNE_EVERY {
                self.search_pruned = indexed;
            }
            if queued > 0 {
                self.search.committed(queued, docs);
            }
        }
        if result.is_err() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "sqlite rollback failed");
            }
            // Origins and traces inserted by the failed transaction are gone with it.
            self.origins = OriginCache::default();
            self.refs = TraceRefs::default();
        }
        result
    }

    fn recompute(&mut self, prices: &PriceTable) -> Result<u64, StoreError> {
        let mut after = 0i64;
        let mut changed = 0u64;
        loop {
            let (rows, last, n) = self.transaction(|tx, _| tx.recompute_chunk(prices, after))?;
            changed += n;
            after = last;
            if rows < RECOMPUTE_CHUNK {
                return Ok(changed);
            }
            // Let queued writes through between chunks.
            while let Some(cmd) = self.next_queued() {
                match cmd {
                    Command::Write { batch, reply } => {
                        let group = self.gather(batch, reply);
                        self.commit_group(group);
                    }
                    other => {
                        self.stash.push_front(other);
                        break;
                    }
                }
            }
        }
    }

    fn shutdown(self) -> Result<(), StoreError> {
        let checkpoint: Result<(i64, i64, i64), _> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
        match checkpoint {
            Ok((0, _, _)) => {}
            Ok(_) => tracing::warn!("wal checkpoint at close was incomplete (readers active)"),
            Err(e) => tracing::warn!(error = %e, "wal checkpoint at close failed"),
        }
        self.conn.close().map_err(|(_, e)| db_err(e))
    }
}

/// StoreError is not Clone (it need not be elsewhere); the writer answers several callers with
/// one failure.
fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::InvalidInput { field, message } => StoreError::InvalidInput {
            field,
            message: message.clone(),
        },
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Closed => StoreError::Closed,
        StoreError::Database(m) => StoreError::Database(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
    }
}

/// Resource/scope pairs already stored, so that most batches resolve their origins without
/// touching SQLite.
#[derive(Default)]
struct OriginCache {
    ids: HashMap<(String, String), i64>,
}

const ORIGIN_CACHE_MAX: usize = 4096;

impl OriginCache {
    /// Row ids of a batch's origins, in order.
    fn resolve(
        &mut self,
        conn: &Connection,
        pairs: &[(String, String)],
    ) -> Result<Vec<i64>, StoreError> {
        pairs
            .iter()
            .map(|pair| match self.ids.get(pair) {
                Some(id) => Ok(*id),
                None => {
                    let id = Self::lookup_or_insert(conn, &pair.0, &pair.1)?;
                    if self.ids.len() >= ORIGIN_CACHE_MAX {
                        self.ids.clear();
                    }
                    self.ids.insert(pair.clone(), id);
                    Ok(id)
                }
            })
            .collect()
    }

    fn lookup_or_insert(conn: &Connection, resource: &str, scope: &str) -> Result<i64, StoreError> {
        let hash = fnv1a(&[resource, scope]);
        let mut select = conn
            .prepare_cached("SELECT id, resource, scope FROM origins WHERE hash = ?1")
            .map_err(db_err)?;
        let mut rows = select.query([hash]).map_err(db_err)?;
        while let Some(row) = rows.next().map_err(db_err)? {
            let r: String = row.get(1).map_err(db_err)?;
            let s: String = row.get(2).map_err(db_err)?;
            if r == resource && s == scope {
                return row.get(0).map_err(db_err);
            }
        }
        conn.prepare_cached("INSERT INTO origins (hash, resource, scope) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![hash, resource, scope]))
            .map_err(db_err)?;
        Ok(conn.last_insert_rowid())
    }
}

/// `traces.id` of recently written traces, so that the spans of a trace arriving over several
/// batches look their trace up once.
#[derive(Default)]
struct TraceRefs {
    ids: HashMap<(String, TraceId), i64>,
}

const TRACE_REFS_MAX: usize = 100_000;

impl TraceRefs {
    /// The trace's row id; creates the row (with neutral values the transaction's summary update
    /// then overwrites) when the trace is new. Returns whether it was created.
    fn get_or_create(
        &mut self,
        conn: &Connection,
        project: &str,
        trace_id: TraceId,
    ) -> Result<(i64, bool), StoreError> {
        if let Some(id) = self.ids.get(&(project.to_string(), trace_id)) {
            return Ok((*id, false));
        }
        let (id, created) = match trace_ref(conn, project, trace_id)? {
            Some(id) => (id, false),
            None => {
                conn.prepare_cached(
                    "INSERT INTO traces (project, trace_id, start_ns, end_ns, root_known, name, \
                     service, span_count, llm_call_count, error_count, input_tokens, \
                     output_tokens, priced_calls, cost_usd) \
                     VALUES (?1, ?2, ?3, 0, 0, '', '', 0, 0, 0, 0, 0, 0, 0)",
                )
                .and_then(|mut st| st.execute(params![project, trace_id.as_bytes(), i64::MAX]))
                .map_err(db_err)?;
                (conn.last_insert_rowid(), true)
            }
        };
        if self.ids.len() >= TRACE_REFS_MAX {
            self.ids.clear();
        }
        self.ids.insert((project.to_string(), trace_id), id);
        Ok((id, created))
    }
}

/// Changes to one trace row, summed over a transaction.
#[derive(Debug)]
struct TraceDelta {
    start: i64,
    end: i64,
    root: Option<(String, String)>,
    earliest: Option<(i64, String, String)>,
    spans: i64,
    calls: i64,
    errors: i64,
    input: i64,
    output: i64,
    priced: i64,
    cost: f64,
    user: Option<String>,
    session: Option<String>,
}

impl Default for TraceDelta {
    fn default() -> Self {
        Self {
            start: i64::MAX,
            end: 0,
            root: None,
            earliest: None,
            spans: 0,
            calls: 0,
            errors: 0,
            input: 0,
            output: 0,
            priced: 0,
            cost: 0.0,
            user: None,
            session: None,
        }
    }
}

/// Changes to one session or user row, summed over a transaction.
#[derive(Debug)]
struct GroupDelta {
    first: i64,
    last: i64,
    user: Option<String>,
    traces: i64,
    sessions: i64,
    calls: i64,
    errors: i64,
    input: i64,
    output: i64,
    priced: i64,
    cost: f64,
}

impl Default for GroupDelta {
    fn default() -> Self {
        Self {
            first: i64::MAX,
            last: i64::MIN,
            user: None,
            traces: 0,
            sessions: 0,
            calls: 0,
            errors: 0,
            input: 0,
            output: 0,
            priced: 0,
            cost: 0.0,
        }
    }
}

impl GroupDelta {
    fn seen(&mut self, at: i64) {
        self.first = self.first.min(at);
        self.last = self.last.max(at);
    }

    fn add_call(&mut self, stats: &CallStats, sign: i64) {
        self.calls += sign;
        self.errors += sign * i64::from(stats.error);
        self.input += sign * stats.input;
        self.output += sign * stats.output;
        if let Some(cost) = stats.cost {
            self.priced += sign;
            self.cost += sign as f64 * cost;
        }
    }
}

#[derive(Default)]
struct Deltas {
    traces: HashMap<i64, TraceDelta>,
    sessions: HashMap<(String, String), GroupDelta>,
    users: HashMap<(String, String), GroupDelta>,
    session_traces: HashSet<(String, String, i64)>,
    user_traces: HashSet<(String, String, i64)>,
    user_sessions: HashSet<(String, String, String)>,
    trace_services: HashSet<(String, String, i64)>,
    spans: i64,
    calls: i64,
    logs: i64,
    rollups: super::rollup::RollupDeltas,
}

impl Deltas {
    fn trace(&mut self, trace_ref: i64) -> &mut TraceDelta {
        self.traces.entry(trace_ref).or_default()
    }

    /// Records activity of a user and/or session in a trace at `at`.
    fn context(
        &mut self,
        project: &str,
        trace_ref: i64,
        user: Option<&str>,
        session: Option<&str>,
        at: i64,
    ) {
        if user.is_none() && session.is_none() {
            return;
        }
        let t = self.trace(trace_ref);
        if t.user.is_none() {
            t.user = user.map(str::to_string);
        }
        if t.session.is_none() {
            t.session = session.map(str::to_string);
        }
        if let Some(s) = session {
            let d = self
                .sessions
                .entry((project.to_string(), s.to_string()))
                .or_default();
            d.seen(at);
            if let Some(u) = user {
                d.user = Some(u.to_string());
            }
            self.session_traces
                .insert((project.to_string(), s.to_string(), trace_ref));
        }
        if let Some(u) = user {
            self.users
                .entry((project.to_string(), u.to_string()))
                .or_default()
                .seen(at);
            self.user_traces
                .insert((project.to_string(), u.to_string(), trace_ref));
            if let Some(s) = session {
                self.user_sessions
                    .insert((project.to_string(), u.to_string(), s.to_string()));
            }
        }
    }

    /// Adds (`sign` 1) or removes (`sign` -1) one call's contribution.
    fn call(&mut self, project: &str, trace_ref: i64, stats: &CallStats, sign: i64) {
        self.rollups.call(project, stats, sign);
        self.calls += sign;
        let t = self.trace(trace_ref);
        t.calls += sign;
        t.errors += sign * i64::from(stats.error);
        t.input += sign * stats.input;
        t.output += sign * stats.output;
        if let Some(cost) = stats.cost {
            t.priced += sign;
            t.cost += sign as f64 * cost;
        }
        if sign > 0 {
            self.context(
                project,
                trace_ref,
                stats.user.as_deref(),
                stats.session.as_deref(),
                stats.start,
            );
        }
        if let Some(s) = &stats.session {
            self.sessions
                .entry((project.to_string(), s.clone()))
                .or_default()
                .add_call(stats, sign);
        }
        if let Some(u) = &stats.user {
            self.users
                .entry((project.to_string(), u.clone()))
                .or_default()
                .add_call(stats, sign);
        }
    }

    /// Adds a newly stored span (its call, if any, is added separately).
    fn span(&mut self, span: &EncodedSpan, trace_ref: i64, has_call: bool) {
        self.spans += 1;
        let key = &span.key;
        self.trace_services
            .insert((key.project.clone(), span.service.clone(), trace_ref));
        let t = self.trace(trace_ref);
        t.spans += 1;
        t.start = t.start.min(span.start);
        t.end = t.end.max(span.end);
        if span.error {
            t.errors += 1;
        }
        if span.parent.is_none() && t.root.is_none() {
            t.root = Some((span.name.clone(), span.service.clone()));
        }
        if t.earliest
            .as_ref()
            .is_none_or(|(at, _, _)| span.start < *at)
        {
            t.earliest = Some((span.start, span.name.clone(), span.service.clone()));
        }
        if !has_call {
            self.context(
                &key.project,
                trace_ref,
                span.user.as_deref(),
                span.session.as_deref(),
                span.start,
            );
        }
    }
}

/// One open transaction.
struct Txn<'a> {
    conn: &'a Connection,
    enricher: &'a dyn Enricher,
    origins: &'a mut OriginCache,
    refs: &'a mut TraceRefs,
    genai_logs_exist: &'a mut bool,
    dictionaries: &'a Arc<Dictionaries>,
    series: &'a mut SeriesIds,
    deltas: Deltas,
    new_traces: i64,
    /// The last full-text queue entry added (0: none yet).
    queued: i64,
    /// Documents of the queue entries added, by sequence number.
    docs: super::search::Docs,
}

impl Txn<'_> {
    fn apply_batch(&mut self, batch: &EncodedBatch) -> Result<WriteReceipt, StoreError> {
        let mut receipt = WriteReceipt::default();
        let origins = self.origins.resolve(self.conn, &batch.origins)?;
        let origin = |i: usize| {
            origins
                .get(i)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("batch origin {i} out of range")))
        };
        // Logs first, so that spans of this batch see the GenAI events sent with them.
        let mut touched: Vec<SpanKey> = Vec::new();
        let mut touched_set: HashSet<SpanKey> = HashSet::new();
        for log in &batch.logs {
            match self.insert_log(log, origin(log.origin)?)? {
                LogInsert::Duplicate => {
                    receipt.logs_duplicate += 1;
                    continue;
                }
                LogInsert::Stored(Some(key)) => {
                    if touched_set.insert(key.clone()) {
                        touched.push(key);
                    }
                }
                LogInsert::Stored(None) => {}
            }
            receipt.logs_written += 1;
        }
        for span in &batch.spans {
            let (trace_ref, created) =
                self.refs
                    .get_or_create(self.conn, &span.key.project, span.key.trace_id)?;
            self.new_traces += i64::from(created);
            if !self.insert_span(span, trace_ref, origin(span.origin)?)? {
                receipt.spans_duplicate += 1;
                continue;
            }
            receipt.spans_written += 1;
            let merged = if *self.genai_logs_exist {
                touched_set.remove(&span.key);
                self.enrich_with_logs(&span.key)?
            } else {
                None
            };
            let call = match &merged {
                Some(call) => call.as_ref(),
                None => span.call.as_ref(),
            };
            self.deltas.span(span, trace_ref, call.is_some());
            if let Some(call) = call {
                self.insert_call(&span.key, trace_ref, call)?;
            }
        }
        super::metric_points::insert(self.conn, &batch.metrics)?;
        // GenAI events for spans stored earlier: normalize those calls again.
        for key in touched {
            if !touched_set.contains(&key) {
                continue;
            }
            let Some(trace_ref) = trace_ref(self.conn, &key.project, key.trace_id)? else {
                continue;
            };
            if let Some(call) = self.enrich_with_logs(&key)? {
                self.replace_call(&key, trace_ref, call)?;
            }
        }
        Ok(receipt)
    }

    /// Stores a log unless the same record is already stored; a stored GenAI event for a span
    /// comes back with the span's key.
    fn insert_log(&mut self, log: &EncodedLog, origin: i64) -> Result<LogInsert, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO logs (project, trace_id, span_id, time_ns, \
                 severity_number, genai, service, severity_text, event_name, origin, attributes, \
                 body, fingerprint) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    log.project,
                    log.trace_id.as_ref().map(|t| t.as_bytes()),
                    log.span_id.as_ref().map(|s| s.as_bytes()),
                    log.time,
                    log.severity_number,
                    log.genai,
                    log.service,
                    log.severity_text,
                    log.event_name,
                    origin,
                    log.attributes,
                    log.body,
                    log.fingerprint,
                ])
            })
            .map_err(db_err)?;
        if changed == 0 {
            return Ok(LogInsert::Duplicate);
        }
        self.deltas.logs += 1;
        match (log.genai, log.trace_id, log.span_id) {
            (true, Some(trace_id), Some(span_id)) => {
                *self.genai_logs_exist = true;
                Ok(LogInsert::Stored(Some(SpanKey {
                    project: log.project.clone(),
                    trace_id,
                    span_id,
                })))
            }
            _ => Ok(LogInsert::Stored(None)),
        }
    }

    /// Inserts a span unless already stored; returns whether it was new.
    fn insert_span(
        &mut self,
        span: &EncodedSpan,
        trace_ref: i64,
        origin: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO spans (trace_ref, span_id, parent_span_id, start_ns, \
                 end_ns, kind, status, service, name, status_message, origin, attributes, extra) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    trace_ref,
                    span.key.span_id.as_bytes(),
                    span.parent.as_ref().map(|p| p.as_bytes()),
                    span.start,
                    span.end,
                    span.kind,
                    span.status,
                    span.service,
                    span.name,
                    span.status_message,
                    origin,
                    span.attributes,
                    span.extra,
                ])
            })
            .map_err(db_err)?;
        Ok(changed == 1)
    }

    fn load_span(&mut self, key: &SpanKey) -> Result<Option<Span>, StoreError> {
        let Some(trace_ref) = trace_ref(self.conn, &key.project, key.trace_id)? else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.trace_ref = ?1 AND s.span_id = ?2"
            ))
            .map_err(db_err)?;
        let mut rows = st
            .query(params![trace_ref, key.span_id.as_bytes()])
            .map_err(db_err)?;
        match rows.next().map_err(db_err)? {
            Some(row) => {
                let mut origins = OriginReader::default();
                read_span(self.conn, &mut origins, &key.project, key.trace_id, row).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The stored span's call normalized again with its stored GenAI log events appended to its
    /// events; `None` when it has no such events or is not stored (nothing to redo). A panicking
    /// enricher keeps the call the span already has.
    fn enrich_with_logs(
        &mut self,
        key: &SpanKey,
    ) -> Result<Option<Option<EncodedCall>>, StoreError> {
        let events = {
            let mut st = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {LOG_EVENT_COLUMNS} FROM logs l \
                     WHERE l.project = ?1 AND l.trace_id = ?2 AND l.span_id = ?3 AND l.genai = 1 \
                     ORDER BY l.time_ns, l.id"
                ))
                .map_err(db_err)?;
            let mut rows = st
                .query(params![
                    key.project,
                    key.trace_id.as_bytes(),
                    key.span_id.as_bytes()
                ])
                .map_err(db_err)?;
            let mut events = Vec::new();
            while let Some(row) = rows.next().map_err(db_err)? {
                events.push(read_log_event(row)?.1);
            }
            events
        };
        if events.is_empty() {
            return Ok(None);
        }
        let Some(mut span) = self.load_span(key)? else {
            return Ok(None);
        };
        span.events.extend(events);
        let enricher = self.enricher;
        match std::panic::catch_unwind(AssertUnwindSafe(|| enricher.enrich(&span))) {
            Ok(call) => Ok(Some(
                call.as_ref()
                    .map(|c| EncodedCall::new(c, self.dictionaries))
                    .transpose()?,
            )),
            Err(_) => {
                tracing::error!(
                    trace_id = %key.trace_id,
                    span_id = %key.span_id,
                    "enricher panicked; keeping the span's previous call"
                );
                Ok(None)
            }
        }
    }

    fn insert_call(
        &mut self,
        key: &SpanKey,
        trace_ref: i64,
        call: &EncodedCall,
    ) -> Result<(), StoreError> {
        let stats = &call.stats;
        self.conn
            .prepare_cached(
                "INSERT INTO llm_calls (project, trace_ref, span_id, start_ns, status, service, \
                 provider, request_model, response_model, operation, user_id, session_id, \
                 input_tokens, output_tokens, total_tokens, cost_usd, call) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    key.project,
                    trace_ref,
                    key.span_id.as_bytes(),
                    stats.start,
                    i64::from(stats.error),
                    call.service,
                    call.provider,
                    call.request_model,
                    call.response_model,
                    call.operation,
                    stats.user,
                    stats.session,
                    call.input_tokens,
                    call.output_tokens,
                    call.total_tokens,
                    stats.cost,
                    call.json,
                ])
            })
            .map_err(db_err)?;
        let id = self.conn.last_insert_rowid();
        self.queue_search(id, QueueOp::Insert, Some(call_doc(key, trace_ref, call)))?;
        self.deltas.call(&key.project, trace_ref, stats, 1);
        Ok(())
    }

    /// Asks the indexer to (re)index or drop call `id` once this transaction commits; `doc`
    /// goes to the indexer in memory, which spares it reading the call back.
    fn queue_search(
        &mut self,
        id: i64,
        op: QueueOp,
        doc: Option<CallDoc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT INTO search_queue (call_id, op) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![id, op as i64]))
            .map_err(db_err)?;
        self.queued = self.conn.last_insert_rowid();
        if let Some(doc) = doc {
            self.docs.push((self.queued, doc));
        }
        Ok(())
    }

    /// The stored call's id and contribution, if the span has one.
    fn stored_call(
        &mut self,
        trace_ref: i64,
        key: &SpanKey,
    ) -> Result<Option<(i64, CallStats)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT id, status, user_id, session_id, input_tokens, output_tokens, cost_usd, \
                 start_ns FROM llm_calls WHERE trace_ref = ?1 AND span_id = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![trace_ref, key.span_id.as_bytes()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        CallStats {
                            error: r.get::<_, i64>(1)? != 0,
                            user: r.get(2)?,
                            session: r.get(3)?,
                            input: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                            output: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                            cost: r.get(6)?,
                            start: r.get(7)?,
                            rollup: None,
                        },
                    ))
                })
                .optional()
            })
            .map_err(db_err)
    }

    /// Replaces (or adds, or removes) the call of an already stored span, adjusting every summary
    /// by the difference.
    fn replace_call(
        &mut self,
        key: &SpanKey,
        trace_ref: i64,
        call: Option<EncodedCall>,
    ) -> Result<(), StoreError> {
        let old = super::rollup::with_stored_entry(self.conn, self.stored_call(trace_ref, key)?)?;
        match (old, call) {
            (None, None) => {}
            (None, Some(call)) => self.insert_call(key, trace_ref, &call)?,
            (Some((id, old)), None) => {
                self.conn
                    .prepare_cached("DELETE FROM llm_calls WHERE id = ?1")
                    .and_then(|mut st| st.execute([id]))
                    .map_err(db_err)?;
                self.queue_search(id, QueueOp::Delete, None)?;
                self.deltas.call(&key.project, trace_ref, &old, -1);
            }
            (Some((id, old)), Some(call)) => {
                let stats = &call.stats;
                self.conn
                    .prepare_cached(
                        "UPDATE llm_calls SET start_ns = ?2, status = ?3, service = ?4, \
                         provider = ?5, request_model = ?6, response_model = ?7, operation = ?8, \
                         user_id = ?9, session_id = ?10, input_tokens = ?11, output_tokens = ?12, \
                         total_tokens = ?13, cost_usd = ?14, call = ?15 WHERE id = ?1",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            id,
                            stats.start,
                            i64::from(stats.error),
                            call.service,
                            call.provider,
                            call.request_model,
                            call.response_model,
                            call.operation,
                            stats.user,
                            stats.session,
                            call.input_tokens,
                            call.output_tokens,
                            call.total_tokens,
                            stats.cost,
                            call.json,
                        ])
                    })
                    .map_err(db_err)?;
                self.queue_search(id, QueueOp::Replace, Some(call_doc(key, trace_ref, &call)))?;
                self.deltas.call(&key.project, trace_ref, &old, -1);
                self.deltas.call(&key.project, trace_ref, stats, 1);
            }
        }
        Ok(())
    }

    /// Re-prices up to [`RECOMPUTE_CHUNK`] calls with ids above `after`; returns (rows read, last
    /// id, calls changed).
    fn recompute_chunk(
        &mut self,
        prices: &PriceTable,
        after: i64,
    ) -> Result<(usize, i64, u64), StoreError> {
        let rows: Vec<(i64, String, i64, Result<LlmCall, StoreError>)> = {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT id, project, trace_ref, call FROM llm_calls WHERE id > ?1 \
                     ORDER BY id LIMIT ?2",
                )
                .map_err(db_err)?;
            let mut rows = st
                .query(params![after, RECOMPUTE_CHUNK as i64])
                .map_err(db_err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(db_err)? {
                out.push((
                    r.get(0).map_err(db_err)?,
                    r.get(1).map_err(db_err)?,
                    r.get(2).map_err(db_err)?,
                    super::codec::read_call(r, 3),
                ));
            }
            out
        };
        let mut last = after;
        let mut changed = 0;
        let read = rows.len();
        for (id, project, trace_ref, call) in rows {
            last = id;
            let mut call = match call {
                Ok(call) => call,
                Err(e) => {
                    tracing::warn!(id, error = %e, "skipping undecodable call while re-pricing");
                    continue;
                }
            };
            let cost = prices.cost(&call);
            if cost == call.cost {
                continue;
            }
            let old = CallStats::of(&call);
            call.cost = cost;
            let new = CallStats::of(&call);
            let json = Packed::new(
                serde_json::to_string(&call).map_err(|e| json_err("llm call", e))?,
                self.dictionaries,
            )?;
            self.conn
                .prepare_cached("UPDATE llm_calls SET cost_usd = ?2, call = ?3 WHERE id = ?1")
                .and_then(|mut st| st.execute(params![id, new.cost, json]))
                .map_err(db_err)?;
            self.deltas.call(&project, trace_ref, &old, -1);
            self.deltas.call(&project, trace_ref, &new, 1);
            changed += 1;
        }
        Ok((read, last, changed))
    }

    /// Writes the summaries accumulated over the transaction.
    fn flush(&mut self) -> Result<(), StoreError> {
        let d = std::mem::take(&mut self.deltas);
        let Deltas {
            traces,
            mut sessions,
            mut users,
            session_traces,
            user_traces,
            user_sessions,
            trace_services,
            spans,
            calls,
            logs,
            rollups,
        } = d;
        rollups.flush(self.conn, self.series)?;
        let conn = self.conn;
        for (project, session, trace_ref) in session_traces {
            let new = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO session_traces (project, session_id, trace_ref) \
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut st| st.execute(params![project, session, trace_ref]))
                .map_err(db_err)?;
            if new == 1 {
                sessions.entry((project, session)).or_default().traces += 1;
            }
        }
        for (project, user, trace_ref) in user_traces {
            let new = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO user_traces (project, user_id, trace_ref) \
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut st| st.execute(params![project, user, trace_ref]))
                .map_err(db_err)?;
            if new == 1 {
                users.entry((project, user)).or_default().traces += 1;
            }
        }
        for (project, service, trace_ref) in trace_services {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO trace_services (project, service, trace_ref) \
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| st.execute(params![project, service, trace_ref]))
            .map_err(db_err)?;
        }
        for (project, user, session) in user_sessions {
            let new = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO user_sessions (project, user_id, session_id) \
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut st| st.execute(params![project, user, session]))
                .map_err(db_err)?;
            if new == 1 {
                users.entry((project, user)).or_default().sessions += 1;
            }
        }

        {
            // Rows of new traces were created with neutral values (start i64::MAX, empty name),
            // so one update serves new and existing traces alike.
            let mut st = conn
                .prepare_cached(
                    "UPDATE traces SET \
                       name = CASE WHEN root_known THEN name \
                                   WHEN ?2 OR ?3 < start_ns THEN ?4 ELSE name END, \
                       service = CASE WHEN root_known THEN service \
                                   WHEN ?2 OR ?3 < start_ns THEN ?5 ELSE service END, \
                       root_known = max(root_known, ?2), \
                       start_ns = min(start_ns, ?3), \
                       end_ns = max(end_ns, ?6), \
                       span_count = span_count + ?7, \
                       llm_call_count = llm_call_count + ?8, \
                       error_count = error_count + ?9, \
                       input_tokens = input_tokens + ?10, \
                       output_tokens = output_tokens + ?11, \
                       cost_usd = CASE WHEN priced_calls + ?12 = 0 THEN 0 \
                                       ELSE cost_usd + ?13 END, \
                       priced_calls = priced_calls + ?12, \
                       user_id = coalesce(user_id, ?14), \
                       session_id = coalesce(session_id, ?15) \
                     WHERE id = ?1",
                )
                .map_err(db_err)?;
            for (trace_ref, t) in traces {
                let root_known = t.root.is_some();
                let (name, service) = match (t.root, t.earliest) {
                    (Some(root), _) => root,
                    (None, Some((_, name, service))) => (name, service),
                    (None, None) => (String::new(), String::new()),
                };
                st.execute(params![
                    trace_ref, root_known, t.start, name, service, t.end, t.spans, t.calls,
                    t.errors, t.input, t.output, t.priced, t.cost, t.user, t.session,
                ])
                .map_err(db_err)?;
            }
        }
        let new_traces = self.new_traces;
        self.new_traces = 0;
        upsert_groups(conn, "sessions", &sessions)?;
        upsert_groups(conn, "users", &users)?;
        let mut st = conn
            .prepare_cached("UPDATE counters SET value = value + ?2 WHERE name = ?1")
            .map_err(db_err)?;
        for (name, delta) in [
            ("spans", spans),
            ("llm_calls", calls),
            ("logs", logs),
            ("traces", new_traces),
        ] {
            if delta != 0 {
                st.execute(params![name, delta]).map_err(db_err)?;
            }
        }
        Ok(())
    }
}

fn upsert_groups(
    conn: &Connection,
    table: &str,
    deltas: &HashMap<(String, String), GroupDelta>,
) -> Result<(), StoreError> {
    if deltas.is_empty() {
        return Ok(());
    }
    let sql = if table == "sessions" {
        "INSERT INTO sessions (project, session_id, user_id, trace_count, call_count, errors, \
         input_tokens, output_tokens, priced_calls, cost_usd, first_seen, last_seen) \
         VALUES (?1, ?2, ?3, ?4, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (project, session_id) DO UPDATE SET \
           user_id = coalesce(excluded.user_id, sessions.user_id), \
           trace_count = sessions.trace_count + excluded.trace_count, \
           call_count = sessions.call_count + excluded.call_count, \
           errors = sessions.errors + excluded.errors, \
           input_tokens = sessions.input_tokens + excluded.input_tokens, \
           output_tokens = sessions.output_tokens + excluded.output_tokens, \
           priced_calls = sessions.priced_calls + excluded.priced_calls, \
           cost_usd = CASE WHEN sessions.priced_calls + excluded.priced_calls = 0 THEN 0 \
                           ELSE sessions.cost_usd + excluded.cost_usd END, \
           first_seen = min(sessions.first_seen, excluded.first_seen), \
           last_seen = max(sessions.last_seen, excluded.last_seen)"
    } else {
        "INSERT INTO users (project, user_id, trace_count, session_count, call_count, errors, \
         input_tokens, output_tokens, priced_calls, cost_usd, first_seen, last_seen) \
         VALUES (?1, ?2, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (project, user_id) DO UPDATE SET \
           trace_count = users.trace_count + excluded.trace_count, \
           session_count = users.session_count + excluded.session_count, \
           call_count = users.call_count + excluded.call_count, \
           errors = users.errors + excluded.errors, \
           input_tokens = users.input_tokens + excluded.input_tokens, \
           output_tokens = users.output_tokens + excluded.output_tokens, \
           priced_calls = users.priced_calls + excluded.priced_calls, \
           cost_usd = CASE WHEN users.priced_calls + excluded.priced_calls = 0 THEN 0 \
                           ELSE users.cost_usd + excluded.cost_usd END, \
           first_seen = min(users.first_seen, excluded.first_seen), \
           last_seen = max(users.last_seen, excluded.last_seen)"
    };
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    for ((project, key), d) in deltas {
        // A delta with no activity only ever updates an existing row; keep its times neutral
        // but valid should it ever insert one.
        let (first, last) = if d.first <= d.last {
            (d.first, d.last)
        } else {
            (i64::MAX, 0)
        };
        st.execute(params![
            project, key, d.user, d.traces, d.sessions, d.calls, d.errors, d.input, d.output,
            d.priced, d.cost, first, last,
        ])
        .map_err(db_err)?;
    }
    Ok(())
}

/// What the indexer files of a call about to be stored.
fn call_doc(key: &SpanKey, trace_ref: i64, call: &EncodedCall) -> CallDoc {
    let stats = &call.stats;
    CallDoc {
        keys: CallKeys {
            project: key.project.clone(),
            trace_ref,
            span_id: key.span_id.0,
            start_ns: stats.start,
            status: i64::from(stats.error),
            service: call.service.clone(),
            provider: call.provider.clone(),
            request_model: call.request_model.clone(),
            response_model: call.response_model.clone(),
            user_id: stats.user.clone(),
            session_id: stats.session.clone(),
        },
        text: call.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::schema::open_writer;
    use crate::sqlite::search::Indexer;
    use crate::sqlite::tests::{item, span};
    use crate::sqlite::{Synchronous, DB_FILE};
    use crate::testsuite::TestEnricher;
    use crate::WriteBatch;

    /// A batch of `n` spans of trace `trace`, each a model call.
    fn encoded(trace: u8, n: u8, dictionaries: &Arc<Dictionaries>) -> EncodedBatch {
        let batch = WriteBatch {
            spans: (1..=n).map(|id| item(span(trace, id, Some("m")))).collect(),
            logs: vec![],
        };
        EncodedBatch::new(batch, dictionaries).unwrap()
    }

    #[test]
    fn writes_queued_during_a_group_join_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join(DB_FILE);
        let conn = open_writer(&db_path, Synchronous::Full).unwrap();
        let dictionaries = Dictionaries::without_training();
        let (_indexer, search) = Indexer::open(&db_path).unwrap();
        let (sender, rx) = mpsc::channel(8);
        let mut writer = Writer::new(
            conn,
            Arc::new(TestEnricher),
            rx,
            20_000,
            search,
            dictionaries.clone(),
        )
        .unwrap();

        // Two writes wait in the queue while the writer applies the group of the first.
        let mut replies = Vec::new();
        for (trace, n) in [(2, 3), (3, 4)] {
            let (reply, answer) = oneshot::channel();
            let batch = encoded(trace, n, &dictionaries);
            assert!(sender.try_send(Command::Write { batch, reply }).is_ok());
            replies.push((answer, n));
        }
        let (reply, answer) = oneshot::channel();
        writer.commit_group(vec![(encoded(1, 2, &dictionaries), reply)]);
        replies.insert(0, (answer, 2));

        // One commit answered all three, each with its own receipt, and left the queue empty.
        assert!(writer.next_queued().is_none(), "the queued writes joined");
        for (mut answer, n) in replies {
            let receipt = answer.try_recv().unwrap().unwrap();
            assert_eq!(receipt.spans_written, usize::from(n));
        }
        let calls: i64 = writer
            .conn
            .query_row("SELECT count(*) FROM llm_calls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(calls, 9);

        // A close waiting behind a write stays behind it: the write joins, the close does not.
        let (reply, mut answer) = oneshot::channel();
        let batch = encoded(4, 1, &dictionaries);
        assert!(sender.try_send(Command::Write { batch, reply }).is_ok());
        let (close, _closed) = oneshot::channel();
        assert!(sender.try_send(Command::Close { reply: close }).is_ok());
        let (reply, _) = oneshot::channel();
        writer.commit_group(vec![(encoded(5, 1, &dictionaries), reply)]);
        assert_eq!(answer.try_recv().unwrap().unwrap().spans_written, 1);
        assert!(matches!(writer.next_queued(), Some(Command::Close { .. })));
    }
}
