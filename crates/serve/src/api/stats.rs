//! `GET /api/v1/stats`: per group (model, service, provider, user, …) over a time range, calls,
//! errors, latency and time-to-first-token percentiles, tokens, cost and throughput — read from
//! the rollups only, so the cost of a request does not grow with the number of stored calls.
//!
//! Parameters: `group_by` (one of `model`, `request_model`, `response_model`, `service`,
//! `service_version`, `provider`, `operation`, `status`, `user_id`, `project`; absent: one group
//! keyed `all`), `from`/`to` (taken to the minute), and the filters `service`, `model`,
//! `provider`, `status`, `operation`, `user_id`. `group_by=user_id` (and a `user_id` filter)
//! reads the per-user rollup, which other filters cannot narrow, and is taken to the day.
//! `limit` (1–1000, default 1000) keeps the groups with the most calls; `total_groups` says how
//! many there were.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use sightline_model::DdSketch;
use sightline_store::{
    busiest_first, RollupAggregate, RollupDimension, RollupQuery, RollupRow, SharedStore,
    SketchSet, StoreError,
};

use super::params::{query_pairs, ListParams};
use crate::error::ApiError;

/// Body of `GET /api/v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StatsResponse {
    /// One entry per group, most calls first, at most `limit` (default and most: 1000).
    pub groups: Vec<StatsGroup>,
    /// Groups in the range, before `limit`.
    pub total_groups: usize,
}

/// Most groups returned.
pub const MAX_GROUPS: usize = 1000;

/// Percentiles of a distribution; `null` where nothing was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Mean (exact).
    pub mean: Option<f64>,
    /// Values measured.
    pub count: i64,
}

impl Percentiles {
    /// Reads a sketch.
    pub fn of(s: &DdSketch) -> Self {
        let count = s.count();
        Self {
            p50: s.quantile(0.5),
            p90: s.quantile(0.9),
            p95: s.quantile(0.95),
            p99: s.quantile(0.99),
            mean: (count > 0).then(|| s.sum() / count as f64),
            count,
        }
    }
}

/// One group's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StatsGroup {
    /// The group's value of the `group_by` dimension (`all` without one; `""` when unknown).
    pub key: String,
    /// LLM calls.
    pub calls: i64,
    /// Failed calls.
    pub errors: i64,
    /// errors / calls.
    pub error_rate: f64,
    /// Latency in milliseconds.
    pub latency_ms: Percentiles,
    /// Time to first token in milliseconds (streaming calls).
    pub ttft_ms: Percentiles,
    /// Time per output token in milliseconds.
    pub time_per_output_token_ms: Percentiles,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Input plus output tokens.
    pub total_tokens: i64,
    /// Cache read tokens.
    pub cache_read_tokens: i64,
    /// Cache write tokens.
    pub cache_write_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Summed cost in USD; `null` when no call was priced.
    pub cost_usd: Option<f64>,
    /// Calls with a known cost.
    pub priced_calls: i64,
    /// Median output tokens per second of the calls that report it.
    pub output_tokens_per_s: Option<f64>,
    /// Percentiles of output tokens per second.
    pub output_tokens_per_s_percentiles: Percentiles,
    /// Calls per second over the range; `null` when the range has no start.
    pub throughput_per_s: Option<f64>,
}

impl StatsGroup {
    /// Shapes an aggregate; `range_secs` is the range's length for throughput.
    pub fn new(key: String, a: &RollupAggregate, range_secs: Option<f64>) -> Self {
        Self {
            key,
            calls: a.calls,
            errors: a.errors,
            error_rate: if a.calls > 0 {
                a.errors as f64 / a.calls as f64
            } else {
                0.0
            },
            latency_ms: Percentiles::of(&a.latency_ms),
            ttft_ms: Percentiles::of(&a.ttft_ms),
            time_per_output_token_ms: Percentiles::of(&a.tpot_ms),
            input_tokens: a.input_tokens,
            output_tokens: a.output_tokens,
            total_tokens: a.input_tokens + a.output_tokens,
            cache_read_tokens: a.cache_read_tokens,
            cache_write_tokens: a.cache_write_tokens,
            reasoning_tokens: a.reasoning_tokens,
            cost_usd: a.cost(),
            priced_calls: a.priced_calls,
            output_tokens_per_s: a.output_tokens_per_s.quantile(0.5),
            output_tokens_per_s_percentiles: Percentiles::of(&a.output_tokens_per_s),
            throughput_per_s: range_secs.filter(|s| *s > 0.0).map(|s| a.calls as f64 / s),
        }
    }
}

/// Reads `group_by`: one rolled-up dimension.
pub(crate) fn parse_group_by(
    pairs: &[(String, String)],
) -> Result<Option<RollupDimension>, ApiError> {
    let mut found = None;
    for (k, v) in pairs {
        if k != "group_by" || v.is_empty() {
            continue;
        }
        if found.is_some() {
            return Err(invalid(
                "group_by",
                "`group_by` is given more than once".into(),
            ));
        }
        found = Some(RollupDimension::parse(v).ok_or_else(|| {
            invalid(
                "group_by",
                format!(
                    "`group_by` must be one of {}, got `{}`",
                    RollupDimension::ALL
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                    v.chars().take(64).collect::<String>()
                ),
            )
        })?);
    }
    Ok(found)
}

/// The single value of an extra parameter, if given and not empty.
pub(crate) fn single<'a>(
    pairs: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    let mut found = None;
    for (k, v) in pairs {
        if k == name && !v.is_empty() {
            if found.is_some() {
                return Err(invalid(name, format!("`{name}` is given more than once")));
            }
            found = Some(v.as_str());
        }
    }
    Ok(found)
}

/// A 400 naming `field`.
pub(crate) fn invalid(field: &'static str, message: String) -> ApiError {
    ApiError::Store(StoreError::InvalidInput { field, message })
}

/// Unix nanoseconds now.
pub(crate) fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `GET /api/v1/stats`.
pub async fn stats(
    State(store): State<SharedStore>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Json<StatsResponse>, ApiError> {
    let pairs = query_pairs(&uri)?;
    let params = ListParams::parse(&pairs, &headers)?;
    let group_by = parse_group_by(&pairs)?;
    let operation = single(&pairs, "operation")?.map(str::to_string);
    let filter = params.filter;
    let range_secs = filter.from_unix_nano.map(|from| {
        let to = filter.to_unix_nano.unwrap_or_else(now_unix_nano);
        to.saturating_sub(from) as f64 / 1e9
    });
    let limit = if single(&pairs, "limit")?.is_some() {
        params.page.limit
    } else {
        MAX_GROUPS
    };
    let query = RollupQuery {
        filter,
        operation,
        group_by: group_by.into_iter().collect(),
        step_secs: None,
        sketches: SketchSet::ALL,
        // Percentiles are shown for the groups returned only.
        sketch_top: Some(limit),
    };
    let rows = store.rollups(&query).await?;
    // Most calls first, as the store chose the groups whose sketches it read. The order is
    // sorted, not the rows (thousands of them, each with its sketches).
    let mut order: Vec<&RollupRow> = rows.iter().collect();
    order.sort_by(|a, b| busiest_first((a.aggregate.calls, &a.key), (b.aggregate.calls, &b.key)));
    let total_groups = order.len();
    order.truncate(limit);
    let groups: Vec<StatsGroup> = order
        .iter()
        .map(|r| {
            let key = r.key.first().cloned().unwrap_or_else(|| "all".to_string());
            StatsGroup::new(key, &r.aggregate, range_secs)
        })
        .collect();
    Ok(Json(StatsResponse {
        groups,
        total_groups,
    }))
}
