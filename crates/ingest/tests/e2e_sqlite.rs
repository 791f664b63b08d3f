//! End to end through the real embedded store: OTLP over HTTP (protobuf and JSON) and gRPC into
//! `SqliteStore`, read back through the `Store` trait the JSON API uses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::*;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde_json::json;
use sightline_ingest::otlp::decode::Limits;
use sightline_ingest::otlp::{grpc, http::router};
use sightline_ingest::pipeline::enrich::StandardEnricher;
use sightline_ingest::{Pipeline, PipelineConfig};
use sightline_model::{TraceId, DEFAULT_PROJECT};
use sightline_store::sqlite::{SqliteConfig, SqliteStore};
use sightline_store::{Enricher, Filter, PageRequest, SharedStore};
use tower::ServiceExt;

fn open(dir: &std::path::Path) -> (SharedStore, Arc<Pipeline>) {
    let enricher: Arc<dyn Enricher> = Arc::new(StandardEnricher::builtin());
    let config = SqliteConfig {
        path: dir.to_path_buf(),
        ..SqliteConfig::default()
    };
    let store: SharedStore = Arc::new(SqliteStore::open(config, enricher.clone()).unwrap());
    let pipeline = Pipeline::new(store.clone(), enricher, PipelineConfig::default());
    (store, pipeline)
}

async fn post(
    app: &axum::Router,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, bytes::Bytes) {
    let resp = app
        .clone()
        .oneshot(
            Request::post(path)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn http_and_grpc_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (store, pipeline) = open(dir.path());
    let app = router(pipeline.clone(), Limits::default());
    let trace = TraceId::from_hex(TRACE_HEX).unwrap();

    // protobuf over HTTP, one invalid span kept out, sent twice as a retrying client would
    let body = trace_request(vec![genai_span(0), span(&[0; 16], &span_id(1))]).encode_to_vec();
    for _ in 0..2 {
        let (status, resp) = post(&app, "/v1/traces", "application/x-protobuf", body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        let resp = ExportTraceServiceResponse::decode(resp).unwrap();
        assert_eq!(resp.partial_success.unwrap().rejected_spans, 1);
    }

    // JSON over HTTP: a child span of the first
    let json_body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": TRACE_HEX, "spanId": "00000000000000aa", "parentSpanId": "0000000000000001",
            "name": "execute_tool get_weather", "kind": 1,
            "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000200000000"
        }]}]
    }]});
    let (status, resp) = post(
        &app,
        "/v1/traces",
        "application/json",
        json_body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp:?}");

    // gRPC: a second LLM call and its GenAI log event
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(grpc::serve(
        listener,
        pipeline.clone(),
        Limits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}");
    let mut traces = TraceServiceClient::connect(url.clone()).await.unwrap();
    traces
        .export(trace_request(vec![genai_span(2)]))
        .await
        .unwrap();
    let mut logs = LogsServiceClient::connect(url).await.unwrap();
    logs.export(logs_request(vec![genai_event(2)]))
        .await
        .unwrap();

    // everything acknowledged is readable, once
    let detail = store
        .get_trace(DEFAULT_PROJECT, trace)
        .await
        .unwrap()
        .expect("trace stored");
    let mut ids: Vec<String> = detail
        .spans
        .iter()
        .map(|s| s.span.span_id.to_hex())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["0000000000000001", "0000000000000003", "00000000000000aa"]
    );
    let first = detail
        .spans
        .iter()
        .find(|s| s.span.span_id.to_hex() == "0000000000000001")
        .unwrap();
    let call = first.llm.as_ref().expect("normalized call");
    assert_eq!(call.request_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(call.usage.input_tokens, Some(1000));
    assert!(
        call.cost.as_ref().is_some_and(|c| c.total_usd > 0.0),
        "{:?}",
        call.cost
    );
    let tool = detail
        .spans
        .iter()
        .find(|s| s.span.span_id.to_hex() == "00000000000000aa")
        .unwrap();
    assert_eq!(
        tool.span.parent_span_id.unwrap().to_hex(),
        "0000000000000001"
    );
    let third = detail
        .spans
        .iter()
        .find(|s| s.span.span_id.to_hex() == "0000000000000003")
        .unwrap();
    assert!(
        third
            .span
            .events
            .iter()
            .any(|e| e.name == "gen_ai.user.message"),
        "the GenAI log event is attached to its span: {:?}",
        third.span.events
    );

    let calls = store
        .list_calls(
            &Filter {
                project: DEFAULT_PROJECT.into(),
                ..Filter::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(calls.items.len(), 2);

    let stats = pipeline.stats();
    assert_eq!(
        (
            stats.spans_written,
            stats.spans_duplicate,
            stats.spans_rejected
        ),
        (3, 1, 2)
    );
    assert_eq!(stats.log_records_accepted, 1);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    store.close().await.unwrap();
}
