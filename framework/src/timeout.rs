//! Request timeouts: past the route's maximum duration the client gets `504 TIMEOUT`, the
//! handler future is dropped (so its work stops at the next `.await`), and the event is logged
//! inside the request's span (with its request id).

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use http::StatusCode;
use tower::{Layer, Service};

use crate::ApiError;

/// The request's deadline, shared between the app-wide timer ([`AppTimeout`]) and the route:
/// a route with its own maximum duration moves it instead of starting a second timer, so routes
/// without one cost nothing.
#[derive(Debug, Clone)]
pub(crate) struct Deadline(Arc<DeadlineState>);

#[derive(Debug)]
struct DeadlineState {
    at: Mutex<tokio::time::Instant>,
    moved: tokio::sync::Notify,
}

impl Deadline {
    fn new(at: tokio::time::Instant) -> Self {
        Self(Arc::new(DeadlineState {
            at: Mutex::new(at),
            moved: tokio::sync::Notify::new(),
        }))
    }

    fn at(&self) -> tokio::time::Instant {
        *self.0.at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most specific declaration wins: a route's, then a handler's, replace the default.
    fn set(&self, at: tokio::time::Instant) {
        *self.0.at.lock().unwrap_or_else(PoisonError::into_inner) = at;
        // `notify_one` keeps a permit if the timer is not waiting yet, so no move is missed.
        self.0.moved.notify_one();
    }
}

fn timeout_response(limit: Duration) -> Response {
    tracing::warn!(
        limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        "request timed out; handler dropped"
    );
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "TIMEOUT",
        "The request took too long to complete",
    )
    .into_response()
}

/// The app-wide default maximum duration (installed by [`crate::App`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppTimeout(pub(crate) Duration);

impl<S> Layer<S> for AppTimeout {
    type Service = AppTimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AppTimeoutService {
            inner,
            default: self.0,
        }
    }
}

/// See [`AppTimeout`].
#[derive(Debug, Clone)]
pub(crate) struct AppTimeoutService<S> {
    inner: S,
    default: Duration,
}

impl<S> Service<Request> for AppTimeoutService<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = tokio::time::Instant::now();
        let deadline = Deadline::new(started + self.default);
        request.extensions_mut().insert(deadline.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            tokio::pin!(future);
            loop {
                let at = deadline.at();
                tokio::select! {
                    biased;
                    result = &mut future => return result,
                    () = deadline.0.moved.notified() => {}
                    () = tokio::time::sleep_until(at) => {
                        if deadline.at() <= tokio::time::Instant::now() {
                            return Ok(timeout_response(at - started));
                        }
                    }
                }
            }
        })
    }
}

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
        let Some(limit) = self.limit else {
            return Either::Left(self.inner.call(request));
        };
        if let Some(deadline) = request.extensions().get::<Deadline>() {
            // Inside `App`: move the app's timer rather than start a second one.
            deadline.set(tokio::time::Instant::now() + limit);
            return Either::Left(self.inner.call(request));
        }
        let future = self.inner.call(request);
        Either::Right(Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(result) => result,
                Err(_) => Ok(timeout_response(limit)),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::{AppTimeout, MaxDuration};

    /// A route whose handler takes `work`, under an app default and an optional route limit.
    async fn status(default: u64, route: Option<u64>, work: u64) -> u16 {
        let handler = move || async move {
            tokio::time::sleep(Duration::from_secs(work)).await;
            "done"
        };
        let mut methods = get(handler);
        if let Some(route) = route {
            methods = methods.layer(MaxDuration(Some(Duration::from_secs(route))));
        }
        let app = Router::new()
            .route("/", methods)
            .layer(AppTimeout(Duration::from_secs(default)));
        let request = http::Request::builder()
            .uri("/")
            .body(Body::empty())
            .unwrap();
        app.oneshot(request).await.unwrap().status().as_u16()
    }

    // The clock is paused and jumps ahead whenever everything waits: no real sleeping.
    #[tokio::test(start_paused = true)]
    async fn the_most_specific_limit_wins() {
        assert_eq!(status(1, None, 3).await, 504, "app default applies");
        assert_eq!(status(10, None, 3).await, 200);
        assert_eq!(
            status(1, Some(5), 3).await,
            200,
            "a route may extend the default"
        );
        assert_eq!(status(10, Some(1), 3).await, 504, "or shorten it");
    }
}
