//! OTLP receivers: HTTP ([`http`]) and gRPC ([`grpc`]) share everything past the transport.
//!
//! Both read a request into model items ([`body`], [`json`], [`decode`]), then call
//! [`export_spans`] / [`export_logs`], which apply one rule to both transports: items rejected on
//! their own are reported in OTLP `partial_success` while the valid ones are stored; when
//! nothing in a non-empty request was valid, the request fails with 400 / `INVALID_ARGUMENT`
//! naming the first problems. Errors become responses in [`status`].

pub mod body;
pub mod decode;
pub mod grpc;
pub mod http;
pub mod json;
pub mod metrics;
pub mod shape;
pub mod status;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use sightline_model::{LogRecord, Span, DEFAULT_PROJECT};

use crate::error::IngestError;
use crate::pipeline::Pipeline;
use decode::{Decoded, Limits};
pub use json::Signal;

/// The header (HTTP) or metadata key (gRPC) naming the project; absent means
/// [`DEFAULT_PROJECT`].
pub const PROJECT_HEADER: &str = "x-sightline-project";

pub use sightline_model::MAX_PROJECT_LEN;

/// Reads the project from the header's raw value: 1 to 128 ASCII letters, digits, `.`, `_` or
/// `-`; absent means [`DEFAULT_PROJECT`].
pub fn project_from_header(value: Option<&[u8]>) -> Result<String, IngestError> {
    let Some(raw) = value else {
        return Ok(DEFAULT_PROJECT.to_string());
    };
    if !sightline_model::is_project_name(raw) {
        return Err(IngestError::invalid(
            PROJECT_HEADER,
            format!(
                "`{}` is not a project name (1 to {MAX_PROJECT_LEN} ASCII letters, digits, `.`, `_` or `-`)",
                String::from_utf8_lossy(&raw[..raw.len().min(MAX_PROJECT_LEN + 1)])
            ),
        ));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// What to tell the client after a successful export: OTLP `partial_success`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Items rejected on their own.
    pub rejected: i64,
    /// The rejections and warnings (truncated values, dropped links); `None` when there are none.
    pub message: Option<String>,
}

impl ExportOutcome {
    fn has_partial_success(&self) -> bool {
        self.rejected > 0 || self.message.is_some()
    }

    /// The trace service response: `partial_success` unset when everything was accepted as sent.
    pub fn trace_response(&self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: self
                .has_partial_success()
                .then(|| ExportTracePartialSuccess {
                    rejected_spans: self.rejected,
                    error_message: self.message.clone().unwrap_or_default(),
                }),
        }
    }

    /// The logs service response.
    pub fn logs_response(&self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: self
                .has_partial_success()
                .then(|| ExportLogsPartialSuccess {
                    rejected_log_records: self.rejected,
                    error_message: self.message.clone().unwrap_or_default(),
                }),
        }
    }

    /// The response in OTLP/JSON: `{}`, or `{"partialSuccess": {...}}`. `items_field` is
    /// `rejectedSpans` or `rejectedLogRecords`. The count is an int64, which the proto3 JSON
    /// mapping that OTLP/JSON follows writes as a decimal string.
    pub fn json_response(&self, items_field: &str) -> serde_json::Value {
        if !self.has_partial_success() {
            return serde_json::json!({});
        }
        let mut partial = serde_json::Map::new();
        partial.insert(items_field.into(), self.rejected.to_string().into());
        partial.insert(
            "errorMessage".into(),
            self.message.clone().unwrap_or_default().into(),
        );
        serde_json::json!({ "partialSuccess": partial })
    }
}

/// Stores the valid spans of a decoded request and says what to report back.
pub async fn export_spans(
    pipeline: &Pipeline,
    decoded: Decoded<Span>,
    limits: &Limits,
) -> Result<ExportOutcome, IngestError> {
    pipeline.record_decoded_spans(&decoded);
    let outcome = outcome(&decoded, "spans", limits)?;
    pipeline.ingest_spans(decoded.items).await?;
    Ok(outcome)
}

/// Stores the valid log records of a decoded request and says what to report back.
pub async fn export_logs(
    pipeline: &Pipeline,
    decoded: Decoded<LogRecord>,
    limits: &Limits,
) -> Result<ExportOutcome, IngestError> {
    pipeline.record_decoded_logs(&decoded);
    let outcome = outcome(&decoded, "log records", limits)?;
    pipeline.ingest_logs(decoded.items).await?;
    Ok(outcome)
}

fn outcome<T>(
    decoded: &Decoded<T>,
    noun: &str,
    limits: &Limits,
) -> Result<ExportOutcome, IngestError> {
    if decoded.items.is_empty() {
        if let Some(first) = decoded.rejected.first() {
            let message = if decoded.rejected.len() == 1 {
                first.reason.clone()
            } else {
                format!(
                    "all {} {noun} rejected: {}",
                    decoded.rejected.len(),
                    decoded.problems()
                )
            };
            return Err(IngestError::invalid(
                format!("{}.{}", first.path, first.field),
                message,
            ));
        }
    }
    Ok(ExportOutcome {
        rejected: i64::try_from(decoded.rejected.len()).unwrap_or(i64::MAX),
        message: decoded.summary(noun, limits),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_header() {
        assert_eq!(project_from_header(None).unwrap(), DEFAULT_PROJECT);
        assert_eq!(
            project_from_header(Some(b"team-a.prod_1")).unwrap(),
            "team-a.prod_1"
        );
        for bad in [&b""[..], b"has space", b"\xff\xfe", &[b'a'; 129]] {
            let err = project_from_header(Some(bad)).unwrap_err();
            assert!(
                matches!(&err, IngestError::InvalidInput { field, .. } if field == PROJECT_HEADER),
                "{err:?}"
            );
        }
    }

    #[test]
    fn partial_success_is_unset_when_all_is_well() {
        let ok = ExportOutcome::default();
        assert_eq!(ok.trace_response().partial_success, None);
        assert_eq!(ok.json_response("rejectedSpans"), serde_json::json!({}));
        let partial = ExportOutcome {
            rejected: 2,
            message: Some("rejected 2 of 3 spans: ...".into()),
        };
        assert_eq!(
            partial
                .trace_response()
                .partial_success
                .unwrap()
                .rejected_spans,
            2
        );
        assert_eq!(
            partial
                .logs_response()
                .partial_success
                .unwrap()
                .rejected_log_records,
            2
        );
        assert_eq!(
            partial.json_response("rejectedSpans"),
            serde_json::json!({"partialSuccess": {"rejectedSpans": "2", "errorMessage": "rejected 2 of 3 spans: ..."}})
        );
        let warning = ExportOutcome {
            rejected: 0,
            message: Some("truncated 1 attribute values".into()),
        };
        assert_eq!(
            warning
                .trace_response()
                .partial_success
                .unwrap()
                .rejected_spans,
            0
        );
    }
}
