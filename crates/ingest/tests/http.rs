//! OTLP/HTTP handler tests, driven with `tower::ServiceExt::oneshot` (no socket).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use common::*;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::{span, Status};
use prost::Message;
use serde_json::{json, Value};
use sightline_ingest::otlp::decode::Limits;
use sightline_ingest::otlp::http::router;
use sightline_ingest::otlp::status::{BadRequest, RpcStatus};
use sightline_ingest::PipelineConfig;
use sightline_model::{SpanKind, StatusCode as SpanStatusCode, DEFAULT_PROJECT};
use tokio::sync::Semaphore;
use tower::ServiceExt;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn rpc_status(&self) -> RpcStatus {
        assert_eq!(self.headers[header::CONTENT_TYPE], PROTOBUF);
        RpcStatus::decode(self.body.clone()).expect("a google.rpc.Status")
    }

    fn trace_response(&self) -> ExportTraceServiceResponse {
        assert_eq!(self.headers[header::CONTENT_TYPE], PROTOBUF);
        ExportTraceServiceResponse::decode(self.body.clone())
            .expect("an ExportTraceServiceResponse")
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

fn req(path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

fn setup(limits: Limits) -> (Arc<RecordingStore>, Router, Arc<sightline_ingest::Pipeline>) {
    let store = RecordingStore::new();
    let p = pipeline(store.clone(), PipelineConfig::default());
    (store, router(p.clone(), limits), p)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn protobuf_traces_are_stored_with_every_field() {
    let (store, app, p) = setup(Limits::default());
    let mut sp = genai_span(0);
    sp.parent_span_id = hex::decode(PARENT_HEX).unwrap();
    sp.status = Some(Status {
        message: "boom".into(),
        code: 2,
    });
    sp.attributes.push(kv(
        "tags",
        any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(s("a")),
                },
                AnyValue {
                    value: Some(int(2)),
                },
            ],
        }),
    ));
    sp.attributes.push(kv(
        "meta",
        any_value::Value::KvlistValue(KeyValueList {
            values: vec![kv("ok", any_value::Value::BoolValue(true))],
        }),
    ));
    sp.attributes
        .push(kv("ratio", any_value::Value::DoubleValue(0.25)));
    sp.attributes
        .push(kv("raw", any_value::Value::BytesValue(b"hi".to_vec())));
    sp.events = vec![span::Event {
        time_unix_nano: 1_700_000_000_200_000_000,
        name: "gen_ai.choice".into(),
        attributes: vec![kv("index", int(0))],
        dropped_attributes_count: 0,
    }];
    let body = trace_request(vec![sp]).encode_to_vec();
    let r = send(&app, req("/v1/traces", PROTOBUF, body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.trace_response().partial_success, None);

    let stored = store.spans();
    assert_eq!(stored.len(), 1);
    let s = &stored[0].span;
    assert_eq!(s.project, DEFAULT_PROJECT);
    assert_eq!(s.trace_id.to_hex(), TRACE_HEX);
    assert_eq!(s.span_id.to_hex(), "0000000000000001");
    assert_eq!(s.parent_span_id.unwrap().to_hex(), PARENT_HEX);
    assert_eq!(s.name, "chat gpt-4o-mini");
    assert_eq!(s.kind, SpanKind::Client);
    assert_eq!(s.service, "checkout");
    assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(s.end_time_unix_nano, 1_700_000_001_500_000_000);
    assert_eq!(s.status.code, SpanStatusCode::Error);
    assert_eq!(s.status.message, "boom");
    assert_eq!(s.attributes["gen_ai.usage.input_tokens"], json!(1000));
    assert_eq!(s.attributes["tags"], json!(["a", 2]));
    assert_eq!(s.attributes["meta"], json!({"ok": true}));
    assert_eq!(s.attributes["ratio"], json!(0.25));
    assert_eq!(s.attributes["raw"], json!("aGk="));
    assert_eq!(s.resource["service.name"], json!("checkout"));
    assert_eq!(s.scope.name, "opentelemetry.instrumentation.openai_v2");
    assert_eq!(s.events[0].name, "gen_ai.choice");
    // the pipeline enriched it into a priced call
    let call = stored[0]
        .llm
        .as_ref()
        .expect("a gen_ai span is an LLM call");
    assert_eq!(call.request_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(call.usage.input_tokens, Some(1000));
    assert!(call.cost.is_some(), "gpt-4o-mini is priced");

    let stats = p.stats();
    assert_eq!(
        (
            stats.trace_requests,
            stats.spans_received,
            stats.spans_accepted
        ),
        (1, 1, 1)
    );
    assert_eq!(stats.inflight_items, 0);
}

/// The OTLP/JSON form exactly as the specification's example shows it, plus every value type.
const SPEC_JSON: &str = r#"{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "kind": 2,
        "attributes": [
          {"key": "my.span.attr", "value": {"stringValue": "some value"}},
          {"key": "int.attr", "value": {"intValue": "10"}},
          {"key": "int.number", "value": {"intValue": 11}},
          {"key": "double.attr", "value": {"doubleValue": 637.704}},
          {"key": "bool.attr", "value": {"boolValue": true}},
          {"key": "array.attr", "value": {"arrayValue": {"values": [{"stringValue": "many"}, {"intValue": "2"}]}}},
          {"key": "map.attr", "value": {"kvlistValue": {"values": [{"key": "some.map.key", "value": {"stringValue": "some value"}}]}}},
          {"key": "bytes.attr", "value": {"bytesValue": "aGk="}}
        ],
        "events": [{"timeUnixNano": "1544712660500000000", "name": "gen_ai.choice",
                    "attributes": [{"key": "index", "value": {"intValue": "0"}}]}],
        "links": [{"traceId": "5B8EFFF798038103D269B633813FC60D", "spanId": "EEE19B7EC3C1B175"}],
        "status": {"code": 1, "message": "fine"},
        "someFieldFromTheFuture": {"ignored": true}
      }]
    }]
  }]
}"#;

#[tokio::test]
async fn json_traces_in_the_specification_form() {
    let (store, app, _) = setup(Limits::default());
    let r = send(&app, req("/v1/traces", JSON, SPEC_JSON)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], JSON);
    assert_eq!(r.json(), json!({}));
    let stored = store.spans();
    let s = &stored[0].span;
    assert_eq!(s.trace_id.to_hex(), TRACE_HEX);
    assert_eq!(s.span_id.to_hex(), SPAN_HEX);
    assert_eq!(s.parent_span_id.unwrap().to_hex(), PARENT_HEX);
    assert_eq!(s.kind, SpanKind::Server);
    assert_eq!(s.service, "my.service");
    assert_eq!(s.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(s.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(s.status.code, SpanStatusCode::Ok);
    assert_eq!(
        Value::Object(s.attributes.clone()),
        json!({
            "my.span.attr": "some value", "int.attr": 10, "int.number": 11, "double.attr": 637.704,
            "bool.attr": true, "array.attr": ["many", 2], "map.attr": {"some.map.key": "some value"},
            "bytes.attr": "aGk="
        })
    );
    assert_eq!(s.scope.name, "my.library");
    assert_eq!(s.scope.version, "1.0.0");
    assert_eq!(
        s.scope.attributes["my.scope.attribute"],
        json!("some scope attribute")
    );
    assert_eq!(s.events[0].time_unix_nano, 1_544_712_660_500_000_000);
    assert_eq!(s.events[0].attributes["index"], json!(0));
    assert_eq!(s.links[0].span_id.to_hex(), "eee19b7ec3c1b175");
}

#[tokio::test]
async fn langfuse_path_accepts_protobuf_with_basic_auth() {
    let (store, app, _) = setup(Limits::default());
    let r = send(
        &app,
        Request::post("/api/public/otel/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header(header::AUTHORIZATION, "Basic cGstbGYtMTIzOnNrLWxmLTQ1Ng==")
            .header("x-sightline-project", "langfuse-app")
            .body(Body::from(
                trace_request(vec![genai_span(0)]).encode_to_vec(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(store.spans()[0].span.project, "langfuse-app");
}

#[tokio::test]
async fn compressed_bodies() {
    let (store, app, _) = setup(Limits::default());
    let proto = trace_request(vec![genai_span(0)]).encode_to_vec();
    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(gzip(&proto)))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, JSON)
            .header(header::CONTENT_ENCODING, "zstd")
            .body(Body::from(
                zstd::encode_all(SPEC_JSON.as_bytes(), 3).unwrap(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&trace_request(vec![genai_span(1)]).encode_to_vec())
        .unwrap();
    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header(header::CONTENT_ENCODING, "deflate")
            .body(Body::from(z.finish().unwrap()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(store.spans().len(), 3);

    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(proto))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.rpc_status()
            .message
            .contains("failed to decompress gzip body"),
        "{:?}",
        r.rpc_status()
    );
}

#[tokio::test]
async fn malformed_protobuf_is_400_with_a_status_body() {
    let (store, app, _) = setup(Limits::default());
    let r = send(
        &app,
        req(
            "/v1/traces",
            PROTOBUF,
            &b"\x0a\xff\xff\xff\xff\x0f garbage"[..],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let st = r.rpc_status();
    assert_eq!(st.code, 3, "INVALID_ARGUMENT");
    assert!(
        st.message
            .starts_with("invalid body: failed to decode protobuf ExportTraceServiceRequest: "),
        "{}",
        st.message
    );
    let details = BadRequest::decode(&st.details[0].value[..]).unwrap();
    assert_eq!(details.field_violations[0].field, "body");
    assert!(store.spans().is_empty());
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_position() {
    let (_, app, _) = setup(Limits::default());
    let r = send(
        &app,
        req(
            "/v1/traces",
            JSON,
            r#"{"resourceSpans": [{"scopeSpans": [}]}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers[header::CONTENT_TYPE], JSON);
    let v = r.json();
    assert_eq!(v["code"], 3);
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("failed to decode JSON ExportTraceServiceRequest"),
        "{message}"
    );
    assert!(
        message.contains("expected value at line 1 column 36"),
        "{message}"
    );
    assert_eq!(
        v["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        v["details"][0]["fieldViolations"][0]["field"],
        "resourceSpans[0].scopeSpans[0]"
    );
}

#[tokio::test]
async fn wrong_attribute_types_are_400_naming_the_field() {
    let (_, app, _) = setup(Limits::default());
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE_HEX, "spanId": SPAN_HEX,
        "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "ten"}}]
    }]}]}]});
    let r = send(&app, req("/v1/traces", JSON, body.to_string())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let field = r.json()["details"][0]["fieldViolations"][0]["field"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        field.starts_with("resourceSpans[0].scopeSpans[0].spans[0].attributes[0]"),
        "{field}"
    );

    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE_HEX, "spanId": SPAN_HEX, "startTimeUnixNano": true
    }]}]}]});
    let r = send(&app, req("/v1/traces", JSON, body.to_string())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["details"][0]["fieldViolations"][0]["field"],
        "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano"
    );
}

#[tokio::test]
async fn bad_ids_are_rejected_alone_and_valid_spans_kept() {
    let (store, app, p) = setup(Limits::default());
    let spans = vec![
        genai_span(0),
        span(&trace_id()[..15], &span_id(1)),
        span(&[0; 16], &span_id(2)),
        span(&trace_id(), &[0; 8]),
        genai_span(4),
    ];
    let r = send(
        &app,
        req("/v1/traces", PROTOBUF, trace_request(spans).encode_to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let partial = r.trace_response().partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 3);
    assert_eq!(
        partial.error_message,
        "rejected 3 of 5 spans: resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes, got 15; \
         resourceSpans[0].scopeSpans[0].spans[2].traceId: identifier is all zeros; \
         resourceSpans[0].scopeSpans[0].spans[3].spanId: identifier is all zeros"
    );
    let stored: Vec<String> = store
        .spans()
        .iter()
        .map(|s| s.span.span_id.to_hex())
        .collect();
    assert_eq!(stored, ["0000000000000001", "0000000000000005"]);
    let stats = p.stats();
    assert_eq!(stats.spans_rejected, 3);
    assert_eq!(stats.spans_rejected_by_field["traceId"], 2);
    assert_eq!(stats.spans_rejected_by_field["spanId"], 1);
}

#[tokio::test]
async fn non_hex_json_ids_are_rejected_alone() {
    let (store, app, _) = setup(Limits::default());
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE_HEX, "spanId": SPAN_HEX, "name": "good"},
        {"traceId": "not-hex-at-all", "spanId": SPAN_HEX, "name": "bad"},
        {"traceId": TRACE_HEX, "spanId": "0000000000000000", "name": "zero"},
        {"traceId": "5b8e", "spanId": PARENT_HEX, "name": "short"},
    ]}]}]});
    let r = send(&app, req("/v1/traces", JSON, body.to_string())).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "3");
    let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        msg.contains("spans[1].traceId: not a hex string: `not-hex-at-all`"),
        "{msg}"
    );
    assert!(
        msg.contains("spans[2].spanId: identifier is all zeros"),
        "{msg}"
    );
    assert!(
        msg.contains("spans[3].traceId: expected 16 bytes, got 2"),
        "{msg}"
    );
    let names: Vec<String> = store.spans().iter().map(|s| s.span.name.clone()).collect();
    assert_eq!(names, ["good"]);
}

#[tokio::test]
async fn a_request_with_only_invalid_spans_is_400() {
    let (store, app, _) = setup(Limits::default());
    let r = send(
        &app,
        req(
            "/v1/traces",
            PROTOBUF,
            trace_request(vec![span(&[1, 2, 3], &span_id(0))]).encode_to_vec(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let st = r.rpc_status();
    assert_eq!(
        st.message,
        "invalid resourceSpans[0].scopeSpans[0].spans[0].traceId: expected 16 bytes, got 3"
    );
    assert!(store.batches.lock().unwrap().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let limits = small_limits();
    let (_, app, _) = setup(limits.clone());
    let big = vec![b' '; limits.max_body_bytes + 1];
    // declared by Content-Length
    let r = send(&app, req("/v1/traces", JSON, big.clone())).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json()["message"],
        "request body exceeds 65536 bytes (max_body_bytes)"
    );
    // streamed without a length
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = big
        .chunks(1000)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let body = Body::from_stream(futures::stream::iter(chunks));
    let r = send(&app, req("/v1/traces", PROTOBUF, body)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.rpc_status().message,
        "request body exceeds 65536 bytes (max_body_bytes)"
    );
}

#[tokio::test]
async fn decompression_bomb_is_413() {
    let limits = Limits {
        max_body_bytes: 1024 * 1024,
        ..small_limits()
    };
    let (store, app, p) = setup(limits.clone());
    // 64 MiB of zeros: a small gzip body that fits max_body_bytes and inflates 256 times past
    // max_decompressed_bytes (the 1 GiB case, with allocations measured, is in tests/bomb.rs)
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 64 * 1024 * 1024]).unwrap();
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < limits.max_body_bytes, "{}", bomb.len());
    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(bomb))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.rpc_status().message,
        "decompressed body exceeds 262144 bytes (max_decompressed_bytes)"
    );
    assert!(store.spans().is_empty());
    assert_eq!(p.stats().failed_requests["too_large"], 1);
}

#[tokio::test]
async fn too_many_spans_is_413() {
    let limits = Limits {
        max_spans_per_request: 3,
        ..Limits::default()
    };
    let (store, app, _) = setup(limits);
    let spans = (0..4).map(genai_span).collect();
    let r = send(
        &app,
        req("/v1/traces", PROTOBUF, trace_request(spans).encode_to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.rpc_status().message,
        "request has 4 spans, more than the limit of 3 (max_spans_per_request)"
    );
    assert!(store.spans().is_empty());
}

#[tokio::test]
async fn requests_of_empty_messages_are_413_before_decoding() {
    let limits = Limits {
        max_body_bytes: 1024 * 1024,
        max_decompressed_bytes: 1024 * 1024,
        max_spans_per_request: usize::MAX,
        ..Limits::default()
    };
    let (store, app, _) = setup(limits);
    // 200,000 empty spans: 400 KB of protobuf, or 600 KB of JSON, that would decode to far
    // more than 8 MiB (8 times max_decompressed_bytes).
    let mut scope = Vec::new();
    for _ in 0..200_000 {
        scope.extend_from_slice(b"\x12\x00");
    }
    let nest = |field: u8, inner: Vec<u8>| {
        let mut out = vec![field];
        let mut n = inner.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(&inner);
        out
    };
    let protobuf = nest(0x0a, nest(0x12, scope));
    let spans = vec!["{}"; 200_000].join(",");
    let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    // The same for metrics: 200,000 empty gauge points.
    let mut points = Vec::new();
    for _ in 0..200_000 {
        points.extend_from_slice(b"\x0a\x00");
    }
    let metric = {
        let mut m = b"\x0a\x01m".to_vec();
        m.extend(nest(0x2a, points));
        m
    };
    let metrics = nest(0x0a, nest(0x12, nest(0x12, metric)));
    let points = vec!["{}"; 200_000].join(",");
    let metrics_json = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"m","gauge":{{"dataPoints":[{points}]}}}}]}}]}}]}}"#
    );
    for (path, media, body, how) in [
        ("/v1/traces", PROTOBUF, protobuf, "about"),
        ("/v1/traces", JSON, json.into_bytes(), "up to"),
        ("/v1/metrics", PROTOBUF, metrics, "about"),
        ("/v1/metrics", JSON, metrics_json.into_bytes(), "up to"),
    ] {
        let r = send(&app, req(path, media, body)).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{path} {media}");
        // A google.rpc.Status in the request's encoding, either way holding the message.
        let message = String::from_utf8_lossy(&r.body).into_owned();
        assert!(
            message.contains(&format!("request would take {how} "))
                && message.contains("once decoded"),
            "{path} {media}: {message}"
        );
    }
    assert!(store.spans().is_empty());
}

#[tokio::test]
async fn unsupported_media_is_415() {
    let (_, app, _) = setup(Limits::default());
    let r = send(&app, req("/v1/traces", "text/plain", "hello")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.json()["message"],
        "unsupported content-type `text/plain`; send application/x-protobuf or application/json"
    );
    let r = send(
        &app,
        Request::post("/v1/traces").body(Body::from("x")).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header(header::CONTENT_ENCODING, "br")
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r
        .rpc_status()
        .message
        .contains("unsupported content-encoding `br`"));
}

#[tokio::test]
async fn overload_is_429_with_retry_after() {
    let gate = Arc::new(Semaphore::new(0));
    let store = RecordingStore::gated(gate.clone());
    let p = pipeline(
        store.clone(),
        PipelineConfig {
            max_inflight_spans: 10,
            retry_after_secs: 7,
            ..PipelineConfig::default()
        },
    );
    let app = router(p.clone(), Limits::default());

    // 8 spans enter the pipeline and wait for the store
    let first = tokio::spawn({
        let app = app.clone();
        let body = trace_request((0..8).map(genai_span).collect()).encode_to_vec();
        async move { send(&app, req("/v1/traces", PROTOBUF, body)).await }
    });
    tokio::time::timeout(Duration::from_secs(10), store.write_started.notified())
        .await
        .unwrap();
    assert_eq!(p.stats().inflight_items, 8);

    // 5 more do not fit: refused at once
    let body = trace_request((10..15).map(genai_span).collect()).encode_to_vec();
    let r = send(&app, req("/v1/traces", PROTOBUF, body)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers[header::RETRY_AFTER], "7");
    assert_eq!(r.rpc_status().code, 8, "RESOURCE_EXHAUSTED");
    // JSON requests get a JSON status with the retry delay
    let big = json!({"resourceSpans": [{"scopeSpans": [{"spans": (0..5).map(|i| json!({
        "traceId": TRACE_HEX, "spanId": format!("00000000000000a{i}")
    })).collect::<Vec<_>>()}]}]});
    let r = send(&app, req("/v1/traces", JSON, big.to_string())).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers[header::RETRY_AFTER], "7");
    assert_eq!(r.json()["details"][0]["retryDelay"], "7s");

    // once the store commits, the first request is acknowledged and room is back
    gate.add_permits(1);
    let r = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(p.stats().inflight_items, 0);
    assert_eq!(p.stats().failed_requests["overloaded"], 2);
    gate.add_permits(1);
    let body = trace_request((10..15).map(genai_span).collect()).encode_to_vec();
    let r = send(&app, req("/v1/traces", PROTOBUF, body)).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn store_outage_is_503_and_store_failure_500() {
    let (store, app, _) = setup(Limits::default());
    store.set_mode(Mode::Closed);
    let body = trace_request(vec![genai_span(0)]).encode_to_vec();
    let r = send(&app, req("/v1/traces", PROTOBUF, body.clone())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    assert_eq!(r.rpc_status().message, "store unavailable: store is closed");
    store.set_mode(Mode::Broken);
    let r = send(&app, req("/v1/traces", PROTOBUF, body)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.headers.get(header::RETRY_AFTER).is_none());
}

#[tokio::test]
async fn logs_in_protobuf_and_json() {
    let (store, app, p) = setup(Limits::default());
    let mut bad = genai_event(1);
    bad.span_id = vec![9; 3];
    let body = logs_request(vec![genai_event(0), bad]).encode_to_vec();
    let r = send(&app, req("/v1/logs", PROTOBUF, body)).await;
    assert_eq!(r.status, StatusCode::OK);
    let resp = ExportLogsServiceResponse::decode(r.body.clone()).unwrap();
    let partial = resp.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(partial
        .error_message
        .contains("logRecords[1].spanId: expected 8 bytes, got 3"));

    let json_body = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
        "scopeLogs": [{"scope": {"name": "openai"}, "logRecords": [{
            "timeUnixNano": "1544712660300000000",
            "observedTimeUnixNano": "1544712660300000000",
            "severityNumber": 10, "severityText": "Information",
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "Hi"}}]}},
            "attributes": [{"key": "event.name", "value": {"stringValue": "gen_ai.choice"}}]
        }]}]
    }]});
    let r = send(&app, req("/v1/logs", JSON, json_body.to_string())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({}));

    let logs = store.logs();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].event_name.as_deref(), Some("gen_ai.user.message"));
    assert_eq!(logs[0].body, Some(json!({"content": "What is OTLP?"})));
    assert_eq!(logs[0].span_id.unwrap().to_hex(), "0000000000000001");
    assert_eq!(logs[1].event_name.as_deref(), Some("gen_ai.choice"));
    assert_eq!(logs[1].service, "agent");
    assert_eq!(logs[1].time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(logs[1].trace_id.unwrap().to_hex(), TRACE_HEX);
    assert!(logs[1].is_genai_event());
    let stats = p.stats();
    assert_eq!(
        (
            stats.log_requests,
            stats.log_records_received,
            stats.log_records_accepted,
            stats.log_records_rejected
        ),
        (2, 3, 2, 1)
    );
}

#[tokio::test]
async fn truncation_is_a_partial_success_warning() {
    let limits = Limits {
        max_attribute_value_bytes: 50,
        ..Limits::default()
    };
    let (store, app, _) = setup(limits);
    let mut sp = genai_span(0);
    sp.attributes
        .push(kv("gen_ai.input.messages", s(&"x".repeat(500))));
    let r = send(
        &app,
        req(
            "/v1/traces",
            PROTOBUF,
            trace_request(vec![sp]).encode_to_vec(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let partial = r.trace_response().partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 0);
    assert_eq!(
        partial.error_message,
        "truncated 1 strings longer than 50 bytes (max_attribute_value_bytes)"
    );
    let v = store.spans()[0].span.attributes["gen_ai.input.messages"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        v.len() <= 50 && v.ends_with("…[truncated from 500 bytes]"),
        "{v}"
    );
}

#[tokio::test]
async fn project_header_is_validated() {
    let (store, app, _) = setup(Limits::default());
    let body = trace_request(vec![genai_span(0)]).encode_to_vec();
    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header("x-sightline-project", "bad project!")
            .body(Body::from(body.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r
        .rpc_status()
        .message
        .starts_with("invalid x-sightline-project: `bad project!`"));
    let r = send(
        &app,
        Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, PROTOBUF)
            .header("x-sightline-project", "prod")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(store.spans()[0].span.project, "prod");
}

#[tokio::test]
async fn resent_spans_are_acknowledged_and_counted_as_duplicates() {
    let (store, app, p) = setup(Limits::default());
    let body = trace_request(vec![genai_span(0), genai_span(1)]).encode_to_vec();
    for _ in 0..2 {
        let r = send(&app, req("/v1/traces", PROTOBUF, body.clone())).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let stats = p.stats();
    assert_eq!(
        (
            stats.spans_accepted,
            stats.spans_written,
            stats.spans_duplicate
        ),
        (4, 2, 2)
    );
    assert_eq!(store.batches.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn only_post_is_routed() {
    let (_, app, _) = setup(Limits::default());
    let r = send(
        &app,
        Request::get("/v1/traces").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = send(&app, req("/v1/profiles", PROTOBUF, Vec::new())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(
        &app,
        Request::get("/v1/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = send(&app, req("/v1/traces", PROTOBUF, Vec::new())).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "an empty export is a valid, empty request"
    );
}

#[tokio::test]
async fn a_stalled_upload_holds_only_what_it_sent() {
    let store = RecordingStore::new();
    let p = pipeline(
        store.clone(),
        PipelineConfig {
            max_inflight_body_bytes: 1000,
            ..PipelineConfig::default()
        },
    );
    let app = router(p.clone(), Limits::default());
    // Declares 900 bytes, sends 10, then waits.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let stalled = tokio::spawn({
        let app = app.clone();
        async move {
            let request = Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, PROTOBUF)
                .header(header::CONTENT_LENGTH, "900")
                .body(Body::from_stream(rx))
                .unwrap();
            send(&app, request).await
        }
    });
    use futures::SinkExt;
    tx.send(Ok(bytes::Bytes::from(vec![0x0a; 10])))
        .await
        .unwrap();
    for _ in 0..100 {
        if p.stats().inflight_body_bytes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.stats().inflight_body_bytes, 10);
    // Another client's 500-byte export still fits in the budget.
    let mut spans = Vec::new();
    let mut i = 0;
    while trace_request(spans.clone()).encode_to_vec().len() < 500 {
        spans.push(genai_span(i));
        i += 1;
    }
    let body = trace_request(spans).encode_to_vec();
    assert!(body.len() < 990, "{}", body.len());
    let r = send(&app, req("/v1/traces", PROTOBUF, body)).await;
    assert_eq!(r.status, StatusCode::OK);
    drop(tx);
    let r = tokio::time::timeout(Duration::from_secs(10), stalled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "the cut-off body is not a request"
    );
    assert_eq!(p.stats().inflight_body_bytes, 0);
}

#[tokio::test]
async fn body_budget_refuses_uploads_that_do_not_fit() {
    let store = RecordingStore::new();
    let p = pipeline(
        store.clone(),
        PipelineConfig {
            max_inflight_body_bytes: 1000,
            ..PipelineConfig::default()
        },
    );
    let app = router(p.clone(), Limits::default());
    let proto = trace_request(vec![genai_span(0)]).encode_to_vec();
    assert!(proto.len() < 500);

    // a slow upload holds part of the budget while its body trickles in
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let slow = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req("/v1/traces", PROTOBUF, Body::from_stream(rx))).await }
    });
    use futures::SinkExt;
    let (head, tail) = proto.split_at(proto.len() / 2);
    tx.send(Ok(bytes::Bytes::copy_from_slice(head)))
        .await
        .unwrap();
    tx.send(Ok(bytes::Bytes::from(vec![]))).await.unwrap();
    for _ in 0..100 {
        if p.stats().inflight_body_bytes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.stats().inflight_body_bytes, head.len() as u64);

    // a declared 900-byte body does not fit next to it
    let r = send(&app, req("/v1/traces", PROTOBUF, vec![0u8; 900])).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    // a small one does
    let r = send(
        &app,
        req(
            "/v1/traces",
            PROTOBUF,
            trace_request(vec![genai_span(1)]).encode_to_vec(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    tx.send(Ok(bytes::Bytes::copy_from_slice(tail)))
        .await
        .unwrap();
    drop(tx);
    let r = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(p.stats().inflight_body_bytes, 0);
    assert_eq!(store.spans().len(), 2);
}

/// OTLP metrics over HTTP: protobuf (gzip) and JSON are stored, a bad point is rejected alone
/// with its path, a body that is not OTLP is a 400 naming the field.
#[tokio::test]
async fn metrics_are_stored_and_bad_points_rejected_alone() {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics,
    };
    let (store, app, p) = setup(Limits::default());
    let point = |t: u64, v: f64| NumberDataPoint {
        time_unix_nano: t,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "loss".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![point(10, 0.5), point(0, 0.4), point(12, 0.3)],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut r = req("/v1/metrics", PROTOBUF, gzip(&request.encode_to_vec()));
    r.headers_mut()
        .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    let reply = send(&app, r).await;
    assert_eq!(reply.status, StatusCode::OK);
    let response = ExportMetricsServiceResponse::decode(reply.body.clone()).unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial
            .error_message
            .contains("metrics[0].gauge.dataPoints[1].timeUnixNano"),
        "{}",
        partial.error_message
    );
    let stored = store.metric_points.lock().unwrap().clone();
    assert_eq!(
        stored.iter().map(|p| p.value).collect::<Vec<_>>(),
        vec![Some(0.5), Some(0.3)]
    );
    assert_eq!(stored[0].project, DEFAULT_PROJECT);

    let json_body = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "lr",
        "sum": {"aggregationTemporality": 2, "isMonotonic": false,
                "dataPoints": [{"timeUnixNano": "5", "asInt": "3"}]}}]}]}]});
    let reply = send(&app, req("/v1/metrics", JSON, json_body.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));
    assert_eq!(store.metric_points.lock().unwrap().len(), 3);

    let reply = send(&app, req("/v1/metrics", JSON, r#"{"resourceMetrics": 5}"#)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let m = p.metric_counters().snapshot();
    assert_eq!(
        (
            m.requests,
            m.points_received,
            m.points_accepted,
            m.points_rejected
        ),
        (3, 4, 3, 1)
    );
}
