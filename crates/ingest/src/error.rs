//! The one error type of the ingest path.
//!
//! Variants are split by what the client should do next, the way the OTLP specification splits
//! them: permanent errors ([`IngestError::InvalidInput`], [`IngestError::TooLarge`],
//! [`IngestError::UnsupportedMediaType`]) must not be retried; [`IngestError::Overloaded`] and
//! [`IngestError::Unavailable`] are worth retrying later. How each maps onto HTTP and gRPC lives in
//! one place, `otlp::status`.

use std::time::Duration;

use sightline_store::{ErrorKind, StoreError};

/// Why a request (or a part of it) was not ingested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The data is malformed or invalid; retrying the same request fails again.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// What was wrong: a header name, `body`, or the path of the offending field
        /// (`resourceSpans[0].scopeSpans[1].spans[3].traceId`).
        field: String,
        /// What was wrong with it.
        message: String,
    },
    /// The request is bigger than a configured limit (body, decompressed body, items).
    #[error("{message}")]
    TooLarge {
        /// Which limit was exceeded, with the limit.
        message: String,
    },
    /// The content type or content encoding is not one Sightline reads.
    #[error("{message}")]
    UnsupportedMediaType {
        /// What was sent and what is accepted.
        message: String,
    },
    /// The pipeline holds as many items as it may; the client should retry after `retry_after`.
    #[error("ingest pipeline is full; retry after {} s", retry_after.as_secs().max(1))]
    Overloaded {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The store cannot take writes right now; retrying later may succeed.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// The store's reason.
        message: String,
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// A bug or an unexpected failure inside Sightline.
    #[error("internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

impl IngestError {
    /// An [`IngestError::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A short, stable name of the variant, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::Overloaded { .. } => "overloaded",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal { .. } => "internal",
        }
    }

    /// Whether a client may succeed by sending the same request again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Overloaded { .. } | Self::Unavailable { .. } => true,
            Self::InvalidInput { .. }
            | Self::TooLarge { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::Internal { .. } => false,
        }
    }

    /// Maps a store failure, telling the client to retry after `retry_after` when it may help.
    pub fn from_store(err: StoreError, retry_after: Duration) -> Self {
        match (err.kind(), err) {
            (_, StoreError::InvalidInput { field, message }) => Self::InvalidInput {
                field: field.to_string(),
                message,
            },
            (ErrorKind::Retryable, e) => Self::Unavailable {
                message: e.to_string(),
                retry_after,
            },
            (ErrorKind::InvalidInput | ErrorKind::Internal, e) => Self::Internal {
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_by_kind() {
        let d = Duration::from_secs(2);
        assert_eq!(
            IngestError::from_store(StoreError::Closed, d),
            IngestError::Unavailable {
                message: "store is closed".into(),
                retry_after: d
            }
        );
        assert!(matches!(
            IngestError::from_store(StoreError::Database("disk I/O error".into()), d),
            IngestError::Internal { message } if message.contains("disk I/O error")
        ));
        assert_eq!(
            IngestError::from_store(
                StoreError::InvalidInput {
                    field: "project",
                    message: "empty".into()
                },
                d
            ),
            IngestError::invalid("project", "empty")
        );
    }

    #[test]
    fn messages_name_the_field() {
        let e = IngestError::invalid("resourceSpans[0].scopeSpans[0].spans[1].traceId", "zero");
        assert_eq!(
            e.to_string(),
            "invalid resourceSpans[0].scopeSpans[0].spans[1].traceId: zero"
        );
        assert!(IngestError::Overloaded {
            retry_after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(!e.is_retryable());
    }
}
