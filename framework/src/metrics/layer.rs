//! [`RecordMetricsLayer`]: the request duration histogram and the active-requests gauge.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use http::Method;
use metrics::Gauge;
use tower::{Layer, Service};

use super::matched_route::{FoundRoute, Route, RouteFinder};
use super::ACTIVE_REQUESTS;

/// The `route` label of requests that no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Records [`REQUEST_DURATION`] and [`ACTIVE_REQUESTS`] (installed by [`crate::App::metrics`]).
///
/// The route label comes from the router's patterns or from the request's
/// [`super::MatchedRoute`] (see [`crate::App::route_patterns`]), either way with the route's
/// histogram handles (kept per route, method and status class): a request builds no labels.
#[derive(Debug, Clone)]
pub struct RecordMetricsLayer {
    handles: Arc<Handles>,
    routes: RouteFinder,
}

impl Default for RecordMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordMetricsLayer {
    /// A layer recording into the process's `metrics` recorder, with routes from the
    /// request's [`super::MatchedRoute`].
    pub fn new() -> Self {
        Self {
            handles: Arc::new(Handles {
                unmatched: Route::named(UNMATCHED),
                active: metrics::gauge!(ACTIVE_REQUESTS),
            }),
            routes: RouteFinder::Slot,
        }
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn finding_routes(self, routes: RouteFinder) -> Self {
        Self { routes, ..self }
    }
}

impl<S> Layer<S> for RecordMetricsLayer {
    type Service = RecordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMetrics {
            inner,
            handles: self.handles.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// See [`RecordMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RecordMetrics<S> {
    inner: S,
    handles: Arc<Handles>,
    routes: RouteFinder,
}

impl<S> Service<Request> for RecordMetrics<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let method = method_index(request.method());
        let route = self.routes.find(&mut request);
        self.handles.active.increment(1.0);
        ResponseFuture {
            inner: self.inner.call(request),
            active: ActiveRequest(self.handles.clone()),
            route,
            method,
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RecordMetrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        active: ActiveRequest,
        route: FoundRoute,
        method: usize,
        started: Instant,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let elapsed = this.started.elapsed().as_secs_f64();
        let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
        let route = this.route.route().unwrap_or(this.active.0.unmatched);
        route.duration(*this.method, class).record(elapsed);
        Poll::Ready(Ok(response))
    }
}

/// Takes the request off the active gauge when its future ends, answered or dropped (a client
/// that went away).
#[derive(Debug)]
struct ActiveRequest(Arc<Handles>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.decrement(1.0);
    }
}

/// The method's index in [`super::matched_route::METHODS`]: an extension method counts as `_OTHER` (OpenTelemetry's
/// name), so that a client cannot add series by inventing methods.
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

#[derive(Debug)]
struct Handles {
    unmatched: &'static Route,
    active: Gauge,
}
