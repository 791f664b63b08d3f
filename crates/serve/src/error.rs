//! Every failure of the API becomes an HTTP response here, and only here.
//!
//! Handlers return [`ApiError`]; [`ApiError::into_response`] picks status, code, message and field
//! in one exhaustive match, so a new store error kind cannot reach a client unmapped. Internal
//! details never reach the client: the response carries an [`ErrorDetail`] extension instead, which
//! the [`log_errors`] middleware logs together with the request line (axum's error-handling
//! pattern), so handlers do not log.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sightline_store::{ErrorKind, StoreError};

use crate::api::params::ParamError;

/// Seconds a client is told to wait before retrying a temporarily unavailable store.
const RETRY_AFTER_SECS: &str = "1";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter was rejected.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A path segment was rejected.
    #[error("`{field}`: {message}")]
    InvalidPath {
        /// The path parameter (`trace_id`, `session_id`).
        field: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The addressed item does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The readiness probe failed or timed out.
    #[error("store is not ready: {0}")]
    NotReady(String),
}

/// The JSON body of every error: `{"error":{"code","message","field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorBody {
    /// Machine-readable code: `invalid_argument`, `not_found`, `method_not_allowed`,
    /// `unavailable` or `internal`.
    pub code: &'static str,
    /// Human-readable explanation; generic for internal failures.
    pub message: String,
    /// The parameter at fault, `null` when none.
    pub field: Option<String>,
}

/// The full error of a failed response, for the logging middleware; never sent to the client.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

impl ApiError {
    /// Status and body for this error.
    fn status_and_body(&self) -> (StatusCode, ErrorBody) {
        let body = |code, message: String, field: Option<&str>| ErrorBody {
            code,
            message,
            field: field.map(str::to_owned),
        };
        match self {
            Self::Param(e) => (
                StatusCode::BAD_REQUEST,
                body("invalid_argument", e.to_string(), e.field()),
            ),
            Self::InvalidPath { field, .. } => (
                StatusCode::BAD_REQUEST,
                body("invalid_argument", self.to_string(), Some(field)),
            ),
            Self::NotFound(message) => (
                StatusCode::NOT_FOUND,
                body("not_found", message.clone(), None),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                body("method_not_allowed", self.to_string(), None),
            ),
            Self::Store(e) => match e.kind() {
                ErrorKind::InvalidInput => {
                    let field = match e {
                        StoreError::InvalidInput { field, .. } => Some(parameter_of(field)),
                        _ => None,
                    };
                    (
                        StatusCode::BAD_REQUEST,
                        body("invalid_argument", e.to_string(), field),
                    )
                }
                ErrorKind::Retryable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    body(
                        "unavailable",
                        "the store is temporarily unavailable; retry later".to_owned(),
                        None,
                    ),
                ),
                ErrorKind::Internal => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body("internal", "internal error".to_owned(), None),
                ),
            },
            Self::NotReady(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                body("unavailable", "the store is not ready".to_owned(), None),
            ),
        }
    }
}

/// The query parameter behind a [`Filter`](sightline_store::Filter) or
/// [`PageRequest`](sightline_store::PageRequest) field a store rejected: stores name their own
/// fields, clients know the parameters.
fn parameter_of(store_field: &str) -> &str {
    match store_field {
        "attrs" => "attr",
        "from_unix_nano" => "from",
        "to_unix_nano" => "to",
        other => other,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut response = (status, Json(ErrorResponse { error: body })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
            .extensions_mut()
            .insert(ErrorDetail(self.to_string()));
        response
    }
}

/// Middleware logging every failed response with its full error: server-side failures at `error`
/// level, client mistakes at `debug`.
pub async fn log_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if let Some(ErrorDetail(detail)) = response.extensions().get::<ErrorDetail>() {
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            tracing::error!(%method, %path, status, error = %detail, "request failed");
        } else {
            tracing::debug!(%method, %path, status, error = %detail, "request rejected");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn render(err: ApiError) -> (StatusCode, serde_json::Value, Response) {
        let response = err.into_response();
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap();
        (
            status,
            json,
            Response::from_parts(parts, axum::body::Body::empty()),
        )
    }

    #[tokio::test]
    async fn store_errors_map_by_kind() {
        let (status, json, _) = render(ApiError::Store(StoreError::InvalidInput {
            field: "cursor",
            message: "not a cursor".into(),
        }))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "invalid_argument",
                "message": "invalid cursor: not a cursor", "field": "cursor"}})
        );

        let (_, json, _) = render(ApiError::Store(StoreError::InvalidInput {
            field: "attrs",
            message: "unsupported attribute key `a\"b`".into(),
        }))
        .await;
        assert_eq!(json["error"]["field"], "attr");

        for e in [
            StoreError::Unavailable("disk full".into()),
            StoreError::Closed,
        ] {
            let (status, json, response) = render(ApiError::Store(e)).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(json["error"]["code"], "unavailable");
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }

        for e in [
            StoreError::Database("near \"SELEC\": syntax error".into()),
            StoreError::Corrupt("row 7".into()),
        ] {
            let detail = e.to_string();
            let (status, json, response) = render(ApiError::Store(e)).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                json,
                serde_json::json!({"error": {"code": "internal",
                    "message": "internal error", "field": null}})
            );
            // the detail goes to the log middleware, not the client
            assert_eq!(
                response.extensions().get::<ErrorDetail>().unwrap().0,
                detail
            );
        }
    }

    #[tokio::test]
    async fn request_errors_name_their_field() {
        let (status, json, _) = render(ApiError::InvalidPath {
            field: "trace_id",
            message: "expected 32 hex digits".into(),
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"]["field"], "trace_id");
        assert_eq!(
            json["error"]["message"],
            "`trace_id`: expected 32 hex digits"
        );

        let (status, json, _) = render(ParamError::Status { value: "x".into() }.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"]["field"], "status");

        let (status, json, _) = render(ApiError::NotFound("trace abc not found".into())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json["error"]["code"], "not_found");
        assert_eq!(json["error"]["field"], serde_json::Value::Null);

        let (status, _, _) = render(ApiError::MethodNotAllowed).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

        let (status, json, _) = render(ApiError::NotReady("timed out".into())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["error"]["message"], "the store is not ready");
    }
}
