//! Rollups maintained by the writer, in the transaction that stores the calls.
//!
//! Every call that is added to or removed from the store (insert, replacement after its GenAI
//! events arrive, re-pricing) passes through [`RollupDeltas::call`] with a sign, like the trace,
//! session and user summaries. The deltas are summed per series × minute in memory over the
//! whole transaction, then [`RollupDeltas::flush`] merges them into the minute, hour and day rows
//! (one read-merge-write per row: counts add, sketch bins add). Because sketch bins are signed
//! counts, removing a call subtracts exactly what adding it added, so a replaced or re-priced
//! call leaves the rollups as if only its new version had ever been written. A late span lands in
//! the bucket of its own start time, whenever it arrives.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use sightline_model::{CallStatus, Cost, DdSketch, LlmCall, Usage};

use super::codec::{db_err, json_err, to_i64};
use super::encode::CallStats;
use crate::error::StoreError;

/// Bucket widths in seconds: minute, hour, day.
pub(crate) const RESOLUTIONS: [i64; 3] = [60, 3600, 86_400];

/// Series kinds in `rollup_series`.
pub(crate) const KIND_CALLS: i64 = 0;
pub(crate) const KIND_USER: i64 = 1;

/// What one call contributes to the rollups: its dimensions and numbers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollupEntry {
    minute: i64,
    service: String,
    service_version: String,
    provider: String,
    request_model: String,
    response_model: String,
    operation: String,
    error: bool,
    user: Option<String>,
    input: i64,
    output: i64,
    cache_read: i64,
    cache_write: i64,
    reasoning: i64,
    cost: Option<f64>,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
    tokens_per_s: Option<f64>,
    /// Input and output tokens as reported (`None`: the call did not say).
    input_reported: Option<u64>,
    output_reported: Option<u64>,
}

impl RollupEntry {
    pub(crate) fn of(call: &LlmCall) -> Box<Self> {
        let secs = to_i64(call.start_time_unix_nano) / 1_000_000_000;
        let tokens = |v: Option<u64>| v.map_or(0, to_i64);
        Box::new(Self {
            minute: secs - secs.rem_euclid(60),
            service: call.service_name.clone(),
            service_version: call.service_version.clone().unwrap_or_default(),
            provider: call.provider.clone().unwrap_or_default(),
            request_model: call.request_model.clone().unwrap_or_default(),
            response_model: call.response_model.clone().unwrap_or_default(),
            operation: call.operation.clone(),
            error: call.status == CallStatus::Error,
            user: call.user_id.clone().filter(|u| !u.is_empty()),
            input: tokens(call.usage.input_tokens),
            output: tokens(call.usage.output_tokens),
            cache_read: tokens(call.usage.cache_read_tokens),
            cache_write: tokens(call.usage.cache_write_tokens),
            reasoning: tokens(call.usage.reasoning_tokens),
            cost: call.cost.as_ref().map(|c| c.total_usd),
            latency_ms: call.duration_ms,
            ttft_ms: call.ttft_ms,
            tpot_ms: call.time_per_output_token_ms,
            tokens_per_s: call.output_tokens_per_s,
            input_reported: call.usage.input_tokens,
            output_reported: call.usage.output_tokens,
        })
    }
}

/// The fields of a stored call that its rollup contribution and its [`CallStats`] read. Reading
/// only these skips the messages — most of the document — without allocating them: a rebuild of
/// 950k calls took 15 s instead of 21 s.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RollupFields {
    project: String,
    start_time_unix_nano: u64,
    duration_ms: f64,
    ttft_ms: Option<f64>,
    time_per_output_token_ms: Option<f64>,
    output_tokens_per_s: Option<f64>,
    provider: Option<String>,
    operation: String,
    request_model: Option<String>,
    response_model: Option<String>,
    usage: Usage,
    cost: Option<Cost>,
    status: CallStatus,
    service_name: String,
    service_version: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
}

/// The stored call in column `idx` of `row`, with only what rollups and [`CallStats`] read (every
/// other field at its default).
pub(crate) fn read_rollup_call(row: &rusqlite::Row<'_>, idx: usize) -> Result<LlmCall, StoreError> {
    let json = super::packed::required(row, idx, "llm call")?;
    let f: RollupFields =
        serde_json::from_str(&json).map_err(|e| json_err("stored llm call", e))?;
    Ok(LlmCall {
        project: f.project,
        start_time_unix_nano: f.start_time_unix_nano,
        duration_ms: f.duration_ms,
        ttft_ms: f.ttft_ms,
        time_per_output_token_ms: f.time_per_output_token_ms,
        output_tokens_per_s: f.output_tokens_per_s,
        provider: f.provider,
        operation: f.operation,
        request_model: f.request_model,
        response_model: f.response_model,
        usage: f.usage,
        cost: f.cost,
        status: f.status,
        service_name: f.service_name,
        service_version: f.service_version,
        user_id: f.user_id,
        session_id: f.session_id,
        ..LlmCall::default()
    })
}

/// A `rollup_series` key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SeriesKey {
    pub project: String,
    pub kind: i64,
    pub service: String,
    pub service_version: String,
    pub provider: String,
    pub request_model: String,
    pub response_model: String,
    pub operation: String,
    pub status: i64,
    pub user_id: String,
}

impl SeriesKey {
    fn calls(project: &str, e: &RollupEntry) -> Self {
        Self {
            project: project.to_string(),
            kind: KIND_CALLS,
            service: e.service.clone(),
            service_version: e.service_version.clone(),
            provider: e.provider.clone(),
            request_model: e.request_model.clone(),
            response_model: e.response_model.clone(),
            operation: e.operation.clone(),
            status: i64::from(e.error),
            user_id: String::new(),
        }
    }

    fn user(project: &str, user: &str) -> Self {
        Self {
            project: project.to_string(),
            kind: KIND_USER,
            service: String::new(),
            service_version: String::new(),
            provider: String::new(),
            request_model: String::new(),
            response_model: String::new(),
            operation: String::new(),
            status: 0,
            user_id: user.to_string(),
        }
    }
}

/// Counts and sketches of one series × bucket, as a signed delta.
#[derive(Debug, Default, Clone)]
pub(crate) struct Cell {
    pub calls: i64,
    pub errors: i64,
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    pub priced: i64,
    pub cost: f64,
    pub latency: DdSketch,
    pub ttft: DdSketch,
    pub tpot: DdSketch,
    pub tps: DdSketch,
    pub input_dist: DdSketch,
    pub output_dist: DdSketch,
}

impl Cell {
    /// Adds a call; `all_sketches` false keeps only the latency sketch (per-user rows).
    fn add(&mut self, e: &RollupEntry, sign: i64, all_sketches: bool) {
        self.calls += sign;
        self.errors += sign * i64::from(e.error);
        self.input += sign * e.input;
        self.output += sign * e.output;
        self.cache_read += sign * e.cache_read;
        self.cache_write += sign * e.cache_write;
        self.reasoning += sign * e.reasoning;
        if let Some(cost) = e.cost {
            self.priced += sign;
            self.cost += sign as f64 * cost;
        }
        self.latency.add_weighted(e.latency_ms, sign);
        if !all_sketches {
            return;
        }
        if let Some(v) = e.ttft_ms {
            self.ttft.add_weighted(v, sign);
        }
        if let Some(v) = e.tpot_ms {
            self.tpot.add_weighted(v, sign);
        }
        if let Some(v) = e.tokens_per_s {
            self.tps.add_weighted(v, sign);
        }
        if let Some(v) = e.input_reported {
            self.input_dist.add_weighted(v as f64, sign);
        }
        if let Some(v) = e.output_reported {
            self.output_dist.add_weighted(v as f64, sign);
        }
    }

    /// The sketches, in the order of the `rollups` columns `latency` … `output_tokens_dist`.
    fn sketches(&self) -> [&DdSketch; 6] {
        [
            &self.latency,
            &self.ttft,
            &self.tpot,
            &self.tps,
            &self.input_dist,
            &self.output_dist,
        ]
    }

    /// [`Cell::sketches`], to change.
    fn sketches_mut(&mut self) -> [&mut DdSketch; 6] {
        [
            &mut self.latency,
            &mut self.ttft,
            &mut self.tpot,
            &mut self.tps,
            &mut self.input_dist,
            &mut self.output_dist,
        ]
    }

    fn merge(&mut self, o: &Cell) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.reasoning += o.reasoning;
        self.priced += o.priced;
        self.cost += o.cost;
        for (sketch, other) in self.sketches_mut().into_iter().zip(o.sketches()) {
            sketch.merge(other);
        }
    }

    fn is_noop(&self) -> bool {
        self.calls == 0
            && self.errors == 0
            && self.input == 0
            && self.output == 0
            && self.priced == 0
            && self.cost == 0.0
            && self.sketches().iter().all(|s| **s == DdSketch::default())
    }
}

/// Turns rollups off for the whole process: for measuring what maintaining them costs (the
/// ingest benchmark compares spans/s with and without). Never off in a server.
static DISABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches rollup maintenance off or on for this process (benchmarks only).
pub fn set_rollups_enabled(enabled: bool) {
    DISABLED.store(!enabled, std::sync::atomic::Ordering::Relaxed);
}

/// Rollup changes summed over one transaction.
#[derive(Default)]
pub(crate) struct RollupDeltas {
    cells: HashMap<(SeriesKey, i64), Cell>,
}

impl RollupDeltas {
    /// Adds (`sign` 1) or removes (`sign` -1) one call. Stats without a rollup entry (none are
    /// built that way outside tests) contribute nothing.
    pub(crate) fn call(&mut self, project: &str, stats: &CallStats, sign: i64) {
        let Some(e) = stats.rollup.as_deref() else {
            return;
        };
        if DISABLED.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        self.cells
            .entry((SeriesKey::calls(project, e), e.minute))
            .or_default()
            .add(e, sign, true);
        if let Some(user) = &e.user {
            // Per-user rows are daily only (users are many: finer rows would cost a row per
            // user per transaction at each resolution) and keep only the latency sketch.
            let day = e.minute - e.minute.rem_euclid(86_400);
            self.cells
                .entry((SeriesKey::user(project, user), day))
                .or_default()
                .add(e, sign, false);
        }
    }

    /// Merges the deltas into the minute, hour and day rows.
    pub(crate) fn flush(self, conn: &Connection, known: &mut SeriesIds) -> Result<(), StoreError> {
        if self.cells.is_empty() {
            return Ok(());
        }
        let mut ids: HashMap<SeriesKey, i64> = HashMap::new();
        let mut rows: HashMap<(i64, i64, i64, i64), Cell> = HashMap::new();
        for ((key, minute), cell) in self.cells {
            if cell.is_noop() {
                continue;
            }
            let kind = key.kind;
            let skip = if kind == KIND_USER { 2 } else { 0 };
            let id = match ids.get(&key) {
                Some(id) => *id,
                None => {
                    let id = series_id(conn, &key, known)?;
                    ids.insert(key, id);
                    id
                }
            };
            for res in RESOLUTIONS.into_iter().skip(skip) {
                let bucket = minute - minute.rem_euclid(res);
                rows.entry((res, kind, bucket, id))
                    .or_default()
                    .merge(&cell);
            }
        }
        let mut select = conn
            .prepare_cached(
                "SELECT calls, errors, input_tokens, output_tokens, cache_read_tokens, \
                 cache_write_tokens, reasoning_tokens, priced_calls, cost_usd, latency, ttft, \
                 tpot, tps, input_tokens_dist, output_tokens_dist FROM rollups \
                 WHERE res = ?1 AND kind = ?2 AND bucket = ?3 AND series = ?4",
            )
            .map_err(db_err)?;
        let mut upsert = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO rollups (res, kind, bucket, series, calls, errors, \
                 input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
                 reasoning_tokens, priced_calls, cost_usd, latency, ttft, tpot, tps, \
                 input_tokens_dist, output_tokens_dist) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                 ?18, ?19)",
            )
            .map_err(db_err)?;
        for ((res, kind, bucket, series), mut cell) in rows {
            let old = select
                .query_row(params![res, kind, bucket, series], |r| {
                    Ok((
                        [
                            r.get::<_, i64>(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ],
                        r.get::<_, f64>(8)?,
                        [
                            r.get::<_, Vec<u8>>(9)?,
                            r.get(10)?,
                            r.get(11)?,
                            r.get(12)?,
                            r.get(13)?,
                            r.get(14)?,
                        ],
                    ))
                })
                .optional()
                .map_err(db_err)?;
            if let Some((n, cost, sketches)) = old {
                cell.calls += n[0];
                cell.errors += n[1];
                cell.input += n[2];
                cell.output += n[3];
                cell.cache_read += n[4];
                cell.cache_write += n[5];
                cell.reasoning += n[6];
                cell.priced += n[7];
                cell.cost += cost;
                for (sketch, bytes) in cell.sketches_mut().into_iter().zip(&sketches) {
                    sketch
                        .merge_encoded(bytes, 1)
                        .map_err(|e| StoreError::Corrupt(format!("rollup sketch: {e}")))?;
                }
            }
            if cell.priced == 0 {
                // No priced call left: no floating-point residue either.
                cell.cost = 0.0;
            }
            let [latency, ttft, tpot, tps, input_dist, output_dist] = cell.sketches().map(encode);
            upsert
                .execute(params![
                    res,
                    kind,
                    bucket,
                    series,
                    cell.calls,
                    cell.errors,
                    cell.input,
                    cell.output,
                    cell.cache_read,
                    cell.cache_write,
                    cell.reasoning,
                    cell.priced,
                    cell.cost,
                    latency,
                    ttft,
                    tpot,
                    tps,
                    input_dist,
                    output_dist,
                ])
                .map_err(db_err)?;
        }
        Ok(())
    }
}

fn encode(s: &DdSketch) -> Vec<u8> {
    if *s == DdSketch::default() {
        Vec::new()
    } else {
        s.encode()
    }
}

/// Series ids of one database known to be committed, kept by whoever writes it (the writer, a
/// backfill): only ids found by a lookup (so stored by an earlier, committed transaction) are
/// cached, never one inserted by the running transaction, which could still roll back.
#[derive(Debug, Default)]
pub(crate) struct SeriesIds(HashMap<SeriesKey, i64>);

const SERIES_CACHE_MAX: usize = 100_000;

fn series_id(conn: &Connection, k: &SeriesKey, known: &mut SeriesIds) -> Result<i64, StoreError> {
    if let Some(id) = known.0.get(k) {
        return Ok(*id);
    }
    let lookup = |conn: &Connection| {
        conn.prepare_cached(
            "SELECT id FROM rollup_series WHERE project = ?1 AND kind = ?2 AND service = ?3 \
             AND service_version = ?4 AND provider = ?5 AND request_model = ?6 \
             AND response_model = ?7 AND operation = ?8 AND status = ?9 AND user_id = ?10",
        )
        .and_then(|mut st| {
            st.query_row(
                params![
                    k.project,
                    k.kind,
                    k.service,
                    k.service_version,
                    k.provider,
                    k.request_model,
                    k.response_model,
                    k.operation,
                    k.status,
                    k.user_id
                ],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        })
        .map_err(db_err)
    };
    if let Some(id) = lookup(conn)? {
        if known.0.len() >= SERIES_CACHE_MAX {
            known.0.clear();
        }
        known.0.insert(k.clone(), id);
        return Ok(id);
    }
    conn.prepare_cached(
        "INSERT INTO rollup_series (project, kind, service, service_version, provider, \
         request_model, response_model, operation, status, user_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut st| {
        st.execute(params![
            k.project,
            k.kind,
            k.service,
            k.service_version,
            k.provider,
            k.request_model,
            k.response_model,
            k.operation,
            k.status,
            k.user_id
        ])
    })
    .map_err(db_err)?;
    Ok(conn.last_insert_rowid())
}

/// Attaches the stored call's rollup entry to its stats (read back from the stored call), so
/// that replacing it subtracts exactly what it contributed.
pub(crate) fn with_stored_entry(
    conn: &Connection,
    stored: Option<(i64, CallStats)>,
) -> Result<Option<(i64, CallStats)>, StoreError> {
    let Some((id, mut stats)) = stored else {
        return Ok(None);
    };
    let mut st = conn
        .prepare_cached("SELECT call FROM llm_calls WHERE id = ?1")
        .map_err(db_err)?;
    let mut rows = st.query([id]).map_err(db_err)?;
    if let Some(row) = rows.next().map_err(db_err)? {
        stats.rollup = Some(RollupEntry::of(&read_rollup_call(row, 0)?));
    }
    Ok(Some((id, stats)))
}

/// Adds calls to the rollups of the database in `dir` without storing the calls themselves, in
/// transactions of `chunk` calls: how a benchmark builds the rollups of a large history quickly
/// (every number goes through the same code as at ingest). The database is created and migrated
/// if needed; no store may be open on it meanwhile. Returns the calls added.
pub fn import_rollups(
    dir: &std::path::Path,
    calls: impl Iterator<Item = LlmCall>,
    chunk: usize,
) -> Result<u64, StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let conn = super::schema::open_writer(&dir.join(super::DB_FILE), super::Synchronous::Normal)?;
    let mut n = 0u64;
    let mut deltas = RollupDeltas::default();
    let mut in_chunk = 0usize;
    let mut known = SeriesIds::default();
    let mut commit = |conn: &Connection, deltas: RollupDeltas| -> Result<(), StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        deltas.flush(conn, &mut known)?;
        conn.execute_batch("COMMIT").map_err(db_err)
    };
    for call in calls {
        deltas.call(&call.project, &CallStats::of(&call), 1);
        n += 1;
        in_chunk += 1;
        if in_chunk >= chunk.max(1) {
            commit(&conn, std::mem::take(&mut deltas))?;
            in_chunk = 0;
        }
    }
    commit(&conn, deltas)?;
    Ok(n)
}

/// Counter row marking that the rollups cover every stored call.
const BUILT_MARKER: &str = "rollups_built";
/// Calls folded into the rollups per transaction while backfilling.
const BACKFILL_CHUNK: i64 = 10_000;

/// How often (in calls) a backfill logs its progress.
const BACKFILL_PROGRESS: u64 = 200_000;

/// Builds the rollups of the calls stored before rollups existed (a database created by an
/// earlier version), once: afterwards the writer keeps them current. Runs at open, before the
/// writer starts.
pub(crate) fn backfill(conn: &Connection) -> Result<(), StoreError> {
    let built: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM counters WHERE name = ?1)",
            [BUILT_MARKER],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if built {
        return Ok(());
    }
    // Without the marker, whatever rollups exist come from a rebuild that was interrupted (its
    // chunks committed, its end not reached): start over, or those calls would count twice.
    conn.execute("DELETE FROM rollups", []).map_err(db_err)?;
    let newest: i64 = conn
        .query_row("SELECT coalesce(max(id), 0) FROM llm_calls", [], |r| {
            r.get(0)
        })
        .map_err(db_err)?;
    if newest > 0 {
        // Minutes on a large store, before the server listens: say so, and show progress.
        tracing::info!(
            calls_up_to_id = newest,
            "building rollups of the stored calls before serving"
        );
    }
    let mut after = 0i64;
    let mut total = 0u64;
    let mut known = SeriesIds::default();
    loop {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
        let result = (|| {
            let rows: Vec<(i64, Result<LlmCall, StoreError>)> = {
                let mut st = conn
                    .prepare_cached(
                        "SELECT id, call FROM llm_calls WHERE id > ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(db_err)?;
                let mut rows = st.query(params![after, BACKFILL_CHUNK]).map_err(db_err)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(db_err)? {
                    out.push((r.get(0).map_err(db_err)?, read_rollup_call(r, 1)));
                }
                out
            };
            let mut deltas = RollupDeltas::default();
            for (id, call) in &rows {
                after = *id;
                match call {
                    Ok(call) => deltas.call(&call.project, &CallStats::of(call), 1),
                    Err(e) => {
                        tracing::warn!(id, error = %e, "skipping undecodable call in rollup backfill")
                    }
                }
            }
            deltas.flush(conn, &mut known)?;
            let done = (rows.len() as i64) < BACKFILL_CHUNK;
            if done {
                conn.execute(
                    "INSERT OR REPLACE INTO counters (name, value) VALUES (?1, 1)",
                    [BUILT_MARKER],
                )
                .map_err(db_err)?;
            }
            Ok::<_, StoreError>((rows.len(), done))
        })();
        match result {
            Ok((n, done)) => {
                conn.execute_batch("COMMIT").map_err(db_err)?;
                total += n as u64;
                if !done && total % BACKFILL_PROGRESS < n as u64 {
                    tracing::info!(
                        calls = total,
                        percent = (after as f64 * 100.0 / newest.max(1) as f64).round(),
                        "building rollups"
                    );
                }
                if done {
                    if total > 0 {
                        tracing::info!(calls = total, "built rollups of the stored calls");
                    }
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{RollupDimension, RollupQuery, SketchSet};
    use crate::query::Filter;
    use proptest::prelude::*;
    use sightline_model::{Cost, Usage};

    const T0: u64 = 1_700_000_040; // a minute boundary, unix seconds

    /// The fields a rebuild reads give the same contribution as the whole call, for a call with
    /// every field the rollups and summaries use set (and messages, which they skip).
    #[test]
    fn rollup_fields_match_the_whole_call() {
        let mut full = call(7, 2, 812.5, 999, true);
        full.time_per_output_token_ms = Some(12.5);
        full.output_tokens_per_s = Some(80.0);
        full.provider = Some("openai".into());
        full.response_model = Some("m2-2025".into());
        full.service_version = Some("1.4.2".into());
        full.user_id = Some("u1".into());
        full.session_id = Some("s1".into());
        full.usage.cache_read_tokens = Some(11);
        full.usage.cache_write_tokens = Some(3);
        full.usage.reasoning_tokens = Some(40);
        full.system_instructions = Some("be brief".into());
        full.input_messages = vec![sightline_model::Message {
            role: "user".into(),
            content: Some("what is a rollup? \"quoted\" {json}".into()),
            ..sightline_model::Message::default()
        }];
        let conn = Connection::open_in_memory().unwrap();
        super::super::packed::register(&conn).unwrap();
        let json = serde_json::to_string(&full).unwrap();
        for stored in [
            super::super::packed::Packed::new(
                json.clone(),
                &super::super::dictionary::Dictionaries::without_training(),
            )
            .unwrap(),
            super::super::packed::Packed::Text(json),
        ] {
            let slim = conn
                .query_row("SELECT ?1", [&stored], |r| Ok(read_rollup_call(r, 0)))
                .unwrap()
                .unwrap();
            assert_eq!(CallStats::of(&slim), CallStats::of(&full));
        }
    }

    fn call(minute: u64, model: u8, latency: f64, tokens: u64, error: bool) -> LlmCall {
        LlmCall {
            project: "p".into(),
            start_time_unix_nano: (T0 + minute * 60 + minute % 50) * 1_000_000_000,
            duration_ms: latency,
            ttft_ms: Some(latency / 3.0),
            operation: "chat".into(),
            request_model: Some(format!("m{model}")),
            service_name: "svc".into(),
            usage: Usage {
                input_tokens: Some(tokens),
                output_tokens: Some(tokens / 2),
                ..Usage::default()
            },
            cost: tokens.is_multiple_of(3).then(|| Cost {
                input_usd: 0.0,
                output_usd: 0.0,
                total_usd: tokens as f64 / 1000.0,
                price_id: "test".into(),
                price_table_version: "test".into(),
            }),
            status: if error {
                sightline_model::CallStatus::Error
            } else {
                sightline_model::CallStatus::Ok
            },
            user_id: Some(format!("u{}", tokens % 4)),
            ..LlmCall::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Calls written in any split into transactions, read over any minute-aligned range,
        /// give what one pass over the calls of that range gives.
        #[test]
        fn rollup_merges_equal_a_single_pass(
            specs in prop::collection::vec((0u64..4320, 0u8..3, 1.0f64..20_000.0, 1u64..5000, any::<bool>()), 1..300),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            range in (0u64..4320, 0u64..4320),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let calls: Vec<LlmCall> = specs.iter().map(|s| call(s.0, s.1, s.2, s.3, s.4)).collect();
            // Write in chunks cut at random points (each chunk its own transaction).
            let mut cut: Vec<usize> = cuts.iter().map(|i| i.index(calls.len())).collect();
            cut.push(calls.len());
            cut.sort_unstable();
            let mut at = 0;
            for end in cut {
                import_rollups(dir.path(), calls[at..end].iter().cloned(), usize::MAX).unwrap();
                at = end;
            }
            let conn = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
            let (a, b) = (range.0.min(range.1), range.0.max(range.1) + 1);
            let q = RollupQuery {
                filter: Filter {
                    project: "p".into(),
                    from_unix_nano: Some((T0 + a * 60) * 1_000_000_000),
                    to_unix_nano: Some((T0 + b * 60) * 1_000_000_000),
                    ..Filter::default()
                },
                group_by: vec![RollupDimension::Model],
                sketches: SketchSet::ALL,
                ..RollupQuery::default()
            };
            let rows = super::super::rollup_read::read(&conn, &q).unwrap();
            for m in 0..3u8 {
                let name = format!("m{m}");
                let mine: Vec<&LlmCall> = specs
                    .iter()
                    .zip(&calls)
                    .filter(|(s, _)| s.1 == m && s.0 >= a && s.0 < b)
                    .map(|(_, c)| c)
                    .collect();
                let row = rows.iter().find(|r| r.key == vec![name.clone()]);
                let Some(row) = row else {
                    prop_assert!(mine.is_empty());
                    continue;
                };
                let g = &row.aggregate;
                prop_assert_eq!(g.calls, mine.len() as i64);
                prop_assert_eq!(g.errors, mine.iter().filter(|c| c.status == sightline_model::CallStatus::Error).count() as i64);
                prop_assert_eq!(g.input_tokens, mine.iter().map(|c| c.usage.input_tokens.unwrap() as i64).sum::<i64>());
                prop_assert_eq!(g.priced_calls, mine.iter().filter(|c| c.cost.is_some()).count() as i64);
                let cost: f64 = mine.iter().filter_map(|c| c.cost.as_ref().map(|c| c.total_usd)).sum();
                prop_assert!((g.cost_usd - cost).abs() < 1e-6);
                let mut one = DdSketch::new();
                let mut ttft = DdSketch::new();
                for c in &mine {
                    one.add(c.duration_ms);
                    ttft.add(c.ttft_ms.unwrap());
                }
                for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                    prop_assert_eq!(g.latency_ms.quantile(q), one.quantile(q));
                    prop_assert_eq!(g.ttft_ms.quantile(q), ttft.quantile(q));
                }
            }
        }
    }
}
