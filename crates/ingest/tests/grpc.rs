//! OTLP/gRPC round trips through a real tonic client and server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot proceed should panic

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use sightline_ingest::otlp::decode::Limits;
use sightline_ingest::otlp::grpc;
use sightline_ingest::otlp::status::{BadRequest, RetryInfo, RpcStatus};
use sightline_ingest::{Pipeline, PipelineConfig};
use tokio::sync::{oneshot, Semaphore};
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::Code;

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    async fn start(pipeline: Arc<Pipeline>, limits: Limits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(grpc::serve(listener, pipeline, limits, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn traces(&self) -> TraceServiceClient<Channel> {
        TraceServiceClient::new(self.channel().await)
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .unwrap()
            .expect("server ends cleanly");
    }
}

fn details(status: &tonic::Status) -> RpcStatus {
    RpcStatus::decode(status.details()).expect("google.rpc.Status details")
}

#[tokio::test]
async fn traces_round_trip_with_gzip_and_project() {
    let store = RecordingStore::new();
    let p = pipeline(store.clone(), PipelineConfig::default());
    let server = Server::start(p.clone(), Limits::default()).await;
    let mut client = server
        .traces()
        .await
        .send_compressed(CompressionEncoding::Gzip);

    let mut request = tonic::Request::new(trace_request(vec![genai_span(0), genai_span(1)]));
    request
        .metadata_mut()
        .insert("x-sightline-project", "grpc-app".parse().unwrap());
    let resp = client.export(request).await.unwrap().into_inner();
    assert_eq!(resp.partial_success, None);

    let spans = store.spans();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].span.project, "grpc-app");
    assert_eq!(spans[0].span.trace_id.to_hex(), TRACE_HEX);
    assert_eq!(spans[0].span.service, "checkout");
    assert_eq!(
        spans[0]
            .llm
            .as_ref()
            .and_then(|c| c.request_model.as_deref()),
        Some("gpt-4o-mini")
    );
    assert_eq!(p.stats().trace_requests, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn partial_success_and_invalid_argument() {
    let store = RecordingStore::new();
    let p = pipeline(store.clone(), PipelineConfig::default());
    let server = Server::start(p, Limits::default()).await;
    let mut client = server.traces().await;

    let resp = client
        .export(trace_request(vec![
            genai_span(0),
            span(&[0; 16], &span_id(1)),
        ]))
        .await
        .unwrap()
        .into_inner();
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(
        partial.error_message,
        "rejected 1 of 2 spans: resourceSpans[0].scopeSpans[0].spans[1].traceId: identifier is all zeros"
    );
    assert_eq!(store.spans().len(), 1);

    let err = client
        .export(trace_request(vec![span(&trace_id(), &[7; 3])]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "invalid resourceSpans[0].scopeSpans[0].spans[0].spanId: expected 8 bytes, got 3"
    );
    let st = details(&err);
    let br = BadRequest::decode(&st.details[0].value[..]).unwrap();
    assert_eq!(
        br.field_violations[0].field,
        "resourceSpans[0].scopeSpans[0].spans[0].spanId"
    );

    let mut request = tonic::Request::new(trace_request(vec![genai_span(5)]));
    request
        .metadata_mut()
        .insert("x-sightline-project", "no spaces allowed".parse().unwrap());
    let err = client.export(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.shutdown().await;
}

#[tokio::test]
async fn overload_is_resource_exhausted_with_retry_info() {
    let gate = Arc::new(Semaphore::new(0));
    let store = RecordingStore::gated(gate.clone());
    let p = pipeline(
        store.clone(),
        PipelineConfig {
            max_inflight_spans: 10,
            retry_after_secs: 3,
            ..PipelineConfig::default()
        },
    );
    let server = Server::start(p.clone(), Limits::default()).await;
    let mut first_client = server.traces().await;
    let first = tokio::spawn(async move {
        first_client
            .export(trace_request((0..8).map(genai_span).collect()))
            .await
    });
    tokio::time::timeout(Duration::from_secs(10), store.write_started.notified())
        .await
        .unwrap();

    let mut client = server.traces().await;
    let err = client
        .export(trace_request((10..15).map(genai_span).collect()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let st = details(&err);
    assert_eq!(
        st.details[0].type_url,
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    let ri = RetryInfo::decode(&st.details[0].value[..]).unwrap();
    assert_eq!(ri.retry_delay.unwrap().seconds, 3);

    gate.add_permits(1);
    let resp = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap();
    assert!(resp.is_ok(), "{resp:?}");
    assert_eq!(p.stats().failed_requests["overloaded"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn grpc_bodies_share_the_body_budget_with_http() {
    use sightline_ingest::otlp::http::router;
    use tower::ServiceExt;
    let store = RecordingStore::new();
    let p = pipeline(
        store.clone(),
        PipelineConfig {
            max_inflight_body_bytes: 4000,
            retry_after_secs: 2,
            ..PipelineConfig::default()
        },
    );
    let server = Server::start(p.clone(), Limits::default()).await;
    // An HTTP upload holds 3,500 bytes of the budget while the rest of its body is awaited.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let app = router(p.clone(), Limits::default());
    let slow = tokio::spawn(async move {
        let request = http::Request::post("/v1/traces")
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(axum::body::Body::from_stream(rx))
            .unwrap();
        app.oneshot(request).await.unwrap().status()
    });
    use futures::SinkExt;
    tx.send(Ok(bytes::Bytes::from(vec![0x0a; 3500])))
        .await
        .unwrap();
    for _ in 0..100 {
        if p.stats().inflight_body_bytes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.stats().inflight_body_bytes, 3500);

    // A gRPC export of more than the 500 bytes left is refused for now, with a retry hint.
    let mut client = server.traces().await;
    let big = trace_request((0..4).map(genai_span).collect());
    assert!(big.encoded_len() > 600, "{}", big.encoded_len());
    let err = client.export(big.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let ri = RetryInfo::decode(&details(&err).details[0].value[..]).unwrap();
    assert_eq!(ri.retry_delay.unwrap().seconds, 2);

    // Once the upload ends, the same export goes through.
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap();
    assert!(client.export(big).await.is_ok());
    assert_eq!(p.stats().inflight_body_bytes, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn store_outage_is_unavailable() {
    let store = RecordingStore::new();
    store.set_mode(Mode::Closed);
    let server = Server::start(
        pipeline(store, PipelineConfig::default()),
        Limits::default(),
    )
    .await;
    let err = server
        .traces()
        .await
        .export(trace_request(vec![genai_span(0)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "store unavailable: store is closed");
    let ri = RetryInfo::decode(&details(&err).details[0].value[..]).unwrap();
    assert_eq!(ri.retry_delay.unwrap().seconds, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn size_and_count_limits() {
    let store = RecordingStore::new();
    let limits = Limits {
        max_decompressed_bytes: 4096,
        max_spans_per_request: 3,
        ..Limits::default()
    };
    let server = Server::start(pipeline(store.clone(), PipelineConfig::default()), limits).await;
    let mut client = server.traces().await;

    let err = client
        .export(trace_request((0..4).map(genai_span).collect()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        err.message(),
        "request has 4 spans, more than the limit of 3 (max_spans_per_request)"
    );
    assert!(
        details(&err).details.is_empty(),
        "no RetryInfo: retrying cannot help"
    );

    // a message over max_decompressed_bytes, compressed (a small bomb) and not
    let mut sp = genai_span(0);
    sp.attributes.push(kv("big", s(&"a".repeat(100_000))));
    let mut gz = server
        .traces()
        .await
        .send_compressed(CompressionEncoding::Gzip);
    let err = gz
        .export(trace_request(vec![sp.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        err.message(),
        "request message exceeds 4096 bytes (max_decompressed_bytes)"
    );
    // Sent as is, tonic would answer OUT_OF_RANGE, which OTLP clients retry: it is the same
    // final answer instead.
    let err = client.export(trace_request(vec![sp])).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        err.message(),
        "request message exceeds 4096 bytes (max_decompressed_bytes)"
    );
    assert!(details(&err).details.is_empty(), "no RetryInfo");
    assert!(store.spans().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn messages_of_empty_spans_are_refused_before_decoding() {
    let store = RecordingStore::new();
    let p = pipeline(store.clone(), PipelineConfig::default());
    let limits = Limits {
        max_decompressed_bytes: 1024 * 1024,
        max_spans_per_request: usize::MAX,
        ..Limits::default()
    };
    let server = Server::start(p.clone(), limits).await;
    let mut client = server
        .traces()
        .await
        .send_compressed(CompressionEncoding::Gzip);
    // 200,000 empty spans: 400 KB, within the 1 MiB cap, but far more than 8 MiB decoded.
    let spans = vec![opentelemetry_proto::tonic::trace::v1::Span::default(); 200_000];
    let err = client.export(trace_request(spans)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().starts_with("request would take about ")
            && err.message().contains("once decoded"),
        "{}",
        err.message()
    );
    assert!(details(&err).details.is_empty(), "no RetryInfo");
    assert_eq!(p.stats().failed_requests["too_large"], 1);
    assert!(store.spans().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_of_empty_points_are_refused_before_decoding() {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    let store = RecordingStore::new();
    let p = pipeline(store.clone(), PipelineConfig::default());
    let limits = Limits {
        max_decompressed_bytes: 1024 * 1024,
        max_spans_per_request: usize::MAX,
        ..Limits::default()
    };
    let server = Server::start(p.clone(), limits).await;
    let mut client = MetricsServiceClient::new(server.channel().await)
        .send_compressed(CompressionEncoding::Gzip);
    // 200,000 empty points: 400 KB, within the 1 MiB cap, far more than 8 MiB decoded.
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default(); 200_000],
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    };
    let err = client.export(request).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().starts_with("request would take about "),
        "{}",
        err.message()
    );
    assert_eq!(p.stats().failed_requests["too_large"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn logs_round_trip() {
    let store = RecordingStore::new();
    let p = pipeline(store.clone(), PipelineConfig::default());
    let server = Server::start(p.clone(), Limits::default()).await;
    let mut client =
        LogsServiceClient::new(server.channel().await).send_compressed(CompressionEncoding::Zstd);

    let resp = client
        .export(logs_request(vec![genai_event(0)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
    let logs = store.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].event_name.as_deref(), Some("gen_ai.user.message"));
    assert_eq!(logs[0].span_id.unwrap().to_hex(), "0000000000000001");

    let mut bad = genai_event(1);
    bad.trace_id = vec![1; 4];
    let resp = client
        .export(logs_request(vec![genai_event(2), bad.clone()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success.unwrap().rejected_log_records, 1);

    let err = client.export(logs_request(vec![bad])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "invalid resourceLogs[0].scopeLogs[0].logRecords[0].traceId: expected 16 bytes, got 4"
    );
    assert_eq!(p.stats().log_records_accepted, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_calls_in_flight() {
    let gate = Arc::new(Semaphore::new(0));
    let store = RecordingStore::gated(gate.clone());
    let server = Server::start(
        pipeline(store.clone(), PipelineConfig::default()),
        Limits::default(),
    )
    .await;
    let mut client = server.traces().await;
    let call = tokio::spawn(async move { client.export(trace_request(vec![genai_span(0)])).await });
    tokio::time::timeout(Duration::from_secs(10), store.write_started.notified())
        .await
        .unwrap();

    let Server {
        addr: _,
        mut stop,
        task,
    } = server;
    let _ = stop.take().unwrap().send(());
    // the call in flight is still answered once the store commits
    gate.add_permits(1);
    let resp = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap()
        .unwrap();
    assert!(resp.is_ok(), "{resp:?}");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(store.spans().len(), 1);
}
