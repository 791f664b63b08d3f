//! Reads: a small pool of read-only connections and the queries behind every list.
//!
//! In WAL mode readers see the last committed state and never wait for the writer. Each query
//! runs on a blocking thread with a connection taken from the pool. Lists are keyset-paginated
//! newest first on `(time, id)`: each query walks a `(project, …, start_ns)` index backwards and
//! stops after `limit + 1` matching rows, so a page costs the same at any depth.
//!
//! The call filters' indexes are not on `llm_calls` but on `call_keys` in `search.db` (see
//! `search`), kept by the indexer thread; a query walks them and reads each call by id.
//!
//! Walking newest first is cheap when matches are common and slow when they are rare. Filters
//! that are usually rare (a user, a session) and those whose rarity is cheap to measure first (a
//! model, counted on its index; a full-text query, counted on the FTS index up to a bound) start
//! instead from the matching rows and sort them: the bound where that stops paying is estimated
//! from the store's size ([`collect_bound`]). Both plans return the same rows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use sightline_model::{CallStatus, LlmCall, SpanId, TraceId};
use tokio::sync::Semaphore;

use super::codec::{
    attr_path, clamp_limit, db_err, fts_query, read_log_event, read_span, to_u64, trace_id_from,
    Cursor, CursorKind, OriginReader, LOG_EVENT_COLUMNS, SPAN_COLUMNS,
};
use super::schema::open_reader;
use crate::error::StoreError;
use crate::query::{
    Filter, Page, PageRequest, SessionDetail, SessionSummary, SpanWithCall, TraceDetail,
    TraceSummary, UserSummary,
};

/// Most traces `get_session` returns.
pub(crate) const SESSION_TRACES_MAX: usize = 10_000;

/// Read-only connections, opened lazily up to `size` and reused.
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub fn new(path: PathBuf, size: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `f` on a pooled connection on a blocking thread. SQLite stops it when it runs past
    /// [`QUERY_TIMEOUT`], or when the caller stops waiting for it (an HTTP client that went away):
    /// a read holds one of few permits, and nobody else should wait behind work no one will see.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(self);
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = AbandonOnDrop(abandoned.clone());
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let deadline = Instant::now() + QUERY_TIMEOUT;
            let stop = {
                let abandoned = abandoned.clone();
                move || abandoned.load(Ordering::Relaxed) || Instant::now() > deadline
            };
            conn.progress_handler(PROGRESS_OPS, Some(stop));
            let result = f(&conn);
            conn.progress_handler(0, None::<fn() -> bool>);
            pool.put(conn);
            drop(permit);
            // A read that fails once its caller left, or past its deadline, was stopped.
            result.map_err(|e| {
                if abandoned.load(Ordering::Relaxed) {
                    StoreError::Unavailable("the query was abandoned by its caller".into())
                } else if Instant::now() > deadline {
                    StoreError::Unavailable(format!(
                        "the query ran longer than {} s and was stopped; narrow it with filters",
                        QUERY_TIMEOUT.as_secs()
                    ))
                } else {
                    e
                }
            })
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => {
                super::dictionary::refresh(&conn)?;
                Ok(conn)
            }
            None => open_reader(&self.path),
        }
    }

    fn put(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

/// Longest a read may run before SQLite stops it.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite virtual-machine steps between two looks at the deadline and the caller.
const PROGRESS_OPS: i32 = 10_000;

/// Tells a running read that its caller is gone, when the caller's future is dropped.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A WHERE clause under construction, with numbered parameters.
#[derive(Default)]
struct Sql {
    conds: Vec<String>,
    params: Vec<Value>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder.
    fn param(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    fn cond(&mut self, c: String) {
        self.conds.push(c);
    }

    fn where_clause(&self) -> String {
        if self.conds.is_empty() {
            "1".to_string()
        } else {
            self.conds.join(" AND ")
        }
    }
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn to_i64(v: u64) -> i64 {
    super::codec::to_i64(v)
}

/// The kinds of list, for [`reads_index`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum List {
    Traces,
    Calls,
    /// Sessions or users.
    Groups,
}

/// Whether a list with `filter` reads `search.db`, and so must first let the index catch up
/// with earlier commits: any full-text query; every call list (it walks `call_keys`); a trace
/// list by model ([`model_is_rare`] counts there); a session or user list that filters its
/// groups by their calls ([`group_member_conds`], [`model_groups`]).
pub(crate) fn reads_index(list: List, filter: &Filter) -> bool {
    let text = filter.q.as_deref().is_some_and(|q| !q.trim().is_empty());
    text || match list {
        List::Calls => true,
        List::Traces => nonempty(&filter.model).is_some(),
        List::Groups => {
            // The user and session filters read the membership tables, in the main database.
            [&filter.service, &filter.provider, &filter.model]
                .into_iter()
                .any(|v| nonempty(v).is_some())
                || filter.status.is_some()
        }
    }
}

/// How a full-text filter is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FtsPlan {
    /// Start from the matching calls and sort them (or their traces): best when matches are
    /// few, since each costs a lookup of its call and trace.
    Set,
    /// Collect the matching call ids once (SQLite keeps them in a temporary index), then walk
    /// the list newest first checking membership: best when matches are many, since collecting
    /// one costs well under a microsecond and the page fills after a short walk.
    Walk,
    /// Walk the list and ask the index about each call: only for terms so common that even
    /// collecting their ids costs more than the few probes a page needs.
    Probe,
}

/// Rows in the store's counter `name` (all projects), for plan choices.
fn stored(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT value FROM counters WHERE name = ?1")
        .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
        .map(|v| v.unwrap_or(0))
        .map_err(db_err)
}

/// The smaller of two strategies' costs, estimated: collecting `n` matching rows costs about
/// `n * collect` microseconds; walking the list newest first checking each row costs about
/// `page / (n / total) * check` microseconds. Collecting wins while
/// `n < sqrt(page * check / collect * total)`; the bound is clamped to `[lo, hi]`.
fn collect_bound(total: i64, check_over_collect: f64, lo: i64, hi: i64) -> i64 {
    let bound = (51.0 * check_over_collect * total.max(1) as f64).sqrt();
    (bound as i64).clamp(lo, hi)
}

/// Picks the plan for `q` by counting its matches (reading at most as many as the plan choice
/// needs). Measured on a store of 1 M calls: starting from a match costs about 1.2 µs (its call
/// and trace looked up), collecting one into the walk's set about 0.08 µs, a probe of the index
/// 15–40 µs, and a walked trace about 1 µs. With `n` matches among `total` calls, a page of 50
/// walks about `50 · total / n` calls: starting from the matches wins while
/// `n < sqrt(40 · total)`, probing only once `n > sqrt(28000 · total)` (on that store: walking
/// won at 140k matches, 12.7 against 24.4 ms, and probing at 194k, 9.3 against 15.3 ms).
pub(crate) fn fts_plan(conn: &Connection, q: Option<&str>) -> Result<FtsPlan, StoreError> {
    let Some(expr) = q.and_then(fts_query) else {
        return Ok(FtsPlan::Set);
    };
    let total = stored(conn, "llm_calls")?;
    let set_bound = collect_bound(total, 40.0 / 51.0, 1_000, 50_000);
    let probe_bound = collect_bound(total, 28_000.0 / 51.0, 100_000, 1_000_000);
    let matches: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT rowid FROM calls_fts WHERE calls_fts MATCH ?1 LIMIT ?2)",
        )
        .and_then(|mut st| st.query_row(params![expr, probe_bound], |r| r.get(0)))
        .map_err(db_err)?;
    Ok(if matches >= probe_bound {
        FtsPlan::Probe
    } else if matches >= set_bound {
        FtsPlan::Walk
    } else {
        FtsPlan::Set
    })
}

/// The safe FTS5 expression for `q`: `None` when there is no query, `Some(None)` when it has
/// nothing searchable.
fn fts_expr(q: Option<&str>) -> Option<Option<String>> {
    let q = q?.trim();
    if q.is_empty() {
        None
    } else {
        Some(fts_query(q))
    }
}

/// Whether the trace list should start from `model`'s calls (few enough of them, counted on
/// its indexes) rather than walk all traces checking each.
pub(crate) fn model_is_rare(
    conn: &Connection,
    project: &str,
    model: Option<&str>,
) -> Result<bool, StoreError> {
    let Some(model) = model.filter(|m| !m.is_empty()) else {
        return Ok(false);
    };
    let bound = collect_bound(stored(conn, "traces")?, 1.5, 200, 50_000);
    let calls: i64 = conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM call_keys \
                      WHERE project = ?1 AND request_model = ?2 LIMIT ?3)) \
                  + (SELECT count(*) FROM (SELECT 1 FROM call_keys \
                      WHERE project = ?1 AND response_model = ?2 LIMIT ?3))",
        )
        .and_then(|mut st| st.query_row(params![project, model, bound], |r| r.get(0)))
        .map_err(db_err)?;
    Ok(calls < bound)
}

/// Whether fewer traces than a walk would visit have spans of `service`.
pub(crate) fn service_is_rare(
    conn: &Connection,
    project: &str,
    service: Option<&str>,
) -> Result<bool, StoreError> {
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let bound = collect_bound(stored(conn, "traces")?, 1.5, 200, 50_000);
    let traces: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM trace_services \
             WHERE project = ?1 AND service = ?2 LIMIT ?3)",
        )
        .and_then(|mut st| st.query_row(params![project, service, bound], |r| r.get(0)))
        .map_err(db_err)?;
    Ok(traces < bound)
}

/// The full-text condition on a call row aliased `c`; `None` for an empty query.
fn fts_cond(sql: &mut Sql, q: Option<&str>, plan: FtsPlan) -> Option<String> {
    let q = q?.trim();
    if q.is_empty() {
        return None;
    }
    Some(match fts_query(q) {
        Some(expr) => {
            let p = sql.param(expr);
            match plan {
                FtsPlan::Set | FtsPlan::Walk => {
                    format!("c.id IN (SELECT rowid FROM calls_fts WHERE calls_fts MATCH {p})")
                }
                FtsPlan::Probe => format!(
                    "EXISTS (SELECT 1 FROM calls_fts WHERE calls_fts MATCH {p} AND rowid = c.id)"
                ),
            }
        }
        // Nothing searchable (only punctuation): nothing can match.
        None => "0".to_string(),
    })
}

/// The status condition on a call row aliased `c`, as a literal so that the partial index on
/// failed calls applies.
fn call_status_cond(status: Option<CallStatus>) -> Option<&'static str> {
    match status? {
        CallStatus::Error => Some("c.status = 1"),
        CallStatus::Ok => Some("c.status = 0"),
    }
}

/// Conditions that the span row aliased `s` matches every given attribute: among its own
/// attributes, or else among its resource's (`service.version`, `deployment.environment.name`,
/// ...), which OTel puts on every span of a process without repeating them per span.
fn attr_conds(sql: &mut Sql, attrs: &[(String, String)]) -> Result<Vec<String>, StoreError> {
    attrs
        .iter()
        .map(|(k, v)| {
            // Validates the key as the JSON path filters always have.
            attr_path(k)?;
            let key = sql.param(k.clone());
            let value = sql.param(v.clone());
            // The origins that match are found once per statement (the subquery does not
            // depend on the span), not parsed again for every span tested.
            Ok(format!(
                "(sl_attr_eq(s.attributes, {key}, {value}) OR s.origin IN \
                 (SELECT o.id FROM origins o WHERE sl_attr_eq(o.resource, {key}, {value})))"
            ))
        })
        .collect()
}

fn cursor_cond(
    sql: &mut Sql,
    kind: CursorKind,
    cursor: &Option<String>,
    time_col: &str,
    id_col: &str,
) -> Result<(), StoreError> {
    if let Some(c) = cursor.as_deref().filter(|c| !c.is_empty()) {
        let c = Cursor::decode(kind, c)?;
        let t = sql.param(c.time);
        let i = sql.param(c.id);
        sql.cond(format!("({time_col}, {id_col}) < ({t}, {i})"));
    }
    Ok(())
}

/// Splits `limit + 1` fetched rows into a page.
fn page<T>(mut rows: Vec<(i64, i64, T)>, limit: usize, kind: CursorKind) -> Page<T> {
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(time, id, _)| {
            Cursor {
                time: *time,
                id: *id,
            }
            .encode(kind)
        })
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(|(_, _, item)| item).collect(),
        next_cursor,
    }
}

fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut st = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = st.query(params_from_iter(params)).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(f(row)?);
    }
    Ok(out)
}

const TRACE_COLUMNS: &str = "t.start_ns, t.id, t.trace_id, t.name, t.service, t.end_ns, \
     t.span_count, t.llm_call_count, t.input_tokens, t.output_tokens, \
     CASE WHEN t.priced_calls > 0 THEN t.cost_usd END, t.error_count, t.user_id, t.session_id";

fn read_trace_summary(row: &Row<'_>) -> Result<(i64, i64, TraceSummary), StoreError> {
    let start: i64 = row.get(0).map_err(db_err)?;
    let end: i64 = row.get(5).map_err(db_err)?;
    let summary = TraceSummary {
        trace_id: trace_id_from(&row.get::<_, Vec<u8>>(2).map_err(db_err)?)?,
        name: row.get(3).map_err(db_err)?,
        service: row.get(4).map_err(db_err)?,
        start_time_unix_nano: to_u64(start),
        duration_ms: end.saturating_sub(start).max(0) as f64 / 1e6,
        span_count: to_u64(row.get(6).map_err(db_err)?),
        llm_call_count: to_u64(row.get(7).map_err(db_err)?),
        input_tokens: to_u64(row.get(8).map_err(db_err)?),
        output_tokens: to_u64(row.get(9).map_err(db_err)?),
        cost_usd: row.get(10).map_err(db_err)?,
        status: if row.get::<_, i64>(11).map_err(db_err)? > 0 {
            CallStatus::Error
        } else {
            CallStatus::Ok
        },
        user_id: row.get(12).map_err(db_err)?,
        session_id: row.get(13).map_err(db_err)?,
    };
    Ok((start, row.get(1).map_err(db_err)?, summary))
}

/// The trace-list query for a filter and page (exposed for query-plan tests).
/// Which of a trace-list filter's values are rare enough to start the query from their rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rare {
    pub model: bool,
    pub service: bool,
}

pub(crate) fn traces_sql(
    filter: &Filter,
    page: &PageRequest,
    fts: FtsPlan,
    rare: Rare,
) -> Result<(String, Vec<Value>), StoreError> {
    let mut sql = Sql::default();
    let project = sql.param(filter.project.clone());
    sql.cond(format!("t.project = {project}"));
    if let Some(from) = filter.from_unix_nano {
        let p = sql.param(to_i64(from));
        sql.cond(format!("t.start_ns >= {p}"));
    }
    if let Some(to) = filter.to_unix_nano {
        let p = sql.param(to_i64(to));
        sql.cond(format!("t.start_ns < {p}"));
    }
    cursor_cond(
        &mut sql,
        CursorKind::Traces,
        &page.cursor,
        "t.start_ns",
        "t.id",
    )?;
    // Literal conditions, so that the partial index on failed traces applies.
    match filter.status {
        Some(CallStatus::Error) => sql.cond("t.error_count > 0".into()),
        Some(CallStatus::Ok) => sql.cond("t.error_count = 0".into()),
        None => {}
    }
    // A trace belongs to a user or session when any of its spans or calls names it; the
    // membership tables written with the summaries list exactly those traces. Such filters are
    // selective, so the query starts from the membership rows (the session's when both are given)
    // and sorts that user's or session's traces, instead of walking every trace newest first.
    let mut from = "traces t".to_string();
    for (value, table, column) in [
        (&filter.session_id, "session_traces", "session_id"),
        (&filter.user_id, "user_traces", "user_id"),
    ] {
        if let Some(v) = nonempty(value) {
            let p = sql.param(v.to_string());
            if from == "traces t" {
                from = format!("{table} m CROSS JOIN traces t ON t.id = m.trace_ref");
                sql.cond(format!("m.project = {project} AND m.{column} = {p}"));
            } else {
                sql.cond(format!(
                    "t.id IN (SELECT u.trace_ref FROM {table} u \
                     WHERE u.project = {project} AND u.{column} = {p})"
                ));
            }
        }
    }
    // A trace belongs to every service it has spans of (`trace_services`). A rare service drives
    // the query like a user or session; a common one is one key lookup per trace walked.
    if let Some(service) = nonempty(&filter.service) {
        let p = sql.param(service.to_string());
        if from == "traces t" && rare.service {
            from = "trace_services ms CROSS JOIN traces t ON t.id = ms.trace_ref".to_string();
            sql.cond(format!("ms.project = {project} AND ms.service = {p}"));
        } else {
            sql.cond(format!(
                "EXISTS (SELECT 1 FROM trace_services ms \
                 WHERE ms.project = {project} AND ms.service = {p} AND ms.trace_ref = t.id)"
            ));
        }
    }
    let mut call = Vec::new();
    let mut model_param = None;
    if let Some(model) = nonempty(&filter.model) {
        let p = sql.param(model.to_string());
        call.push(format!("(c.request_model = {p} OR c.response_model = {p})"));
        model_param = Some(p);
    }
    if let Some(provider) = nonempty(&filter.provider) {
        let p = sql.param(provider.to_string());
        call.push(format!("c.provider = {p}"));
    }
    // Few matching calls (a rare model, a full-text query with few matches) and nothing more
    // selective: start from those calls' traces and sort them, rather than walking every trace.
    let fts_set = match (fts_expr(filter.q.as_deref()), fts) {
        (Some(Some(expr)), FtsPlan::Set) => Some(expr),
        _ => None,
    };
    let model_drives = rare.model && nonempty(&filter.model).is_some();
    if from == "traces t" && (fts_set.is_some() || model_drives) {
        call.push(format!("c.project = {project}"));
        let calls = match (fts_set, &model_param) {
            (Some(expr), _) => {
                let q = sql.param(expr);
                call.push(format!("calls_fts MATCH {q}"));
                format!(
                    "SELECT DISTINCT c.trace_ref AS tref FROM calls_fts \
                     CROSS JOIN llm_calls c ON c.id = calls_fts.rowid WHERE {}",
                    call.join(" AND ")
                )
            }
            // One walk per model index (SQLite does not OR partial indexes together).
            (None, model) => {
                if let Some(c) = fts_cond(&mut sql, filter.q.as_deref(), fts) {
                    call.push(c);
                }
                let m = model.clone().unwrap_or_default();
                let conds = call.join(" AND ");
                format!(
                    "SELECT c.trace_ref AS tref FROM call_keys c \
                       WHERE {conds} AND c.request_model = {m} \
                     UNION SELECT c.trace_ref FROM call_keys c \
                       WHERE {conds} AND c.response_model = {m}"
                )
            }
        };
        from = format!("({calls}) fm CROSS JOIN traces t ON t.id = fm.tref");
        call.clear();
    } else if let Some(c) = fts_cond(&mut sql, filter.q.as_deref(), fts) {
        call.push(c);
    }
    if !call.is_empty() {
        sql.cond(format!(
            "EXISTS (SELECT 1 FROM llm_calls c WHERE c.trace_ref = t.id AND {})",
            call.join(" AND ")
        ));
    }
    for attr in attr_conds(&mut sql, &filter.attrs)? {
        sql.cond(format!(
            "EXISTS (SELECT 1 FROM spans s WHERE s.trace_ref = t.id AND {attr})"
        ));
    }
    let limit = sql.param((clamp_limit(page.limit) + 1) as i64);
    Ok((
        format!(
            "SELECT {TRACE_COLUMNS} FROM {from} WHERE {} \
             ORDER BY t.start_ns DESC, t.id DESC LIMIT {limit}",
            sql.where_clause()
        ),
        sql.params,
    ))
}

pub(crate) fn list_traces(
    conn: &Connection,
    filter: &Filter,
    page_req: &PageRequest,
) -> Result<Page<TraceSummary>, StoreError> {
    let fts = fts_plan(conn, filter.q.as_deref())?;
    let rare = Rare {
        model: model_is_rare(conn, &filter.project, filter.model.as_deref())?,
        service: service_is_rare(conn, &filter.project, filter.service.as_deref())?,
    };
    list_traces_with(conn, filter, page_req, fts, rare)
}

/// [`list_traces`] with a chosen plan.
pub(crate) fn list_traces_with(
    conn: &Connection,
    filter: &Filter,
    page_req: &PageRequest,
    fts: FtsPlan,
    rare: Rare,
) -> Result<Page<TraceSummary>, StoreError> {
    let (sql, params) = traces_sql(filter, page_req, fts, rare)?;
    let rows = collect(conn, &sql, &params, read_trace_summary)?;
    Ok(page(rows, clamp_limit(page_req.limit), CursorKind::Traces))
}

/// The call-list query for a filter and page (exposed for query-plan tests).
///
/// - **A user or session** is selective: the query starts from its traces (the membership rows
///   written with the summaries), takes their calls that name it (by `call_keys_trace`), sorts
///   those, and reads the page's calls by id.
/// - **Otherwise** it walks the filter indexes of `call_keys` (in `search.db`) newest first and
///   reads each matching call by id. A model filter matches the request or the response model;
///   it runs as two index walks merged, one per column, so that neither a rare nor a common
///   model degrades into a scan.
/// - **A full-text query with few matches** and no model starts from the matches.
pub(crate) fn calls_sql(
    filter: &Filter,
    page: &PageRequest,
    fts: FtsPlan,
) -> Result<(String, Vec<Value>), StoreError> {
    let mut sql = Sql::default();
    let project = sql.param(filter.project.clone());
    sql.cond(format!("c.project = {project}"));
    if let Some(from) = filter.from_unix_nano {
        let p = sql.param(to_i64(from));
        sql.cond(format!("c.start_ns >= {p}"));
    }
    if let Some(to) = filter.to_unix_nano {
        let p = sql.param(to_i64(to));
        sql.cond(format!("c.start_ns < {p}"));
    }
    cursor_cond(
        &mut sql,
        CursorKind::Calls,
        &page.cursor,
        "c.start_ns",
        "c.id",
    )?;
    if let Some(c) = call_status_cond(filter.status) {
        sql.cond(c.into());
    }
    // The membership table of the first of session and user given.
    let mut members = None;
    for (value, column, table) in [
        (&filter.service, "service", None),
        (&filter.provider, "provider", None),
        (&filter.session_id, "session_id", Some("session_traces")),
        (&filter.user_id, "user_id", Some("user_traces")),
    ] {
        if let Some(v) = nonempty(value) {
            let p = sql.param(v.to_string());
            sql.cond(format!("c.{column} = {p}"));
            if let (None, Some(table)) = (&members, table) {
                members = Some((table, column, p));
            }
        }
    }
    let model = nonempty(&filter.model);
    let limit_value = (clamp_limit(page.limit) + 1) as i64;
    let order = "ORDER BY c.start_ns DESC, c.id DESC";
    if let Some((table, column, value)) = members {
        if let Some(model) = model {
            let m = sql.param(model.to_string());
            sql.cond(format!("(c.request_model = {m} OR c.response_model = {m})"));
        }
        if let Some(c) = fts_cond(&mut sql, filter.q.as_deref(), fts) {
            sql.cond(c);
        }
        attr_cond(&mut sql, &filter.attrs)?;
        sql.cond(format!("m.project = {project} AND m.{column} = {value}"));
        let limit = sql.param(limit_value);
        // The page's ids are chosen first, so that only its calls' documents are read. Without
        // statistics SQLite may prefer to range-scan a time index per trace: named, the trace
        // index is used.
        return Ok((
            format!(
                "SELECT c.start_ns, c.id, c.call FROM llm_calls c WHERE c.id IN ( \
                   SELECT c.id FROM {table} m \
                   CROSS JOIN call_keys c INDEXED BY call_keys_trace ON c.trace_ref = m.trace_ref \
                   WHERE {} {order} LIMIT {limit}) \
                 {order} LIMIT {limit}",
                sql.where_clause()
            ),
            sql.params,
        ));
    }
    if let (Some(Some(expr)), FtsPlan::Set, None) = (fts_expr(filter.q.as_deref()), fts, model) {
        // Few matching calls and no model index to walk: start from them.
        let q = sql.param(expr);
        sql.cond(format!("calls_fts MATCH {q}"));
        attr_cond(&mut sql, &filter.attrs)?;
        let limit = sql.param(limit_value);
        return Ok((
            format!(
                "SELECT c.start_ns, c.id, c.call FROM calls_fts \
                 CROSS JOIN llm_calls c ON c.id = calls_fts.rowid WHERE {} {order} LIMIT {limit}",
                sql.where_clause()
            ),
            sql.params,
        ));
    }
    if let Some(c) = fts_cond(&mut sql, filter.q.as_deref(), fts) {
        sql.cond(c);
    }
    attr_cond(&mut sql, &filter.attrs)?;
    let limit = sql.param(limit_value);
    let text = match model {
        None => format!(
            "SELECT c.start_ns, c.id, l.call FROM call_keys c \
             CROSS JOIN llm_calls l ON l.id = c.id WHERE {} {order} LIMIT {limit}",
            sql.where_clause()
        ),
        Some(model) => {
            let m = sql.param(model.to_string());
            let base = sql.where_clause();
            format!(
                "SELECT c.start_ns, c.id, c.call FROM llm_calls c WHERE c.id IN ( \
                   SELECT id FROM (SELECT c.id FROM call_keys c \
                     WHERE {base} AND c.request_model = {m} {order} LIMIT {limit}) \
                   UNION ALL \
                   SELECT id FROM (SELECT c.id FROM call_keys c \
                     WHERE {base} AND c.response_model = {m} {order} LIMIT {limit})) \
                 {order} LIMIT {limit}"
            )
        }
    };
    Ok((text, sql.params))
}

/// Adds the condition that the span of the call aliased `c` matches every attribute filter.
fn attr_cond(sql: &mut Sql, attrs: &[(String, String)]) -> Result<(), StoreError> {
    let attrs = attr_conds(sql, attrs)?;
    if !attrs.is_empty() {
        sql.cond(format!(
            "EXISTS (SELECT 1 FROM spans s \
             WHERE s.trace_ref = c.trace_ref AND s.span_id = c.span_id AND {})",
            attrs.join(" AND ")
        ));
    }
    Ok(())
}

pub(crate) fn list_calls(
    conn: &Connection,
    filter: &Filter,
    page_req: &PageRequest,
) -> Result<Page<LlmCall>, StoreError> {
    let fts = fts_plan(conn, filter.q.as_deref())?;
    list_calls_with(conn, filter, page_req, fts)
}

/// [`list_calls`] with a chosen full-text plan.
pub(crate) fn list_calls_with(
    conn: &Connection,
    filter: &Filter,
    page_req: &PageRequest,
    fts: FtsPlan,
) -> Result<Page<LlmCall>, StoreError> {
    let (sql, params) = calls_sql(filter, page_req, fts)?;
    let rows = collect(conn, &sql, &params, |row| {
        Ok((
            row.get(0).map_err(db_err)?,
            row.get(1).map_err(db_err)?,
            super::codec::read_call(row, 2)?,
        ))
    })?;
    Ok(page(rows, clamp_limit(page_req.limit), CursorKind::Calls))
}

pub(crate) fn get_trace(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<TraceDetail>, StoreError> {
    let Some(trace_ref) = super::codec::trace_ref(conn, project, trace_id)? else {
        return Ok(None);
    };
    let mut origins = OriginReader::default();
    let mut spans = Vec::new();
    {
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.trace_ref = ?1"
            ))
            .map_err(db_err)?;
        let mut rows = st.query([trace_ref]).map_err(db_err)?;
        while let Some(row) = rows.next().map_err(db_err)? {
            spans.push(read_span(conn, &mut origins, project, trace_id, row)?);
        }
    }
    if spans.is_empty() {
        return Ok(None);
    }
    let mut calls: std::collections::HashMap<SpanId, LlmCall> = std::collections::HashMap::new();
    {
        let mut st = conn
            .prepare_cached("SELECT span_id, call FROM llm_calls WHERE trace_ref = ?1")
            .map_err(db_err)?;
        let mut rows = st.query([trace_ref]).map_err(db_err)?;
        while let Some(row) = rows.next().map_err(db_err)? {
            let span_id = super::codec::span_id_from(&row.get::<_, Vec<u8>>(0).map_err(db_err)?)?;
            calls.insert(span_id, super::codec::read_call(row, 1)?);
        }
    }
    // GenAI log events show on their span, after its own events.
    {
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {LOG_EVENT_COLUMNS} FROM logs l \
                 WHERE l.project = ?1 AND l.trace_id = ?2 AND l.genai = 1 \
                 ORDER BY l.time_ns, l.id"
            ))
            .map_err(db_err)?;
        let mut rows = st
            .query(params![project, trace_id.as_bytes()])
            .map_err(db_err)?;
        let index: std::collections::HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        while let Some(row) = rows.next().map_err(db_err)? {
            let (span_id, event) = read_log_event(row)?;
            if let Some(&i) = span_id.as_ref().and_then(|s| index.get(s)) {
                spans[i].events.push(event);
            }
        }
    }
    let spans = spans
        .into_iter()
        .map(|span| SpanWithCall {
            llm: calls.remove(&span.span_id),
            span,
        })
        .collect();
    Ok(Some(TraceDetail {
        trace_id,
        spans: super::codec::order_spans(spans),
    }))
}

const SESSION_COLUMNS: &str = "x.last_seen, x.id, x.session_id, x.user_id, x.trace_count, \
     x.call_count, x.errors, x.input_tokens, x.output_tokens, \
     CASE WHEN x.priced_calls > 0 THEN x.cost_usd END, x.first_seen";

fn read_session(row: &Row<'_>) -> Result<(i64, i64, SessionSummary), StoreError> {
    let last: i64 = row.get(0).map_err(db_err)?;
    Ok((
        last,
        row.get(1).map_err(db_err)?,
        SessionSummary {
            session_id: row.get(2).map_err(db_err)?,
            user_id: row.get(3).map_err(db_err)?,
            trace_count: to_u64(row.get(4).map_err(db_err)?),
            call_count: to_u64(row.get(5).map_err(db_err)?),
            errors: to_u64(row.get(6).map_err(db_err)?),
            input_tokens: to_u64(row.get(7).map_err(db_err)?),
            output_tokens: to_u64(row.get(8).map_err(db_err)?),
            cost_usd: row.get(9).map_err(db_err)?,
            first_seen_unix_nano: to_u64(row.get(10).map_err(db_err)?),
            last_seen_unix_nano: to_u64(last),
        },
    ))
}

const USER_COLUMNS: &str = "x.last_seen, x.id, x.user_id, x.call_count, x.trace_count, \
     x.session_count, x.errors, x.input_tokens, x.output_tokens, \
     CASE WHEN x.priced_calls > 0 THEN x.cost_usd END, x.first_seen";

fn read_user(row: &Row<'_>) -> Result<(i64, i64, UserSummary), StoreError> {
    let last: i64 = row.get(0).map_err(db_err)?;
    Ok((
        last,
        row.get(1).map_err(db_err)?,
        UserSummary {
            user_id: row.get(2).map_err(db_err)?,
            calls: to_u64(row.get(3).map_err(db_err)?),
            traces: to_u64(row.get(4).map_err(db_err)?),
            sessions: to_u64(row.get(5).map_err(db_err)?),
            errors: to_u64(row.get(6).map_err(db_err)?),
            input_tokens: to_u64(row.get(7).map_err(db_err)?),
            output_tokens: to_u64(row.get(8).map_err(db_err)?),
            cost_usd: row.get(9).map_err(db_err)?,
            first_seen_unix_nano: to_u64(row.get(10).map_err(db_err)?),
            last_seen_unix_nano: to_u64(last),
        },
    ))
}

/// Session or user list: summary rows active in the window, most recently active first. Of the
/// filter, these aggregates honour project, time window, user and session.
fn groups_sql(
    table: &str,
    columns: &str,
    kind: CursorKind,
    filter: &Filter,
    page: &PageRequest,
    plan: GroupPlan<'_>,
) -> Result<(String, Vec<Value>), StoreError> {
    let mut sql = Sql::default();
    let p = sql.param(filter.project.clone());
    sql.cond(format!("x.project = {p}"));
    if let Some(from) = filter.from_unix_nano {
        let p = sql.param(to_i64(from));
        sql.cond(format!("x.last_seen >= {p}"));
    }
    if let Some(to) = filter.to_unix_nano {
        let p = sql.param(to_i64(to));
        sql.cond(format!("x.first_seen < {p}"));
    }
    cursor_cond(&mut sql, kind, &page.cursor, "x.last_seen", "x.id")?;
    // A user filter on sessions (and a session filter on users) asks for the groups that share
    // a trace with the other, as the trace list reads the pair: a session's calls may name
    // several users, and the user may be named on another span of the trace than the session.
    let key = if table == "sessions" {
        "session_id"
    } else {
        "user_id"
    };
    for (value, column) in [
        (&filter.user_id, "user_id"),
        (&filter.session_id, "session_id"),
    ] {
        if let Some(v) = nonempty(value) {
            let p = sql.param(v.to_string());
            sql.cond(if column == key {
                format!("x.{column} = {p}")
            } else {
                shares_a_trace(key, column, &p)
            });
        }
    }
    // Few groups used the model: look each up by key and sort them (named, because without
    // statistics SQLite would rather walk every group by recency, testing each against the list).
    let mut from = format!("{table} x");
    if let Some(groups) = plan.model_groups {
        from = format!("{table} x INDEXED BY {table}_key");
        if groups.is_empty() {
            sql.cond("0".into());
        } else {
            let list = groups
                .iter()
                .map(|g| sql.param(g.clone()))
                .collect::<Vec<_>>()
                .join(", ");
            sql.cond(format!("x.{key} IN ({list})"));
        }
    }
    for cond in group_member_conds(&mut sql, filter, key, plan.fts)? {
        sql.cond(cond);
    }
    let limit = sql.param((clamp_limit(page.limit) + 1) as i64);
    Ok((
        format!(
            "SELECT {columns} FROM {from} WHERE {} \
             ORDER BY x.last_seen DESC, x.id DESC LIMIT {limit}",
            sql.where_clause()
        ),
        sql.params,
    ))
}

/// The table of a group's traces, by the group's key column (`session_id` or `user_id`).
fn members_table(key: &str) -> &'static str {
    if key == "session_id" {
        "session_traces"
    } else {
        "user_traces"
    }
}

/// That the group aliased `x` (keyed by `own`: `session_id` or `user_id`) has a trace in common
/// with the group of the other kind (`other`) named by parameter `p`.
fn shares_a_trace(own: &str, other: &str, p: &str) -> String {
    let (mine, theirs) = (members_table(own), members_table(other));
    format!(
        "EXISTS (SELECT 1 FROM {mine} a CROSS JOIN {theirs} b \
         ON b.project = a.project AND b.{other} = {p} AND b.trace_ref = a.trace_ref \
         WHERE a.project = x.project AND a.{own} = x.{own})"
    )
}

/// For the session and user lists: conditions that the group aliased `x` (keyed by column `key`)
/// has a call matching the call filters (time window, service, model, provider, status, full
/// text) and a span matching the attribute filters. Each walks the group's own traces (its
/// membership rows) and their calls' keys (`call_keys` by trace), so it costs what the group
/// holds.
fn group_member_conds(
    sql: &mut Sql,
    filter: &Filter,
    key: &str,
    fts: FtsPlan,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut call = Vec::new();
    let members = members_table(key);
    for (value, column) in [(&filter.service, "service"), (&filter.provider, "provider")] {
        if let Some(v) = nonempty(value) {
            let p = sql.param(v.to_string());
            call.push(format!("c.{column} = {p}"));
        }
    }
    if let Some(model) = nonempty(&filter.model) {
        let p = sql.param(model.to_string());
        call.push(format!("(c.request_model = {p} OR c.response_model = {p})"));
    }
    if let Some(c) = call_status_cond(filter.status) {
        call.push(c.into());
    }
    if let Some(c) = fts_cond(sql, filter.q.as_deref(), fts) {
        call.push(c);
    }
    if !call.is_empty() {
        if let Some(from) = filter.from_unix_nano {
            let p = sql.param(to_i64(from));
            call.push(format!("c.start_ns >= {p}"));
        }
        if let Some(to) = filter.to_unix_nano {
            let p = sql.param(to_i64(to));
            call.push(format!("c.start_ns < {p}"));
        }
        out.push(format!(
            "EXISTS (SELECT 1 FROM {members} m \
             CROSS JOIN call_keys c INDEXED BY call_keys_trace ON c.trace_ref = m.trace_ref \
             WHERE m.project = x.project AND m.{key} = x.{key} AND c.{key} = x.{key} AND {})",
            call.join(" AND ")
        ));
    }
    let attrs = attr_conds(sql, &filter.attrs)?;
    if !attrs.is_empty() {
        out.push(format!(
            "EXISTS (SELECT 1 FROM {members} m JOIN spans s ON s.trace_ref = m.trace_ref \
             WHERE m.project = x.project AND m.{key} = x.{key} AND {})",
            attrs.join(" AND ")
        ));
    }
    Ok(out)
}

/// How a session or user list is evaluated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupPlan<'a> {
    pub fts: FtsPlan,
    /// With a model filter: every group whose calls used the model, when they are few
    /// ([`model_groups`]); the list then looks those up instead of testing each group it walks.
    pub model_groups: Option<&'a [String]>,
}

/// Most groups a model's calls may name for a session or user list to start from them.
const MODEL_GROUPS_MAX: i64 = 1_000;

/// For a session or user list (`key`: `session_id` or `user_id`) filtered by model: the groups
/// named by the model's calls, when there are at most [`MODEL_GROUPS_MAX`]; `None` when there are
/// more, or no model filter. Reading them costs the model's index entries (which carry the
/// session and user) up to where that many groups are found. Walking the list instead tests the calls of every group until 50 match, which for
/// a model few groups used (an embedding model called outside sessions) is nearly every call.
pub(crate) fn model_groups(
    conn: &Connection,
    filter: &Filter,
    key: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let Some(model) = nonempty(&filter.model) else {
        return Ok(None);
    };
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT DISTINCT g FROM ( \
               SELECT {key} AS g FROM call_keys \
                 WHERE project = ?1 AND request_model = ?2 AND {key} IS NOT NULL \
               UNION ALL SELECT {key} FROM call_keys \
                 WHERE project = ?1 AND response_model = ?2 AND {key} IS NOT NULL) \
             LIMIT ?3"
        ))
        .map_err(db_err)?;
    let groups = st
        .query_map(params![filter.project, model, MODEL_GROUPS_MAX + 1], |r| {
            r.get::<_, String>(0)
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    Ok((groups.len() as i64 <= MODEL_GROUPS_MAX).then_some(groups))
}

pub(crate) fn sessions_sql(
    filter: &Filter,
    page: &PageRequest,
    plan: GroupPlan<'_>,
) -> Result<(String, Vec<Value>), StoreError> {
    groups_sql(
        "sessions",
        SESSION_COLUMNS,
        CursorKind::Sessions,
        filter,
        page,
        plan,
    )
}

pub(crate) fn users_sql(
    filter: &Filter,
    page: &PageRequest,
    plan: GroupPlan<'_>,
) -> Result<(String, Vec<Value>), StoreError> {
    groups_sql("users", USER_COLUMNS, CursorKind::Users, filter, page, plan)
}

/// Builds a query with its parameters.
type MakeSql = fn(&Filter, &PageRequest, GroupPlan<'_>) -> Result<(String, Vec<Value>), StoreError>;

/// Reads a listed row: its keyset position and the item.
type ReadRow<T> = fn(&Row<'_>) -> Result<(i64, i64, T), StoreError>;

/// A session or user list: `key` names the group column, `make` builds the query for a plan,
/// `read` reads a row.
fn list_groups<T>(
    conn: &Connection,
    filter: &Filter,
    page_req: &PageRequest,
    key: &str,
    kind: CursorKind,
    make: MakeSql,
    read: ReadRow<T>,
) -> Result<Page<T>, StoreError> {
    let fts = fts_plan(conn, filter.q.as_deref())?;
    let groups = model_groups(conn, filter, key)?;
    if groups.as_ref().is_some_and(Vec::is_empty) {
        // No group used the model.
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let plan = GroupPlan {
        fts,
        model_groups: groups.as_deref(),
    };
    let (sql, params) = make(filter, page_req, plan)?;
    let rows = collect(conn, &sql, &params, read)?;
    Ok(page(rows, clamp_limit(page_req.limit), kind))
}

pub(crate) fn list_sessions(
    conn: &Connection,
    filter: &Filter,
    page_req: &PageRequest,
) -> Result<Page<SessionSummary>, StoreError> {
    list_groups(
        conn,
        filter,
        page_req,
        "session_id",
        CursorKind::Sessions,
        sessions_sql,
        read_session,
    )
}

pub(crate) fn list_users(
    conn: &Connection,
    filter: &Filter,
    page_req: &PageRequest,
) -> Result<Page<UserSummary>, StoreError> {
    list_groups(
        conn,
        filter,
        page_req,
        "user_id",
        CursorKind::Users,
        users_sql,
        read_user,
    )
}

pub(crate) fn get_session(
    conn: &Connection,
    project: &str,
    session_id: &str,
) -> Result<Option<SessionDetail>, StoreError> {
    let summary = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions x WHERE x.project = ?1 AND x.session_id = ?2"
        ))
        .and_then(|mut st| {
            st.query_row(params![project, session_id], |row| Ok(read_session(row)))
                .optional()
        })
        .map_err(db_err)?
        .transpose()?;
    let Some((_, _, summary)) = summary else {
        return Ok(None);
    };
    let traces = collect(
        conn,
        &format!(
            "SELECT {TRACE_COLUMNS} FROM session_traces st \
             JOIN traces t ON t.id = st.trace_ref \
             WHERE st.project = ?1 AND st.session_id = ?2 \
             ORDER BY t.start_ns, t.id LIMIT {SESSION_TRACES_MAX}"
        ),
        &[
            Value::from(project.to_string()),
            Value::from(session_id.to_string()),
        ],
        read_trace_summary,
    )?;
    Ok(Some(SessionDetail {
        summary,
        traces: traces.into_iter().map(|(_, _, t)| t).collect(),
    }))
}
