//! The one place an [`IngestError`] becomes an HTTP status or a gRPC code, and an error body.
//!
//! Both transports follow the OTLP specification:
//!
//! | error | HTTP | gRPC | retry hint |
//! |---|---|---|---|
//! | `InvalidInput` | 400 | `INVALID_ARGUMENT` + `google.rpc.BadRequest` | — |
//! | `TooLarge` | 413 | `RESOURCE_EXHAUSTED`, no `RetryInfo` (OTLP clients do not retry it) | — |
//! | `UnsupportedMediaType` | 415 | `INVALID_ARGUMENT` | — |
//! | `Overloaded` | 429 | `RESOURCE_EXHAUSTED` + `google.rpc.RetryInfo` | `Retry-After` |
//! | `Unavailable` | 503 | `UNAVAILABLE` + `google.rpc.RetryInfo` | `Retry-After` |
//! | `Internal` | 500 | `INTERNAL` | — |
//!
//! The HTTP error body is always a `google.rpc.Status` (as OTLP/HTTP requires), in the request's
//! encoding: protobuf for protobuf requests, the protobuf JSON mapping for JSON requests, and JSON
//! when the content type itself was not understood. Its `details` carry the offending field
//! (`google.rpc.BadRequest`) or the retry delay (`google.rpc.RetryInfo`), exactly as the gRPC
//! `grpc-status-details-bin` trailer does, so a client reads the same thing on both transports.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use prost::Message;
use serde_json::json;

use super::body::Encoding;
use crate::error::IngestError;

/// The HTTP status for an error.
pub fn http_status(err: &IngestError) -> StatusCode {
    match err {
        IngestError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        IngestError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
        IngestError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        IngestError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The gRPC code for an error.
pub fn grpc_code(err: &IngestError) -> tonic::Code {
    match err {
        IngestError::InvalidInput { .. } | IngestError::UnsupportedMediaType { .. } => {
            tonic::Code::InvalidArgument
        }
        IngestError::TooLarge { .. } | IngestError::Overloaded { .. } => {
            tonic::Code::ResourceExhausted
        }
        IngestError::Unavailable { .. } => tonic::Code::Unavailable,
        IngestError::Internal { .. } => tonic::Code::Internal,
    }
}

/// How long the client should wait before retrying, for the errors where retrying helps.
pub fn retry_after(err: &IngestError) -> Option<Duration> {
    match err {
        IngestError::Overloaded { retry_after } | IngestError::Unavailable { retry_after, .. } => {
            Some(*retry_after)
        }
        IngestError::InvalidInput { .. }
        | IngestError::TooLarge { .. }
        | IngestError::UnsupportedMediaType { .. }
        | IngestError::Internal { .. } => None,
    }
}

/// The `google.rpc.Status` describing an error, with its details.
pub fn rpc_status(err: &IngestError) -> RpcStatus {
    let mut details = Vec::new();
    if let IngestError::InvalidInput { field, message } = err {
        details.push(ProtoAny {
            type_url: BAD_REQUEST_TYPE.into(),
            value: BadRequest {
                field_violations: vec![FieldViolation {
                    field: field.clone(),
                    description: message.clone(),
                }],
            }
            .encode_to_vec(),
        });
    }
    if let Some(delay) = retry_after(err) {
        details.push(ProtoAny {
            type_url: RETRY_INFO_TYPE.into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration::from(delay)),
            }
            .encode_to_vec(),
        });
    }
    RpcStatus {
        code: grpc_code(err) as i32,
        message: err.to_string(),
        details,
    }
}

/// The gRPC status for an error, with `google.rpc.BadRequest` / `google.rpc.RetryInfo` details.
pub fn grpc_status(err: &IngestError) -> tonic::Status {
    log(err);
    let status = rpc_status(err);
    tonic::Status::with_details(
        grpc_code(err),
        status.message.clone(),
        Bytes::from(status.encode_to_vec()),
    )
}

/// The HTTP response for an error: status, `Retry-After` when retrying helps, and a
/// `google.rpc.Status` body in `encoding` (JSON when the request's encoding is unknown).
pub fn http_response(err: &IngestError, encoding: Option<Encoding>) -> Response {
    log(err);
    let status = rpc_status(err);
    let encoding = encoding.unwrap_or(Encoding::Json);
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => status_json(err, &status).to_string().into_bytes(),
    };
    let mut response = (http_status(err), body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    if let Some(delay) = retry_after(err) {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(delay)),
        );
    }
    response
}

/// Whole seconds for a `Retry-After` header (at least 1, since 0 invites a retry storm).
pub fn retry_after_secs(delay: Duration) -> u64 {
    delay.as_secs().max(1)
}

/// Errors are logged here, where they become responses, not in the handlers.
fn log(err: &IngestError) {
    match err {
        IngestError::Internal { .. } => tracing::error!(error = %err, "ingest request failed"),
        IngestError::Unavailable { .. } => tracing::warn!(error = %err, "ingest request failed"),
        IngestError::InvalidInput { .. }
        | IngestError::TooLarge { .. }
        | IngestError::UnsupportedMediaType { .. }
        | IngestError::Overloaded { .. } => {
            tracing::debug!(error = %err, kind = err.kind(), "ingest request refused")
        }
    }
}

/// `google.rpc.Status` in the protobuf JSON mapping, details included.
fn status_json(err: &IngestError, status: &RpcStatus) -> serde_json::Value {
    let mut details = Vec::new();
    if let IngestError::InvalidInput { field, message } = err {
        details.push(json!({
            "@type": BAD_REQUEST_TYPE,
            "fieldViolations": [{"field": field, "description": message}],
        }));
    }
    if let Some(delay) = retry_after(err) {
        details.push(json!({
            "@type": RETRY_INFO_TYPE,
            "retryDelay": duration_json(delay),
        }));
    }
    json!({
        "code": status.code,
        "message": status.message,
        "details": details,
    })
}

/// A duration in the protobuf JSON mapping: `"2s"`, `"1.500s"`.
fn duration_json(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";
const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// A developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoAny {
    /// `type.googleapis.com/<message name>`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.BadRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct BadRequest {
    /// The offending fields.
    #[prost(message, repeated, tag = "1")]
    pub field_violations: Vec<FieldViolation>,
}

/// `google.rpc.BadRequest.FieldViolation`.
#[derive(Clone, PartialEq, Message)]
pub struct FieldViolation {
    /// Path of the field.
    #[prost(string, tag = "1")]
    pub field: String,
    /// What was wrong with it.
    #[prost(string, tag = "2")]
    pub description: String,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    /// How long to wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds on top.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl From<Duration> for ProtoDuration {
    fn from(d: Duration) -> Self {
        Self {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn all_errors() -> Vec<IngestError> {
        vec![
            IngestError::invalid("body", "bad"),
            IngestError::TooLarge {
                message: "big".into(),
            },
            IngestError::UnsupportedMediaType {
                message: "text/plain".into(),
            },
            IngestError::Overloaded {
                retry_after: Duration::from_secs(2),
            },
            IngestError::Unavailable {
                message: "closed".into(),
                retry_after: Duration::from_secs(3),
            },
            IngestError::Internal {
                message: "bug".into(),
            },
        ]
    }

    #[test]
    fn statuses_and_codes() {
        let got: Vec<(u16, tonic::Code)> = all_errors()
            .iter()
            .map(|e| (http_status(e).as_u16(), grpc_code(e)))
            .collect();
        assert_eq!(
            got,
            [
                (400, tonic::Code::InvalidArgument),
                (413, tonic::Code::ResourceExhausted),
                (415, tonic::Code::InvalidArgument),
                (429, tonic::Code::ResourceExhausted),
                (503, tonic::Code::Unavailable),
                (500, tonic::Code::Internal),
            ]
        );
    }

    #[test]
    fn grpc_details_carry_field_and_retry_delay() {
        let s = grpc_status(&IngestError::invalid(
            "resourceSpans[0].scopeSpans[0].spans[0].traceId",
            "zero",
        ));
        let st = RpcStatus::decode(s.details()).unwrap();
        assert_eq!(st.code, tonic::Code::InvalidArgument as i32);
        assert_eq!(st.details[0].type_url, BAD_REQUEST_TYPE);
        let br = BadRequest::decode(&st.details[0].value[..]).unwrap();
        assert_eq!(
            br.field_violations[0].field,
            "resourceSpans[0].scopeSpans[0].spans[0].traceId"
        );

        let s = grpc_status(&IngestError::Overloaded {
            retry_after: Duration::from_secs(2),
        });
        let st = RpcStatus::decode(s.details()).unwrap();
        let ri = RetryInfo::decode(&st.details[0].value[..]).unwrap();
        assert_eq!(
            ri.retry_delay,
            Some(ProtoDuration {
                seconds: 2,
                nanos: 0
            })
        );

        let s = grpc_status(&IngestError::TooLarge {
            message: "big".into(),
        });
        assert!(
            RpcStatus::decode(s.details()).unwrap().details.is_empty(),
            "no RetryInfo: do not retry"
        );
    }

    #[tokio::test]
    async fn http_bodies_follow_the_request_encoding() {
        let err = IngestError::invalid("body", "failed to decode protobuf");
        let r = http_response(&err, Some(Encoding::Protobuf));
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-protobuf");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let st = RpcStatus::decode(body).unwrap();
        assert_eq!(st.message, "invalid body: failed to decode protobuf");

        let r = http_response(
            &IngestError::Overloaded {
                retry_after: Duration::from_secs(2),
            },
            Some(Encoding::Json),
        );
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], 8);
        assert_eq!(v["details"][0]["@type"], RETRY_INFO_TYPE);
        assert_eq!(v["details"][0]["retryDelay"], "2s");

        let r = http_response(
            &IngestError::UnsupportedMediaType {
                message: "x".into(),
            },
            None,
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
