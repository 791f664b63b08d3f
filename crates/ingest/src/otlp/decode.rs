//! OTLP messages → Sightline's model ([`Span`], [`LogRecord`]).
//!
//! Validation is per item: a span with a bad identifier or too many attributes is rejected on its
//! own, with the index path and field that were wrong, and every valid span of the same request is
//! kept. Receivers turn the rejections into OTLP `partial_success` (or a 400 when nothing was
//! valid). Only problems that make the whole request unreadable — malformed bytes, a body or item
//! count over a limit — fail the whole request, and those are detected before this module runs.
//!
//! Long attribute values are truncated, not rejected: a 2 MB prompt in `gen_ai.input.messages`
//! is worth keeping in part, while dropping the whole span would lose its timing, usage and cost.
//! A truncated value ends in a visible marker (`…[truncated from N bytes]`) and the number of
//! truncated values is reported back to the client as a partial-success warning.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1 as otlp_logs;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as otlp_trace;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_model::{
    Attributes, Event, IdError, Link, LogRecord, Scope, Span, SpanId, SpanKind, SpanStatus,
    StatusCode, TraceId,
};

use crate::error::IngestError;

/// The service name used when a resource carries no `service.name`, as the OTel SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// How many problems a partial-success message lists before summarising the rest.
const LISTED_PROBLEMS: usize = 5;

/// Explicit limits on what one request may carry. Every limit answers with a clear error naming
/// it; none is silently applied except `max_attribute_value_bytes`, which truncates (see the
/// module documentation for why) and reports how many values it truncated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted as it arrives on the wire (still compressed, if it is), in
    /// bytes. Larger bodies are refused with 413 before being read in full.
    pub max_body_bytes: usize,
    /// Largest body after decompression, in bytes. Decompression stops as soon as the output
    /// passes this size and the request is refused with 413, so a decompression bomb never makes
    /// Sightline allocate more than this. Also the largest gRPC message accepted. A protobuf
    /// request over HTTP whose decoded form would take more than 8 times this much memory (empty
    /// messages cost far more decoded than on the wire) is refused the same way before decoding.
    pub max_decompressed_bytes: usize,
    /// Longest string attribute value kept, in bytes (bytes values count after base64 encoding);
    /// span and event names and status messages are held to it too. Longer strings are cut at a
    /// character boundary and end in `…[truncated from N bytes]` (when the limit has room for
    /// it), so the result fits in the limit; the span is kept and the client is told how many
    /// values were truncated.
    pub max_attribute_value_bytes: usize,
    /// Most spans in one export request; a larger request is refused with 413 /
    /// RESOURCE_EXHAUSTED (without a retry hint, since retrying cannot help).
    pub max_spans_per_request: usize,
    /// Most log records in one export request; a larger request is refused like one with too many
    /// spans.
    pub max_log_records_per_request: usize,
    /// Most attributes on one span, or on one log record (resource and scope attributes not
    /// counted). An item with more is rejected on its own.
    pub max_attributes_per_span: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_attribute_value_bytes: 64 * 1024,
            max_spans_per_request: 50_000,
            max_log_records_per_request: 50_000,
            max_attributes_per_span: 1024,
        }
    }
}

/// One item rejected from a request, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Where the item is in the request, in OTLP/JSON field names:
    /// `resourceSpans[0].scopeSpans[1].spans[3]`.
    pub path: String,
    /// The offending field of the item, e.g. `traceId`.
    pub field: &'static str,
    /// What was wrong with it.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}: {}", self.path, self.field, self.reason)
    }
}

/// The result of converting one export request: the valid items, and the rejected ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    /// Items that passed validation, in request order.
    pub items: Vec<T>,
    /// Items that did not, in request order.
    pub rejected: Vec<Rejection>,
    /// Attribute values shortened to `max_attribute_value_bytes` in the kept items.
    pub truncated_values: u64,
    /// Span links dropped from kept spans because their trace or span id was invalid.
    pub dropped_links: u64,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            rejected: Vec::new(),
            truncated_values: 0,
            dropped_links: 0,
        }
    }
}

impl<T> Decoded<T> {
    /// Items the request carried, valid or not.
    pub fn received(&self) -> usize {
        self.items.len() + self.rejected.len()
    }

    /// Replaces the reason of rejections found earlier with a better one: the JSON decoder
    /// rejects an id that is not hex before this module sees it, and its reason wins over the one
    /// this module gives to the placeholder it left. Rejections with no placeholder here are added.
    pub(crate) fn apply_earlier_rejections(&mut self, earlier: Vec<Rejection>) {
        if earlier.is_empty() {
            return;
        }
        // The first rejection of each path, as a search from the front finds it.
        let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, r) in self.rejected.iter().enumerate() {
            at.entry(r.path.clone()).or_insert(i);
        }
        for e in earlier {
            match at.get(&e.path) {
                Some(&i) => self.rejected[i] = e,
                None => {
                    at.insert(e.path.clone(), self.rejected.len());
                    self.rejected.push(e);
                }
            }
        }
    }

    /// The first few rejections (`path.field: reason`, separated by `; `), then how many more.
    pub fn problems(&self) -> String {
        let mut out = self
            .rejected
            .iter()
            .take(LISTED_PROBLEMS)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if self.rejected.len() > LISTED_PROBLEMS {
            out.push_str(&format!(
                "; and {} more",
                self.rejected.len() - LISTED_PROBLEMS
            ));
        }
        out
    }

    /// The OTLP `partial_success.error_message`: the first few rejections with their paths, then
    /// warnings about truncated values and dropped links. `None` when there is nothing to say.
    /// `noun` names the items (`spans`, `log records`).
    pub fn summary(&self, noun: &str, limits: &Limits) -> Option<String> {
        let mut parts = Vec::new();
        if !self.rejected.is_empty() {
            parts.push(format!(
                "rejected {} of {} {noun}: {}",
                self.rejected.len(),
                self.received(),
                self.problems()
            ));
        }
        if self.truncated_values > 0 {
            parts.push(format!(
                "truncated {} strings longer than {} bytes (max_attribute_value_bytes)",
                self.truncated_values, limits.max_attribute_value_bytes
            ));
        }
        if self.dropped_links > 0 {
            parts.push(format!(
                "dropped {} span links with an invalid trace or span id",
                self.dropped_links
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Spans in a trace export request.
pub fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Log records in a logs export request.
pub fn log_record_count(req: &ExportLogsServiceRequest) -> usize {
    req.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// Refuses a trace request with more spans than `limits.max_spans_per_request`. Receivers call
/// it before converting, since the conversion itself never fails a whole request.
pub fn check_span_count(
    req: &ExportTraceServiceRequest,
    limits: &Limits,
) -> Result<usize, IngestError> {
    let n = span_count(req);
    if n > limits.max_spans_per_request {
        return Err(IngestError::TooLarge {
            message: format!(
                "request has {n} spans, more than the limit of {} (max_spans_per_request)",
                limits.max_spans_per_request
            ),
        });
    }
    Ok(n)
}

/// Refuses a logs request with more records than `limits.max_log_records_per_request`.
pub fn check_log_record_count(
    req: &ExportLogsServiceRequest,
    limits: &Limits,
) -> Result<usize, IngestError> {
    let n = log_record_count(req);
    if n > limits.max_log_records_per_request {
        return Err(IngestError::TooLarge {
            message: format!(
                "request has {n} log records, more than the limit of {} (max_log_records_per_request)",
                limits.max_log_records_per_request
            ),
        });
    }
    Ok(n)
}

/// Converts every span of a trace export request, rejecting invalid ones individually.
///
/// A span is rejected when its trace id is not 16 bytes or all zeros, its span id is not 8 bytes
/// or all zeros, its parent span id is neither empty, all zeros (read as "no parent") nor 8 bytes,
/// or it has more than `max_attributes_per_span` attributes. A span that ends before it starts is
/// kept as sent. This borrows the request and so copies every string; receivers that own the
/// request use [`spans_from_owned_request`].
pub fn spans_from_request(
    req: &ExportTraceServiceRequest,
    project: &str,
    limits: &Limits,
) -> Decoded<Span> {
    spans_from_owned_request(req.clone(), project, limits)
}

/// [`spans_from_request`] for a request the caller owns: strings and attribute values move into
/// the spans instead of being copied.
pub fn spans_from_owned_request(
    req: ExportTraceServiceRequest,
    project: &str,
    limits: &Limits,
) -> Decoded<Span> {
    let mut conv = Converter::new(limits);
    let mut items = Vec::with_capacity(span_count(&req));
    let mut rejected = Vec::new();
    for (ri, rs) in req.resource_spans.into_iter().enumerate() {
        let (resource, service) = conv.resource(rs.resource);
        for (si, ss) in rs.scope_spans.into_iter().enumerate() {
            let scope = conv.scope(ss.scope);
            for (i, span) in ss.spans.into_iter().enumerate() {
                match conv.span(span, project, &service, &resource, &scope) {
                    Ok(s) => items.push(s),
                    Err((field, reason)) => rejected.push(Rejection {
                        path: format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]"),
                        field,
                        reason,
                    }),
                }
            }
        }
    }
    Decoded {
        items,
        rejected,
        truncated_values: conv.truncated,
        dropped_links: conv.dropped_links,
    }
}

/// Converts every record of a logs export request, rejecting invalid ones individually.
///
/// A record's trace and span ids are optional: empty or all-zero ids mean "no span context"; ids
/// of the wrong length reject the record, as do more than `max_attributes_per_span` attributes.
/// The event name comes from the record's `event_name` field, else its `event.name` attribute.
/// The time is the record's time, else its observed time, else the time it was received.
pub fn logs_from_request(
    req: &ExportLogsServiceRequest,
    project: &str,
    limits: &Limits,
) -> Decoded<LogRecord> {
    logs_from_owned_request(req.clone(), project, limits)
}

/// [`logs_from_request`] for a request the caller owns.
pub fn logs_from_owned_request(
    req: ExportLogsServiceRequest,
    project: &str,
    limits: &Limits,
) -> Decoded<LogRecord> {
    let mut conv = Converter::new(limits);
    let mut items = Vec::with_capacity(log_record_count(&req));
    let mut rejected = Vec::new();
    let received_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    for (ri, rl) in req.resource_logs.into_iter().enumerate() {
        let (resource, service) = conv.resource(rl.resource);
        for (si, sl) in rl.scope_logs.into_iter().enumerate() {
            let scope = conv.scope(sl.scope);
            for (i, record) in sl.log_records.into_iter().enumerate() {
                match conv.log(record, project, &service, &resource, &scope, received_at) {
                    Ok(l) => items.push(l),
                    Err((field, reason)) => rejected.push(Rejection {
                        path: format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{i}]"),
                        field,
                        reason,
                    }),
                }
            }
        }
    }
    Decoded {
        items,
        rejected,
        truncated_values: conv.truncated,
        dropped_links: 0,
    }
}

type ItemError = (&'static str, String);

/// Conversion state for one request: the limits and what was truncated or dropped. Converts
/// OTLP `AnyValue`s to JSON: strings (truncated to `max_attribute_value_bytes`), booleans,
/// integers (as i64 numbers), doubles (NaN and infinities, which JSON cannot hold, as the strings
/// `NaN`, `Infinity`, `-Infinity`), arrays, key-value lists as objects and bytes as base64
/// strings. An empty value is `null`.
pub(crate) struct Converter<'a> {
    limits: &'a Limits,
    truncated: u64,
    dropped_links: u64,
}

impl<'a> Converter<'a> {
    pub(crate) fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            truncated: 0,
            dropped_links: 0,
        }
    }

    fn resource(&mut self, resource: Option<Resource>) -> (Attributes, String) {
        let attrs = resource
            .map(|r| self.attributes(r.attributes))
            .unwrap_or_default();
        let service = attrs
            .get("service.name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(UNKNOWN_SERVICE)
            .to_string();
        (attrs, service)
    }

    fn scope(&mut self, scope: Option<InstrumentationScope>) -> Scope {
        match scope {
            Some(s) => Scope {
                name: s.name,
                version: s.version,
                attributes: self.attributes(s.attributes),
            },
            None => Scope::default(),
        }
    }

    fn span(
        &mut self,
        span: otlp_trace::Span,
        project: &str,
        service: &str,
        resource: &Attributes,
        scope: &Scope,
    ) -> Result<Span, ItemError> {
        let trace_id = TraceId::from_bytes(&span.trace_id).map_err(|e| id_error("traceId", e))?;
        let span_id = SpanId::from_bytes(&span.span_id).map_err(|e| id_error("spanId", e))?;
        let parent_span_id =
            optional_id::<SpanId>(&span.parent_span_id).map_err(|e| id_error("parentSpanId", e))?;
        self.check_attribute_count(span.attributes.len())?;
        check_time("startTimeUnixNano", span.start_time_unix_nano)?;
        check_time("endTimeUnixNano", span.end_time_unix_nano)?;

        let events = span
            .events
            .into_iter()
            .map(|e| Event {
                time_unix_nano: e.time_unix_nano,
                name: self.truncate(e.name),
                attributes: self.attributes(e.attributes),
                body: None,
            })
            .collect();
        let mut links = Vec::with_capacity(span.links.len());
        for l in span.links {
            match (
                TraceId::from_bytes(&l.trace_id),
                SpanId::from_bytes(&l.span_id),
            ) {
                (Ok(trace_id), Ok(span_id)) => links.push(Link {
                    trace_id,
                    span_id,
                    attributes: self.attributes(l.attributes),
                }),
                _ => self.dropped_links += 1,
            }
        }
        let status = span
            .status
            .map(|s| SpanStatus {
                code: StatusCode::from_otlp(s.code),
                message: self.truncate(s.message),
            })
            .unwrap_or_default();
        Ok(Span {
            project: project.to_string(),
            trace_id,
            span_id,
            parent_span_id,
            name: self.truncate(span.name),
            kind: SpanKind::from_otlp(span.kind),
            service: service.to_string(),
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            status,
            attributes: self.attributes(span.attributes),
            resource: resource.clone(),
            scope: scope.clone(),
            events,
            links,
        })
    }

    fn log(
        &mut self,
        record: otlp_logs::LogRecord,
        project: &str,
        service: &str,
        resource: &Attributes,
        scope: &Scope,
        received_at: u64,
    ) -> Result<LogRecord, ItemError> {
        let trace_id =
            optional_id::<TraceId>(&record.trace_id).map_err(|e| id_error("traceId", e))?;
        let span_id = optional_id::<SpanId>(&record.span_id).map_err(|e| id_error("spanId", e))?;
        self.check_attribute_count(record.attributes.len())?;
        let attributes = self.attributes(record.attributes);
        let event_name = if record.event_name.is_empty() {
            attributes
                .get("event.name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        } else {
            Some(record.event_name)
        };
        check_time("timeUnixNano", record.time_unix_nano)?;
        check_time("observedTimeUnixNano", record.observed_time_unix_nano)?;
        let time_unix_nano = [record.time_unix_nano, record.observed_time_unix_nano]
            .into_iter()
            .find(|t| *t != 0)
            .unwrap_or(received_at);
        Ok(LogRecord {
            project: project.to_string(),
            service: service.to_string(),
            time_unix_nano,
            observed_time_unix_nano: record.observed_time_unix_nano,
            severity_number: record.severity_number,
            severity_text: record.severity_text,
            event_name,
            body: record.body.map(|b| self.value(b)),
            attributes,
            resource: resource.clone(),
            scope: scope.clone(),
            trace_id,
            span_id,
        })
    }

    fn check_attribute_count(&self, n: usize) -> Result<(), ItemError> {
        if n > self.limits.max_attributes_per_span {
            return Err((
                "attributes",
                format!(
                    "{n} attributes, more than the limit of {} (max_attributes_per_span)",
                    self.limits.max_attributes_per_span
                ),
            ));
        }
        Ok(())
    }

    /// Attribute values shortened so far.
    pub(crate) fn truncated(&self) -> u64 {
        self.truncated
    }

    pub(crate) fn attributes(&mut self, kvs: Vec<KeyValue>) -> Attributes {
        let mut out = Attributes::new();
        for kv in kvs {
            let v = kv.value.map(|v| self.value(v)).unwrap_or(Value::Null);
            out.insert(kv.key, v);
        }
        out
    }

    fn value(&mut self, value: AnyValue) -> Value {
        use any_value::Value as V;
        match value.value {
            None => Value::Null,
            Some(V::StringValue(s)) => Value::String(self.truncate(s)),
            Some(V::BoolValue(b)) => Value::Bool(b),
            Some(V::IntValue(i)) => Value::from(i),
            Some(V::DoubleValue(d)) => double(d),
            Some(V::ArrayValue(a)) => {
                Value::Array(a.values.into_iter().map(|v| self.value(v)).collect())
            }
            Some(V::KvlistValue(kv)) => Value::Object(self.attributes(kv.values)),
            Some(V::BytesValue(b)) => {
                Value::String(self.truncate(base64::engine::general_purpose::STANDARD.encode(b)))
            }
            // A string-table index only means something in the profiles signal, which carries
            // the table; elsewhere the number is all there is to keep.
            Some(V::StringValueStrindex(i)) => Value::from(i),
        }
    }

    fn truncate(&mut self, mut s: String) -> String {
        let limit = self.limits.max_attribute_value_bytes;
        if s.len() <= limit {
            return s;
        }
        self.truncated += 1;
        let marker = format!("…[truncated from {} bytes]", s.len());
        // A limit shorter than the marker keeps the value's start alone: the result never
        // exceeds the limit.
        let marked = limit >= marker.len();
        let mut keep = if marked { limit - marker.len() } else { limit };
        while !s.is_char_boundary(keep) {
            keep -= 1;
        }
        s.truncate(keep);
        if marked {
            s.push_str(&marker);
        }
        s
    }
}

fn double(d: f64) -> Value {
    match serde_json::Number::from_f64(d) {
        Some(n) => Value::Number(n),
        None if d.is_nan() => Value::String("NaN".into()),
        None if d > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// Refuses a timestamp past what the store keeps (signed 64-bit nanoseconds, up to
/// 2262-04-11), which would otherwise be saturated without a word.
fn check_time(field: &'static str, nanos: u64) -> Result<(), ItemError> {
    if nanos > i64::MAX as u64 {
        return Err((
            field,
            format!("{nanos} is after 2262-04-11, the latest time stored"),
        ));
    }
    Ok(())
}

fn id_error(field: &'static str, e: IdError) -> ItemError {
    (field, e.to_string())
}

/// An identifier that may be absent: empty or all zeros is `None`.
fn optional_id<I: FromIdBytes>(bytes: &[u8]) -> Result<Option<I>, IdError> {
    if bytes.iter().all(|b| *b == 0) && (bytes.is_empty() || bytes.len() == I::LEN) {
        return Ok(None);
    }
    I::from_id_bytes(bytes).map(Some)
}

trait FromIdBytes: Sized {
    const LEN: usize;
    fn from_id_bytes(bytes: &[u8]) -> Result<Self, IdError>;
}

impl FromIdBytes for TraceId {
    const LEN: usize = TraceId::LEN;
    fn from_id_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        TraceId::from_bytes(bytes)
    }
}

impl FromIdBytes for SpanId {
    const LEN: usize = SpanId::LEN;
    fn from_id_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        SpanId::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Status};
    use serde_json::json;

    const TRACE: [u8; 16] = [
        0x5b, 0x8e, 0xff, 0xf7, 0x98, 3, 0x81, 3, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
    ];
    const SPAN: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
    const PARENT: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73];

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn otlp_span(trace: &[u8], span: &[u8]) -> otlp_trace::Span {
        otlp_trace::Span {
            trace_id: trace.to_vec(),
            span_id: span.to_vec(),
            name: "chat gpt-4o".into(),
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..Default::default()
        }
    }

    fn request(spans: Vec<otlp_trace::Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("checkout"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "opentelemetry.instrumentation.openai_v2".into(),
                        version: "2.1b0".into(),
                        attributes: vec![kv("scope.attr", any_value::Value::BoolValue(true))],
                        dropped_attributes_count: 0,
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn converts_every_field() {
        let mut sp = otlp_span(&TRACE, &SPAN);
        sp.parent_span_id = PARENT.to_vec();
        sp.kind = span::SpanKind::Client as i32;
        sp.attributes = vec![
            kv("gen_ai.request.model", s("gpt-4o")),
            kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(-12)),
            kv("temperature", any_value::Value::DoubleValue(0.5)),
            kv("stream", any_value::Value::BoolValue(false)),
            kv("raw", any_value::Value::BytesValue(vec![0, 1, 2, 255])),
            kv(
                "list",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s("a")),
                        },
                        AnyValue { value: None },
                    ],
                }),
            ),
            kv(
                "map",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", any_value::Value::IntValue(7))],
                }),
            ),
            kv("nan", any_value::Value::DoubleValue(f64::NAN)),
            kv("neg_inf", any_value::Value::DoubleValue(f64::NEG_INFINITY)),
        ];
        sp.events = vec![span::Event {
            time_unix_nano: 1_500,
            name: "gen_ai.user.message".into(),
            attributes: vec![kv("content", s("hi"))],
            dropped_attributes_count: 0,
        }];
        sp.links = vec![span::Link {
            trace_id: TRACE.to_vec(),
            span_id: PARENT.to_vec(),
            attributes: vec![kv("link.kind", s("follows"))],
            ..Default::default()
        }];
        sp.status = Some(Status {
            message: "rate limited".into(),
            code: 2,
        });

        let d = spans_from_request(&request(vec![sp]), "proj", &Limits::default());
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(d.items.len(), 1);
        let s = &d.items[0];
        assert_eq!(s.project, "proj");
        assert_eq!(s.trace_id.to_hex(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.span_id.to_hex(), "eee19b7ec3c1b174");
        assert_eq!(
            s.parent_span_id.map(|p| p.to_hex()).as_deref(),
            Some("eee19b7ec3c1b173")
        );
        assert_eq!(s.name, "chat gpt-4o");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(s.service, "checkout");
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (1_000, 2_000)
        );
        assert_eq!(s.status.code, StatusCode::Error);
        assert_eq!(s.status.message, "rate limited");
        assert_eq!(
            Value::Object(s.attributes.clone()),
            json!({
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": -12,
                "temperature": 0.5,
                "stream": false,
                "raw": "AAEC/w==",
                "list": ["a", null],
                "map": {"inner": 7},
                "nan": "NaN",
                "neg_inf": "-Infinity",
            })
        );
        assert_eq!(
            Value::Object(s.resource.clone()),
            json!({"service.name": "checkout"})
        );
        assert_eq!(s.scope.name, "opentelemetry.instrumentation.openai_v2");
        assert_eq!(s.scope.version, "2.1b0");
        assert_eq!(
            Value::Object(s.scope.attributes.clone()),
            json!({"scope.attr": true})
        );
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].name, "gen_ai.user.message");
        assert_eq!(s.events[0].time_unix_nano, 1_500);
        assert_eq!(s.events[0].attributes["content"], json!("hi"));
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.links[0].span_id.to_hex(), "eee19b7ec3c1b173");
        assert_eq!(s.links[0].attributes["link.kind"], json!("follows"));
        assert_eq!(d.summary("spans", &Limits::default()), None);
    }

    #[test]
    fn rejects_bad_ids_individually_and_keeps_the_rest() {
        let mut zero_parent_root = otlp_span(&TRACE, &SPAN);
        zero_parent_root.parent_span_id = vec![0; 8];
        let mut bad_parent = otlp_span(&TRACE, &SPAN);
        bad_parent.parent_span_id = vec![1, 2, 3];
        let mut end_before_start = otlp_span(&TRACE, &PARENT);
        end_before_start.start_time_unix_nano = 5_000;
        let mut far_future = otlp_span(&TRACE, &PARENT);
        far_future.end_time_unix_nano = u64::MAX;
        let req = request(vec![
            otlp_span(&TRACE, &SPAN),
            otlp_span(&TRACE[..15], &SPAN),
            otlp_span(&[0; 16], &SPAN),
            otlp_span(&TRACE, &[0; 8]),
            otlp_span(&TRACE, &[]),
            bad_parent,
            zero_parent_root,
            end_before_start,
            far_future,
        ]);
        let d = spans_from_request(&req, "p", &Limits::default());
        assert_eq!(d.items.len(), 3);
        assert_eq!(d.items[1].parent_span_id, None);
        assert_eq!(d.items[2].start_time_unix_nano, 5_000);
        let got: Vec<String> = d.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes, got 15",
                "resourceSpans[0].scopeSpans[0].spans[2].traceId: identifier is all zeros",
                "resourceSpans[0].scopeSpans[0].spans[3].spanId: identifier is all zeros",
                "resourceSpans[0].scopeSpans[0].spans[4].spanId: expected 8 bytes, got 0",
                "resourceSpans[0].scopeSpans[0].spans[5].parentSpanId: expected 8 bytes, got 3",
                "resourceSpans[0].scopeSpans[0].spans[8].endTimeUnixNano: 18446744073709551615 is after 2262-04-11, the latest time stored",
            ]
        );
        let summary = d.summary("spans", &Limits::default()).unwrap();
        assert!(summary.starts_with("rejected 6 of 9 spans: resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes, got 15;"), "{summary}");
        assert!(summary.ends_with("; and 1 more"), "{summary}");
    }

    #[test]
    fn summary_lists_the_first_problems_only() {
        let spans = (0..8).map(|_| otlp_span(&[1; 3], &SPAN)).collect();
        let d = spans_from_request(&request(spans), "p", &Limits::default());
        let summary = d.summary("spans", &Limits::default()).unwrap();
        assert!(summary.starts_with("rejected 8 of 8 spans:"), "{summary}");
        assert!(summary.ends_with("; and 3 more"), "{summary}");
        assert_eq!(summary.matches("traceId").count(), LISTED_PROBLEMS);
    }

    #[test]
    fn too_many_attributes_rejects_the_span() {
        let limits = Limits {
            max_attributes_per_span: 2,
            ..Limits::default()
        };
        let mut big = otlp_span(&TRACE, &SPAN);
        big.attributes = (0..3).map(|i| kv(&format!("k{i}"), s("v"))).collect();
        let mut ok = otlp_span(&TRACE, &PARENT);
        ok.attributes = (0..2).map(|i| kv(&format!("k{i}"), s("v"))).collect();
        let d = spans_from_request(&request(vec![big, ok]), "p", &limits);
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.rejected[0].field, "attributes");
        assert_eq!(
            d.rejected[0].reason,
            "3 attributes, more than the limit of 2 (max_attributes_per_span)"
        );
    }

    #[test]
    fn long_values_are_truncated_within_the_limit_and_counted() {
        let limits = Limits {
            max_attribute_value_bytes: 100,
            ..Limits::default()
        };
        let mut sp = otlp_span(&TRACE, &SPAN);
        // multi-byte characters so that the cut has to find a character boundary
        let long = "é".repeat(300);
        sp.attributes = vec![
            kv("prompt", s(&long)),
            kv("short", s("fits")),
            kv(
                "nested",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(s(&long)),
                    }],
                }),
            ),
            kv("blob", any_value::Value::BytesValue(vec![7; 200])),
        ];
        let d = spans_from_request(&request(vec![sp]), "p", &limits);
        assert_eq!(d.truncated_values, 3);
        let a = &d.items[0].attributes;
        let prompt = a["prompt"].as_str().unwrap();
        assert!(prompt.len() <= 100, "{}", prompt.len());
        assert!(prompt.starts_with("éé"));
        assert!(prompt.ends_with("…[truncated from 600 bytes]"), "{prompt}");
        assert_eq!(a["short"], json!("fits"));
        assert!(a["nested"][0]
            .as_str()
            .unwrap()
            .ends_with("…[truncated from 600 bytes]"));
        assert!(a["blob"]
            .as_str()
            .unwrap()
            .ends_with("…[truncated from 268 bytes]"));
        assert_eq!(
            d.summary("spans", &limits).unwrap(),
            "truncated 3 strings longer than 100 bytes (max_attribute_value_bytes)"
        );

        // Names and status messages are held to the limit too; a limit shorter than the
        // marker keeps the start alone.
        let mut sp = otlp_span(&TRACE, &SPAN);
        sp.name = "n".repeat(50);
        sp.status = Some(Status {
            code: 2,
            message: "m".repeat(50),
        });
        sp.events = vec![span::Event {
            name: "e".repeat(50),
            ..span::Event::default()
        }];
        let tiny = Limits {
            max_attribute_value_bytes: 10,
            ..Limits::default()
        };
        let d = spans_from_request(&request(vec![sp]), "p", &tiny);
        assert_eq!(d.truncated_values, 3);
        let span = &d.items[0];
        assert_eq!(span.name, "n".repeat(10));
        assert_eq!(span.status.message, "m".repeat(10));
        assert_eq!(span.events[0].name, "e".repeat(10));
    }

    #[test]
    fn bad_links_are_dropped_not_the_span() {
        let mut sp = otlp_span(&TRACE, &SPAN);
        sp.links = vec![
            span::Link {
                trace_id: vec![1; 4],
                span_id: SPAN.to_vec(),
                ..Default::default()
            },
            span::Link {
                trace_id: TRACE.to_vec(),
                span_id: SPAN.to_vec(),
                ..Default::default()
            },
        ];
        let d = spans_from_request(&request(vec![sp]), "p", &Limits::default());
        assert_eq!(d.items[0].links.len(), 1);
        assert_eq!(d.dropped_links, 1);
        assert!(d
            .summary("spans", &Limits::default())
            .unwrap()
            .contains("dropped 1 span links"));
    }

    #[test]
    fn service_defaults_to_unknown_service() {
        let mut req = request(vec![otlp_span(&TRACE, &SPAN)]);
        req.resource_spans[0].resource = None;
        let d = spans_from_request(&req, "p", &Limits::default());
        assert_eq!(d.items[0].service, UNKNOWN_SERVICE);
        assert!(d.items[0].resource.is_empty());
        assert_eq!(
            d.items[0].scope.name,
            "opentelemetry.instrumentation.openai_v2"
        );
    }

    #[test]
    fn span_count_limit() {
        let req = request((0..3).map(|_| otlp_span(&TRACE, &SPAN)).collect());
        let limits = Limits {
            max_spans_per_request: 2,
            ..Limits::default()
        };
        assert_eq!(check_span_count(&req, &Limits::default()), Ok(3));
        let err = check_span_count(&req, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request has 3 spans, more than the limit of 2 (max_spans_per_request)"
        );
    }

    fn logs_request(records: Vec<OtlpLog>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("agent"))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "openai".into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn converts_log_records() {
        let with_field = OtlpLog {
            time_unix_nano: 10,
            observed_time_unix_nano: 20,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("content", s("Hello"))],
                })),
            }),
            trace_id: TRACE.to_vec(),
            span_id: SPAN.to_vec(),
            event_name: "gen_ai.user.message".into(),
            ..Default::default()
        };
        let with_attr = OtlpLog {
            observed_time_unix_nano: 20,
            attributes: vec![kv("event.name", s("gen_ai.choice"))],
            ..Default::default()
        };
        let zero_ids = OtlpLog {
            trace_id: vec![0; 16],
            span_id: vec![0; 8],
            ..Default::default()
        };
        let bad = OtlpLog {
            trace_id: vec![1; 5],
            ..Default::default()
        };
        let d = logs_from_request(
            &logs_request(vec![with_field, with_attr, zero_ids, bad]),
            "p",
            &Limits::default(),
        );
        assert_eq!(d.items.len(), 3);
        let l = &d.items[0];
        assert_eq!(l.project, "p");
        assert_eq!(l.service, "agent");
        assert_eq!(l.time_unix_nano, 10);
        assert_eq!(l.severity_number, 9);
        assert_eq!(l.severity_text, "INFO");
        assert_eq!(l.event_name.as_deref(), Some("gen_ai.user.message"));
        assert_eq!(l.body, Some(json!({"content": "Hello"})));
        assert_eq!(
            l.trace_id.map(|t| t.to_hex()).as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(
            l.span_id.map(|t| t.to_hex()).as_deref(),
            Some("eee19b7ec3c1b174")
        );
        assert_eq!(l.scope.name, "openai");
        assert!(l.is_genai_event());
        assert_eq!(d.items[1].event_name.as_deref(), Some("gen_ai.choice"));
        assert_eq!(d.items[1].time_unix_nano, 20);
        assert_eq!((d.items[2].trace_id, d.items[2].span_id), (None, None));
        assert!(d.items[2].time_unix_nano > 0, "received time is used");
        assert_eq!(
            d.rejected[0].to_string(),
            "resourceLogs[0].scopeLogs[0].logRecords[3].traceId: expected 16 bytes, got 5"
        );
    }

    #[test]
    fn values_convert_with_strings_truncated_at_the_limit() {
        let limits = Limits {
            max_attribute_value_bytes: 50_000,
            ..Limits::default()
        };
        let mut conv = Converter::new(&limits);
        let v = conv.value(AnyValue {
            value: Some(any_value::Value::StringValue("x".repeat(100_000))),
        });
        assert_eq!(v.as_str().map(str::len), Some(50_000));
        assert_eq!(conv.value(AnyValue { value: None }), Value::Null);
        assert_eq!(
            conv.value(AnyValue {
                value: Some(any_value::Value::DoubleValue(f64::INFINITY))
            }),
            json!("Infinity")
        );
        assert_eq!(conv.truncated(), 1);
    }

    #[test]
    fn limits_config_rejects_unknown_fields_and_fills_defaults() {
        let l: Limits = serde_json::from_value(json!({"max_body_bytes": 10})).unwrap();
        assert_eq!(l.max_body_bytes, 10);
        assert_eq!(l.max_spans_per_request, 50_000);
        assert!(serde_json::from_value::<Limits>(json!({"max_bdy_bytes": 10})).is_err());
    }
}
