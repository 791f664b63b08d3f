//! OTLP metric points: one `metric_series` row per metric × attribute set, points keyed by
//! `(series, time_ns)` so that a range of one series is one index walk.
//!
//! Writes go through the writer thread like spans (same group commit, same durable
//! acknowledgement). Attributes are JSON-encoded on the caller's side; the writer resolves each
//! distinct series once per batch. Reads pick the metric's series by name, filter them on their
//! attributes, read each series' points in the range and combine them per group and bucket.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use sightline_model::Attributes;

use super::codec::{db_err, fnv1a, json_err, to_i64};
use crate::error::StoreError;
use crate::metrics::{
    MetricAgg, MetricField, MetricPoint, MetricQuery, MetricSeries, MAX_METRIC_POINTS,
};

/// A point ready for the writer.
pub(crate) struct EncodedPoint {
    project: String,
    name: String,
    kind: &'static str,
    unit: String,
    description: String,
    scope: String,
    resource: String,
    attributes: String,
    time: i64,
    start: i64,
    value: Option<f64>,
    count: Option<i64>,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    data: String,
}

impl EncodedPoint {
    pub(crate) fn new(p: MetricPoint) -> Result<Self, StoreError> {
        Ok(Self {
            resource: serde_json::to_string(&p.resource).map_err(|e| json_err("resource", e))?,
            attributes: serde_json::to_string(&p.attributes)
                .map_err(|e| json_err("metric attributes", e))?,
            data: serde_json::to_string(&p.data).map_err(|e| json_err("metric data", e))?,
            kind: p.kind.as_str(),
            project: p.project,
            name: p.name,
            unit: p.unit,
            description: p.description,
            scope: p.scope,
            time: to_i64(p.time_unix_nano),
            start: to_i64(p.start_time_unix_nano),
            value: p.value.filter(|v| v.is_finite()),
            count: p.count.map(to_i64),
            sum: p.sum.filter(|v| v.is_finite()),
            min: p.min.filter(|v| v.is_finite()),
            max: p.max.filter(|v| v.is_finite()),
        })
    }
}

/// Stores points (a point at the same series and time as a stored one replaces it).
pub(crate) fn insert(conn: &Connection, points: &[EncodedPoint]) -> Result<(), StoreError> {
    if points.is_empty() {
        return Ok(());
    }
    let mut ids: HashMap<(&str, &str, &str, &str, &str), i64> = HashMap::new();
    let mut st = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO metric_points (series, time_ns, start_ns, value, count, sum, \
             min, max, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(db_err)?;
    for p in points {
        let key = (
            p.project.as_str(),
            p.name.as_str(),
            p.scope.as_str(),
            p.resource.as_str(),
            p.attributes.as_str(),
        );
        let id = match ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = series_id(conn, p)?;
                ids.insert(key, id);
                id
            }
        };
        st.execute(params![
            id, p.time, p.start, p.value, p.count, p.sum, p.min, p.max, p.data
        ])
        .map_err(db_err)?;
    }
    Ok(())
}

fn series_id(conn: &Connection, p: &EncodedPoint) -> Result<i64, StoreError> {
    let hash = fnv1a(&[&p.project, &p.name, &p.scope, &p.resource, &p.attributes]);
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM metric_series WHERE hash = ?1 AND project = ?2 AND name = ?3 \
             AND scope = ?4 AND resource = ?5 AND attributes = ?6",
        )
        .and_then(|mut st| {
            st.query_row(
                params![hash, p.project, p.name, p.scope, p.resource, p.attributes],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(db_err)?;
    if let Some(id) = found {
        // Kind, unit and description follow the latest export.
        conn.prepare_cached(
            "UPDATE metric_series SET kind = ?2, unit = ?3, description = ?4 \
             WHERE id = ?1 AND (kind <> ?2 OR unit <> ?3 OR description <> ?4)",
        )
        .and_then(|mut st| st.execute(params![id, p.kind, p.unit, p.description]))
        .map_err(db_err)?;
        return Ok(id);
    }
    conn.prepare_cached(
        "INSERT INTO metric_series (project, name, kind, unit, description, scope, resource, \
         attributes, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut st| {
        st.execute(params![
            p.project,
            p.name,
            p.kind,
            p.unit,
            p.description,
            p.scope,
            p.resource,
            p.attributes,
            hash
        ])
    })
    .map_err(db_err)?;
    Ok(conn.last_insert_rowid())
}

fn attr_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Combines values of one bucket.
#[derive(Default, Clone, Copy)]
struct Acc {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    last_at: i64,
    last: f64,
}

impl Acc {
    fn add(&mut self, at: i64, v: f64) {
        if self.n == 0 {
            self.min = v;
            self.max = v;
            self.last_at = at;
            self.last = v;
        }
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if at >= self.last_at {
            self.last_at = at;
            self.last = v;
        }
    }

    fn value(&self, agg: MetricAgg) -> f64 {
        match agg {
            MetricAgg::Avg => self.sum / self.n as f64,
            MetricAgg::Sum => self.sum,
            MetricAgg::Min => self.min,
            MetricAgg::Max => self.max,
            MetricAgg::Last => self.last,
            MetricAgg::Count => self.n as f64,
        }
    }
}

/// Reads one metric as time series.
pub(crate) fn read(conn: &Connection, q: &MetricQuery) -> Result<Vec<MetricSeries>, StoreError> {
    let series: Vec<(i64, String, String)> = {
        let mut st = conn
            .prepare_cached(
                "SELECT id, resource, attributes FROM metric_series WHERE project = ?1 AND name = ?2",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![q.project, q.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)?
    };
    let from = q.from_unix_nano.map_or(i64::MIN, to_i64);
    let to = q.to_unix_nano.map_or(i64::MAX, to_i64);
    // group key → (attributes, bucket ms → (series → accumulator)).
    type Buckets = BTreeMap<i64, HashMap<i64, Acc>>;
    let mut groups: BTreeMap<String, (Attributes, Buckets)> = BTreeMap::new();
    let mut total = 0usize;
    let mut st = conn
        .prepare_cached(
            "SELECT time_ns, value, count, sum, min, max FROM metric_points \
             WHERE series = ?1 AND time_ns >= ?2 AND time_ns < ?3 ORDER BY time_ns",
        )
        .map_err(db_err)?;
    for (id, resource, attributes) in series {
        let resource: Attributes =
            serde_json::from_str(&resource).map_err(|e| json_err("resource", e))?;
        let attributes: Attributes =
            serde_json::from_str(&attributes).map_err(|e| json_err("metric attributes", e))?;
        let lookup = |k: &str| attributes.get(k).or_else(|| resource.get(k));
        if !q
            .attrs
            .iter()
            .all(|(k, v)| lookup(k).is_some_and(|a| attr_string(a) == *v))
        {
            continue;
        }
        let group_attrs: Attributes = match &q.group_by {
            Some(keys) => keys
                .iter()
                .filter_map(|k| lookup(k).map(|v| (k.clone(), v.clone())))
                .collect(),
            None => attributes.clone(),
        };
        let key = group_attrs
            .iter()
            .map(|(k, v)| format!("{k}={:?}", attr_string(v)))
            .collect::<Vec<_>>()
            .join(",");
        let entry = groups
            .entry(key)
            .or_insert_with(|| (group_attrs, BTreeMap::new()));
        let mut rows = st.query(params![id, from, to]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let time: i64 = r.get(0).map_err(db_err)?;
            let value: Option<f64> = r.get(1).map_err(db_err)?;
            let count: Option<i64> = r.get(2).map_err(db_err)?;
            let sum: Option<f64> = r.get(3).map_err(db_err)?;
            let v = match q.field {
                MetricField::Value => value.or_else(|| match (sum, count) {
                    (Some(s), Some(c)) if c > 0 => Some(s / c as f64),
                    _ => None,
                }),
                MetricField::Count => count.map(|c| c as f64),
                MetricField::Sum => sum,
                MetricField::Min => r.get(4).map_err(db_err)?,
                MetricField::Max => r.get(5).map_err(db_err)?,
            };
            let Some(v) = v else { continue };
            total += 1;
            if total > MAX_METRIC_POINTS {
                return Err(StoreError::InvalidInput {
                    field: "step",
                    message: format!(
                        "more than {MAX_METRIC_POINTS} points in range: narrow the range or set \
                         a larger step"
                    ),
                });
            }
            let ms = time.div_euclid(1_000_000);
            let bucket = match q.step_ms {
                Some(step) => {
                    let step = step.max(1) as i64;
                    ms - ms.rem_euclid(step)
                }
                None => ms,
            };
            entry
                .1
                .entry(bucket)
                .or_default()
                .entry(id)
                .or_default()
                .add(time, v);
        }
    }
    Ok(groups
        .into_iter()
        .filter(|(_, (_, buckets))| !buckets.is_empty())
        .map(|(key, (attributes, buckets))| MetricSeries {
            key,
            attributes,
            points: buckets
                .into_iter()
                .map(|(at, per_series)| {
                    let value = match q.agg {
                        // The latest value of each series, summed over the group's series.
                        MetricAgg::Last => per_series.values().map(|a| a.last).sum(),
                        agg => {
                            let mut all = Acc::default();
                            for a in per_series.values() {
                                if all.n == 0 {
                                    all = *a;
                                } else {
                                    all.n += a.n;
                                    all.sum += a.sum;
                                    all.min = all.min.min(a.min);
                                    all.max = all.max.max(a.max);
                                }
                            }
                            all.value(agg)
                        }
                    };
                    (at, value)
                })
                .collect(),
        })
        .collect())
}
