//! The trace, logs and metrics services with a codec that looks at each request's shape (see
//! [`crate::otlp::shape`]) before prost decodes it, as the HTTP receiver does. The services
//! that `opentelemetry-proto` generates decode with a plain prost codec, so a message of empty
//! spans that fits the byte cap (16 KiB gzipped, 16 MiB decompressed) was decoded to gigabytes
//! before any handler ran. These are those services with one change: the codec.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Status;

use super::OtlpGrpc;
use crate::error::IngestError;
use crate::otlp::body::{check_request_shape, decode_failure};
use crate::otlp::decode::Limits;
use crate::otlp::metrics::OtlpMetricsGrpc;
use crate::otlp::status;
use crate::pipeline::Pipeline;

/// One OTLP export method: its request and response, where it is routed, and how its shape is
/// checked.
pub(crate) trait Export: Send + Sync + 'static {
    /// What answers the method once the request is decoded.
    type Handler: Handler;
    type Request: Message + Default + Send + 'static;
    type Response: Message + Send + 'static;
    /// The gRPC service name.
    const SERVICE: &'static str;
    /// The request message's name.
    const MESSAGE: &'static str;
    /// `/<service>/Export`.
    const PATH: &'static str;
    fn check(body: &[u8], limits: &Limits) -> Result<(), IngestError>;
    fn export(
        handler: Arc<Self::Handler>,
        request: tonic::Request<Self::Request>,
    ) -> futures::future::BoxFuture<'static, Result<tonic::Response<Self::Response>, Status>>;
}

/// What a handler shares with the codec in front of it.
pub(crate) trait Handler: Send + Sync + 'static {
    fn limits(&self) -> &Limits;
    fn pipeline(&self) -> &Pipeline;
}

impl Handler for OtlpGrpc {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

impl Handler for OtlpMetricsGrpc {
    fn limits(&self) -> &Limits {
        OtlpMetricsGrpc::limits(self)
    }

    fn pipeline(&self) -> &Pipeline {
        OtlpMetricsGrpc::pipeline(self)
    }
}

/// `TraceService/Export`.
pub(crate) struct Traces;

impl Export for Traces {
    type Handler = OtlpGrpc;
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const MESSAGE: &'static str = "ExportTraceServiceRequest";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    fn check(body: &[u8], limits: &Limits) -> Result<(), IngestError> {
        check_request_shape(body, crate::otlp::Signal::Traces, limits)
    }

    fn export(
        svc: Arc<OtlpGrpc>,
        request: tonic::Request<Self::Request>,
    ) -> futures::future::BoxFuture<'static, Result<tonic::Response<Self::Response>, Status>> {
        Box::pin(async move { TraceService::export(svc.as_ref(), request).await })
    }
}

/// `LogsService/Export`.
pub(crate) struct Logs;

impl Export for Logs {
    type Handler = OtlpGrpc;
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const MESSAGE: &'static str = "ExportLogsServiceRequest";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

    fn check(body: &[u8], limits: &Limits) -> Result<(), IngestError> {
        check_request_shape(body, crate::otlp::Signal::Logs, limits)
    }

    fn export(
        svc: Arc<OtlpGrpc>,
        request: tonic::Request<Self::Request>,
    ) -> futures::future::BoxFuture<'static, Result<tonic::Response<Self::Response>, Status>> {
        Box::pin(async move { LogsService::export(svc.as_ref(), request).await })
    }
}

/// `MetricsService/Export`.
pub(crate) struct Metrics;

impl Export for Metrics {
    type Handler = OtlpMetricsGrpc;
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const MESSAGE: &'static str = "ExportMetricsServiceRequest";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

    fn check(body: &[u8], limits: &Limits) -> Result<(), IngestError> {
        crate::otlp::metrics::check_shape(body, limits)
    }

    fn export(
        svc: Arc<OtlpMetricsGrpc>,
        request: tonic::Request<Self::Request>,
    ) -> futures::future::BoxFuture<'static, Result<tonic::Response<Self::Response>, Status>> {
        Box::pin(async move { MetricsService::export(svc.as_ref(), request).await })
    }
}

/// The service of export method `E`: gzip and zstd accepted, messages capped at
/// `max_decompressed_bytes`, each request's shape checked before it is decoded.
pub(crate) struct ShapedService<E: Export> {
    svc: Arc<E::Handler>,
    _method: PhantomData<fn() -> E>,
}

impl<E: Export> ShapedService<E> {
    pub(crate) fn new(svc: E::Handler) -> Self {
        Self {
            svc: Arc::new(svc),
            _method: PhantomData,
        }
    }
}

impl<E: Export> Clone for ShapedService<E> {
    fn clone(&self) -> Self {
        Self {
            svc: self.svc.clone(),
            _method: PhantomData,
        }
    }
}

impl<E: Export> NamedService for ShapedService<E> {
    const NAME: &'static str = E::SERVICE;
}

impl<E: Export> tower::Service<http::Request<Body>> for ShapedService<E> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let svc = self.svc.clone();
        Box::pin(async move {
            if req.uri().path() != E::PATH {
                return Ok(Status::unimplemented("").into_http());
            }
            let mut encodings = EnabledCompressionEncodings::default();
            encodings.enable(CompressionEncoding::Gzip);
            encodings.enable(CompressionEncoding::Zstd);
            let max = svc.limits().max_decompressed_bytes;
            let codec = ShapedCodec::<E> {
                svc: svc.clone(),
                _method: PhantomData,
            };
            let mut grpc = Grpc::new(codec)
                .apply_compression_config(encodings, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max), None);
            let response = grpc.unary(Method::<E>(svc.clone(), PhantomData), req).await;
            Ok(final_size_errors(response, svc.pipeline(), max))
        })
    }
}

/// The handler of export method `E`, as tonic calls it once the request is decoded.
struct Method<E: Export>(Arc<E::Handler>, PhantomData<fn() -> E>);

impl<E: Export> UnaryService<E::Request> for Method<E> {
    type Response = E::Response;
    type Future =
        futures::future::BoxFuture<'static, Result<tonic::Response<Self::Response>, Status>>;

    fn call(&mut self, request: tonic::Request<E::Request>) -> Self::Future {
        E::export(self.0.clone(), request)
    }
}

/// prost, after the shape check.
struct ShapedCodec<E: Export> {
    svc: Arc<E::Handler>,
    _method: PhantomData<fn() -> E>,
}

impl<E: Export> Codec for ShapedCodec<E> {
    type Encode = E::Response;
    type Decode = E::Request;
    type Encoder = tonic_prost::ProstEncoder<E::Response>;
    type Decoder = ShapedDecoder<E>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ShapedDecoder {
            svc: self.svc.clone(),
            _method: PhantomData,
        }
    }
}

struct ShapedDecoder<E: Export> {
    svc: Arc<E::Handler>,
    _method: PhantomData<fn() -> E>,
}

impl<E: Export> Decoder for ShapedDecoder<E> {
    type Item = E::Request;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<E::Request>, Status> {
        // tonic hands over the whole (decompressed) message in one buffer.
        if buf.chunk().len() == buf.remaining() {
            if let Err(e) = E::check(buf.chunk(), self.svc.limits()) {
                self.svc.pipeline().record_failure(&e);
                return Err(status::grpc_status(&e));
            }
        }
        E::Request::decode(buf)
            .map(Some)
            .map_err(|e| Status::invalid_argument(decode_failure(E::MESSAGE, &e)))
    }
}

/// tonic refuses a message over the size limit before the handler runs: one sent as is with
/// `OUT_OF_RANGE`, which OTLP clients retry (the same payload, forever), one compressed with
/// `RESOURCE_EXHAUSTED` in its own words; neither is counted. Both become the answer the
/// handler gives a request that is too large (`RESOURCE_EXHAUSTED` without a retry hint, as
/// HTTP answers 413), and are counted as such.
fn final_size_errors(
    response: http::Response<Body>,
    pipeline: &Pipeline,
    max: usize,
) -> http::Response<Body> {
    let header = |name: &str| response.headers().get(name).map(|v| v.as_bytes());
    let too_large = match header("grpc-status") {
        Some(b"11") => true,
        Some(b"8") => header("grpc-message").is_some_and(|m| {
            m.starts_with(b"Error%20decompressing") || m.starts_with(b"Error decompressing")
        }),
        _ => false,
    };
    if !too_large {
        return response;
    }
    let err = IngestError::TooLarge {
        message: format!("request message exceeds {max} bytes (max_decompressed_bytes)"),
    };
    pipeline.record_failure(&err);
    status::grpc_status(&err).into_http()
}
