//! The last guarantee of the error shape: an error response that is not in it (a rejection of
//! an axum extractor such as `axum::Json`, `String` or `Bytes`, which answer in plain text, or
//! a handler's bare `StatusCode::NOT_FOUND`) is rewritten into
//! `{ "error": CODE, "message": .. }` on its way out, keeping its status and headers.
//!
//! Only small, plain-text or empty error bodies are rewritten; JSON, HTML and streamed bodies
//! pass untouched. A `5xx` body's text is logged, never sent: it may hold what went wrong
//! inside (a database address, a path).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use http::{header, StatusCode};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::ApiError;

/// Plain-text bodies up to this size are rewritten; axum's rejections are a sentence.
const MAX_REWRITTEN_BYTES: u64 = 4096;

/// Rewrites error responses into the JSON error shape (see the module docs). Part of
/// [`App`](crate::App)'s stack.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ErrorShapeLayer;

impl<S> Layer<S> for ErrorShapeLayer {
    type Service = ErrorShape<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorShape { inner }
    }
}

/// The service made by [`ErrorShapeLayer`].
#[derive(Debug, Clone)]
pub(crate) struct ErrorShape<S> {
    inner: S,
}

impl<S> Service<Request> for ErrorShape<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(request),
            },
        }
    }
}

pin_project! {
    /// The future of [`ErrorShape`]: the inner response as it is, and only an error body to
    /// rewrite takes a second, boxed step (so the common path allocates nothing).
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Reshaping { future: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    if !needs_shape(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    this.state.set(State::Reshaping {
                        future: Box::pin(reshape(response)),
                    });
                }
                StateProj::Reshaping { future } => {
                    return future.as_mut().poll(cx).map(Ok);
                }
            }
        }
    }
}

fn needs_shape(response: &Response) -> bool {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    let plain_or_none = match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value.to_str().is_ok_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        }),
    };
    plain_or_none
        && response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|len| len <= MAX_REWRITTEN_BYTES)
}

async fn reshape(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    let text = match body.collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        Err(_) => String::new(),
    };
    let error = if status.is_server_error() {
        if !text.is_empty() {
            tracing::error!(status = status.as_u16(), body = %text, "error response in plain text");
        }
        ApiError::new(status, code_for(status), "An unexpected error occurred")
    } else {
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("Request refused")
                .to_owned()
        } else {
            text
        };
        ApiError::new(status, code_for(status), message)
    };
    let shaped = error.into_unlogged_response();
    // Keep what the original said besides its body (`Allow`, `Retry-After`, CORS...).
    parts.headers.remove(header::CONTENT_LENGTH);
    let (shaped_parts, shaped_body) = shaped.into_parts();
    parts.headers.extend(shaped_parts.headers);
    Response::from_parts(parts, Body::new(shaped_body))
}

/// The code of an error status, as Arbor's own errors name them.
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        406 => "NOT_ACCEPTABLE",
        408 => "REQUEST_TIMEOUT",
        409 => "CONFLICT",
        410 => "GONE",
        411 => "LENGTH_REQUIRED",
        412 => "PRECONDITION_FAILED",
        413 => "PAYLOAD_TOO_LARGE",
        414 => "URI_TOO_LONG",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        422 => "UNPROCESSABLE_ENTITY",
        428 => "PRECONDITION_REQUIRED",
        429 => "RATE_LIMITED",
        431 => "REQUEST_HEADER_FIELDS_TOO_LARGE",
        501 => "NOT_IMPLEMENTED",
        502 => "BAD_GATEWAY",
        503 => "SERVICE_UNAVAILABLE",
        504 => "TIMEOUT",
        500..=599 => "INTERNAL_ERROR",
        _ => "BAD_REQUEST",
    }
}
