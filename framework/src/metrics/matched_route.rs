//! How the app-wide layers (metrics, spans) learn the route that answered a request.
//!
//! axum puts [`MatchedPath`] in the request's extensions when a route matches, but the
//! app-wide stack wraps the router from the outside and never sees that request again. Two ways
//! around that, picked by [`crate::App`]:
//!
//! - **The router's patterns are known** ([`crate::App::route_patterns`], the generated
//!   `routes::PATTERNS`): the outer layers match the path against them themselves, with the
//!   same matcher as axum, before the request goes in ([`RouteFinder::Patterns`]).
//! - **They are not** (a hand-written router): the outermost layer that wants the route puts an
//!   empty [`MatchedRoute`] into the request, and [`MatchedRouteLayer`], put on the routes
//!   themselves ([`axum::Router::route_layer`]), fills it in. That costs a boxed layer on every
//!   route (axum clones the boxed service on every call): about 1,700 instructions a request,
//!   four times what the metrics cost otherwise.
//!
//! Either way the route is known once a panic or a timeout ended the request: a 500 or a 504
//! keeps its route.

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
pub struct MatchedRoute(Arc<OnceLock<&'static Route>>);

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

    fn route(&self) -> Option<&'static Route> {
        self.0.get().copied()
    }
}

/// How the layers outside the router find a request's route (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) enum RouteFinder {
    /// From the [`MatchedRoute`] that [`MatchedRouteLayer`] fills in.
    #[default]
    Slot,
    /// By matching the path against the router's patterns.
    Patterns(RoutePatterns),
}

impl RouteFinder {
    /// The route of `request`, or where it will be once the router has matched it.
    pub(crate) fn find(&self, request: &mut Request) -> FoundRoute {
        match self {
            Self::Slot => FoundRoute::Later(MatchedRoute::of(request)),
            Self::Patterns(patterns) => FoundRoute::Now(patterns.at(request.uri().path())),
        }
    }
}

/// What [`RouteFinder::find`] found.
#[derive(Debug, Clone)]
pub(crate) enum FoundRoute {
    Now(Option<&'static Route>),
    Later(MatchedRoute),
}

impl FoundRoute {
    /// The route, if one matched (for [`FoundRoute::Later`], once it has).
    pub(crate) fn route(&self) -> Option<&'static Route> {
        match self {
            Self::Now(route) => *route,
            Self::Later(slot) => slot.route(),
        }
    }

    /// The pattern as a shared string, for attributes that keep it (no copy per request).
    #[cfg(feature = "otel")]
    pub(crate) fn shared_pattern(&self) -> Option<Arc<str>> {
        self.route().map(|route| Arc::clone(&route.pattern))
    }
}

/// A router's patterns, in a matcher of their own: the same one (`matchit`) and the same
/// patterns as axum's, so that both pick the same route for a path.
#[derive(Clone)]
pub(crate) struct RoutePatterns(Arc<matchit::Router<&'static Route>>);

impl RoutePatterns {
    /// # Panics
    /// On a pattern axum would refuse too (a syntax error, or two that conflict), with its
    /// message.
    pub(crate) fn new<P: AsRef<str>>(patterns: impl IntoIterator<Item = P>) -> Self {
        let mut matcher = matchit::Router::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if let Err(error) = matcher.insert(pattern, Route::named(pattern)) {
                panic!("route pattern `{pattern}`: {error}");
            }
        }
        Self(Arc::new(matcher))
    }

    fn at(&self, path: &str) -> Option<&'static Route> {
        self.0.at(path).ok().map(|found| *found.value)
    }
}

impl std::fmt::Debug for RoutePatterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutePatterns").finish_non_exhaustive()
    }
}

/// One route pattern, made once per process and kept for good (patterns are a closed set): its
/// pattern and its request-duration histograms.
#[derive(Debug)]
pub(crate) struct Route {
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

    /// The process's route for `pattern`. Patterns are a closed set (the routers', and
    /// [`super::UNMATCHED`]), so the map stays as small as the route tables.
    pub(super) fn named(pattern: &str) -> &'static Self {
        static ROUTES: LazyLock<RwLock<HashMap<Box<str>, &'static Route>>> =
            LazyLock::new(RwLock::default);
        if let Some(route) = ROUTES
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pattern)
        {
            return route;
        }
        let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
        routes.entry(pattern.into()).or_insert_with(|| {
            Box::leak(Box::new(Self {
                pattern: Arc::from(pattern),
                durations: Default::default(),
            }))
        })
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
    route: Arc<OnceLock<&'static Route>>,
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
                Some(route) if *route.pattern == *path.as_str() => route,
                // The first request, or (a service mounted under several patterns) another
                // pattern: the process-wide lookup.
                _ => {
                    let route = Route::named(path.as_str());
                    let _ = self.route.set(route);
                    route
                }
            };
            let _ = slot.0.set(route);
        }
        self.inner.call(request)
    }
}

/// Debug builds only, beside [`RoutePatterns`]: reports (once per route) a route whose pattern
/// the app's patterns do not match the way axum did, which would count its requests under
/// another route or as unmatched. Installed by [`crate::App`] as a route layer.
#[cfg(debug_assertions)]
#[derive(Debug, Clone)]
pub(crate) struct CheckRoutePatternsLayer(pub(crate) RoutePatterns);

#[cfg(debug_assertions)]
impl<S> Layer<S> for CheckRoutePatternsLayer {
    type Service = CheckRoutePatterns<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CheckRoutePatterns {
            inner,
            patterns: self.0.clone(),
        }
    }
}

/// See [`CheckRoutePatternsLayer`].
#[cfg(debug_assertions)]
#[derive(Debug, Clone)]
pub(crate) struct CheckRoutePatterns<S> {
    inner: S,
    patterns: RoutePatterns,
}

#[cfg(debug_assertions)]
impl<S> Service<Request> for CheckRoutePatterns<S>
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
        if let Some(matched) = request.extensions().get::<MatchedPath>() {
            let found = self.patterns.at(request.uri().path());
            if found.map(|route| &*route.pattern) != Some(matched.as_str()) {
                static REPORTED: LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
                    LazyLock::new(Default::default);
                let first = REPORTED
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(matched.as_str().to_owned());
                if first {
                    tracing::error!(
                        route = matched.as_str(),
                        counted_as = found.map_or(super::UNMATCHED, |route| &*route.pattern),
                        "route missing from `App::route_patterns`: its requests are counted \
                         under the wrong route (add its pattern to the list)"
                    );
                }
            }
        }
        self.inner.call(request)
    }
}
