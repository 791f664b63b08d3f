//! Store errors, split by whether retrying can help.

/// Whether an error is the caller's fault, worth retrying, or a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad request data: retrying the same request fails again.
    InvalidInput,
    /// Temporarily unable (overload, outage): retry later.
    Retryable,
    /// An internal failure.
    Internal,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The query or data was invalid (a bad cursor, say).
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The store is temporarily unavailable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput { .. } => ErrorKind::InvalidInput,
            Self::Unavailable(_) | Self::Closed => ErrorKind::Retryable,
            Self::Database(_) | Self::Corrupt(_) => ErrorKind::Internal,
        }
    }
}
