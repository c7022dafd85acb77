//! Request timeouts: past the route's maximum duration the client gets `504 TIMEOUT`, the
//! handler future is dropped (so its work stops at the next `.await`), and the event is logged
//! inside the request's span (with its request id).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use http::StatusCode;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::ApiError;

/// The request's deadline, shared between the app-wide timer ([`RequestTimeoutLayer`]) and the route:
/// a route with its own maximum duration moves it instead of starting a second timer, so routes
/// without one cost nothing.
///
/// Routes move it only from inside the app timer's call to the inner future (a route's `call`
/// runs when the router is first polled), so the timer reads it after each such poll and needs
/// no notification.
#[derive(Debug, Clone)]
pub(crate) struct Deadline(Arc<DeadlineState>);

#[derive(Debug)]
struct DeadlineState {
    started: Instant,
    /// Nanoseconds after `started`.
    after: AtomicU64,
}

impl Deadline {
    fn new(started: Instant, limit: Duration) -> Self {
        Self(Arc::new(DeadlineState {
            started,
            after: AtomicU64::new(nanos(limit)),
        }))
    }

    fn at(&self) -> Instant {
        self.0.started + Duration::from_nanos(self.0.after.load(Ordering::Relaxed))
    }

    /// The most specific declaration wins: a route's, then a handler's, replace the default.
    fn set(&self, at: Instant) {
        let after = at.saturating_duration_since(self.0.started);
        self.0.after.store(nanos(after), Ordering::Relaxed);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
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
pub(crate) struct RequestTimeoutLayer(pub(crate) Duration);

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            default: self.0,
        }
    }
}

/// See [`RequestTimeoutLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RequestTimeout<S> {
    inner: S,
    default: Duration,
}

impl<S, E> Service<Request> for RequestTimeout<S>
where
    S: Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = RequestTimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let deadline = Deadline::new(Instant::now(), self.default);
        request.extensions_mut().insert(deadline.clone());
        RequestTimeoutFuture {
            inner: self.inner.call(request),
            deadline,
            timer: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestTimeout`].
    pub(crate) struct RequestTimeoutFuture<F> {
        #[pin]
        inner: F,
        deadline: Deadline,
        // Started only once the handler has to wait: one that answers at its first poll
        // never touches the timer wheel.
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F, E> Future for RequestTimeoutFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        let at = this.deadline.at();
        match this.timer.as_mut().as_pin_mut() {
            Some(timer) if timer.deadline() == at => {}
            Some(timer) => timer.reset(at),
            None => this.timer.set(Some(tokio::time::sleep_until(at))),
        }
        if let Some(timer) = this.timer.as_pin_mut() {
            if timer.poll(cx).is_ready() {
                return Poll::Ready(Ok(timeout_response(at - this.deadline.0.started)));
            }
        }
        Poll::Pending
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
            deadline.set(Instant::now() + limit);
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

    use super::{MaxDuration, RequestTimeoutLayer};

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
            .layer(RequestTimeoutLayer(Duration::from_secs(default)));
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
