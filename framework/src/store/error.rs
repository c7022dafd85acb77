//! What a store reports when it fails.

use std::fmt;

/// A store failed. [`kind`](Self::kind) says how, so middleware can answer in kind: a rate limit
/// follows its [`FailureMode`](super::FailureMode), idempotency answers `503` with `Retry-After`,
/// the response cache is bypassed.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// How a store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached, or did not answer within its time budget. Retrying
    /// later may succeed.
    Unavailable,
    /// The store is at its capacity and refuses new entries.
    Full,
    /// Anything else: a corrupt record, a protocol error, a refused command.
    Other,
}

impl StoreError {
    /// Wraps the store's own error, of kind [`StoreErrorKind::Other`].
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::with_kind(StoreErrorKind::Other, source)
    }

    /// The backend is unreachable or timed out.
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::with_kind(StoreErrorKind::Unavailable, source)
    }

    /// The store is full.
    pub fn full(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::with_kind(StoreErrorKind::Full, source)
    }

    /// Wraps `source` as an error of `kind`.
    pub fn with_kind(
        kind: StoreErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// How the store failed.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "store unavailable",
            StoreErrorKind::Full => "store full",
            StoreErrorKind::Other => "store failed",
        };
        write!(f, "{what}: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl From<std::io::Error> for StoreError {
    /// I/O errors of file-backed stores; a full disk is [`StoreErrorKind::Full`].
    fn from(error: std::io::Error) -> Self {
        let kind = match error.kind() {
            // `FileTooLarge`: a file-size limit (`RLIMIT_FSIZE`, a filesystem's maximum) is
            // as full as a full disk for the file being written.
            std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::QuotaExceeded
            | std::io::ErrorKind::FileTooLarge => StoreErrorKind::Full,
            std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::NotConnected => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        };
        Self::with_kind(kind, error)
    }
}

/// A store's failure as an answer: `503 STORE_UNAVAILABLE` with `Retry-After` when the backend
/// cannot be reached, `507 STORE_FULL` when it is full, else `500` (logged, never shown).
impl From<StoreError> for crate::ApiError {
    fn from(error: StoreError) -> Self {
        match error.kind {
            StoreErrorKind::Unavailable => {
                tracing::error!(%error, "a store is unavailable");
                crate::ApiError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "STORE_UNAVAILABLE",
                    "a backend this request needs is unavailable; retry shortly",
                )
                .with_header(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                )
            }
            StoreErrorKind::Full => {
                tracing::error!(%error, "a store is full");
                crate::ApiError::new(
                    http::StatusCode::INSUFFICIENT_STORAGE,
                    "STORE_FULL",
                    "there is no room to store this right now",
                )
            }
            StoreErrorKind::Other => crate::ApiError::internal_with(error),
        }
    }
}
