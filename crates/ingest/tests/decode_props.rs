//! Property tests: decoding never panics, whatever the bytes, and every span a request carries is
//! either kept or rejected with a reason.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod common;

use bytes::Bytes;
use common::*;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use proptest::prelude::*;
use prost::Message;
use serde_json::{json, Value};
use sightline_ingest::otlp::body::{
    decode_logs_body, decode_trace_body, ContentEncoding, Encoding,
};
use sightline_ingest::otlp::decode::{spans_from_request, Limits};
use sightline_ingest::IngestError;

fn limits() -> Limits {
    Limits {
        max_attribute_value_bytes: 64,
        max_attributes_per_span: 8,
        ..small_limits()
    }
}

const ENCODINGS: [Encoding; 2] = [Encoding::Protobuf, Encoding::Json];
const COMPRESSIONS: [ContentEncoding; 4] = [
    ContentEncoding::Identity,
    ContentEncoding::Gzip,
    ContentEncoding::Deflate,
    ContentEncoding::Zstd,
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9_ .-]{0,40}".prop_map(Value::from),
        // names and values an OTLP decoder looks for, so the structure is often almost right
        prop_oneof![
            Just("resourceSpans"),
            Just("scopeSpans"),
            Just("spans"),
            Just("traceId"),
            Just("5b8efff798038103d269b633813fc60c"),
            Just("SPAN_KIND_SERVER"),
            Just("NaN"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("resourceSpans".to_string()),
                        Just("scopeSpans".to_string()),
                        Just("spans".to_string()),
                        Just("traceId".to_string()),
                        Just("spanId".to_string()),
                        Just("parentSpanId".to_string()),
                        Just("attributes".to_string()),
                        Just("key".to_string()),
                        Just("value".to_string()),
                        Just("stringValue".to_string()),
                        Just("intValue".to_string()),
                        Just("arrayValue".to_string()),
                        Just("kvlistValue".to_string()),
                        Just("values".to_string()),
                        Just("kind".to_string()),
                        Just("status".to_string()),
                        Just("resourceLogs".to_string()),
                        Just("scopeLogs".to_string()),
                        Just("logRecords".to_string()),
                        Just("body".to_string()),
                        "[a-z]{1,8}",
                    ],
                    inner,
                ),
                0..6,
            )
            .prop_map(|kvs| Value::Object(kvs.into_iter().collect())),
        ]
    })
}

/// A span-shaped JSON object whose fields are right, wrong or missing.
fn arb_json_span() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        Just(json!("5b8efff798038103d269b633813fc60c")),
        Just(json!("eee19b7ec3c1b174")),
        Just(json!("")),
        Just(json!("00000000000000000000000000000000")),
        "[0-9a-fA-Fxz-]{0,34}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
    ];
    (
        id.clone(),
        id.clone(),
        id,
        arb_json(),
        prop_oneof![
            Just(json!(2)),
            Just(json!("SPAN_KIND_CLIENT")),
            Just(json!("bogus")),
            Just(json!(-7))
        ],
    )
        .prop_map(|(t, s, p, attrs, kind)| {
            json!({
                "traceId": t, "spanId": s, "parentSpanId": p, "kind": kind,
                "attributes": [{"key": "a", "value": attrs}],
            })
        })
}

fn arb_any_value(depth: u32) -> BoxedStrategy<AnyValue> {
    let leaf = prop_oneof![
        Just(None),
        ".{0,100}".prop_map(|s| Some(any_value::Value::StringValue(s))),
        any::<bool>().prop_map(|b| Some(any_value::Value::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(any_value::Value::IntValue(i))),
        any::<f64>().prop_map(|f| Some(any_value::Value::DoubleValue(f))),
        prop::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| Some(any_value::Value::BytesValue(b))),
    ]
    .prop_map(|value| AnyValue { value });
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(arb_any_value(depth - 1), 0..4)
            .prop_map(|values| AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values })) }),
        1 => prop::collection::vec(("[a-z]{0,6}", arb_any_value(depth - 1)), 0..4).prop_map(|kvs| AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: kvs.into_iter().map(|(k, v)| opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: k, value: Some(v), ..Default::default()
                }).collect(),
            })),
        }),
    ]
    .boxed()
}

fn arb_otlp_span() -> impl Strategy<Value = OtlpSpan> {
    let id = |len: usize| {
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), len),
            1 => prop::collection::vec(any::<u8>(), 0..20),
            1 => Just(vec![0u8; len]),
        ]
    };
    (
        id(16),
        id(8),
        prop_oneof![Just(vec![]), id(8)],
        any::<i32>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(("[a-z.]{1,10}", arb_any_value(2)), 0..12),
    )
        .prop_map(
            |(trace_id, span_id, parent_span_id, kind, start, end, attrs)| OtlpSpan {
                trace_id,
                span_id,
                parent_span_id,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: attrs
                    .into_iter()
                    .map(|(k, v)| opentelemetry_proto::tonic::common::v1::KeyValue {
                        key: k,
                        value: Some(v),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )
}

fn all_string_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|e| all_string_values(e, out)),
        Value::Object(m) => m.values().for_each(|e| all_string_values(e, out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048), e in 0usize..2, c in 0usize..4) {
        let limits = limits();
        let body = Bytes::from(body);
        let _ = decode_trace_body(body.clone(), ENCODINGS[e], COMPRESSIONS[c], "p", &limits);
        let _ = decode_logs_body(body, ENCODINGS[e], COMPRESSIONS[c], "p", &limits);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let limits = limits();
        let body = Bytes::from(v.to_string());
        let _ = decode_trace_body(body.clone(), Encoding::Json, ContentEncoding::Identity, "p", &limits);
        let _ = decode_logs_body(body, Encoding::Json, ContentEncoding::Identity, "p", &limits);
    }

    #[test]
    fn every_json_span_is_kept_or_rejected(spans in prop::collection::vec(arb_json_span(), 1..8)) {
        let n = spans.len();
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string();
        match decode_trace_body(Bytes::from(body), Encoding::Json, ContentEncoding::Identity, "p", &limits()) {
            Ok(d) => {
                prop_assert_eq!(d.items.len() + d.rejected.len(), n);
                for r in &d.rejected {
                    prop_assert!(r.path.starts_with("resourceSpans[0].scopeSpans[0].spans["));
                    prop_assert!(!r.reason.is_empty());
                }
            }
            Err(IngestError::InvalidInput { field, message }) => {
                prop_assert!(!field.is_empty());
                prop_assert!(message.contains("failed to decode JSON"), "{}", message);
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }

    #[test]
    fn every_protobuf_span_is_kept_or_rejected(spans in prop::collection::vec(arb_otlp_span(), 0..10)) {
        let limits = limits();
        let req = trace_request(spans.clone());
        let direct = spans_from_request(&req, "p", &limits);
        prop_assert_eq!(direct.items.len() + direct.rejected.len(), spans.len());
        for s in &direct.items {
            prop_assert!(s.trace_id.0 != [0; 16] && s.span_id.0 != [0; 8]);
            let mut strings = Vec::new();
            all_string_values(&Value::Object(s.attributes.clone()), &mut strings);
            for v in strings {
                prop_assert!(v.len() <= limits.max_attribute_value_bytes, "{} bytes", v.len());
            }
        }
        // the same request through the HTTP body path
        let proto = decode_trace_body(Bytes::from(req.encode_to_vec()), Encoding::Protobuf, ContentEncoding::Identity, "p", &limits).unwrap();
        prop_assert_eq!(&proto, &direct);
    }
}
