//! Reading rollups: the fewest rows that cover the range.
//!
//! Without a step, the range (taken to the minute) is cut into whole days, whole hours at its
//! edges and whole minutes at the edges of those, so 90 days read ~90 day rows plus at most
//! ~46 hour rows and ~118 minute rows per series. With a step, the coarsest resolution that
//! divides the step is read and rows are summed into step-aligned buckets. Sketches are merged
//! straight from their stored bytes, and only those the caller asks for are read.

use std::collections::{HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};

use super::codec::db_err;
use super::rollup::{KIND_CALLS, KIND_USER, RESOLUTIONS};
use crate::error::StoreError;
use crate::metrics::{
    busiest_first, RollupAggregate, RollupDimension, RollupQuery, RollupRow, SketchSet,
};
use sightline_model::{CallStatus, DdSketch};

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// 9999-12-31T00:00:00Z, day aligned: the end of an open range.
const END_OF_TIME: i64 = 253_402_214_400;
/// Most buckets one stepped read over a bounded range may span.
pub(crate) const MAX_BUCKETS: i64 = 100_000;

fn floor_to(v: i64, m: i64) -> i64 {
    v - v.rem_euclid(m)
}

fn ceil_to(v: i64, m: i64) -> i64 {
    let f = floor_to(v, m);
    if f == v {
        v
    } else {
        f + m
    }
}

/// `[a, b)` (minute aligned) as (resolution, start, end) pieces, coarsest in the middle.
pub(crate) fn pieces(a: i64, b: i64) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    if a >= b {
        return out;
    }
    let (ha, hb) = (ceil_to(a, HOUR), floor_to(b, HOUR));
    if ha >= hb {
        out.push((MINUTE, a, b));
        return out;
    }
    if a < ha {
        out.push((MINUTE, a, ha));
    }
    if hb < b {
        out.push((MINUTE, hb, b));
    }
    let (da, db) = (ceil_to(ha, DAY), floor_to(hb, DAY));
    if da >= db {
        out.push((HOUR, ha, hb));
        return out;
    }
    if ha < da {
        out.push((HOUR, ha, da));
    }
    if db < hb {
        out.push((HOUR, db, hb));
    }
    out.push((DAY, da, db));
    out
}

fn column(d: RollupDimension) -> &'static str {
    match d {
        RollupDimension::Model => {
            "CASE WHEN s.response_model <> '' THEN s.response_model ELSE s.request_model END"
        }
        RollupDimension::RequestModel => "s.request_model",
        RollupDimension::ResponseModel => "s.response_model",
        RollupDimension::Service => "s.service",
        RollupDimension::ServiceVersion => "s.service_version",
        RollupDimension::Provider => "s.provider",
        RollupDimension::Operation => "s.operation",
        RollupDimension::Status => "CASE s.status WHEN 1 THEN 'error' ELSE 'ok' END",
        RollupDimension::UserId => "s.user_id",
        RollupDimension::Project => "s.project",
    }
}

fn not_rolled_up(field: &'static str) -> StoreError {
    StoreError::InvalidInput {
        field,
        message: format!("`{field}` is not a rolled-up dimension; statistics cannot filter by it"),
    }
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Reads the rollups `q` asks for.
pub(crate) fn read(conn: &Connection, q: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
    let f = &q.filter;
    if nonempty(&f.session_id).is_some() {
        return Err(not_rolled_up("session_id"));
    }
    if nonempty(&f.q).is_some() {
        return Err(not_rolled_up("q"));
    }
    if !f.attrs.is_empty() {
        return Err(not_rolled_up("attr"));
    }
    let per_user = q.group_by.contains(&RollupDimension::UserId) || nonempty(&f.user_id).is_some();
    let mut conds = vec![
        "(?1 = '' OR s.project = ?1)".to_string(),
        "s.kind = ?2".to_string(),
    ];
    let mut args: Vec<rusqlite::types::Value> = vec![
        f.project.clone().into(),
        if per_user { KIND_USER } else { KIND_CALLS }.into(),
    ];
    if per_user {
        // The per-user rollup has the user as its only dimension.
        if let Some(d) = q
            .group_by
            .iter()
            .find(|d| !matches!(d, RollupDimension::UserId | RollupDimension::Project))
        {
            return Err(StoreError::InvalidInput {
                field: "group_by",
                message: format!(
                    "`{}` cannot be combined with `user_id`: per-user statistics are rolled up \
                     by user alone",
                    d.name()
                ),
            });
        }
        for (field, set) in [
            ("service", nonempty(&f.service).is_some()),
            ("model", nonempty(&f.model).is_some()),
            ("provider", nonempty(&f.provider).is_some()),
            ("status", f.status.is_some()),
            ("operation", nonempty(&q.operation).is_some()),
        ] {
            if set {
                return Err(StoreError::InvalidInput {
                    field: match field {
                        "service" => "service",
                        "model" => "model",
                        "provider" => "provider",
                        "status" => "status",
                        _ => "operation",
                    },
                    message: format!(
                        "`{field}` cannot be combined with per-user statistics (`user_id`): \
                         those are rolled up by user alone"
                    ),
                });
            }
        }
        if let Some(u) = nonempty(&f.user_id) {
            args.push(u.to_string().into());
            conds.push(format!("s.user_id = ?{}", args.len()));
        }
    } else {
        let mut eq = |col: &str, v: &str| {
            args.push(v.to_string().into());
            conds.push(format!("{col} = ?{}", args.len()));
        };
        if let Some(v) = nonempty(&f.service) {
            eq("s.service", v);
        }
        if let Some(v) = nonempty(&f.provider) {
            eq("s.provider", v);
        }
        if let Some(v) = nonempty(&q.operation) {
            eq("s.operation", v);
        }
        if let Some(status) = f.status {
            eq(
                "s.status",
                if status == CallStatus::Error {
                    "1"
                } else {
                    "0"
                },
            );
        }
        if let Some(v) = nonempty(&f.model) {
            args.push(v.to_string().into());
            let p = args.len();
            conds.push(format!(
                "(s.request_model = ?{p} OR s.response_model = ?{p})"
            ));
        }
    }

    // Per-user rows are daily: their ranges are taken to the day.
    let grain = if per_user { DAY } else { MINUTE };
    let from = f
        .from_unix_nano
        .map_or(0, |ns| floor_to((ns / 1_000_000_000) as i64, grain));
    let to = f.to_unix_nano.map_or(END_OF_TIME, |ns| {
        ceil_to(ns.div_ceil(1_000_000_000) as i64, grain).min(END_OF_TIME)
    });
    let plan = match q.step_secs {
        None => pieces(from, to),
        Some(step) => {
            let step = step as i64;
            if step < grain || step % grain != 0 {
                return Err(StoreError::InvalidInput {
                    field: "step",
                    message: if per_user {
                        format!(
                            "per-user series need a whole number of days as `step`, got {step}s"
                        )
                    } else {
                        format!("`step` must be a whole number of minutes, got {step}s")
                    },
                });
            }
            let (a, b) = (floor_to(from, step), ceil_to(to, step));
            let bounded = f.from_unix_nano.is_some() && f.to_unix_nano.is_some();
            if bounded && (b - a) / step > MAX_BUCKETS {
                return Err(StoreError::InvalidInput {
                    field: "step",
                    message: format!(
                        "the range holds more than {MAX_BUCKETS} steps of {step}s: set a larger \
                         step or a narrower range"
                    ),
                });
            }
            let res = RESOLUTIONS
                .iter()
                .rev()
                .copied()
                .find(|r| step % r == 0)
                .unwrap_or(MINUTE);
            vec![(res, a, b)]
        }
    };

    let dims: Vec<String> = q.group_by.iter().map(|d| column(*d).to_string()).collect();
    // The matching series first (a small table), then the rollup rows of the range, kept when
    // their series matched: no join per row.
    let kind: i64 = if per_user { KIND_USER } else { KIND_CALLS };
    let mut keys: FxHashMap<i64, Vec<String>> = FxHashMap::default();
    {
        let sql = format!(
            "SELECT s.id{}{} FROM rollup_series s WHERE {}",
            if dims.is_empty() { "" } else { ", " },
            dims.join(", "),
            conds.join(" AND "),
        );
        let mut st = conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = st
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let mut key = Vec::with_capacity(dims.len());
            for i in 0..dims.len() {
                key.push(r.get::<_, String>(1 + i).map_err(db_err)?);
            }
            keys.insert(r.get(0).map_err(db_err)?, key);
        }
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let scan = Scan {
        conn,
        kind,
        plan: &plan,
        step_secs: q.step_secs,
    };
    // Summed per series first (integer keys, no allocation per row), then per group key.
    let every: FxHashSet<i64> = keys.keys().copied().collect();
    let top = q.sketch_top.filter(|&top| {
        q.step_secs.is_none()
            && q.sketches != SketchSet::NONE
            && keys.values().collect::<HashSet<_>>().len() > top
    });
    let per_series: Vec<(SeriesKey, RollupAggregate)> = match top {
        // Only the busiest groups want sketches: the sums of every row first (a few words per
        // series), then the sketches of those groups' rows alone, both from one snapshot so
        // that a group's sketches count the rows its sums do.
        Some(top) => {
            let snapshot = if conn.is_autocommit() {
                Some(conn.unchecked_transaction().map_err(db_err)?)
            } else {
                None
            };
            let mut sums = PerSeries::<Sums>::default();
            scan.rows(&every, SketchSet::NONE, |key, r| {
                sums.get(key).add(&Sums::read(r)?);
                Ok(())
            })?;
            let busiest = busiest_series(&keys, &sums, top);
            let mut sketched = PerSeries::<RollupAggregate>::default();
            scan.rows(&busiest, q.sketches, |key, r| {
                add_sketches(sketched.get(key), r)
            })?;
            drop(snapshot);
            let mut sketched = sketched.into_map();
            sums.items
                .into_iter()
                .map(|(key, s)| {
                    let mut g = sketched.remove(&key).unwrap_or_default();
                    s.add_to(&mut g);
                    (key, g)
                })
                .collect()
        }
        _ => {
            let mut all = PerSeries::<RollupAggregate>::default();
            let sketched = q.sketches != SketchSet::NONE;
            scan.rows(&every, q.sketches, |key, r| {
                let g = all.get(key);
                Sums::read(r)?.add_to(g);
                if sketched {
                    add_sketches(g, r)?;
                }
                Ok(())
            })?;
            all.items
        }
    };
    // Per group key; the rows (a few hundred bytes each) stay where they are first put, and are
    // moved once more, into key order.
    let mut rows: Vec<RollupRow> = Vec::new();
    let mut index: HashMap<(&[String], Option<i64>), usize> = HashMap::new();
    let no_key: Vec<String> = Vec::new();
    for ((series, bucket), aggregate) in per_series {
        let key = keys.get(&series).unwrap_or(&no_key);
        match index.entry((key.as_slice(), bucket)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                rows[*e.get()].aggregate.merge(&aggregate);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(rows.len());
                rows.push(RollupRow {
                    key: key.clone(),
                    bucket_unix_secs: bucket,
                    aggregate,
                });
            }
        }
    }
    let mut order: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].aggregate.calls != 0)
        .collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&rows[a], &rows[b]);
        (&a.key, a.bucket_unix_secs).cmp(&(&b.key, b.bucket_unix_secs))
    });
    let mut rows: Vec<Option<RollupRow>> = rows.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| rows[i].take()).collect())
}

/// A series and, in a time series, the start of its step.
type SeriesKey = (i64, Option<i64>);

/// Per series (and step bucket), what a read has summed so far, in the order first met. Rows
/// come bucket by bucket with their series ascending, so later buckets walk the large aggregates
/// mostly in order (a series first seen late is appended), and only the small map is hashed into.
struct PerSeries<T> {
    slots: FxHashMap<SeriesKey, usize>,
    items: Vec<(SeriesKey, T)>,
}

impl<T> Default for PerSeries<T> {
    fn default() -> Self {
        Self {
            slots: FxHashMap::default(),
            items: Vec::new(),
        }
    }
}

impl<T: Default> PerSeries<T> {
    fn get(&mut self, key: SeriesKey) -> &mut T {
        let next = self.items.len();
        let i = *self.slots.entry(key).or_insert(next);
        if i == next {
            self.items.push((key, T::default()));
        }
        &mut self.items[i].1
    }

    fn into_map(self) -> FxHashMap<SeriesKey, T> {
        self.items.into_iter().collect()
    }
}

/// Adds the additive fields of `$src` (a [`Sums`]) to those of the same names in `$dst` (a
/// [`Sums`] or a [`RollupAggregate`]).
macro_rules! add_sums {
    ($dst:expr, $src:expr) => {
        $dst.calls += $src.calls;
        $dst.errors += $src.errors;
        $dst.input_tokens += $src.input_tokens;
        $dst.output_tokens += $src.output_tokens;
        $dst.cache_read_tokens += $src.cache_read_tokens;
        $dst.cache_write_tokens += $src.cache_write_tokens;
        $dst.reasoning_tokens += $src.reasoning_tokens;
        $dst.priced_calls += $src.priced_calls;
        $dst.cost_usd += $src.cost_usd;
    };
}

/// The additive columns of rollup rows.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    calls: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    reasoning_tokens: i64,
    priced_calls: i64,
    cost_usd: f64,
}

impl Sums {
    /// The sums of one row of [`Scan::rows`].
    fn read(r: &rusqlite::Row<'_>) -> Result<Self, StoreError> {
        let n = |i: usize| r.get::<_, i64>(i).map_err(db_err);
        Ok(Self {
            calls: n(2)?,
            errors: n(3)?,
            input_tokens: n(4)?,
            output_tokens: n(5)?,
            cache_read_tokens: n(6)?,
            cache_write_tokens: n(7)?,
            reasoning_tokens: n(8)?,
            priced_calls: n(9)?,
            cost_usd: r.get::<_, f64>(10).map_err(db_err)?,
        })
    }

    fn add(&mut self, o: &Sums) {
        add_sums!(self, o);
    }

    fn add_to(&self, g: &mut RollupAggregate) {
        add_sums!(g, self);
    }
}

/// Merges the sketches of one row of [`Scan::rows`] (those not read are empty).
fn add_sketches(g: &mut RollupAggregate, r: &rusqlite::Row<'_>) -> Result<(), StoreError> {
    for (i, sketch) in [
        (11, &mut g.latency_ms),
        (12, &mut g.ttft_ms),
        (13, &mut g.tpot_ms),
        (14, &mut g.output_tokens_per_s),
        (15, &mut g.input_tokens_per_call),
        (16, &mut g.output_tokens_per_call),
    ] {
        merge_blob(sketch, r.get_ref(i).map_err(db_err)?)?;
    }
    Ok(())
}

/// Passes over the rollup rows of one read's range.
struct Scan<'a> {
    conn: &'a Connection,
    kind: i64,
    plan: &'a [(i64, i64, i64)],
    step_secs: Option<u64>,
}

impl Scan<'_> {
    /// Hands every row of the `wanted` series to `each`, with its series and step bucket. The
    /// row's columns: series, bucket, the [`Sums`] (2–10), then the sketches (11–16), of which
    /// those not in `sketches` are empty blobs; with [`SketchSet::NONE`], no sketch columns.
    fn rows(
        &self,
        wanted: &FxHashSet<i64>,
        sketches: SketchSet,
        mut each: impl FnMut(SeriesKey, &rusqlite::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let blob = |want: bool, col: &str| {
            if want {
                format!("r.{col}")
            } else {
                "x''".to_string()
            }
        };
        // A few series: let SQLite skip the others' rows too.
        let only = if wanted.len() <= 64 {
            let mut ids: Vec<i64> = wanted.iter().copied().collect();
            ids.sort_unstable();
            format!(
                " AND r.series IN ({})",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            )
        } else {
            String::new()
        };
        let sketch_columns = if sketches == SketchSet::NONE {
            String::new()
        } else {
            format!(
                ", {}, {}, {}, {}, {}, {}",
                blob(sketches.latency, "latency"),
                blob(sketches.ttft, "ttft"),
                blob(sketches.tpot, "tpot"),
                blob(sketches.tokens_per_s, "tps"),
                blob(sketches.tokens, "input_tokens_dist"),
                blob(sketches.tokens, "output_tokens_dist"),
            )
        };
        let sql = format!(
            "SELECT r.series, r.bucket, r.calls, r.errors, r.input_tokens, r.output_tokens, \
             r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens, r.priced_calls, \
             r.cost_usd{sketch_columns} FROM rollups r \
             WHERE r.res = ?1 AND r.kind = ?2 AND r.bucket >= ?3 AND r.bucket < ?4{only}"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(db_err)?;
        for &(res, a, b) in self.plan {
            let mut rows = st.query(params![res, self.kind, a, b]).map_err(db_err)?;
            while let Some(r) = rows.next().map_err(db_err)? {
                let series: i64 = r.get(0).map_err(db_err)?;
                if !wanted.contains(&series) {
                    continue;
                }
                let bucket: i64 = r.get(1).map_err(db_err)?;
                each(
                    (series, self.step_secs.map(|s| floor_to(bucket, s as i64))),
                    r,
                )?;
            }
        }
        Ok(())
    }
}

/// The series of the first `top` groups in [`busiest_first`] order; a group without calls is never
/// one of them.
fn busiest_series(
    keys: &FxHashMap<i64, Vec<String>>,
    sums: &PerSeries<Sums>,
    top: usize,
) -> FxHashSet<i64> {
    let mut calls: HashMap<&[String], i64> = HashMap::new();
    for ((series, _), s) in &sums.items {
        if let Some(key) = keys.get(series) {
            *calls.entry(key.as_slice()).or_default() += s.calls;
        }
    }
    let mut groups: Vec<(&[String], i64)> = calls.into_iter().filter(|(_, c)| *c != 0).collect();
    groups.sort_by(|a, b| busiest_first((a.1, a.0), (b.1, b.0)));
    groups.truncate(top);
    let chosen: HashSet<&[String]> = groups.into_iter().map(|(key, _)| key).collect();
    keys.iter()
        .filter(|(_, key)| chosen.contains(key.as_slice()))
        .map(|(series, _)| *series)
        .collect()
}

fn merge_blob(sketch: &mut DdSketch, v: ValueRef<'_>) -> Result<(), StoreError> {
    match v {
        ValueRef::Blob(bytes) => sketch
            .merge_encoded(bytes, 1)
            .map_err(|e| StoreError::Corrupt(format!("rollup sketch: {e}"))),
        ValueRef::Null => Ok(()),
        _ => Err(StoreError::Corrupt("rollup sketch is not a blob".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_range_exactly_once() {
        let cases = [
            (0, 60),
            (60, 7200),
            (3540, 3660),
            (120, 3 * DAY + 180),
            (DAY - 60, 2 * DAY + 60),
            (5 * HOUR, 5 * HOUR),
            (0, END_OF_TIME),
        ];
        for (a, b) in cases {
            let mut covered: Vec<(i64, i64)> = pieces(a, b).iter().map(|p| (p.1, p.2)).collect();
            covered.sort();
            let mut at = a;
            for (s, e) in covered {
                assert_eq!(s, at, "gap or overlap in {a}..{b}");
                at = e;
            }
            assert_eq!(at, b.max(a));
            for (res, s, e) in pieces(a, b) {
                assert_eq!(s % res, 0);
                assert_eq!(e % res, 0);
            }
        }
        assert_eq!(pieces(0, END_OF_TIME).len(), 1);
    }
}
