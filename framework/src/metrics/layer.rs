//! [`RecordMetricsLayer`]: the request duration histogram and the active-requests gauge.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use http::Method;
use metrics::{Gauge, Histogram, SharedString};
use tower::{Layer, Service};

use super::{MatchedRoute, ACTIVE_REQUESTS, REQUEST_DURATION};

/// The `route` label of requests that no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Records [`REQUEST_DURATION`] and [`ACTIVE_REQUESTS`] (installed by [`crate::App::metrics`]).
///
/// The route label comes from the [`MatchedRoute`] that [`super::MatchedRouteLayer`] puts on
/// responses. Histogram handles are kept per route, method and status class, so a request
/// costs a read lock and a map lookup, not a registry lookup with freshly built labels.
#[derive(Debug, Clone)]
pub struct RecordMetricsLayer {
    handles: Arc<Handles>,
}

impl Default for RecordMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordMetricsLayer {
    /// A layer recording into the process's `metrics` recorder.
    pub fn new() -> Self {
        Self {
            handles: Arc::new(Handles {
                routes: RwLock::default(),
                unmatched: RouteHandles::new(SharedString::const_str(UNMATCHED)),
                active: metrics::gauge!(ACTIVE_REQUESTS),
            }),
        }
    }
}

impl<S> Layer<S> for RecordMetricsLayer {
    type Service = RecordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMetrics {
            inner,
            handles: self.handles.clone(),
        }
    }
}

/// See [`RecordMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RecordMetrics<S> {
    inner: S,
    handles: Arc<Handles>,
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

    fn call(&mut self, request: Request) -> Self::Future {
        let method = method_index(request.method());
        self.handles.active.increment(1.0);
        ResponseFuture {
            inner: self.inner.call(request),
            active: ActiveRequest(self.handles.clone()),
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
        let handles = &this.active.0;
        match response.extensions().get::<MatchedRoute>() {
            Some(route) => handles.record(route.as_str(), *this.method, class, elapsed),
            None => handles
                .unmatched
                .duration(*this.method, class)
                .record(elapsed),
        }
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

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The method's index in [`METHODS`]: an extension method counts as `_OTHER` (OpenTelemetry's
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
    routes: RwLock<HashMap<Box<str>, RouteHandles>>,
    unmatched: RouteHandles,
    active: Gauge,
}

impl Handles {
    /// Records a duration under `route`, whose handles are made on its first request. Route
    /// patterns are a closed set (the router's), so the map stays as small as the route table.
    fn record(&self, route: &str, method: usize, class: usize, seconds: f64) {
        if let Some(found) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            found.duration(method, class).record(seconds);
            return;
        }
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(route.into())
            .or_insert_with(|| RouteHandles::new(route.to_owned().into()))
            .duration(method, class)
            .record(seconds);
    }
}

/// One route's histograms, by method and status class, registered on first use.
#[derive(Debug)]
struct RouteHandles {
    route: SharedString,
    durations: [[OnceLock<Histogram>; 5]; 10],
}

impl RouteHandles {
    fn new(route: SharedString) -> Self {
        Self {
            route,
            durations: Default::default(),
        }
    }

    fn duration(&self, method: usize, class: usize) -> &Histogram {
        self.durations[method][class].get_or_init(|| {
            metrics::histogram!(
                REQUEST_DURATION,
                "route" => self.route.clone(),
                "method" => METHODS[method],
                "status" => STATUS_CLASSES[class]
            )
        })
    }
}
