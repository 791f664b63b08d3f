//! OTLP metrics: `POST /v1/metrics` (protobuf or JSON, gzip/zstd) and the gRPC `MetricsService`.
//!
//! Every data point becomes one [`MetricPoint`] carrying its metric's name, type, unit and
//! description, the resource and scope it came with and its own attributes, so GPU and host
//! metrics, inference-server metrics and training curves keep everything that distinguishes their
//! series. Gauges and sums keep their value; histograms (explicit and exponential) and summaries
//! keep count, sum, min and max as columns and their buckets or quantiles in `data`, with
//! temporality, monotonicity and exemplars (trace and span ids included).
//!
//! The rules are the trace path's: the body is read under `max_body_bytes` and decompressed under
//! `max_decompressed_bytes`; a request with more points than `max_spans_per_request`, or that
//! would take more than 8 times `max_decompressed_bytes` decoded, is refused whole, before it is
//! decoded (413 / `RESOURCE_EXHAUSTED`); a point that is invalid (no timestamp, no value, bucket
//! counts that do not match the bounds, too many attributes, a metric with no name or no data) is
//! rejected alone, named by its path in OTLP/JSON field names, and reported in `partial_success`
//! (`rejectedDataPoints`) while the others are stored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, AggregationTemporality, Exemplar,
};
use prost::Message;
use serde::Serialize;
use serde_json::{json, Value};
use sightline_model::Attributes;
use sightline_store::{MetricKind, MetricPoint};
use tonic::{Request, Status};

use super::body::{self, ContentEncoding, Encoding};
use super::decode::{Converter, Decoded, Limits, Rejection};
use super::{project_from_header, status, ExportOutcome, PROJECT_HEADER};
use crate::error::IngestError;
use crate::pipeline::Pipeline;

/// OTLP/HTTP metrics path.
pub const METRICS_PATH: &str = "/v1/metrics";

/// Self-telemetry of the metrics path.
#[derive(Debug, Default)]
pub struct MetricCounters {
    requests: AtomicU64,
    received: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// A snapshot of [`MetricCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricStats {
    /// Metrics export requests received (HTTP and gRPC).
    pub requests: u64,
    /// Data points decoded, valid or not.
    pub points_received: u64,
    /// Data points stored.
    pub points_accepted: u64,
    /// Data points rejected individually.
    pub points_rejected: u64,
}

impl MetricCounters {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn decoded(&self, d: &Decoded<MetricPoint>) {
        self.received
            .fetch_add(d.received() as u64, Ordering::Relaxed);
        self.rejected
            .fetch_add(d.rejected.len() as u64, Ordering::Relaxed);
    }

    pub(crate) fn stored(&self, n: usize) {
        self.accepted.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricStats {
        MetricStats {
            requests: self.requests.load(Ordering::Relaxed),
            points_received: self.received.load(Ordering::Relaxed),
            points_accepted: self.accepted.load(Ordering::Relaxed),
            points_rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Data points in a request.
pub fn point_count(req: &ExportMetricsServiceRequest) -> usize {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 1,
        })
        .sum()
}

/// Refuses a request with more points than `max_spans_per_request`.
pub fn check_point_count(
    req: &ExportMetricsServiceRequest,
    limits: &Limits,
) -> Result<usize, IngestError> {
    let n = point_count(req);
    if n > limits.max_spans_per_request {
        return Err(IngestError::TooLarge {
            message: format!(
                "request carries {n} data points; at most {} are accepted per request \
                 (max_spans_per_request)",
                limits.max_spans_per_request
            ),
        });
    }
    Ok(n)
}

fn temporality(t: i32) -> &'static str {
    match AggregationTemporality::try_from(t) {
        Ok(AggregationTemporality::Delta) => "delta",
        Ok(AggregationTemporality::Cumulative) => "cumulative",
        _ => "unspecified",
    }
}

fn exemplars(list: Vec<Exemplar>, conv: &mut Converter<'_>) -> Value {
    Value::Array(
        list.into_iter()
            .map(|e| {
                let value = match e.value {
                    Some(exemplar::Value::AsDouble(d)) => json!(d),
                    Some(exemplar::Value::AsInt(i)) => json!(i),
                    None => Value::Null,
                };
                json!({
                    "time_unix_nano": e.time_unix_nano,
                    "value": value,
                    "trace_id": hex::encode(&e.trace_id),
                    "span_id": hex::encode(&e.span_id),
                    "attributes": conv.attributes(e.filtered_attributes),
                })
            })
            .collect(),
    )
}

/// One metric's identity, shared by its points.
struct MetricInfo<'a> {
    project: &'a str,
    name: &'a str,
    unit: &'a str,
    description: &'a str,
    resource: &'a Attributes,
    scope: &'a str,
}

impl MetricInfo<'_> {
    fn point(&self, kind: MetricKind, attrs: Attributes, start: u64, time: u64) -> MetricPoint {
        MetricPoint {
            project: self.project.to_string(),
            name: self.name.to_string(),
            kind,
            unit: self.unit.to_string(),
            description: self.description.to_string(),
            resource: self.resource.clone(),
            scope: self.scope.to_string(),
            attributes: attrs,
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: None,
            count: None,
            sum: None,
            min: None,
            max: None,
            data: json!({}),
        }
    }
}

/// Where a metric or one of its data points sits in a request, in OTLP/JSON field names;
/// formatted only for a point that is rejected.
#[derive(Clone, Copy)]
struct PointPath {
    resource: usize,
    scope: usize,
    metric: usize,
    /// The data kind's field and the point's index, for a point.
    point: Option<(&'static str, usize)>,
}

impl PointPath {
    fn point(self, kind: &'static str, index: usize) -> Self {
        Self {
            point: Some((kind, index)),
            ..self
        }
    }
}

impl std::fmt::Display for PointPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resourceMetrics[{}].scopeMetrics[{}].metrics[{}]",
            self.resource, self.scope, self.metric
        )?;
        if let Some((kind, index)) = self.point {
            write!(f, ".{kind}.dataPoints[{index}]")?;
        }
        Ok(())
    }
}

/// The points of one request as they are converted: kept, rejected, and the attribute
/// conversion (with its value truncation) shared with spans and logs.
struct Points<'a> {
    out: Decoded<MetricPoint>,
    conv: Converter<'a>,
    limits: &'a Limits,
}

impl Points<'_> {
    fn reject(&mut self, path: PointPath, field: &'static str, reason: impl Into<String>) {
        self.out.rejected.push(Rejection {
            path: path.to_string(),
            field,
            reason: reason.into(),
        });
    }

    /// The checks every point shares; its converted attributes when it passes them.
    fn check(&mut self, path: PointPath, time: u64, attrs: Vec<KeyValue>) -> Option<Attributes> {
        if time == 0 {
            self.reject(path, "timeUnixNano", "timeUnixNano is missing or zero");
            return None;
        }
        if attrs.len() > self.limits.max_attributes_per_span {
            let reason = format!(
                "{} attributes; at most {} per data point (max_attributes_per_span)",
                attrs.len(),
                self.limits.max_attributes_per_span
            );
            self.reject(path, "attributes", reason);
            return None;
        }
        Some(self.conv.attributes(attrs))
    }

    fn number(
        &mut self,
        info: &MetricInfo<'_>,
        kind: MetricKind,
        path: PointPath,
        p: opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
        mut data: Value,
    ) {
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => Some(d),
            Some(number_data_point::Value::AsInt(i)) => Some(i as f64),
            None => None,
        };
        if value.is_none() && p.flags & NO_RECORDED_VALUE == 0 {
            self.reject(path, "value", "data point has neither asDouble nor asInt");
            return;
        }
        let Some(attrs) = self.check(path, p.time_unix_nano, p.attributes) else {
            return;
        };
        let mut point = info.point(kind, attrs, p.start_time_unix_nano, p.time_unix_nano);
        point.value = value;
        if let Value::Object(o) = &mut data {
            o.insert("flags".into(), json!(p.flags));
            if !p.exemplars.is_empty() {
                o.insert("exemplars".into(), exemplars(p.exemplars, &mut self.conv));
            }
        }
        point.data = data;
        self.out.items.push(point);
    }
}

/// Converts a request into points, rejecting invalid ones alone. Attribute values longer than
/// `max_attribute_value_bytes` are truncated as on spans, and counted in `truncated_values`.
pub fn points_from_request(
    req: ExportMetricsServiceRequest,
    project: &str,
    limits: &Limits,
) -> Decoded<MetricPoint> {
    let mut points = Points {
        out: Decoded::default(),
        conv: Converter::new(limits),
        limits,
    };
    for (ri, rm) in req.resource_metrics.into_iter().enumerate() {
        let resource = rm
            .resource
            .map(|r| points.conv.attributes(r.attributes))
            .unwrap_or_default();
        for (si, sm) in rm.scope_metrics.into_iter().enumerate() {
            let scope = sm.scope.map(|s| s.name).unwrap_or_default();
            for (mi, m) in sm.metrics.into_iter().enumerate() {
                let path = PointPath {
                    resource: ri,
                    scope: si,
                    metric: mi,
                    point: None,
                };
                if m.name.is_empty() {
                    points.reject(path, "name", "metric name is empty");
                    continue;
                }
                let Some(data) = m.data else {
                    points.reject(path, "data", "metric has no data (gauge, sum, histogram, exponentialHistogram or summary)");
                    continue;
                };
                let info = MetricInfo {
                    project,
                    name: &m.name,
                    unit: &m.unit,
                    description: &m.description,
                    resource: &resource,
                    scope: &scope,
                };
                match data {
                    Data::Gauge(g) => {
                        for (pi, p) in g.data_points.into_iter().enumerate() {
                            let path = path.point("gauge", pi);
                            points.number(&info, MetricKind::Gauge, path, p, json!({}));
                        }
                    }
                    Data::Sum(s) => {
                        let data = json!({
                            "temporality": temporality(s.aggregation_temporality),
                            "monotonic": s.is_monotonic,
                        });
                        for (pi, p) in s.data_points.into_iter().enumerate() {
                            let path = path.point("sum", pi);
                            points.number(&info, MetricKind::Sum, path, p, data.clone());
                        }
                    }
                    Data::Histogram(h) => {
                        let t = temporality(h.aggregation_temporality);
                        for (pi, p) in h.data_points.into_iter().enumerate() {
                            let path = path.point("histogram", pi);
                            if !p.bucket_counts.is_empty()
                                && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                            {
                                let reason = format!(
                                    "{} bucket counts for {} explicit bounds (expected {})",
                                    p.bucket_counts.len(),
                                    p.explicit_bounds.len(),
                                    p.explicit_bounds.len() + 1
                                );
                                points.reject(path, "bucketCounts", reason);
                                continue;
                            }
                            let Some(attrs) = points.check(path, p.time_unix_nano, p.attributes)
                            else {
                                continue;
                            };
                            let mut point = info.point(
                                MetricKind::Histogram,
                                attrs,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                            );
                            point.count = Some(p.count);
                            point.sum = p.sum;
                            point.min = p.min;
                            point.max = p.max;
                            point.data = json!({
                                "temporality": t,
                                "bounds": p.explicit_bounds,
                                "counts": p.bucket_counts,
                                "flags": p.flags,
                                "exemplars": exemplars(p.exemplars, &mut points.conv),
                            });
                            points.out.items.push(point);
                        }
                    }
                    Data::ExponentialHistogram(h) => {
                        let t = temporality(h.aggregation_temporality);
                        for (pi, p) in h.data_points.into_iter().enumerate() {
                            let path = path.point("exponentialHistogram", pi);
                            let Some(attrs) = points.check(path, p.time_unix_nano, p.attributes)
                            else {
                                continue;
                            };
                            let buckets = |b: Option<
                                opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
                            >| {
                                b.map_or(Value::Null, |b| {
                                    json!({ "offset": b.offset, "counts": b.bucket_counts })
                                })
                            };
                            let mut point = info.point(
                                MetricKind::ExponentialHistogram,
                                attrs,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                            );
                            point.count = Some(p.count);
                            point.sum = p.sum;
                            point.min = p.min;
                            point.max = p.max;
                            point.data = json!({
                                "temporality": t,
                                "scale": p.scale,
                                "zero_count": p.zero_count,
                                "zero_threshold": p.zero_threshold,
                                "positive": buckets(p.positive),
                                "negative": buckets(p.negative),
                                "flags": p.flags,
                                "exemplars": exemplars(p.exemplars, &mut points.conv),
                            });
                            points.out.items.push(point);
                        }
                    }
                    Data::Summary(s) => {
                        for (pi, p) in s.data_points.into_iter().enumerate() {
                            let path = path.point("summary", pi);
                            let Some(attrs) = points.check(path, p.time_unix_nano, p.attributes)
                            else {
                                continue;
                            };
                            let mut point = info.point(
                                MetricKind::Summary,
                                attrs,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                            );
                            point.count = Some(p.count);
                            point.sum = Some(p.sum);
                            point.data = json!({
                                "quantiles": p
                                    .quantile_values
                                    .iter()
                                    .map(|q| json!([q.quantile, q.value]))
                                    .collect::<Vec<_>>(),
                                "flags": p.flags,
                            });
                            points.out.items.push(point);
                        }
                    }
                }
            }
        }
    }
    let mut out = points.out;
    out.truncated_values = points.conv.truncated();
    out
}

/// Bit of `flags` meaning the point holds no recorded value.
const NO_RECORDED_VALUE: u32 = 1;

/// Reads a metrics export request from protobuf or JSON bytes (already decompressed).
pub fn parse(body: &[u8], encoding: Encoding) -> Result<ExportMetricsServiceRequest, IngestError> {
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(body).map_err(|e| {
            IngestError::invalid(
                "body",
                format!("failed to decode protobuf ExportMetricsServiceRequest: {e}"),
            )
        }),
        Encoding::Json => super::json::strict(body).map_err(|e| {
            IngestError::invalid(
                super::json::field_of(e.path()),
                format!(
                    "failed to decode JSON ExportMetricsServiceRequest: {}",
                    e.inner()
                ),
            )
        }),
    }
}

/// Refuses, before it is decoded, a protobuf metrics request with more points than
/// `max_spans_per_request` or that would take too much memory decoded (see
/// [`super::shape`]).
pub(crate) fn check_shape(body: &[u8], limits: &Limits) -> Result<(), IngestError> {
    body::check_shape(
        super::shape::metrics(body),
        "points",
        limits.max_spans_per_request,
        "max_spans_per_request",
        limits,
    )
}

/// The whole OTLP/HTTP metrics path from the bytes received to points.
pub fn decode_body(
    body: Bytes,
    encoding: Encoding,
    content_encoding: ContentEncoding,
    project: &str,
    limits: &Limits,
) -> Result<Decoded<MetricPoint>, IngestError> {
    let raw = body::decompress(body, content_encoding, limits.max_decompressed_bytes)?;
    match encoding {
        Encoding::Protobuf => check_shape(&raw, limits)?,
        Encoding::Json => body::check_json_shape(&raw, limits)?,
    }
    let req = parse(&raw, encoding)?;
    drop(raw);
    check_point_count(&req, limits)?;
    Ok(points_from_request(req, project, limits))
}

/// Stores the valid points of a decoded request and says what to report back: like spans, a
/// request whose every point was rejected fails with 400 naming the first problem.
pub async fn export_points(
    pipeline: &Pipeline,
    decoded: Decoded<MetricPoint>,
    limits: &Limits,
) -> Result<ExportOutcome, IngestError> {
    pipeline.metric_counters().decoded(&decoded);
    let outcome = super::outcome(&decoded, "data points", limits)?;
    pipeline.ingest_metrics(decoded.items).await?;
    Ok(outcome)
}

/// The protobuf response.
pub fn response(outcome: &ExportOutcome) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: outcome
            .has_partial_success()
            .then(|| ExportMetricsPartialSuccess {
                rejected_data_points: outcome.rejected,
                error_message: outcome.message.clone().unwrap_or_default(),
            }),
    }
}

/// `POST /v1/metrics`.
pub(crate) async fn http_export(
    pipeline: &Arc<Pipeline>,
    limits: &Arc<Limits>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    pipeline.metric_counters().request();
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<non-ASCII value>"))
    };
    let encoding = match Encoding::from_content_type(header_str(header::CONTENT_TYPE)) {
        Ok(e) => e,
        Err(e) => {
            pipeline.record_failure(&e);
            return status::http_response(&e, None);
        }
    };
    let result = async {
        let content_encoding = ContentEncoding::from_header(header_str(header::CONTENT_ENCODING))?;
        let project = project_from_header(headers.get(PROJECT_HEADER).map(HeaderValue::as_bytes))?;
        let (bytes, permit) =
            super::http::read_body(body, headers, limits.max_body_bytes, pipeline.body_budget())
                .await?;
        let l = limits.clone();
        let decoded = pipeline
            .decode(move || decode_body(bytes, encoding, content_encoding, &project, &l))
            .await?;
        drop(permit);
        export_points(pipeline, decoded, limits).await
    }
    .await;
    match result {
        Ok(outcome) => {
            let body = match encoding {
                Encoding::Protobuf => response(&outcome).encode_to_vec(),
                Encoding::Json => outcome
                    .json_response("rejectedDataPoints")
                    .to_string()
                    .into_bytes(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, encoding.content_type())],
                body,
            )
                .into_response()
        }
        Err(e) => {
            pipeline.record_failure(&e);
            status::http_response(&e, Some(encoding))
        }
    }
}

/// The gRPC `MetricsService`.
#[derive(Debug, Clone)]
pub struct OtlpMetricsGrpc {
    pipeline: Arc<Pipeline>,
    limits: Arc<Limits>,
}

impl OtlpMetricsGrpc {
    /// The service, writing to `pipeline` under `limits`.
    pub fn new(pipeline: Arc<Pipeline>, limits: Limits) -> Self {
        Self {
            pipeline,
            limits: Arc::new(limits),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpMetricsGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, Status> {
        self.pipeline.metric_counters().request();
        let result = async {
            let project =
                project_from_header(request.metadata().get(PROJECT_HEADER).map(|v| v.as_bytes()))?;
            let req = request.into_inner();
            let limits = self.limits.clone();
            let decoded = self
                .pipeline
                .decode(move || {
                    check_point_count(&req, &limits)?;
                    Ok(points_from_request(req, &project, &limits))
                })
                .await?;
            export_points(&self.pipeline, decoded, &self.limits).await
        }
        .await;
        match result {
            Ok(outcome) => Ok(tonic::Response::new(response(&outcome))),
            Err(e) => {
                self.pipeline.record_failure(&e);
                Err(status::grpc_status(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn number(time: u64, v: Option<f64>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: vec![kv("gpu", "0")],
            time_unix_nano: time,
            value: v.map(number_data_point::Value::AsDouble),
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "trainer")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "torch".into(),
                        ..Default::default()
                    }),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn metric(name: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            unit: "1".into(),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn long_attribute_values_are_truncated_as_on_spans() {
        let mut point = number(10, Some(1.0));
        point.attributes.push(kv("prompt", &"p".repeat(500)));
        let mut req = request(vec![metric(
            "tokens",
            Data::Gauge(Gauge {
                data_points: vec![point],
            }),
        )]);
        req.resource_metrics[0]
            .resource
            .as_mut()
            .unwrap()
            .attributes
            .push(kv("host.description", &"h".repeat(500)));
        let limits = Limits {
            max_attribute_value_bytes: 100,
            ..Limits::default()
        };
        let d = points_from_request(req, "default", &limits);
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.truncated_values, 2);
        let p = &d.items[0];
        for v in [&p.attributes["prompt"], &p.resource["host.description"]] {
            let v = v.as_str().unwrap();
            assert!(
                v.len() <= 100 && v.ends_with("[truncated from 500 bytes]"),
                "{v}"
            );
        }
        assert_eq!(p.attributes["gpu"], json!("0"));
        assert!(d
            .summary("data points", &limits)
            .unwrap()
            .contains("truncated 2 strings longer than 100 bytes (max_attribute_value_bytes)"));
    }

    #[test]
    fn converts_every_type_and_rejects_bad_points_alone() {
        let req = request(vec![
            metric(
                "gpu.utilization",
                Data::Gauge(Gauge {
                    data_points: vec![
                        number(10, Some(0.5)),
                        number(0, Some(1.0)),
                        number(11, None),
                    ],
                }),
            ),
            metric(
                "tokens",
                Data::Sum(Sum {
                    data_points: vec![number(12, Some(7.0))],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "latency",
                Data::Histogram(Histogram {
                    data_points: vec![
                        HistogramDataPoint {
                            time_unix_nano: 13,
                            count: 3,
                            sum: Some(6.0),
                            bucket_counts: vec![1, 1, 1],
                            explicit_bounds: vec![1.0, 2.0],
                            ..Default::default()
                        },
                        HistogramDataPoint {
                            time_unix_nano: 14,
                            bucket_counts: vec![1],
                            explicit_bounds: vec![1.0, 2.0],
                            ..Default::default()
                        },
                    ],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            ),
            metric(
                "rpc",
                Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        time_unix_nano: 15,
                        count: 2,
                        sum: 3.0,
                        ..Default::default()
                    }],
                }),
            ),
            Metric {
                name: String::new(),
                ..Default::default()
            },
        ]);
        assert_eq!(point_count(&req), 8);
        let d = points_from_request(req, "p", &Limits::default());
        assert_eq!(d.items.len(), 4, "{:?}", d.rejected);
        let g = &d.items[0];
        assert_eq!(
            (g.name.as_str(), g.kind, g.value),
            ("gpu.utilization", MetricKind::Gauge, Some(0.5))
        );
        assert_eq!(g.resource["service.name"], "trainer");
        assert_eq!(g.attributes["gpu"], "0");
        assert_eq!(g.scope, "torch");
        assert_eq!(d.items[1].data["temporality"], "cumulative");
        assert_eq!(d.items[1].data["monotonic"], true);
        assert_eq!(d.items[2].count, Some(3));
        assert_eq!(d.items[2].data["counts"], json!([1, 1, 1]));
        assert_eq!(d.items[3].kind, MetricKind::Summary);
        let fields: Vec<_> = d
            .rejected
            .iter()
            .map(|r| (r.path.as_str(), r.field))
            .collect();
        assert_eq!(
            fields,
            vec![
                (
                    "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[1]",
                    "timeUnixNano"
                ),
                (
                    "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[2]",
                    "value"
                ),
                (
                    "resourceMetrics[0].scopeMetrics[0].metrics[2].histogram.dataPoints[1]",
                    "bucketCounts"
                ),
                ("resourceMetrics[0].scopeMetrics[0].metrics[4]", "name"),
            ]
        );
    }

    #[test]
    fn json_bodies_and_their_errors() {
        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"loss","gauge":{"dataPoints":[{"timeUnixNano":"1700000000000000000","asDouble":0.25}]}}]}]}]}"#;
        let req = parse(body, Encoding::Json).unwrap();
        let d = points_from_request(req, "p", &Limits::default());
        assert_eq!(d.items[0].value, Some(0.25));
        let err = parse(
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":5}]}]}]}"#,
            Encoding::Json,
        )
        .unwrap_err();
        match err {
            IngestError::InvalidInput { field, .. } => {
                assert_eq!(field, "resourceMetrics[0].scopeMetrics[0].metrics[0].name")
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(b"\x00\x01garbage", Encoding::Protobuf).is_err());
    }

    #[test]
    fn too_many_points_is_too_large() {
        let req = request(vec![metric(
            "m",
            Data::Gauge(Gauge {
                data_points: vec![number(1, Some(1.0)); 3],
            }),
        )]);
        let limits = Limits {
            max_spans_per_request: 2,
            ..Limits::default()
        };
        assert!(matches!(
            check_point_count(&req, &limits),
            Err(IngestError::TooLarge { .. })
        ));
    }
}
