//! OTLP/JSON request bodies.
//!
//! The fast path is `opentelemetry-proto`'s serde support, which reads the OTLP/JSON form the
//! specification shows (lowerCamelCase names, hex trace and span ids, 64-bit integers as strings
//! or numbers, enums as integers, unknown fields ignored). Where that crate is stricter than the
//! protobuf JSON mapping the specification builds on, a second pass over a `serde_json::Value`
//! fixes the body up before decoding it again — only when the fast path failed, so well-formed
//! bodies pay nothing:
//!
//! - a trace or span id that is not hex would fail the whole request in the crate; here it
//!   rejects only its span or log record (the others are kept), like an id of the wrong length;
//! - enums may be sent by name (`"kind": "SPAN_KIND_SERVER"`), as the protobuf JSON mapping allows;
//! - 32-bit integers (`droppedAttributesCount`, `flags`) may be strings, like 64-bit ones;
//! - `null` means "not set" for any field, and an empty `arrayValue`/`kvlistValue` may omit
//!   `values`; a key-value without `key` has the empty key;
//! - a `doubleValue` may be a numeric string.
//!
//! When the body still does not decode, the error names the field path and the position from the
//! first attempt (`resourceSpans[0].scopeSpans[0].spans[2].startTimeUnixNano: invalid digit found
//! in string at line 1 column 311`).

use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sightline_model::IdError;

use super::decode::Rejection;
use crate::error::IngestError;

/// A request read from JSON, with the items the JSON reader already rejected. Each rejected item
/// is left in the request with an id that the model conversion also rejects, so that item indexes
/// stay those the client sent; the reasons given here replace the conversion's.
#[derive(Debug)]
pub struct ParsedJson<R> {
    /// The request.
    pub request: R,
    /// Items rejected while reading (ids that are not hex).
    pub rejected: Vec<Rejection>,
}

/// Which signal a body carries: where its items are and how to fix them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `ExportTraceServiceRequest`.
    Traces,
    /// `ExportLogsServiceRequest`.
    Logs,
}

impl Signal {
    fn message_name(self) -> &'static str {
        match self {
            Self::Traces => "ExportTraceServiceRequest",
            Self::Logs => "ExportLogsServiceRequest",
        }
    }
}

/// Reads an OTLP/JSON export request.
pub fn parse<R: DeserializeOwned>(
    body: &[u8],
    signal: Signal,
    decoded_budget: usize,
) -> Result<ParsedJson<R>, IngestError> {
    let first_error = match strict::<R>(body) {
        Ok(request) => {
            return Ok(ParsedJson {
                request,
                rejected: Vec::new(),
            })
        }
        Err(e) => e,
    };
    let describe = |e: &PathError| {
        let field = field_of(e.path());
        IngestError::invalid(
            field,
            format!(
                "failed to decode JSON {}: {}",
                signal.message_name(),
                e.inner()
            ),
        )
    };
    // The second reading builds the whole body as a `Value` tree first, many times its size for
    // a body of small values: only within the memory a request may take.
    if super::shape::json(body).value_tree_bytes(body.len()) > decoded_budget {
        return Err(describe(&first_error));
    }
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // Not JSON at all: the first error already says where.
        Err(_) => return Err(describe(&first_error)),
    };
    let mut rejected = Vec::new();
    match signal {
        Signal::Traces => fix_traces(&mut value, &mut rejected),
        Signal::Logs => fix_logs(&mut value, &mut rejected),
    }
    match serde_path_to_error::deserialize::<_, R>(value) {
        Ok(request) => Ok(ParsedJson { request, rejected }),
        // The same problem as before: the first error also knows the line and column.
        Err(e) if e.path().to_string() == first_error.path().to_string() => {
            Err(describe(&first_error))
        }
        // The first problem was one the fix-ups mend; this one is not.
        Err(e) => Err(describe(&e)),
    }
}

/// The field a path names, without the `?` serde puts where it could not tell; `body` for the
/// root.
pub(super) fn field_of(path: &serde_path_to_error::Path) -> String {
    let mut s = path.to_string();
    while let Some(stripped) = s.strip_suffix(".?").or_else(|| s.strip_suffix('?')) {
        s = stripped.to_string();
    }
    if s.is_empty() || s == "." {
        "body".to_string()
    } else {
        s
    }
}

pub(super) type PathError = serde_path_to_error::Error<serde_json::Error>;

pub(super) fn strict<R: DeserializeOwned>(body: &[u8]) -> Result<R, PathError> {
    // Plain serde first (cheapest); the path-tracking pass runs only to explain a failure.
    if let Ok(r) = serde_json::from_slice::<R>(body) {
        return Ok(r);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let r = serde_path_to_error::deserialize::<_, R>(&mut de)?;
    // Plain serde failed, so the path-tracking pass fails too, normally. Should it not, the
    // failure was after the value (trailing characters): report that, at the root.
    match de.end() {
        Ok(()) => Ok(r),
        Err(e) => Err(serde_path_to_error::Error::new(
            serde_path_to_error::Track::new().path(),
            e,
        )),
    }
}

fn fix_traces(root: &mut Value, rejected: &mut Vec<Rejection>) {
    strip_nulls(root);
    for (ri, rs) in items(root, "resourceSpans") {
        fix_resource(rs);
        for (si, ss) in items(rs, "scopeSpans") {
            fix_scope(ss);
            for (i, span) in items(ss, "spans") {
                let path = format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]");
                fix_item_ids(span, &["traceId", "spanId", "parentSpanId"], path, rejected);
                fix_enum(span, "kind", |n| {
                    SpanKind::from_str_name(n).map(|k| k as i32)
                });
                fix_u32s(
                    span,
                    &[
                        "flags",
                        "droppedAttributesCount",
                        "droppedEventsCount",
                        "droppedLinksCount",
                    ],
                );
                if let Some(status) = span.get_mut("status") {
                    fix_enum(status, "code", |n| {
                        StatusCode::from_str_name(n).map(|c| c as i32)
                    });
                }
                fix_key_values(span, "attributes");
                for (_, event) in items(span, "events") {
                    fix_u32s(event, &["droppedAttributesCount"]);
                    fix_key_values(event, "attributes");
                }
                for (_, link) in items(span, "links") {
                    // A bad link id drops the link (see `decode`), not the span.
                    for field in ["traceId", "spanId"] {
                        if let Some(id) = link.get_mut(field) {
                            if hex_problem(id).is_some() {
                                *id = Value::String(PLACEHOLDER_ID.into());
                            }
                        }
                    }
                    fix_u32s(link, &["flags", "droppedAttributesCount"]);
                    fix_key_values(link, "attributes");
                }
            }
        }
    }
}

fn fix_logs(root: &mut Value, rejected: &mut Vec<Rejection>) {
    strip_nulls(root);
    for (ri, rl) in items(root, "resourceLogs") {
        fix_resource(rl);
        for (si, sl) in items(rl, "scopeLogs") {
            fix_scope(sl);
            for (i, record) in items(sl, "logRecords") {
                let path = format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{i}]");
                fix_item_ids(record, &["traceId", "spanId"], path, rejected);
                fix_enum(record, "severityNumber", |n| {
                    SeverityNumber::from_str_name(n).map(|s| s as i32)
                });
                fix_u32s(record, &["flags", "droppedAttributesCount"]);
                fix_key_values(record, "attributes");
                if let Some(body) = record.get_mut("body") {
                    fix_any_value(body);
                }
            }
        }
    }
}

/// An id that is valid hex but of a length no id has: the model conversion rejects it, and its
/// rejection's reason is then replaced by the JSON reader's.
const PLACEHOLDER_ID: &str = "00";

fn fix_item_ids(
    item: &mut Value,
    fields: &[&'static str],
    path: String,
    rejected: &mut Vec<Rejection>,
) {
    let mut first: Option<Rejection> = None;
    for field in fields {
        let Some(id) = item.get_mut(*field) else {
            continue;
        };
        if let Some(reason) = hex_problem(id) {
            *id = Value::String(PLACEHOLDER_ID.into());
            if first.is_none() {
                first = Some(Rejection {
                    path: path.clone(),
                    field,
                    reason,
                });
            }
        }
    }
    rejected.extend(first);
}

/// Why an id value is not a hex string, or `None` when it is one.
fn hex_problem(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => {
            // A `0x` prefix is read as the first reading (the protobuf JSON decoder) reads it,
            // so a span's fate does not depend on the rest of its request.
            let digits = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .unwrap_or(s);
            let hex = digits.len() % 2 == 0 && digits.bytes().all(|b| b.is_ascii_hexdigit());
            if hex {
                None
            } else {
                let shown: String = s.chars().take(64).collect();
                Some(IdError::NotHex(shown).to_string())
            }
        }
        other => Some(format!("expected a hex string, found {}", json_type(other))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn fix_resource(container: &mut Value) {
    if let Some(resource) = container.get_mut("resource") {
        fix_u32s(resource, &["droppedAttributesCount"]);
        fix_key_values(resource, "attributes");
    }
}

fn fix_scope(container: &mut Value) {
    if let Some(scope) = container.get_mut("scope") {
        fix_u32s(scope, &["droppedAttributesCount"]);
        fix_key_values(scope, "attributes");
    }
}

fn fix_key_values(container: &mut Value, field: &str) {
    for (_, kv) in items(container, field) {
        if let Value::Object(map) = kv {
            map.entry("key")
                .or_insert_with(|| Value::String(String::new()));
            if let Some(v) = map.get_mut("value") {
                fix_any_value(v);
            }
        }
    }
}

fn fix_any_value(v: &mut Value) {
    let Value::Object(map) = v else { return };
    if let Some(Value::Object(array)) = map.get_mut("arrayValue") {
        let values = array
            .entry("values")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = values {
            values.iter_mut().for_each(fix_any_value);
        }
    }
    if let Some(kvlist @ Value::Object(_)) = map.get_mut("kvlistValue") {
        if let Value::Object(m) = kvlist {
            m.entry("values")
                .or_insert_with(|| Value::Array(Vec::new()));
        }
        fix_key_values(kvlist, "values");
    }
    if let Some(d) = map.get_mut("doubleValue") {
        if let Some(n) = d.as_str().and_then(|s| s.trim().parse::<f64>().ok()) {
            match serde_json::Number::from_f64(n) {
                Some(number) => *d = Value::Number(number),
                // `"NaN"`, `"Infinity"`, `"-Infinity"` (the protobuf JSON mapping's spelling of
                // doubles JSON numbers cannot hold) and overflows such as `1e400`: kept as text,
                // as a protobuf double of that value is.
                None => {
                    let text = if n.is_nan() {
                        "NaN"
                    } else if n > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    };
                    map.remove("doubleValue");
                    map.insert("stringValue".into(), Value::String(text.into()));
                }
            }
        }
    }
}

fn fix_enum(container: &mut Value, field: &str, by_name: impl Fn(&str) -> Option<i32>) {
    if let Some(v) = container.get_mut(field) {
        if let Some(n) = v.as_str().and_then(by_name) {
            *v = Value::from(n);
        }
    }
}

fn fix_u32s(container: &mut Value, fields: &[&str]) {
    for field in fields {
        if let Some(v) = container.get_mut(*field) {
            if let Some(n) = v.as_str().and_then(|s| s.trim().parse::<u32>().ok()) {
                *v = Value::from(n);
            }
        }
    }
}

/// The elements of `container[field]` when it is an array, with their indexes.
fn items<'a>(
    container: &'a mut Value,
    field: &str,
) -> impl Iterator<Item = (usize, &'a mut Value)> {
    container
        .get_mut(field)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|a| a.iter_mut().enumerate())
}

/// Drops `null` members (the protobuf JSON mapping reads them as "not set") and turns `null`
/// array elements into empty messages.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => {
            for e in a.iter_mut() {
                if e.is_null() {
                    *e = Value::Object(Map::new());
                } else {
                    strip_nulls(e);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use serde_json::json;

    fn traces(v: Value) -> Result<ParsedJson<ExportTraceServiceRequest>, IngestError> {
        parse(v.to_string().as_bytes(), Signal::Traces, usize::MAX)
    }

    fn one_span(span: Value) -> Value {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    }

    #[test]
    fn non_finite_doubles_are_kept_as_text() {
        let attr = |key: &str, d: &str| json!({"key": key, "value": {"doubleValue": d}});
        let p = traces(one_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "s", "attributes": [attr("nan", "NaN"), attr("inf", "Infinity"),
                attr("neg", "-Infinity"), attr("huge", "1e400"), attr("plain", "2.5")]
        })))
        .unwrap();
        assert!(p.rejected.is_empty());
        let attrs = &p.request.resource_spans[0].scope_spans[0].spans[0].attributes;
        let value = |i: usize| attrs[i].value.as_ref().unwrap().value.clone().unwrap();
        for (i, text) in ["NaN", "Infinity", "-Infinity", "Infinity"]
            .iter()
            .enumerate()
        {
            assert_eq!(value(i), any_value::Value::StringValue((*text).into()));
        }
        assert_eq!(value(4), any_value::Value::DoubleValue(2.5));
    }

    #[test]
    fn the_lenient_reading_stays_within_the_memory_budget() {
        // Enum names need the second, lenient reading; a body of many small values would take
        // far more memory as a `Value` tree than the budget allows, so it gets the first error.
        let span = json!({"traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174", "name": "s", "kind": "SPAN_KIND_SERVER"});
        let body = one_span(span).to_string();
        assert!(
            parse::<ExportTraceServiceRequest>(body.as_bytes(), Signal::Traces, usize::MAX).is_ok()
        );
        let err =
            parse::<ExportTraceServiceRequest>(body.as_bytes(), Signal::Traces, 64).unwrap_err();
        assert!(err.to_string().contains("kind"), "{err}");
    }

    #[test]
    fn reads_the_specification_example() {
        // opentelemetry-proto/examples/trace.json, as the specification shows it.
        let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}"#;
        let p: ParsedJson<ExportTraceServiceRequest> =
            parse(body.as_bytes(), Signal::Traces, usize::MAX).unwrap();
        assert!(p.rejected.is_empty());
        let span = &p.request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.kind, 2);
    }

    #[test]
    fn integers_as_numbers_or_strings() {
        let p = traces(one_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "startTimeUnixNano": 1544712660000000000u64, "endTimeUnixNano": "1544712661000000000",
            "attributes": [
                {"key": "a", "value": {"intValue": "10"}},
                {"key": "b", "value": {"intValue": 11}},
                {"key": "c", "value": {"doubleValue": 1.5}},
            ]
        })))
        .unwrap();
        let span = &p.request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        let ints: Vec<_> = span
            .attributes
            .iter()
            .map(|kv| kv.value.clone().unwrap().value)
            .collect();
        assert_eq!(ints[0], Some(any_value::Value::IntValue(10)));
        assert_eq!(ints[1], Some(any_value::Value::IntValue(11)));
        assert_eq!(ints[2], Some(any_value::Value::DoubleValue(1.5)));
    }

    #[test]
    fn non_hex_ids_reject_only_their_item() {
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
            {"traceId": "zz8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "parentSpanId": 17},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
             "links": [{"traceId": "nothex", "spanId": "eee19b7ec3c1b174"}]},
        ]}]}]});
        let p = traces(body).unwrap();
        let got: Vec<String> = p.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "resourceSpans[0].scopeSpans[0].spans[1].traceId: not a hex string: `zz8efff798038103d269b633813fc60c`",
                "resourceSpans[0].scopeSpans[0].spans[2].parentSpanId: expected a hex string, found a number",
            ]
        );
        // indexes are kept: the rejected spans are still in the request, with placeholder ids
        assert_eq!(p.request.resource_spans[0].scope_spans[0].spans.len(), 4);
        assert_eq!(
            p.request.resource_spans[0].scope_spans[0].spans[1].trace_id,
            vec![0]
        );
        assert_eq!(
            p.request.resource_spans[0].scope_spans[0].spans[3].links[0].trace_id,
            vec![0]
        );
    }

    #[test]
    fn a_0x_prefix_is_read_the_same_in_either_reading() {
        let span = |kind: Value| {
            json!({"traceId": "0x5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "kind": kind})
        };
        // An integer kind: the first reading; a kind by name: the second one.
        for kind in [json!(2), json!("SPAN_KIND_SERVER")] {
            let p = traces(one_span(span(kind.clone()))).unwrap();
            assert!(p.rejected.is_empty(), "{kind}: {:?}", p.rejected);
            assert_eq!(
                hex::encode(&p.request.resource_spans[0].scope_spans[0].spans[0].trace_id),
                "5b8efff798038103d269b633813fc60c"
            );
        }
    }

    /// What `opentelemetry-proto`'s serde refuses and this module accepts. Should a later version
    /// of the crate accept one of these, its assertion here fails and the fix-up can go.
    #[test]
    fn the_crate_alone_refuses_these_forms() {
        let span = |extra: Value| {
            let mut s = json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"});
            s.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            one_span(s).to_string()
        };
        for body in [
            span(json!({"traceId": "zz8efff798038103d269b633813fc60c"})),
            span(json!({"kind": "SPAN_KIND_SERVER"})),
            span(json!({"status": {"code": "STATUS_CODE_ERROR"}})),
            span(json!({"droppedAttributesCount": "2"})),
            span(json!({"events": null})),
            span(json!({"attributes": [{"key": "a", "value": {"arrayValue": {}}}]})),
            span(json!({"attributes": [{"key": "a", "value": {"doubleValue": "2.5"}}]})),
            span(json!({"attributes": [{"value": {"boolValue": true}}]})),
        ] {
            assert!(
                serde_json::from_str::<ExportTraceServiceRequest>(&body).is_err(),
                "the crate now accepts {body}"
            );
            assert!(
                parse::<ExportTraceServiceRequest>(body.as_bytes(), Signal::Traces, usize::MAX)
                    .is_ok(),
                "{body}"
            );
        }
    }

    #[test]
    fn lenient_forms_of_the_protobuf_json_mapping() {
        let p = traces(one_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "kind": "SPAN_KIND_CLIENT",
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            "droppedAttributesCount": "2",
            "events": null,
            "attributes": [
                {"key": "empty_list", "value": {"arrayValue": {}}},
                {"key": "empty_map", "value": {"kvlistValue": {}}},
                {"key": "d", "value": {"doubleValue": "2.5"}},
                {"key": "n", "value": null},
                {"value": {"boolValue": true}},
            ]
        })))
        .unwrap();
        let span = &p.request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(span.dropped_attributes_count, 2);
        assert_eq!(span.attributes.len(), 5);
        assert_eq!(
            span.attributes[2].value.clone().unwrap().value,
            Some(any_value::Value::DoubleValue(2.5))
        );
        assert_eq!(span.attributes[3].value, None);
        assert_eq!(span.attributes[4].key, "");
    }

    #[test]
    fn malformed_json_names_position() {
        let err = parse::<ExportTraceServiceRequest>(b"{not json", Signal::Traces, usize::MAX)
            .unwrap_err();
        let IngestError::InvalidInput { field, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(field, "body");
        assert!(
            message.starts_with("failed to decode JSON ExportTraceServiceRequest: "),
            "{message}"
        );
        assert!(message.contains("line 1 column 2"), "{message}");

        // cut short inside the span list: the path says how far it got
        let err = parse::<ExportTraceServiceRequest>(
            b"{\"resourceSpans\": [",
            Signal::Traces,
            usize::MAX,
        )
        .unwrap_err();
        let IngestError::InvalidInput { field, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(field, "resourceSpans");
        assert!(
            message.contains("EOF while parsing a list at line 1 column 19"),
            "{message}"
        );
    }

    #[test]
    fn wrong_types_name_the_field_path() {
        let err = traces(one_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "startTimeUnixNano": "yesterday"
        })))
        .unwrap_err();
        let IngestError::InvalidInput { field, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            field,
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano"
        );
        assert!(message.contains("invalid digit"), "{message}");
        assert!(message.contains("line 1 column"), "{message}");

        let err = traces(json!({"resourceSpans": [{"scopeSpans": "none"}]})).unwrap_err();
        assert!(
            matches!(&err, IngestError::InvalidInput { field, .. } if field == "resourceSpans[0].scopeSpans"),
            "{err:?}"
        );

        let err = traces(one_span(
            json!({"attributes": [{"key": "k", "value": {"intValue": "ten"}}]}),
        ))
        .unwrap_err();
        assert!(
            matches!(&err, IngestError::InvalidInput { field, .. } if field.starts_with("resourceSpans[0].scopeSpans[0].spans[0].attributes[0]")),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let err =
            parse::<ExportTraceServiceRequest>(b"{} x", Signal::Traces, usize::MAX).unwrap_err();
        assert!(
            matches!(&err, IngestError::InvalidInput { message, .. } if message.contains("trailing characters")),
            "{err:?}"
        );
    }

    #[test]
    fn logs_spec_example_and_fixes() {
        let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1544712660300000000", "severityNumber": 10, "severityText": "Information",
             "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
             "eventName": "gen_ai.user.message",
             "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "hi"}}]}}},
            {"severityNumber": "SEVERITY_NUMBER_WARN", "spanId": "xyz"},
        ]}]}]});
        let p: ParsedJson<ExportLogsServiceRequest> =
            parse(body.to_string().as_bytes(), Signal::Logs, usize::MAX).unwrap();
        let records = &p.request.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records[0].event_name, "gen_ai.user.message");
        assert_eq!(records[0].severity_number, 10);
        assert_eq!(records[1].severity_number, SeverityNumber::Warn as i32);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(
            p.rejected[0].to_string(),
            "resourceLogs[0].scopeLogs[0].logRecords[1].spanId: not a hex string: `xyz`"
        );
    }
}
