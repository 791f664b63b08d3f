//! `GET /api/v1/timeseries?metric=…&step=…&group_by=…`: one series per group, points
//! `[unix_ms, value]`.
//!
//! Two kinds of metric answer here:
//!
//! - **LLM-call metrics**, read from the rollups: `calls`, `errors`, `error_rate`, `throughput`
//!   (calls/s), `latency_p50|p90|p95|p99|mean` (ms), `ttft_…`, `tpot_…` (time per output token,
//!   ms), `output_tokens_per_s` (median) and `output_tokens_per_s_p…`, `input_tokens`,
//!   `output_tokens`, `total_tokens`, `cache_read_tokens`, `cache_write_tokens`,
//!   `reasoning_tokens`, `cost_usd`. `group_by` is a rolled-up dimension; `step` a whole number
//!   of minutes (default: about 120 points over the range, whole hours for ranges of 12 hours or
//!   more, which read hour rows rather than minute rows). Buckets are aligned to multiples of
//!   the step; counts, tokens and cost are 0 in buckets without calls, percentiles are left out.
//! - **Any other name is an OTLP metric** sent to `/v1/metrics`: `group_by` is a comma-separated
//!   list of attribute keys (default: every attribute set apart), `attr.<key>=<value>` filters,
//!   `field` picks `value` (default; the mean for histograms and summaries), `count`, `sum`,
//!   `min` or `max`, `agg` combines points of a bucket and series of a group (`avg` default,
//!   `sum`, `min`, `max`, `last`, `count`), and `step` is optional (absent: every point as sent).
//!
//! The range defaults to the last 24 hours.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use sightline_model::DdSketch;
use sightline_store::{
    MetricAgg, MetricField, MetricQuery, RollupAggregate, RollupQuery, SharedStore, SketchSet,
};

use super::params::{query_pairs, ListParams};
use super::stats::{invalid, now_unix_nano, parse_group_by, single};
use crate::error::ApiError;

/// Body of `GET /api/v1/timeseries`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TimeseriesResponse {
    /// The metric read.
    pub metric: String,
    /// Bucket width in milliseconds; `null` for raw OTLP points.
    pub step_ms: Option<u64>,
    /// One series per group.
    pub series: Vec<Series>,
}

/// One series.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Series {
    /// The group (`all` without `group_by`).
    pub key: String,
    /// `[unix_ms, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
    /// For OTLP metrics, the grouping attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

const DEFAULT_RANGE_NS: u64 = 24 * 3600 * 1_000_000_000;
/// Most buckets a request may ask for.
pub const MAX_POINTS: u64 = 20_000;
const NICE_STEPS: [u64; 10] = [
    60,
    300,
    600,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
];

/// What to compute per bucket from a rollup aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CallMetric {
    Calls,
    Errors,
    ErrorRate,
    Throughput,
    Tokens(TokenKind),
    Cost,
    Quantile(SketchKind, Option<f64>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TokenKind {
    Input,
    Output,
    Total,
    CacheRead,
    CacheWrite,
    Reasoning,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SketchKind {
    Latency,
    Ttft,
    Tpot,
    Tps,
}

impl CallMetric {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "calls" => Self::Calls,
            "errors" => Self::Errors,
            "error_rate" => Self::ErrorRate,
            "throughput" => Self::Throughput,
            "input_tokens" => Self::Tokens(TokenKind::Input),
            "output_tokens" => Self::Tokens(TokenKind::Output),
            "total_tokens" => Self::Tokens(TokenKind::Total),
            "cache_read_tokens" => Self::Tokens(TokenKind::CacheRead),
            "cache_write_tokens" => Self::Tokens(TokenKind::CacheWrite),
            "reasoning_tokens" => Self::Tokens(TokenKind::Reasoning),
            "cost_usd" => Self::Cost,
            "output_tokens_per_s" => Self::Quantile(SketchKind::Tps, Some(0.5)),
            _ => {
                let (family, stat) = name.rsplit_once('_')?;
                let kind = match family {
                    "latency" => SketchKind::Latency,
                    "ttft" => SketchKind::Ttft,
                    "tpot" => SketchKind::Tpot,
                    "output_tokens_per_s" => SketchKind::Tps,
                    _ => return None,
                };
                let q = match stat {
                    "mean" => None,
                    "p50" => Some(0.5),
                    "p90" => Some(0.9),
                    "p95" => Some(0.95),
                    "p99" => Some(0.99),
                    _ => return None,
                };
                Self::Quantile(kind, q)
            }
        })
    }

    fn sketches(self) -> SketchSet {
        let mut s = SketchSet::default();
        if let Self::Quantile(kind, _) = self {
            match kind {
                SketchKind::Latency => s.latency = true,
                SketchKind::Ttft => s.ttft = true,
                SketchKind::Tpot => s.tpot = true,
                SketchKind::Tps => s.tokens_per_s = true,
            }
        }
        s
    }

    /// Whether an empty bucket reads 0 (rather than no point).
    fn fills_zero(self) -> bool {
        !matches!(self, Self::Quantile(..) | Self::ErrorRate)
    }

    fn value(self, a: &RollupAggregate, step_secs: u64) -> Option<f64> {
        let sketch = |k: SketchKind| -> &DdSketch {
            match k {
                SketchKind::Latency => &a.latency_ms,
                SketchKind::Ttft => &a.ttft_ms,
                SketchKind::Tpot => &a.tpot_ms,
                SketchKind::Tps => &a.output_tokens_per_s,
            }
        };
        match self {
            Self::Calls => Some(a.calls as f64),
            Self::Errors => Some(a.errors as f64),
            Self::ErrorRate => (a.calls > 0).then(|| a.errors as f64 / a.calls as f64),
            Self::Throughput => Some(a.calls as f64 / step_secs as f64),
            Self::Tokens(t) => Some(match t {
                TokenKind::Input => a.input_tokens,
                TokenKind::Output => a.output_tokens,
                TokenKind::Total => a.input_tokens + a.output_tokens,
                TokenKind::CacheRead => a.cache_read_tokens,
                TokenKind::CacheWrite => a.cache_write_tokens,
                TokenKind::Reasoning => a.reasoning_tokens,
            } as f64),
            Self::Cost => Some(a.cost_usd),
            Self::Quantile(k, Some(q)) => sketch(k).quantile(q),
            Self::Quantile(k, None) => {
                let s = sketch(k);
                (s.count() > 0).then(|| s.sum() / s.count() as f64)
            }
        }
    }
}

/// Reads `step`: seconds, or a number with `ms`, `s`, `m`, `h` or `d`; in milliseconds.
fn parse_step(v: &str) -> Result<u64, ApiError> {
    let bad = || {
        invalid(
            "step",
            format!(
                "`step` must be a positive duration such as `60`, `30s`, `5m`, `1h` or `1d`, got `{}`",
                v.chars().take(64).collect::<String>()
            ),
        )
    };
    let (num, unit_ms) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = v.strip_suffix('h') {
        (n, 3_600_000)
    } else if let Some(n) = v.strip_suffix('d') {
        (n, 86_400_000)
    } else {
        (v, 1000)
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    n.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(bad)
}

/// `GET /api/v1/timeseries`.
pub async fn timeseries(
    State(store): State<SharedStore>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Json<TimeseriesResponse>, ApiError> {
    let pairs = query_pairs(&uri)?;
    let params = ListParams::parse(&pairs, &headers)?;
    let metric = single(&pairs, "metric")?
        .ok_or_else(|| invalid("metric", "`metric` is required".into()))?
        .to_string();
    let mut filter = params.filter;
    let to = filter.to_unix_nano.unwrap_or_else(now_unix_nano);
    let from = filter
        .from_unix_nano
        .unwrap_or_else(|| to.saturating_sub(DEFAULT_RANGE_NS));
    filter.from_unix_nano = Some(from);
    filter.to_unix_nano = Some(to);
    let step_ms = single(&pairs, "step")?.map(parse_step).transpose()?;
    let range_ms = (to - from) / 1_000_000;

    if let Some(call_metric) = CallMetric::parse(&metric) {
        let step_ms = match step_ms {
            Some(ms) if ms % 60_000 != 0 => {
                return Err(invalid(
                    "step",
                    format!("`step` must be a whole number of minutes for `{metric}`"),
                ))
            }
            Some(ms) => ms,
            None => {
                // About 120 points; from 12 hours on, whole hours, so that hour rows are read
                // rather than minute rows.
                let mut want = (range_ms / 1000).div_ceil(120).max(60);
                if range_ms >= 12 * 3_600_000 {
                    want = want.max(3600);
                }
                NICE_STEPS
                    .iter()
                    .copied()
                    .find(|s| *s >= want)
                    .unwrap_or_else(|| want.div_ceil(86_400) * 86_400)
                    * 1000
            }
        };
        let step = step_ms / 1000;
        let first = (from / 1_000_000_000) as i64;
        let first = first - first.rem_euclid(step as i64);
        let last = to.div_ceil(1_000_000_000) as i64;
        let buckets = (last - first).max(0) as u64 / step + 1;
        if buckets > MAX_POINTS {
            return Err(invalid(
                "step",
                format!("the range holds {buckets} steps; at most {MAX_POINTS}: set a larger step"),
            ));
        }
        let group_by = parse_group_by(&pairs)?;
        let query = RollupQuery {
            filter,
            operation: single(&pairs, "operation")?.map(str::to_string),
            group_by: group_by.into_iter().collect(),
            step_secs: Some(step),
            sketches: call_metric.sketches(),
            sketch_top: None,
        };
        let rows = store.rollups(&query).await?;
        let mut series: Vec<Series> = Vec::new();
        for r in rows {
            let key = r.key.first().cloned().unwrap_or_else(|| "all".to_string());
            if series.last().is_none_or(|s| s.key != key) {
                series.push(Series {
                    key: key.clone(),
                    points: Vec::new(),
                    attributes: None,
                });
            }
            let (Some(at), Some(s)) = (r.bucket_unix_secs, series.last_mut()) else {
                continue;
            };
            if let Some(v) = call_metric.value(&r.aggregate, step) {
                s.points.push((at * 1000, v));
            }
        }
        if call_metric.fills_zero() {
            for s in &mut series {
                s.points = fill(&s.points, first, last, step as i64);
            }
            if series.is_empty() && group_by.is_none() {
                series.push(Series {
                    key: "all".into(),
                    points: fill(&[], first, last, step as i64),
                    attributes: None,
                });
            }
        }
        return Ok(Json(TimeseriesResponse {
            metric,
            step_ms: Some(step_ms),
            series,
        }));
    }

    // An OTLP metric.
    let group_by = single(&pairs, "group_by")?.map(|v| {
        v.split(',')
            .map(|k| {
                k.trim()
                    .strip_prefix("attr.")
                    .unwrap_or(k.trim())
                    .to_string()
            })
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>()
    });
    let field = match single(&pairs, "field")? {
        None | Some("value") => MetricField::Value,
        Some("count") => MetricField::Count,
        Some("sum") => MetricField::Sum,
        Some("min") => MetricField::Min,
        Some("max") => MetricField::Max,
        Some(other) => {
            return Err(invalid(
                "field",
                format!("`field` must be value, count, sum, min or max, got `{other}`"),
            ))
        }
    };
    let agg = match single(&pairs, "agg")? {
        None | Some("avg") => MetricAgg::Avg,
        Some("sum") => MetricAgg::Sum,
        Some("min") => MetricAgg::Min,
        Some("max") => MetricAgg::Max,
        Some("last") => MetricAgg::Last,
        Some("count") => MetricAgg::Count,
        Some(other) => {
            return Err(invalid(
                "agg",
                format!("`agg` must be avg, sum, min, max, last or count, got `{other}`"),
            ))
        }
    };
    if let Some(ms) = step_ms {
        if range_ms / ms > MAX_POINTS {
            return Err(invalid(
                "step",
                format!("the range holds more than {MAX_POINTS} steps: set a larger step"),
            ));
        }
    }
    let query = MetricQuery {
        project: filter.project,
        name: metric.clone(),
        from_unix_nano: Some(from),
        to_unix_nano: Some(to),
        attrs: filter.attrs,
        group_by,
        step_ms,
        field,
        agg,
    };
    let series = store
        .metric_series(&query)
        .await?
        .into_iter()
        .map(|s| Series {
            key: s.key,
            points: s.points,
            attributes: Some(s.attributes),
        })
        .collect();
    Ok(Json(TimeseriesResponse {
        metric,
        step_ms,
        series,
    }))
}

/// Points at every step from `first` to `last` (unix seconds), 0 where `points` has none.
fn fill(points: &[(i64, f64)], first: i64, last: i64, step: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    let mut it = points.iter().peekable();
    let mut at = first;
    while at < last {
        let ms = at * 1000;
        while it.peek().is_some_and(|p| p.0 < ms) {
            it.next();
        }
        match it.peek() {
            Some(p) if p.0 == ms => out.push(**p),
            _ => out.push((ms, 0.0)),
        }
        at += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        assert_eq!(
            CallMetric::parse("latency_p95"),
            Some(CallMetric::Quantile(SketchKind::Latency, Some(0.95)))
        );
        assert_eq!(
            CallMetric::parse("output_tokens_per_s_p99"),
            Some(CallMetric::Quantile(SketchKind::Tps, Some(0.99)))
        );
        assert_eq!(
            CallMetric::parse("ttft_mean"),
            Some(CallMetric::Quantile(SketchKind::Ttft, None))
        );
        assert_eq!(CallMetric::parse("gpu.utilization"), None);
        assert_eq!(CallMetric::parse("latency_p42"), None);
    }

    #[test]
    fn steps() {
        assert_eq!(parse_step("60").unwrap(), 60_000);
        assert_eq!(parse_step("5m").unwrap(), 300_000);
        assert_eq!(parse_step("250ms").unwrap(), 250);
        assert_eq!(parse_step("1d").unwrap(), 86_400_000);
        for bad in ["0", "-1", "x", "1w", ""] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fills_missing_buckets() {
        let p = fill(&[(120_000, 3.0)], 0, 240, 60);
        assert_eq!(
            p,
            vec![(0, 0.0), (60_000, 0.0), (120_000, 3.0), (180_000, 0.0)]
        );
    }
}
