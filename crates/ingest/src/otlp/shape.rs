//! A look at a protobuf OTLP request before it is decoded: how many spans (or log records) it
//! holds and about how much memory decoding it would take.
//!
//! The decompressed-size cap bounds the bytes of a request, not what they decode to: an empty
//! span is 2 bytes on the wire and a few hundred in memory, so 16 KB of gzip can ask for gigabytes
//! before the span count is even known. This walk reads the wire format against the OTLP schema
//! without allocating, so such a request is refused (413) for what it is before prost builds it.
//! A body the walk cannot follow is left to prost, whose error names the problem.

use std::mem::size_of;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point, summary_data_point, Exemplar, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, SummaryDataPoint,
};
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};

/// How deep the walk follows nested values; prost refuses deeper messages anyway.
const MAX_DEPTH: usize = 100;

/// What a request holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// Spans, or log records.
    pub items: usize,
    /// Roughly the bytes its decoded form takes: every repeated message at its in-memory size,
    /// plus every string and byte field.
    pub decoded_bytes: usize,
}

/// The messages of the OTLP trace and logs schemas that the walk tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    /// `Resource` and `InstrumentationScope`: attributes in field 1 and 3 respectively.
    Resource,
    Scope,
    KeyValue,
    AnyValue,
    /// `ArrayValue` and `KeyValueList`: their values in field 1.
    ArrayValue,
    KvList,
    MetricsRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    /// `Gauge` and `Sum`: number points in field 1.
    Numbers,
    Histogram,
    ExpHistogram,
    Summary,
    NumberPoint,
    HistogramPoint,
    ExpHistogramPoint,
    /// The positive or negative buckets of an exponential histogram point.
    ExpBuckets,
    SummaryPoint,
    Quantile,
    Exemplar,
}

/// What a repeated scalar field packs: each varint of it becomes a `u64` in memory.
fn packed_varints(kind: Kind, field: u64) -> bool {
    matches!((kind, field), (Kind::ExpBuckets, 2))
}

/// The message kind of field `field` of a `kind` message, and whether it is repeated (decoded
/// into a `Vec` element of its own) rather than held inline in its parent.
fn child(kind: Kind, field: u64) -> Option<(Kind, bool)> {
    use Kind::*;
    Some(match (kind, field) {
        (TraceRequest, 1) => (ResourceSpans, true),
        (ResourceSpans, 1) | (ResourceLogs, 1) => (Resource, false),
        (ResourceSpans, 2) => (ScopeSpans, true),
        (ScopeSpans, 1) | (ScopeLogs, 1) => (Scope, false),
        (ScopeSpans, 2) => (Span, true),
        (Span, 9) | (Event, 3) | (Link, 4) | (LogRecord, 6) => (KeyValue, true),
        (Span, 11) => (Event, true),
        (Span, 13) => (Link, true),
        (LogsRequest, 1) => (ResourceLogs, true),
        (ResourceLogs, 2) => (ScopeLogs, true),
        (ScopeLogs, 2) => (LogRecord, true),
        (LogRecord, 5) | (KeyValue, 2) => (AnyValue, false),
        (Resource, 1) | (Scope, 3) | (KvList, 1) => (KeyValue, true),
        (AnyValue, 5) => (ArrayValue, false),
        (AnyValue, 6) => (KvList, false),
        (ArrayValue, 1) => (AnyValue, true),
        (MetricsRequest, 1) => (ResourceMetrics, true),
        (ResourceMetrics, 1) => (Resource, false),
        (ResourceMetrics, 2) => (ScopeMetrics, true),
        (ScopeMetrics, 1) => (Scope, false),
        (ScopeMetrics, 2) => (Metric, true),
        (Metric, 5) | (Metric, 7) => (Numbers, false),
        (Metric, 9) => (Histogram, false),
        (Metric, 10) => (ExpHistogram, false),
        (Metric, 11) => (Summary, false),
        (Metric, 12)
        | (NumberPoint, 7)
        | (HistogramPoint, 9)
        | (ExpHistogramPoint, 1)
        | (SummaryPoint, 7)
        | (Exemplar, 7) => (KeyValue, true),
        (Numbers, 1) => (NumberPoint, true),
        (Histogram, 1) => (HistogramPoint, true),
        (ExpHistogram, 1) => (ExpHistogramPoint, true),
        (Summary, 1) => (SummaryPoint, true),
        (NumberPoint, 5) | (HistogramPoint, 8) | (ExpHistogramPoint, 11) => (Exemplar, true),
        (ExpHistogramPoint, 8) | (ExpHistogramPoint, 9) => (ExpBuckets, false),
        (SummaryPoint, 6) => (Quantile, true),
        _ => return None,
    })
}

/// Bytes one decoded element of `kind` takes in its `Vec`.
fn element_size(kind: Kind) -> usize {
    match kind {
        Kind::ResourceSpans => size_of::<ResourceSpans>(),
        Kind::ScopeSpans => size_of::<ScopeSpans>(),
        Kind::Span => size_of::<Span>(),
        Kind::Event => size_of::<span::Event>(),
        Kind::Link => size_of::<span::Link>(),
        Kind::ResourceLogs => size_of::<ResourceLogs>(),
        Kind::ScopeLogs => size_of::<ScopeLogs>(),
        Kind::LogRecord => size_of::<LogRecord>(),
        Kind::KeyValue => size_of::<KeyValue>(),
        Kind::AnyValue => size_of::<AnyValue>(),
        Kind::ResourceMetrics => size_of::<ResourceMetrics>(),
        Kind::ScopeMetrics => size_of::<ScopeMetrics>(),
        Kind::Metric => size_of::<Metric>(),
        Kind::NumberPoint => size_of::<NumberDataPoint>(),
        Kind::HistogramPoint => size_of::<HistogramDataPoint>(),
        Kind::ExpHistogramPoint => size_of::<ExponentialHistogramDataPoint>(),
        Kind::SummaryPoint => size_of::<SummaryDataPoint>(),
        Kind::Quantile => size_of::<summary_data_point::ValueAtQuantile>(),
        Kind::Exemplar => size_of::<Exemplar>(),
        Kind::ExpBuckets => size_of::<exponential_histogram_data_point::Buckets>(),
        _ => 0,
    }
}

/// The shape of a protobuf `ExportTraceServiceRequest`; `None` when the bytes are not a
/// well-formed message (prost then says why).
pub fn traces(body: &[u8]) -> Option<Shape> {
    walk_request(body, Kind::TraceRequest, &[Kind::Span])
}

/// The shape of a protobuf `ExportLogsServiceRequest`.
pub fn logs(body: &[u8]) -> Option<Shape> {
    walk_request(body, Kind::LogsRequest, &[Kind::LogRecord])
}

/// The shape of a protobuf `ExportMetricsServiceRequest`; its items are data points of every
/// kind.
pub fn metrics(body: &[u8]) -> Option<Shape> {
    walk_request(
        body,
        Kind::MetricsRequest,
        &[
            Kind::NumberPoint,
            Kind::HistogramPoint,
            Kind::ExpHistogramPoint,
            Kind::SummaryPoint,
        ],
    )
}

fn walk_request(body: &[u8], root: Kind, items: &[Kind]) -> Option<Shape> {
    let mut shape = Shape::default();
    walk(body, root, items, 0, &mut shape)?;
    Some(shape)
}

fn walk(mut buf: &[u8], kind: Kind, items: &[Kind], depth: usize, shape: &mut Shape) -> Option<()> {
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(&mut buf)?;
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let payload = buf.get(..len)?;
                buf = &buf[len..];
                match child(kind, field) {
                    Some((nested, repeated)) => {
                        if repeated {
                            shape.decoded_bytes =
                                shape.decoded_bytes.saturating_add(element_size(nested));
                        }
                        if items.contains(&nested) {
                            shape.items += 1;
                        }
                        if depth < MAX_DEPTH {
                            walk(payload, nested, items, depth + 1, shape)?;
                        }
                    }
                    // A varint takes up to 8 times its bytes as a `u64`.
                    None if packed_varints(kind, field) => {
                        shape.decoded_bytes =
                            shape.decoded_bytes.saturating_add(len.saturating_mul(8));
                    }
                    // Strings, bytes and other packed numbers are copied out whole.
                    None => shape.decoded_bytes = shape.decoded_bytes.saturating_add(len),
                }
            }
            // Groups (deprecated) and unknown wire types: not OTLP.
            _ => return None,
        }
    }
    Some(())
}

/// What a JSON body holds, from one pass over its bytes: the objects (`{` outside strings) and
/// the values (separators outside strings, plus one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsonShape {
    pub objects: usize,
    pub values: usize,
}

impl JsonShape {
    /// At most the bytes its decoded request takes: every object as the largest OTLP message,
    /// plus every string byte.
    pub fn decoded_bytes_at_most(&self, body_len: usize) -> usize {
        self.objects
            .saturating_mul(LARGEST_MESSAGE)
            .saturating_add(body_len)
    }

    /// About the bytes it takes as a `serde_json::Value` tree, which the lenient second reading
    /// of a request builds.
    pub fn value_tree_bytes(&self, body_len: usize) -> usize {
        self.values
            .saturating_mul(VALUE_NODE)
            .saturating_add(body_len)
    }
}

/// The largest message of the trace, logs and metrics schemas, in memory.
const LARGEST_MESSAGE: usize = {
    let sizes = [
        size_of::<Span>(),
        size_of::<LogRecord>(),
        size_of::<ResourceSpans>(),
        size_of::<ResourceLogs>(),
        size_of::<span::Event>(),
        size_of::<span::Link>(),
        size_of::<ResourceMetrics>(),
        size_of::<Metric>(),
        size_of::<NumberDataPoint>(),
        size_of::<HistogramDataPoint>(),
        size_of::<ExponentialHistogramDataPoint>(),
        size_of::<SummaryDataPoint>(),
        size_of::<Exemplar>(),
    ];
    let mut max = 0;
    let mut i = 0;
    while i < sizes.len() {
        if sizes[i] > max {
            max = sizes[i];
        }
        i += 1;
    }
    max
};

/// A `serde_json::Value` in an array or map, with the map's share of key and node.
const VALUE_NODE: usize = 2 * size_of::<serde_json::Value>() + size_of::<String>();

/// Scans a JSON body; strings (with their escapes) are skipped, so only structure counts.
pub fn json(body: &[u8]) -> JsonShape {
    let mut shape = JsonShape {
        objects: 0,
        values: 1,
    };
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => shape.objects += 1,
            b',' | b':' => shape.values += 1,
            _ => {}
        }
    }
    shape
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, ArrayValue};
    use prost::Message;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn counts_spans_and_estimates_memory() {
        let span = Span {
            name: "chat gpt-4o".into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: vec![
                kv(
                    "gen_ai.request.model",
                    any_value::Value::StringValue("gpt-4o".into()),
                ),
                kv(
                    "tags",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::IntValue(1)),
                        }],
                    }),
                ),
            ],
            events: vec![span::Event::default()],
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span.clone(), span.clone(), span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let bytes = request.encode_to_vec();
        let shape = traces(&bytes).unwrap();
        assert_eq!(shape.items, 3);
        // Three spans, each with two attributes, one array element and one event.
        let messages = size_of::<ResourceSpans>()
            + size_of::<ScopeSpans>()
            + 3 * (size_of::<Span>()
                + 2 * size_of::<KeyValue>()
                + size_of::<AnyValue>()
                + size_of::<span::Event>());
        let strings = 3 * ("chat gpt-4o".len() + 16 + 8 + "gen_ai.request.model".len() + 6 + 4);
        assert_eq!(shape.decoded_bytes, messages + strings);
        assert!(shape.decoded_bytes > bytes.len());
    }

    #[test]
    fn counts_log_records() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 4],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        assert_eq!(logs(&request.encode_to_vec()).unwrap().items, 4);
    }

    #[test]
    fn empty_spans_cost_far_more_than_their_bytes() {
        // 100,000 empty spans: two bytes each on the wire.
        let mut scope = Vec::new();
        for _ in 0..100_000 {
            scope.extend_from_slice(b"\x12\x00");
        }
        let mut resource = vec![0x12];
        push_varint(&mut resource, scope.len());
        resource.extend_from_slice(&scope);
        let mut body = vec![0x0a];
        push_varint(&mut body, resource.len());
        body.extend_from_slice(&resource);
        let shape = traces(&body).unwrap();
        assert_eq!(shape.items, 100_000);
        assert!(shape.decoded_bytes >= 100_000 * size_of::<Span>());
        assert!(shape.decoded_bytes > 50 * body.len());
    }

    fn push_varint(out: &mut Vec<u8>, mut n: usize) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    #[test]
    fn counts_metric_points_of_every_kind() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::metrics::v1::{
            metric, ExponentialHistogram, Gauge, Histogram, Sum, Summary,
        };
        let metric = |data| Metric {
            name: "m".into(),
            data: Some(data),
            ..Metric::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        metric(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); 2],
                        })),
                        metric(metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint::default()],
                            ..Sum::default()
                        })),
                        metric(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint::default()],
                            ..Histogram::default()
                        })),
                        metric(metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                positive: Some(exponential_histogram_data_point::Buckets {
                                    offset: 0,
                                    bucket_counts: vec![1; 100],
                                }),
                                ..ExponentialHistogramDataPoint::default()
                            }],
                            ..ExponentialHistogram::default()
                        })),
                        metric(metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint::default(); 3],
                        })),
                    ],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        };
        let shape = metrics(&request.encode_to_vec()).unwrap();
        assert_eq!(shape.items, 8);
        // The 100 one-byte bucket counts take 800 bytes as u64s.
        assert!(
            shape.decoded_bytes
                >= 800 + 8 * size_of::<NumberDataPoint>().min(size_of::<SummaryDataPoint>())
        );
    }

    #[test]
    fn json_structure_outside_strings() {
        let shape = json(br#"{"a":[{"b":"{,:\"}"},{}],"c":1}"#);
        assert_eq!(shape.objects, 3);
        // `a`, `b`, `c` (one colon each) and one comma between array items and one between keys.
        assert_eq!(shape.values, 1 + 3 + 2);
        assert!(shape.decoded_bytes_at_most(10) >= 3 * size_of::<Span>());
    }

    #[test]
    fn malformed_bytes_are_left_to_prost() {
        assert_eq!(traces(b"\x0a\x05ab"), None, "length past the end");
        assert_eq!(traces(b"\x0b"), None, "a group");
        assert_eq!(traces(&[0x80; 11]), None, "an endless varint");
        assert_eq!(traces(b""), Some(Shape::default()));
    }
}
