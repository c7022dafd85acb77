//! The one error shape every Arbor response uses: `{ "error": CODE, "message": ..., "details"? }`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// An error answered to the client as JSON, with a status, a machine-readable code, a safe
/// message and optional details.
///
/// ```
/// use arbor::ApiError;
///
/// async fn find_user(id: u64) -> Result<String, ApiError> {
///     Err(ApiError::not_found(format!("no user with id {id}")))
/// }
/// ```
///
/// Responds with:
///
/// ```text
/// HTTP/1.1 404 Not Found
/// content-type: application/json
///
/// {"error":"NOT_FOUND","message":"no user with id 7"}
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    details: Option<serde_json::Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// What really went wrong: logged with the request, never sent.
    source: Option<Arc<anyhow::Error>>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
            headers: Vec::new(),
            source: None,
        }
    }

    /// `400 BAD_REQUEST`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// `401 UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// `403 FORBIDDEN`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// `404 NOT_FOUND`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// `409 CONFLICT`.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// `500 INTERNAL_ERROR` with the generic message. Log the cause before returning this:
    /// nothing about it reaches the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "An unexpected error occurred",
        )
    }

    /// `500 INTERNAL_ERROR` caused by `error`: the client sees only the generic message; the
    /// full error chain is logged, inside the request's span (so with its request id), when
    /// the response is produced.
    ///
    /// ```
    /// use arbor::ApiError;
    ///
    /// fn load() -> Result<String, ApiError> {
    ///     std::fs::read_to_string("/etc/app.toml").map_err(ApiError::internal_with)
    /// }
    /// ```
    pub fn internal_with(error: impl Into<anyhow::Error>) -> Self {
        let mut api_error = Self::internal();
        api_error.source = Some(Arc::new(error.into()));
        api_error
    }

    /// `422 UNPROCESSABLE_ENTITY`.
    pub fn unprocessable(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// Attaches structured details (field errors, the current version, ...).
    pub fn with_details(mut self, details: impl Serialize) -> Self {
        // Serializing a caller's details can only fail for maps with non-string keys; an
        // error response without details beats a panic.
        self.details = serde_json::to_value(details).ok();
        self
    }

    /// Sets a response header (`Allow`, `Retry-After`, ...), replacing any earlier value.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code, such as `NOT_FOUND`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// Unexpected errors from `?` become `500 INTERNAL_ERROR`, logged in full, never shown.
impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::internal_with(error)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(error: std::io::Error) -> Self {
        Self::internal_with(error)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::internal_with(error)
    }
}

/// `.or_internal()` on any `Result`: the error becomes a logged `500` that leaks nothing.
pub trait ResultExt<T> {
    /// Maps the error to [`ApiError::internal_with`].
    ///
    /// # Errors
    /// When `self` is an error.
    fn or_internal(self) -> Result<T, ApiError>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn or_internal(self) -> Result<T, ApiError> {
        self.map_err(ApiError::internal_with)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            tracing::error!(
                error = format!("{source:#}"),
                status = self.status.as_u16(),
                "request failed"
            );
        } else if self.status.is_server_error() {
            tracing::error!(code = %self.code, status = self.status.as_u16(), reason = %self.message, "request failed");
        }
        self.into_unlogged_response()
    }
}

impl ApiError {
    /// The response without the log line `into_response` writes for server errors: for answers
    /// that are expected and frequent, such as a readiness probe's `503` during an outage,
    /// which their own code logs once per state change.
    pub(crate) fn into_unlogged_response(self) -> Response {
        // RFC 9110 §15.4.5: a 304 has no content (it stands for the client's cached copy).
        if self.status == StatusCode::NOT_MODIFIED {
            let mut response = self.status.into_response();
            response.headers_mut().extend(self.headers);
            return response;
        }
        let body = serde_json::to_vec(&Body {
            error: &self.code,
            message: &self.message,
            details: self.details.as_ref(),
        })
        .unwrap_or_else(|_| {
            br#"{"error":"INTERNAL_ERROR","message":"An unexpected error occurred"}"#.to_vec()
        });
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value, Option<String>) {
        let response = error.into_response();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_default(),
            content_type,
        )
    }

    #[tokio::test]
    async fn renders_the_standard_shape() {
        let (status, body, content_type) =
            body_of(ApiError::not_found("no such user").with_details(serde_json::json!({"id": 7})))
                .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(
            body,
            serde_json::json!({"error": "NOT_FOUND", "message": "no such user", "details": {"id": 7}})
        );
    }

    #[tokio::test]
    async fn internal_errors_keep_their_cause_out_of_the_body() {
        let cause = std::io::Error::other("connection refused to db.internal:5432");
        let (status, body, _) = body_of(ApiError::from(cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("db.internal"), "{body}");
        let result: Result<(), std::fmt::Error> = Err(std::fmt::Error);
        assert_eq!(result.or_internal().unwrap_err().code(), "INTERNAL_ERROR");
    }

    #[tokio::test]
    async fn omits_absent_details_and_hides_internals() {
        let (status, body, _) = body_of(ApiError::internal()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({"error": "INTERNAL_ERROR", "message": "An unexpected error occurred"})
        );
    }
}
