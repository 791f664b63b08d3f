//! `GET /metrics`: Prometheus text exposition (format 0.0.4).
//!
//! The page is the concatenation of every registered [`MetricsSource`]. This crate provides
//! [`LlmMetrics`], the LLM-call metrics under the OTel GenAI names converted to Prometheus
//! (`gen_ai.client.operation.duration` → `gen_ai_client_operation_duration_seconds`, …), read from
//! the all-time day rollups at scrape time, so they agree with `/api/v1/stats` and survive
//! restarts. Label cardinality is bounded: models beyond the `top_models` most called are
//! reported as `other`. The binary adds sources for the ingest pipeline and the store (and any
//! component with counters of its own: implement [`MetricsSource`] and push it on
//! [`MetricsSources`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sightline_model::DdSketch;
use sightline_store::{
    Filter, RollupAggregate, RollupDimension, RollupQuery, SharedStore, SketchSet,
};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OTel's advisory bucket boundaries for `gen_ai.client.operation.duration`, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Boundaries for time to first token, in seconds (OTel's advisory ones for
/// `gen_ai.server.time_to_first_token`).
pub const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// OTel's advisory bucket boundaries for `gen_ai.client.token.usage`, in tokens. Like every
/// histogram here, the counts come from a DDSketch, so a value within 1% of a boundary may be
/// counted on either side of it (4 tokens can land in `le="16"`, 1,030 in `le="1024"`).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Something that writes metric families into the exposition.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// Appends complete metric families (`# HELP`, `# TYPE`, samples) to `out`.
    async fn render(&self, out: &mut String);
}

/// The sources `/metrics` renders, in order.
#[derive(Clone, Default)]
pub struct MetricsSources(pub Vec<Arc<dyn MetricsSource>>);

impl MetricsSources {
    /// Adds a source.
    pub fn push(&mut self, source: Arc<dyn MetricsSource>) {
        self.0.push(source);
    }
}

/// The `/metrics` route over `sources`.
pub fn router(sources: MetricsSources) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::new(sources))
}

async fn metrics(State(sources): State<Arc<MetricsSources>>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    for s in &sources.0 {
        s.render(&mut out).await;
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response()
}

/// Writes one family's header.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one sample.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Writes a histogram's samples from a sketch of values in `scale` units per exported unit
/// (1000 for milliseconds exported as seconds). `count` is the exact count.
pub fn histogram_from_sketch(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
    sketch: &DdSketch,
    scale: f64,
) {
    let bucket = format!("{name}_bucket");
    for b in bounds {
        let le = number(*b);
        let mut l = labels.to_vec();
        l.push(("le", &le));
        sample(out, &bucket, &l, sketch.count_at_most(b * scale) as f64);
    }
    let mut l = labels.to_vec();
    l.push(("le", "+Inf"));
    sample(out, &bucket, &l, sketch.count() as f64);
    sample(out, &format!("{name}_sum"), labels, sketch.sum() / scale);
    sample(out, &format!("{name}_count"), labels, sketch.count() as f64);
}

/// A group's labels, borrowed from its rollup key (in [`LABELS`] order).
fn group_labels(key: &[String]) -> Vec<(&'static str, &str)> {
    LABELS
        .iter()
        .copied()
        .zip(key.iter().map(String::as_str))
        .collect()
}

/// `base` plus the `gen_ai_token_type` label.
fn with_token_type<'a>(
    base: &[(&'static str, &'a str)],
    ty: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut v = base.to_vec();
    v.push(("gen_ai_token_type", ty));
    v
}

/// Settings of [`LlmMetrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmMetricsConfig {
    /// Models reported by name (the most called); the others are reported as `other`.
    pub top_models: usize,
}

impl Default for LlmMetricsConfig {
    fn default() -> Self {
        Self { top_models: 20 }
    }
}

/// The LLM-call metrics, read from the store's rollups.
pub struct LlmMetrics {
    store: SharedStore,
    config: LlmMetricsConfig,
}

impl LlmMetrics {
    /// Metrics over `store`.
    pub fn new(store: SharedStore, config: LlmMetricsConfig) -> Self {
        Self { store, config }
    }
}

/// Label names, in the order of the rollup grouping below.
const LABELS: [&str; 5] = [
    "project",
    "service_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_operation_name",
];

#[async_trait]
impl MetricsSource for LlmMetrics {
    async fn render(&self, out: &mut String) {
        let query = RollupQuery {
            // Every project, all time.
            filter: Filter::default(),
            operation: None,
            group_by: vec![
                RollupDimension::Project,
                RollupDimension::Service,
                RollupDimension::Provider,
                RollupDimension::RequestModel,
                RollupDimension::Operation,
            ],
            step_secs: None,
            sketches: SketchSet {
                latency: true,
                ttft: true,
                tokens: true,
                ..SketchSet::default()
            },
            sketch_top: None,
        };
        let rows = match self.store.rollups(&query).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read rollups for /metrics");
                family(
                    out,
                    "sightline_metrics_read_errors",
                    "gauge",
                    "1 when the LLM-call metrics could not be read from the store.",
                );
                sample(out, "sightline_metrics_read_errors", &[], 1.0);
                return;
            }
        };
        // The most called models keep their name.
        let mut per_model: HashMap<&str, i64> = HashMap::new();
        for r in &rows {
            *per_model.entry(r.key[3].as_str()).or_default() += r.aggregate.calls;
        }
        let mut ranked: Vec<(&str, i64)> = per_model.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let kept: std::collections::HashSet<&str> = ranked
            .iter()
            .take(self.config.top_models)
            .map(|(m, _)| *m)
            .collect();
        let mut groups: BTreeMap<Vec<String>, RollupAggregate> = BTreeMap::new();
        for r in &rows {
            let mut key = r.key.clone();
            if !kept.contains(key[3].as_str()) {
                key[3] = "other".into();
            }
            groups.entry(key).or_default().merge(&r.aggregate);
        }

        let name = "gen_ai_client_operation_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "GenAI operation duration (OTel gen_ai.client.operation.duration).",
        );
        for (key, a) in &groups {
            let refs = group_labels(key);
            histogram_from_sketch(out, name, &refs, &DURATION_BUCKETS, &a.latency_ms, 1000.0);
        }

        let name = "gen_ai_server_time_to_first_token_seconds";
        family(out, name, "histogram", "Time to first token of streaming GenAI calls (OTel gen_ai.server.time_to_first_token).");
        for (key, a) in &groups {
            if a.ttft_ms.count() == 0 {
                continue;
            }
            let refs = group_labels(key);
            histogram_from_sketch(out, name, &refs, &TTFT_BUCKETS, &a.ttft_ms, 1000.0);
        }

        let name = "gen_ai_client_token_usage";
        family(out, name, "histogram", "Tokens used per GenAI call (OTel gen_ai.client.token.usage), by token type; calls that reported their usage.");
        for (key, a) in &groups {
            let base = group_labels(key);
            for (ty, sketch) in [
                ("input", &a.input_tokens_per_call),
                ("output", &a.output_tokens_per_call),
            ] {
                if sketch.count() == 0 {
                    continue;
                }
                let refs = with_token_type(&base, ty);
                histogram_from_sketch(out, name, &refs, &TOKEN_BUCKETS, sketch, 1.0);
            }
        }

        for (name, help, value) in [
            (
                "sightline_gen_ai_calls_total",
                "GenAI calls stored.",
                (|a: &RollupAggregate| a.calls as f64) as fn(&RollupAggregate) -> f64,
            ),
            (
                "sightline_gen_ai_errors_total",
                "GenAI calls that failed.",
                |a| a.errors as f64,
            ),
            (
                "sightline_gen_ai_cost_usd_total",
                "Cost of the priced GenAI calls in USD.",
                |a| a.cost_usd,
            ),
            (
                "sightline_gen_ai_priced_calls_total",
                "GenAI calls with a known cost.",
                |a| a.priced_calls as f64,
            ),
        ] {
            family(out, name, "counter", help);
            for (key, a) in &groups {
                let refs = group_labels(key);
                sample(out, name, &refs, value(a));
            }
        }
        let name = "sightline_gen_ai_tokens_total";
        family(out, name, "counter", "Tokens of GenAI calls by type.");
        for (key, a) in &groups {
            let base = group_labels(key);
            for (ty, n) in [
                ("input", a.input_tokens),
                ("output", a.output_tokens),
                ("cache_read", a.cache_read_tokens),
                ("cache_write", a.cache_write_tokens),
                ("reasoning", a.reasoning_tokens),
            ] {
                let refs = with_token_type(&base, ty);
                sample(out, name, &refs, n as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_escaping() {
        let mut out = String::new();
        family(&mut out, "x_total", "counter", "An x.");
        sample(&mut out, "x_total", &[("a", "q\"u\\o\nte")], 3.0);
        sample(&mut out, "x_total", &[], 0.5);
        assert_eq!(
            out,
            "# HELP x_total An x.\n# TYPE x_total counter\nx_total{a=\"q\\\"u\\\\o\\nte\"} 3\nx_total 0.5\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut s = DdSketch::new();
        for ms in [5.0, 15.0, 300.0, 90_000.0] {
            s.add(ms);
        }
        let mut out = String::new();
        histogram_from_sketch(&mut out, "h", &[("m", "x")], &DURATION_BUCKETS, &s, 1000.0);
        assert!(out.contains("h_bucket{m=\"x\",le=\"0.01\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{m=\"x\",le=\"0.02\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{m=\"x\",le=\"81.92\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{m=\"x\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("h_count{m=\"x\"} 4\n"), "{out}");
        assert!(out.contains("h_sum{m=\"x\"} 90.32\n"), "{out}");
    }
}
