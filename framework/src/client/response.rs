//! What a client reads back from a handler, by the handler's output type: `Json<T>` is a `T`,
//! `Result<R, ApiError>` is what `R` is on success (its errors arrive in the one error shape,
//! [`ErrorBody`]), `(StatusCode, R)` is `R`, a `StatusCode` alone is `()`.

use bytes::Bytes;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// How a client decodes a successful answer of a handler returning `Self`.
#[diagnostic::on_unimplemented(
    message = "a client cannot tell what `{Self}` answers with",
    label = "this handler's output has no `arbor::client::ClientResponse`",
    note = "return `Json<T>`, `(StatusCode, Json<T>)` or `Result<_, ApiError>` of them for a typed answer, or read this one with `.send_untyped()` / the response's bytes"
)]
pub trait ClientResponse {
    /// The decoded success body.
    type Body;

    /// Decodes a success body.
    ///
    /// # Errors
    /// When the body is not of that type.
    fn decode(body: &Bytes) -> Result<Self::Body, DecodeError>;
}

/// A success body that was not of the handler's type.
#[derive(Debug)]
pub struct DecodeError(pub(crate) String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the answer is not of the handler's type: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl<T: DeserializeOwned> ClientResponse for crate::Json<T> {
    type Body = T;
    fn decode(body: &Bytes) -> Result<T, DecodeError> {
        serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))
    }
}

impl<R: ClientResponse, E> ClientResponse for Result<R, E> {
    type Body = R::Body;
    fn decode(body: &Bytes) -> Result<R::Body, DecodeError> {
        R::decode(body)
    }
}

impl<R: ClientResponse> ClientResponse for (StatusCode, R) {
    type Body = R::Body;
    fn decode(body: &Bytes) -> Result<R::Body, DecodeError> {
        R::decode(body)
    }
}

impl<R: ClientResponse> ClientResponse for (http::HeaderMap, R) {
    type Body = R::Body;
    fn decode(body: &Bytes) -> Result<R::Body, DecodeError> {
        R::decode(body)
    }
}

impl<R: ClientResponse> ClientResponse for (StatusCode, http::HeaderMap, R) {
    type Body = R::Body;
    fn decode(body: &Bytes) -> Result<R::Body, DecodeError> {
        R::decode(body)
    }
}

#[cfg(feature = "conditional")]
impl<R: ClientResponse> ClientResponse for (crate::conditional::Validators, R) {
    type Body = R::Body;
    fn decode(body: &Bytes) -> Result<R::Body, DecodeError> {
        R::decode(body)
    }
}

#[cfg(feature = "cache")]
impl<R: ClientResponse> ClientResponse for (crate::cache::CacheTags, R) {
    type Body = R::Body;
    fn decode(body: &Bytes) -> Result<R::Body, DecodeError> {
        R::decode(body)
    }
}

/// A status without a body.
impl ClientResponse for StatusCode {
    type Body = ();
    fn decode(_body: &Bytes) -> Result<(), DecodeError> {
        Ok(())
    }
}

impl ClientResponse for () {
    type Body = ();
    fn decode(_body: &Bytes) -> Result<(), DecodeError> {
        Ok(())
    }
}

impl ClientResponse for String {
    type Body = String;
    fn decode(body: &Bytes) -> Result<String, DecodeError> {
        String::from_utf8(body.to_vec()).map_err(|e| DecodeError(e.to_string()))
    }
}

impl ClientResponse for &'static str {
    type Body = String;
    fn decode(body: &Bytes) -> Result<String, DecodeError> {
        String::decode(body)
    }
}

/// A response whose body the handler's type does not say: its bytes.
impl ClientResponse for crate::Response {
    type Body = Bytes;
    fn decode(body: &Bytes) -> Result<Bytes, DecodeError> {
        Ok(body.clone())
    }
}

/// An error answer, in Arbor's one error shape: `{ "error", "message", "details"? }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorBody {
    /// The machine-readable code (`VALIDATION_ERROR`, `NOT_FOUND`, …).
    pub error: String,
    /// The human-readable message.
    pub message: String,
    /// Field errors and other details, when the code has them.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

impl ErrorBody {
    /// Reads an error answer; a body in another shape (a proxy's page, an empty body) becomes
    /// an `HTTP_<status>` code with the body's text as the message.
    pub fn read(status: StatusCode, body: &Bytes) -> Self {
        serde_json::from_slice(body).unwrap_or_else(|_| Self {
            error: format!("HTTP_{}", status.as_u16()),
            message: String::from_utf8_lossy(body).into_owned(),
            details: None,
        })
    }
}
