//! Types of the metrics half of the store: LLM-call rollups and OTLP metric points.
//!
//! **Rollups** are written by the store itself, in the same transaction as the calls they
//! summarize: per minute × project × service × service version × provider × request model ×
//! response model × operation × status, the call and error counts, token and cost sums, and
//! DDSketches of latency, time to first token, time per output token and output tokens per
//! second. Hour and day rollups are the minute ones merged at write time. A separate rollup per
//! day × project × user (calls, errors, tokens, cost, latency sketch) serves per-user statistics:
//! user ids are unbounded, so they are not part of the main key, and a finer per-user rollup
//! would cost a row per active user per transaction at each resolution; per-user ranges are taken
//! to the day. Reads ([`RollupQuery`]) never touch raw calls.
//!
//! **Metric points** are what OTLP metrics exporters send: gauges, sums, histograms (explicit
//! and exponential) and summaries, each point stored with its resource and point attributes in a
//! series, read back as time series ([`MetricQuery`]).

use serde::{Deserialize, Serialize};
use sightline_model::{Attributes, DdSketch};

use crate::query::Filter;

/// A rolled-up dimension to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollupDimension {
    /// The response model when known, else the request model.
    Model,
    /// The request model.
    RequestModel,
    /// The response model.
    ResponseModel,
    /// `service.name`.
    Service,
    /// `service.version`.
    ServiceVersion,
    /// Provider.
    Provider,
    /// Operation (`chat`, `embeddings`, …).
    Operation,
    /// `ok` or `error`.
    Status,
    /// End user (read from the per-user rollup).
    UserId,
    /// Project (meaningful when the query's project is empty: every project).
    Project,
}

impl RollupDimension {
    /// Every dimension with its parameter name.
    pub const ALL: [(&'static str, RollupDimension); 10] = [
        ("model", Self::Model),
        ("request_model", Self::RequestModel),
        ("response_model", Self::ResponseModel),
        ("service", Self::Service),
        ("service_version", Self::ServiceVersion),
        ("provider", Self::Provider),
        ("operation", Self::Operation),
        ("status", Self::Status),
        ("user_id", Self::UserId),
        ("project", Self::Project),
    ];

    /// The dimension a parameter value names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
    }

    /// The parameter name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, d)| *d == self)
            .map_or("", |(n, _)| n)
    }
}

/// Which sketches a rollup read needs (the others are not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SketchSet {
    /// Latency (duration) in milliseconds.
    pub latency: bool,
    /// Time to first token in milliseconds.
    pub ttft: bool,
    /// Time per output token in milliseconds.
    pub tpot: bool,
    /// Output tokens per second.
    pub tokens_per_s: bool,
    /// Input and output tokens per call.
    pub tokens: bool,
}

impl SketchSet {
    /// Every sketch.
    pub const ALL: Self = Self {
        latency: true,
        ttft: true,
        tpot: true,
        tokens_per_s: true,
        tokens: true,
    };

    /// No sketch: sums only.
    pub const NONE: Self = Self {
        latency: false,
        ttft: false,
        tpot: false,
        tokens_per_s: false,
        tokens: false,
    };
}

/// A read of rollups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupQuery {
    /// Project (empty: every project), time range and filters. `from`/`to` are taken to the minute (`from` rounded
    /// down, `to` up). `service`, `model`, `provider`, `status` and `user_id` filter; `session_id`,
    /// `q` and attribute filters are not rolled up and are refused.
    pub filter: Filter,
    /// Operation to keep, if any.
    pub operation: Option<String>,
    /// Dimensions to group by; empty: one group.
    pub group_by: Vec<RollupDimension>,
    /// Bucket width in seconds (a multiple of 60) for a time series; `None`: one row per group
    /// over the whole range.
    pub step_secs: Option<u64>,
    /// Sketches to read.
    pub sketches: SketchSet,
    /// Without a step: read the sketches of only this many groups, the first in
    /// [`busiest_first`] order. The other groups come with their sums and empty sketches,
    /// so a breakdown over thousands of users that shows the busiest merges only their sketches.
    pub sketch_top: Option<usize>,
}

/// Sums and sketches over a set of calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupAggregate {
    /// Calls.
    pub calls: i64,
    /// Failed calls.
    pub errors: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cache read tokens.
    pub cache_read_tokens: i64,
    /// Cache write tokens.
    pub cache_write_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Calls with a known cost.
    pub priced_calls: i64,
    /// Summed cost in USD of the priced calls.
    pub cost_usd: f64,
    /// Latency in milliseconds.
    pub latency_ms: DdSketch,
    /// Time to first token in milliseconds (streaming calls).
    pub ttft_ms: DdSketch,
    /// Time per output token in milliseconds.
    pub tpot_ms: DdSketch,
    /// Output tokens per second.
    pub output_tokens_per_s: DdSketch,
    /// Input tokens per call (calls that reported them).
    pub input_tokens_per_call: DdSketch,
    /// Output tokens per call (calls that reported them).
    pub output_tokens_per_call: DdSketch,
}

impl RollupAggregate {
    /// Adds `other` into this aggregate.
    pub fn merge(&mut self, other: &RollupAggregate) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.priced_calls += other.priced_calls;
        self.cost_usd += other.cost_usd;
        self.latency_ms.merge(&other.latency_ms);
        self.ttft_ms.merge(&other.ttft_ms);
        self.tpot_ms.merge(&other.tpot_ms);
        self.output_tokens_per_s.merge(&other.output_tokens_per_s);
        self.input_tokens_per_call
            .merge(&other.input_tokens_per_call);
        self.output_tokens_per_call
            .merge(&other.output_tokens_per_call);
    }

    /// Cost, `None` when no call was priced.
    pub fn cost(&self) -> Option<f64> {
        (self.priced_calls > 0).then_some(self.cost_usd)
    }
}

/// One group (and, for a time series, one bucket) of a rollup read.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    /// The group's value of each `group_by` dimension, in order (`""` where unknown).
    pub key: Vec<String>,
    /// Start of the bucket, unix seconds; `None` without a step.
    pub bucket_unix_secs: Option<i64>,
    /// The numbers.
    pub aggregate: RollupAggregate,
}

/// The order a breakdown lists its groups in, given each group's calls and key: most calls
/// first, ties by key. [`RollupQuery::sketch_top`] keeps the sketches of the first groups in it.
pub fn busiest_first(a: (i64, &[String]), b: (i64, &[String])) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

/// The OTLP metric data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Gauge.
    Gauge,
    /// Sum (counter or up-down counter).
    Sum,
    /// Histogram with explicit bounds.
    Histogram,
    /// Exponential (base-2) histogram.
    ExponentialHistogram,
    /// Summary (quantiles).
    Summary,
}

impl MetricKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Sum => "sum",
            Self::Histogram => "histogram",
            Self::ExponentialHistogram => "exponential_histogram",
            Self::Summary => "summary",
        }
    }

    /// The kind a stored name names.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Gauge,
            Self::Sum,
            Self::Histogram,
            Self::ExponentialHistogram,
            Self::Summary,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One OTLP metric data point with its metric and attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// Project.
    pub project: String,
    /// Metric name as sent.
    pub name: String,
    /// Data type.
    pub kind: MetricKind,
    /// Unit.
    pub unit: String,
    /// Description.
    pub description: String,
    /// Resource attributes (with `service.name`).
    pub resource: Attributes,
    /// Instrumentation scope name.
    pub scope: String,
    /// The point's own attributes.
    pub attributes: Attributes,
    /// Start of the aggregation window (cumulative points), unix nanoseconds; 0 when unset.
    pub start_time_unix_nano: u64,
    /// When the point was recorded, unix nanoseconds.
    pub time_unix_nano: u64,
    /// Gauge or sum value.
    pub value: Option<f64>,
    /// Histogram or summary count.
    pub count: Option<u64>,
    /// Histogram or summary sum.
    pub sum: Option<f64>,
    /// Histogram minimum.
    pub min: Option<f64>,
    /// Histogram maximum.
    pub max: Option<f64>,
    /// Everything else (bounds and bucket counts, exponential buckets, quantiles, temporality,
    /// monotonicity, exemplars), as JSON.
    pub data: serde_json::Value,
}

/// What value of a point a time series reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricField {
    /// Gauge or sum value; for histograms and summaries the mean (sum / count).
    #[default]
    Value,
    /// Histogram or summary count.
    Count,
    /// Histogram or summary sum.
    Sum,
    /// Histogram minimum.
    Min,
    /// Histogram maximum.
    Max,
}

/// How the points of one bucket (and of every series in a group) combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricAgg {
    /// Mean.
    #[default]
    Avg,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// The latest point's value (per series; summed over the series of a group).
    Last,
    /// Number of points.
    Count,
}

/// A read of metric points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricQuery {
    /// Project.
    pub project: String,
    /// Metric name.
    pub name: String,
    /// Inclusive lower bound, unix nanoseconds.
    pub from_unix_nano: Option<u64>,
    /// Exclusive upper bound, unix nanoseconds.
    pub to_unix_nano: Option<u64>,
    /// Point or resource attributes that must equal the given string.
    pub attrs: Vec<(String, String)>,
    /// Attribute keys to group series by; `None`: every series (distinct attribute set) apart.
    pub group_by: Option<Vec<String>>,
    /// Bucket width in milliseconds; `None`: every distinct timestamp.
    pub step_ms: Option<u64>,
    /// Value read from each point.
    pub field: MetricField,
    /// How values combine.
    pub agg: MetricAgg,
}

/// One series of a metric read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSeries {
    /// `name="value"` pairs of the grouping attributes, comma separated.
    pub key: String,
    /// The grouping attributes.
    pub attributes: Attributes,
    /// `[unix_ms, value]`, in time order.
    pub points: Vec<(i64, f64)>,
}

/// Most points one metric read returns.
pub const MAX_METRIC_POINTS: usize = 200_000;
