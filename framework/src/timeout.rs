//! Request timeouts: past the route's maximum duration the client gets `504 TIMEOUT`, the
//! handler future is dropped (so its work stops at the next `.await`), and the event is logged
//! inside the request's span (with its request id).

use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use http::StatusCode;
use tower::{Layer, Service};

use crate::ApiError;

/// The app-wide default maximum duration, installed as a request extension by [`crate::App`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DefaultTimeout(pub(crate) Duration);

/// A maximum duration for the routes it wraps: `#[arbor::handler(timeout(5))]` (seconds).
///
/// Routes can also declare `pub const MAX_DURATION: u64 = 60;` (seconds), which the build step
/// applies to every handler of the file. Without either, the app's default applies
/// ([`crate::App::timeout`], 10 s by default).
pub fn timeout(seconds: u64) -> MaxDuration {
    MaxDuration(Some(Duration::from_secs(seconds)))
}

/// See [`timeout`]. `MaxDuration(None)` applies the app's default.
#[derive(Debug, Clone, Copy)]
pub struct MaxDuration(pub Option<Duration>);

impl<S> Layer<S> for MaxDuration {
    type Service = MaxDurationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MaxDurationService {
            inner,
            limit: self.0,
        }
    }
}

/// See [`MaxDuration`].
#[derive(Debug, Clone)]
pub struct MaxDurationService<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S> Service<Request> for MaxDurationService<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let limit = self
            .limit
            .or_else(|| request.extensions().get::<DefaultTimeout>().map(|d| d.0));
        let future = self.inner.call(request);
        let Some(limit) = limit else {
            return Either::Left(future);
        };
        Either::Right(Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        limit_ms = limit.as_millis() as u64,
                        "request timed out; handler dropped"
                    );
                    Ok(ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "TIMEOUT",
                        "The request took too long to complete",
                    )
                    .into_response())
                }
            }
        }))
    }
}
