//! Carries the route that answered a request out to the app-wide layers.
//!
//! axum puts [`MatchedPath`] in the request's extensions when a route matches, but the
//! app-wide stack wraps the router from the outside and never sees that request again. So the
//! outermost layer that wants the route puts an empty [`MatchedRoute`] into the request, and
//! [`MatchedRouteLayer`], put on the routes themselves ([`axum::Router::route_layer`]), fills
//! it in. The outer layers read it once the response is out, or once a panic or a timeout
//! ended the request instead: a 500 or a 504 keeps its route.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use metrics::{Histogram, SharedString};
use tower::{Layer, Service};

use super::REQUEST_DURATION;

/// The route that matched a request: shared between the request's extensions and the layers
/// outside the router, empty until a route matches (and for good when none does).
#[derive(Debug, Clone, Default)]
pub struct MatchedRoute(Arc<OnceLock<Arc<Route>>>);

impl MatchedRoute {
    /// The slot in `request`, put there now if no outer layer did.
    pub fn of(request: &mut Request) -> Self {
        if let Some(slot) = request.extensions().get::<Self>() {
            return slot.clone();
        }
        let slot = Self::default();
        request.extensions_mut().insert(slot.clone());
        slot
    }

    /// The pattern of the route, in axum's syntax (`/api/users/{id}`), once one matched.
    pub fn as_str(&self) -> Option<&str> {
        self.route().map(|route| &*route.pattern)
    }

    /// The pattern as a shared string, for attributes that keep it (no copy per request).
    #[cfg(feature = "otel")]
    pub(crate) fn shared_pattern(&self) -> Option<Arc<str>> {
        self.route().map(|route| Arc::clone(&route.pattern))
    }

    pub(super) fn route(&self) -> Option<&Route> {
        self.0.get().map(|route| &**route)
    }
}

/// One route pattern, made once per process: its pattern and its request-duration histograms.
#[derive(Debug)]
pub(super) struct Route {
    pattern: Arc<str>,
    /// By method ([`METHODS`]) and status class, registered on first use.
    durations: [[OnceLock<Histogram>; 5]; 10],
}

/// Labels of the histogram dimensions, in the order of their indexes.
pub(super) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Route {
    pub(super) fn new(pattern: Arc<str>) -> Self {
        Self {
            pattern,
            durations: Default::default(),
        }
    }

    /// The request-duration histogram of this route for a method and a status class index.
    pub(super) fn duration(&self, method: usize, class: usize) -> &Histogram {
        self.durations[method][class].get_or_init(|| {
            metrics::histogram!(
                REQUEST_DURATION,
                "route" => SharedString::from_shared(Arc::clone(&self.pattern)),
                "method" => METHODS[method],
                "status" => STATUS_CLASSES[class]
            )
        })
    }

    /// The process's route for `pattern`. Patterns are a closed set (the routers'), so the
    /// map stays as small as the route tables.
    fn named(pattern: &str) -> Arc<Self> {
        static ROUTES: LazyLock<RwLock<HashMap<Box<str>, Arc<Route>>>> =
            LazyLock::new(RwLock::default);
        if let Some(route) = ROUTES
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pattern)
        {
            return Arc::clone(route);
        }
        let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
        let route = routes
            .entry(pattern.into())
            .or_insert_with(|| Arc::new(Self::new(Arc::from(pattern))));
        Arc::clone(route)
    }
}

/// Fills the request's [`MatchedRoute`] on the routes it wraps (installed by [`crate::App`]
/// when metrics or traces are on).
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchedRouteLayer;

impl<S> Layer<S> for MatchedRouteLayer {
    type Service = RecordMatchedRoute<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMatchedRoute {
            inner,
            route: Arc::default(),
        }
    }
}

/// See [`MatchedRouteLayer`].
#[derive(Debug, Clone)]
pub struct RecordMatchedRoute<S> {
    inner: S,
    /// This route's entry, looked up by its first request: each wrapped route has one pattern,
    /// so later requests skip the lookup.
    route: Arc<OnceLock<Arc<Route>>>,
}

impl<S> Service<Request> for RecordMatchedRoute<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let extensions = request.extensions();
        if let (Some(slot), Some(path)) = (
            extensions.get::<MatchedRoute>(),
            extensions.get::<MatchedPath>(),
        ) {
            let route = match self.route.get() {
                Some(route) if *route.pattern == *path.as_str() => Arc::clone(route),
                // The first request, or (a service mounted under several patterns) another
                // pattern: the process-wide lookup.
                _ => {
                    let route = Route::named(path.as_str());
                    let _ = self.route.set(Arc::clone(&route));
                    route
                }
            };
            let _ = slot.0.set(route);
        }
        self.inner.call(request)
    }
}
