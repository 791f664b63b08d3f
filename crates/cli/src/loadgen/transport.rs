//! Sending one request over OTLP/HTTP (protobuf or JSON) or OTLP/gRPC, and classifying the answer.
//!
//! Bodies arrive already encoded as protobuf. HTTP sends them as they are (or converted to OTLP/JSON
//! through opentelemetry-proto's serde support, which writes hex ids and lowerCamelCase names),
//! gzip-compressed on request. gRPC sends the same bytes through a pass-through codec on the
//! `TraceService/Export` method, so the generator never decodes and re-encodes what it built. Every
//! answer becomes an [`Outcome`]: acknowledged (with the spans the server refused through
//! `partial_success`), retryable (HTTP 429/503, `RESOURCE_EXHAUSTED`/`UNAVAILABLE`, with the
//! server's retry hint) or failed.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes};
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use super::Protocol;

/// The header (and gRPC metadata key) naming the project.
pub(crate) const PROJECT_HEADER: &str = "x-sightline-project";

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How the server answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Acknowledged; `rejected_spans` of its spans were refused (`partial_success`).
    Acked {
        /// Spans the server said it did not keep.
        rejected_spans: u64,
    },
    /// Refused for now (overload or unavailability); retrying later may succeed.
    Retryable {
        /// The server's hint, when it gave one.
        retry_after: Option<Duration>,
        /// What the server said.
        reason: String,
    },
    /// Failed for good, or the server could not be reached.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// A body ready to send: encoded for the protocol and compressed if asked.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    body: Bytes,
}

impl Prepared {
    /// Bytes on the wire (before gRPC's own compression).
    pub(crate) fn len(&self) -> usize {
        self.body.len()
    }
}

/// A connection pool to one server over one protocol.
pub(crate) enum Transport {
    /// OTLP/HTTP.
    Http {
        client: reqwest::Client,
        url: reqwest::Url,
        json: bool,
        gzip: bool,
        project: Option<String>,
    },
    /// OTLP/gRPC over a few HTTP/2 connections, used in turn.
    Grpc {
        endpoint: String,
        clients: Vec<tonic::client::Grpc<Channel>>,
        next: std::sync::atomic::AtomicUsize,
        project: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    },
}

/// The URL requests go to: a base URL gets `/v1/traces` appended (as OTLP exporters do with
/// `OTEL_EXPORTER_OTLP_ENDPOINT`); a URL with a path is used as it is.
pub(crate) fn traces_url(endpoint: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(endpoint)
        .with_context(|| format!("--endpoint `{endpoint}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--endpoint `{endpoint}` must start with http:// or https://");
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/v1/traces");
    }
    Ok(url)
}

impl Transport {
    /// Prepares a client; connections open on first use.
    pub(crate) fn new(
        protocol: Protocol,
        endpoint: &str,
        gzip: bool,
        project: Option<&str>,
        connections: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        match protocol {
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let url = traces_url(endpoint)?;
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(connections)
                    .tcp_nodelay(true)
                    .timeout(timeout)
                    .build()
                    .context("cannot build the HTTP client")?;
                Ok(Self::Http {
                    client,
                    url,
                    json: protocol == Protocol::HttpJson,
                    gzip,
                    project: project.map(str::to_string),
                })
            }
            Protocol::Grpc => {
                let target = endpoint.trim_end_matches('/').to_string();
                let endpoint = Endpoint::from_shared(endpoint.to_string())
                    .with_context(|| format!("--endpoint `{endpoint}` is not a gRPC URL"))?
                    .tcp_nodelay(true)
                    .timeout(timeout);
                let clients = (0..connections.clamp(1, 4))
                    .map(|_| {
                        let client = tonic::client::Grpc::new(endpoint.connect_lazy());
                        if gzip {
                            client
                                .send_compressed(CompressionEncoding::Gzip)
                                .accept_compressed(CompressionEncoding::Gzip)
                        } else {
                            client
                        }
                    })
                    .collect();
                let project = project
                    .map(|p| {
                        p.parse()
                            .with_context(|| format!("--project `{p}` is not a valid header value"))
                    })
                    .transpose()?;
                Ok(Self::Grpc {
                    endpoint: target,
                    clients,
                    next: std::sync::atomic::AtomicUsize::new(0),
                    project,
                })
            }
        }
    }

    /// Where requests go, for the report.
    pub(crate) fn target(&self) -> String {
        match self {
            Self::Http { url, .. } => url.to_string(),
            Self::Grpc { endpoint, .. } => format!("{endpoint}{EXPORT_PATH}"),
        }
    }

    /// Turns an encoded protobuf request into what goes on the wire.
    pub(crate) fn prepare(&self, protobuf: Vec<u8>) -> anyhow::Result<Prepared> {
        let body = match self {
            Self::Http { json, gzip, .. } => {
                let body = if *json {
                    let request = ExportTraceServiceRequest::decode(protobuf.as_slice())
                        .context("generated request does not decode")?;
                    serde_json::to_vec(&request).context("cannot encode OTLP/JSON")?
                } else {
                    protobuf
                };
                if *gzip {
                    let mut enc = GzEncoder::new(
                        Vec::with_capacity(body.len() / 4),
                        flate2::Compression::fast(),
                    );
                    enc.write_all(&body).context("cannot gzip the request")?;
                    enc.finish().context("cannot gzip the request")?
                } else {
                    body
                }
            }
            Self::Grpc { .. } => protobuf,
        };
        Ok(Prepared {
            body: Bytes::from(body),
        })
    }

    /// Sends one request and classifies the answer.
    pub(crate) async fn export(&self, prepared: &Prepared) -> Outcome {
        match self {
            Self::Http {
                client,
                url,
                json,
                gzip,
                project,
            } => {
                let mut request = client
                    .post(url.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        if *json {
                            "application/json"
                        } else {
                            "application/x-protobuf"
                        },
                    )
                    .body(prepared.body.clone());
                if *gzip {
                    request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
                }
                if let Some(p) = project {
                    request = request.header(PROJECT_HEADER, p);
                }
                match request.send().await {
                    Ok(response) => http_outcome(response, *json).await,
                    Err(e) => Outcome::Failed {
                        reason: error_chain(&e),
                    },
                }
            }
            Self::Grpc {
                clients,
                next,
                project,
                ..
            } => {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % clients.len();
                let mut client = clients[k].clone();
                if let Err(e) = client.ready().await {
                    return Outcome::Failed {
                        reason: format!("gRPC connection not ready: {}", error_chain(&e)),
                    };
                }
                let mut request = tonic::Request::new(prepared.body.clone());
                if let Some(p) = project {
                    request.metadata_mut().insert(PROJECT_HEADER, p.clone());
                }
                let path = PathAndQuery::from_static(EXPORT_PATH);
                match client.unary(request, path, RawCodec).await {
                    Ok(response) => Outcome::Acked {
                        rejected_spans: response
                            .into_inner()
                            .partial_success
                            .map_or(0, |p| p.rejected_spans.max(0) as u64),
                    },
                    Err(status) => grpc_outcome(&status),
                }
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn http_outcome(response: reqwest::Response, json: bool) -> Outcome {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Outcome::Failed {
                reason: format!(
                    "HTTP {status}: cannot read the response: {}",
                    error_chain(&e)
                ),
            }
        }
    };
    if status.is_success() {
        return Outcome::Acked {
            rejected_spans: rejected_spans(&body, json),
        };
    }
    let excerpt = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    let reason = format!("HTTP {}: {}", status.as_u16(), excerpt.trim());
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
    {
        Outcome::Retryable {
            retry_after,
            reason,
        }
    } else {
        Outcome::Failed { reason }
    }
}

/// `partial_success.rejected_spans` of a success response (0 when absent or unreadable).
fn rejected_spans(body: &[u8], json: bool) -> u64 {
    if body.is_empty() {
        return 0;
    }
    if json {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let n = &value["partialSuccess"]["rejectedSpans"];
        n.as_u64()
            .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    } else {
        ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| p.rejected_spans.max(0) as u64)
    }
}

/// `google.rpc.Status`, to read the retry delay the server put in the details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

fn grpc_retry_delay(status: &tonic::Status) -> Option<Duration> {
    let rpc = RpcStatus::decode(status.details()).ok()?;
    let info = rpc
        .details
        .iter()
        .find(|d| d.type_url.ends_with("google.rpc.RetryInfo"))?;
    let delay = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    Some(Duration::new(
        u64::try_from(delay.seconds).ok()?,
        u32::try_from(delay.nanos).ok()?,
    ))
}

fn grpc_outcome(status: &tonic::Status) -> Outcome {
    let reason = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::ResourceExhausted | tonic::Code::Unavailable => match grpc_retry_delay(status)
        {
            // RESOURCE_EXHAUSTED without a retry hint means "too large": do not retry it.
            None if status.code() == tonic::Code::ResourceExhausted => Outcome::Failed { reason },
            retry_after => Outcome::Retryable {
                retry_after,
                reason,
            },
        },
        _ => Outcome::Failed { reason },
    }
}

/// Sends pre-encoded request bytes as they are and decodes the export response.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

#[derive(Debug, Clone, Copy)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("cannot decode the export response: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::super::generator::tests::shape;
    use super::super::generator::{Generator, Stamp};
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn http(json: bool, gzip: bool) -> Transport {
        Transport::new(
            if json {
                Protocol::HttpJson
            } else {
                Protocol::HttpProtobuf
            },
            "http://127.0.0.1:4318",
            gzip,
            None,
            2,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn base_urls_get_the_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap().as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://h:1/api/public/otel/v1/traces")
                .unwrap()
                .as_str(),
            "http://h:1/api/public/otel/v1/traces"
        );
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("ftp://h/").is_err());
    }

    #[test]
    fn json_bodies_are_otlp_json_with_hex_ids() {
        let mut g = Generator::new(1, shape(5, 5, true, 1), 4).unwrap();
        let batch = g
            .next_batch(3, Stamp::At(1_760_000_000_000_000_000))
            .unwrap();
        let prepared = http(true, true).prepare(batch.body).unwrap();
        let mut text = String::new();
        GzDecoder::new(&prepared.body[..])
            .read_to_string(&mut text)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        let trace_id = span["traceId"].as_str().unwrap();
        let hex: String = batch.traces[0]
            .trace_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(trace_id, hex);
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        assert!(span["startTimeUnixNano"].is_string());
        assert!(span["attributes"][0]["value"]["stringValue"].is_string());
        let back: ExportTraceServiceRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back.resource_spans.len(), 3);
    }

    #[test]
    fn protobuf_bodies_pass_through() {
        let mut g = Generator::new(1, shape(5, 5, true, 1), 4).unwrap();
        let batch = g
            .next_batch(2, Stamp::At(1_760_000_000_000_000_000))
            .unwrap();
        let body = batch.body.clone();
        assert_eq!(
            &http(false, false).prepare(batch.body).unwrap().body[..],
            &body[..]
        );
    }

    #[test]
    fn partial_success_is_read_in_both_encodings() {
        assert_eq!(rejected_spans(b"", true), 0);
        assert_eq!(rejected_spans(b"{}", true), 0);
        assert_eq!(
            rejected_spans(
                br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"x"}}"#,
                true
            ),
            3
        );
        assert_eq!(
            rejected_spans(br#"{"partialSuccess":{"rejectedSpans":2}}"#, true),
            2
        );
        let proto = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 4,
                    error_message: "bad".into(),
                },
            ),
        }
        .encode_to_vec();
        assert_eq!(rejected_spans(&proto, false), 4);
    }

    #[test]
    fn grpc_overload_is_retryable_with_its_delay() {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: 2,
                nanos: 0,
            }),
        };
        let details = RpcStatus {
            code: 8,
            message: "busy".into(),
            details: vec![ProtoAny {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: info.encode_to_vec(),
            }],
        }
        .encode_to_vec();
        let status = tonic::Status::with_details(
            tonic::Code::ResourceExhausted,
            "busy",
            Bytes::from(details),
        );
        assert_eq!(
            grpc_outcome(&status),
            Outcome::Retryable {
                retry_after: Some(Duration::from_secs(2)),
                reason: "gRPC ResourceExhausted: busy".into()
            }
        );
        let too_large = tonic::Status::resource_exhausted("too large");
        assert!(matches!(grpc_outcome(&too_large), Outcome::Failed { .. }));
        let bad = tonic::Status::invalid_argument("bad span id");
        assert!(matches!(grpc_outcome(&bad), Outcome::Failed { .. }));
    }
}
