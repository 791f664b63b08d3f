//! OTLP/gRPC receiver: the `TraceService` and `LogsService` of the OTLP collector protocol.
//!
//! tonic decompresses each message (gzip and zstd accepted) with `max_decompressed_bytes` as the
//! message limit, which tonic applies while decompressing, so the cap holds here as on HTTP. The
//! trace and logs services are the generated ones with another codec ([`shaped`]): it checks
//! the message's shape (item count, decoded size) before prost decodes it, as HTTP does. From
//! the decoded request on, the path is the HTTP one: count check and conversion on a decode
//! slot, then [`super::export_spans`] / [`super::export_logs`]. Request bodies take the
//! pipeline's body budget as they arrive, shared with HTTP ([`budget`]). Errors carry
//! `google.rpc.BadRequest` (which field) or `google.rpc.RetryInfo` (when to retry) details.

use std::future::Future;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

mod budget;
mod shaped;

use super::decode::{self, Limits};
use super::{export_logs, export_spans, project_from_header, status, PROJECT_HEADER};
use crate::error::IngestError;
use crate::pipeline::Pipeline;

/// Both OTLP gRPC services over one pipeline.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pipeline: Arc<Pipeline>,
    limits: Arc<Limits>,
}

impl OtlpGrpc {
    /// The services, writing to `pipeline` under `limits`.
    pub fn new(pipeline: Arc<Pipeline>, limits: Limits) -> Self {
        Self {
            pipeline,
            limits: Arc::new(limits),
        }
    }

    fn project(&self, metadata: &MetadataMap) -> Result<String, IngestError> {
        project_from_header(metadata.get(PROJECT_HEADER).map(|v| v.as_bytes()))
    }

    fn fail(&self, err: &IngestError) -> Status {
        self.pipeline.record_failure(err);
        status::grpc_status(err)
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.pipeline.record_trace_request();
        let result = async {
            let project = self.project(request.metadata())?;
            let req = request.into_inner();
            let limits = self.limits.clone();
            let decoded = self
                .pipeline
                .decode(move || {
                    decode::check_span_count(&req, &limits)?;
                    Ok(decode::spans_from_owned_request(req, &project, &limits))
                })
                .await?;
            export_spans(&self.pipeline, decoded, &self.limits).await
        }
        .await;
        match result {
            Ok(outcome) => Ok(Response::new(outcome.trace_response())),
            Err(e) => Err(self.fail(&e)),
        }
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.pipeline.record_log_request();
        let result = async {
            let project = self.project(request.metadata())?;
            let req = request.into_inner();
            let limits = self.limits.clone();
            let decoded = self
                .pipeline
                .decode(move || {
                    decode::check_log_record_count(&req, &limits)?;
                    Ok(decode::logs_from_owned_request(req, &project, &limits))
                })
                .await?;
            export_logs(&self.pipeline, decoded, &self.limits).await
        }
        .await;
        match result {
            Ok(outcome) => Ok(Response::new(outcome.logs_response())),
            Err(e) => Err(self.fail(&e)),
        }
    }
}

/// The three services as tonic routes: gzip and zstd accepted, messages capped at
/// `limits.max_decompressed_bytes` (after decompression), each request checked for its shape
/// (item count, decoded size) before it is decoded.
pub fn routes(pipeline: Arc<Pipeline>, limits: Limits) -> tonic::service::Routes {
    let metrics = super::metrics::OtlpMetricsGrpc::new(pipeline.clone(), limits.clone());
    let services = OtlpGrpc::new(pipeline, limits);
    tonic::service::Routes::new(shaped::ShapedService::<shaped::Traces>::new(
        services.clone(),
    ))
    .add_service(shaped::ShapedService::<shaped::Logs>::new(services))
    .add_service(shaped::ShapedService::<shaped::Metrics>::new(metrics))
}

/// Serves the OTLP gRPC services on `listener` until `shutdown` resolves, then stops accepting
/// connections and lets in-flight calls finish (each answers only after its data is stored).
pub async fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let budgeted = pipeline.clone();
    let body_budget =
        tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
            let pipeline = budgeted.clone();
            request.map(|body| budget::BudgetedBody::wrap(body, pipeline))
        });
    tonic::transport::Server::builder()
        .layer(body_budget)
        .add_routes(routes(pipeline, limits))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
