//! `App`: the app-wide stack around a generated router — request ids, structured logs, panic
//! safety, client addresses behind trusted proxies, the default timeout, body limit and CORS.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::add_extension::AddExtensionLayer;

use crate::catch_panic::CatchPanicLayer;
use crate::client_ip::{ResolveClientIpLayer, TrustedProxies};
#[cfg(feature = "compression")]
use crate::compression::Compression;
use crate::cors::{Cors, CorsError};
use crate::error_shape::ErrorShapeLayer;
use crate::health::Probes;
use crate::logging::{RequestLogLayer, RequestLogLines};
use crate::metrics::matched_route::{RouteFinder, RoutePatterns};
use crate::metrics::MatchedRouteLayer;
#[cfg(feature = "metrics")]
use crate::metrics::{Metrics, RecordMetricsLayer};
#[cfg(feature = "otel")]
use crate::otel::TraceRequestsLayer;
use crate::request_id::SetRequestIdLayer;
use crate::service::EndpointLayer;
use crate::store::Stores;
use crate::timeout::RequestTimeoutLayer;

/// The default maximum duration of a request (see [`App::timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default request body limit (see [`App::body_limit`]).
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The limit axum's extractors apply when nothing set one (`axum_core`'s `DEFAULT_LIMIT`).
const AXUM_DEFAULT_BODY_LIMIT: usize = 2_097_152;

/// Wraps a router in Arbor's production defaults.
///
/// ```no_run
/// # fn routes() -> arbor::Router { arbor::Router::new() }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use arbor::{cors::Cors, App, TrustedProxies};
///
/// let app = App::new(routes())
///     .trusted_proxies(TrustedProxies::new(["10.0.0.0/8"])?)
///     .cors(Cors::new().allow_origins(["https://app.example.com"]))?
///     .into_router();
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
/// arbor::serve(listener, app).await?;
/// # Ok(()) }
/// ```
///
/// From the outside in, every request passes: request id (`X-Request-ID` kept when well formed,
/// else a UUID; echoed on the response) → the liveness and readiness probes (`/livez`,
/// `/readyz`: answered here, see [`App::probes`]) → a `tracing` span with one `request` and one
/// `response` event → CORS (if set) → response compression → panic catcher (`500 INTERNAL_ERROR`, the process keeps
/// serving) → client address resolution → the error shape (a plain-text or empty error
/// answer, such as an axum extractor's rejection, becomes `{"error": CODE, "message": ..}`) →
/// the routes, each under its maximum duration.
#[derive(Debug)]
#[must_use]
pub struct App {
    router: Router,
    trusted_proxies: TrustedProxies,
    timeout: Option<Duration>,
    body_limit: usize,
    request_log: RequestLogLines,
    cors: Option<crate::cors::CorsPolicyLayer>,
    stores: Option<Stores>,
    probes: Probes,
    #[cfg(feature = "compression")]
    compression: Option<Compression>,
    #[cfg(feature = "metrics")]
    metrics: Option<Metrics>,
    #[cfg(feature = "otel")]
    trace_requests: bool,
    route_patterns: Option<RoutePatterns>,
    openapi: Option<crate::openapi::OpenApi>,
}

impl App {
    /// The defaults: no trusted proxies, 10 s timeout, 2 MiB bodies, the request log as
    /// `ARBOR_REQUEST_LOG` says (a request and a response line without it), no CORS, probes on
    /// `/livez` and `/readyz` with no checks, responses of 1 KiB or more compressed.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            trusted_proxies: TrustedProxies::none(),
            timeout: Some(DEFAULT_TIMEOUT),
            body_limit: DEFAULT_BODY_LIMIT,
            request_log: RequestLogLines::from_env(),
            cors: None,
            stores: None,
            probes: Probes::new(),
            #[cfg(feature = "compression")]
            compression: Some(Compression::new()),
            #[cfg(feature = "metrics")]
            metrics: None,
            #[cfg(feature = "otel")]
            trace_requests: false,
            route_patterns: None,
            openapi: None,
        }
    }

    /// Proxies whose `X-Forwarded-For` / `X-Real-IP` are believed (default: none).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The default maximum duration of a request; routes override it with
    /// `pub const MAX_DURATION: u64` or `#[arbor::handler(timeout(..))]`. `None` disables it.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The default request body limit in bytes; routes override it with
    /// [`crate::body_limit`].
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// What the request log writes per request: a `request` and a `response` line (the
    /// default), one access-log line, or nothing (default: `ARBOR_REQUEST_LOG=access|off`, else
    /// the pair). See [`crate::logging`].
    pub fn request_log(mut self, lines: RequestLogLines) -> Self {
        self.request_log = lines;
        self
    }

    /// An app-wide CORS policy.
    ///
    /// # Errors
    /// If the policy cannot work (for example `*` with credentials): the app refuses to start.
    pub fn cors(mut self, cors: Cors) -> Result<Self, CorsError> {
        self.cors = Some(cors.build()?);
        Ok(self)
    }

    /// Shared stores for the routes' `rate_limit`, `idempotency` and `cache` middleware (see
    /// [`crate::store`]): with a store every instance shares, such as Redis, their guarantees
    /// hold across instances. Without it, each layer keeps its state in this process's memory.
    /// Every request carries the stores in its extensions, so handlers can take them as
    /// `Extension<Stores>` (for [`crate::cache::invalidate`], say).
    pub fn stores(mut self, stores: Stores) -> Self {
        self.stores = Some(stores);
        self
    }

    /// Prometheus metrics (see [`crate::metrics`]): request durations by route pattern, method
    /// and status class, active requests, and the framework's own counters; served at
    /// [`Metrics::served_at`] (`/metrics` unless changed) ahead of the routes.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// An OpenTelemetry server span per request (see [`crate::otel`]), continuing an incoming
    /// `traceparent`; exported by the layer given to [`crate::logging::init_with`].
    #[cfg(feature = "otel")]
    pub fn trace_requests(mut self, on: bool) -> Self {
        self.trace_requests = on;
        self
    }

    /// Every route pattern of the router, in axum's syntax: for a generated router,
    /// `routes::PATTERNS` (plus the patterns of any routes merged into it). Metrics and spans
    /// then find each request's route by matching its path against these, as axum does, in the
    /// layer that records them. Without them, they read the route from a layer that `App` puts
    /// on every route, which costs about 1,700 instructions a request (axum clones a boxed route
    /// layer on every call), four times what the metrics cost otherwise.
    ///
    /// A route whose pattern is missing is counted under whichever listed pattern matches its
    /// path, or as unmatched; debug builds log an error naming it on its first request.
    ///
    /// ```
    /// # mod routes { pub const PATTERNS: &[&str] = &["/api/users/{id}"];
    /// #     pub fn router() -> arbor::Router { arbor::Router::new() } }
    /// let app = arbor::App::new(routes::router()).route_patterns(routes::PATTERNS);
    /// # let _ = app;
    /// ```
    ///
    /// # Panics
    /// On a pattern that axum would refuse too: a syntax error, or two patterns that conflict.
    pub fn route_patterns<P: AsRef<str>>(mut self, patterns: impl IntoIterator<Item = P>) -> Self {
        self.route_patterns = Some(RoutePatterns::new(patterns));
        self
    }

    /// Serves the API contract (the generated `routes::openapi()`) at
    /// [`OpenApi::served_at`](crate::openapi::OpenApi::served_at), `/api/openapi.json` by
    /// default, and its reference page at
    /// [`OpenApi::reference_served_at`](crate::openapi::OpenApi::reference_served_at),
    /// `/api/reference`, ahead of the routes: no route middleware (rate limits, auth) applies
    /// to them, and they are not counted in the request metrics. See [`crate::openapi`].
    pub fn openapi(mut self, document: crate::openapi::OpenApi) -> Self {
        let served = document.served_at().is_some() || document.reference_served_at().is_some();
        self.openapi = served.then_some(document);
        self
    }

    /// Whether a layer outside the router needs each request's route.
    fn needs_matched_route(&self) -> bool {
        #[allow(unused_mut)]
        let mut needed = false;
        #[cfg(feature = "metrics")]
        {
            needed |= self.metrics.is_some();
        }
        #[cfg(feature = "otel")]
        {
            needed |= self.trace_requests;
        }
        needed
    }

    /// The liveness and readiness probes (see [`crate::health`]). By default, liveness on
    /// `/livez` and, on `/readyz`, a readiness with no checks, which fails only once the
    /// server's shutdown has started; register the app's dependencies here.
    /// [`Probes::disabled`] turns both off.
    ///
    /// ```
    /// use arbor::health::{Probes, Unhealthy};
    ///
    /// let app = arbor::App::new(arbor::Router::new())
    ///     .probes(Probes::new().check("cache", || async { Ok::<(), Unhealthy>(()) }));
    /// # let _ = app;
    /// ```
    pub fn probes(mut self, probes: Probes) -> Self {
        self.probes = probes;
        self
    }

    /// Response compression ([`Compression::new`] by default: gzip, brotli or zstd by
    /// `Accept-Encoding`, from 1 KiB, never for event streams). `None` turns it off, for a
    /// deployment whose proxy compresses.
    #[cfg(feature = "compression")]
    pub fn compression(mut self, compression: Option<Compression>) -> Self {
        self.compression = compression;
        self
    }

    /// The router with the stack applied, ready for [`crate::serve`].
    pub fn into_router(self) -> Router {
        let needs_route = self.needs_matched_route() && self.router.has_routes();
        #[allow(unused_variables)]
        let route_finder = match &self.route_patterns {
            Some(patterns) => RouteFinder::Patterns(patterns.clone()),
            None => RouteFinder::Slot,
        };
        #[cfg(feature = "metrics")]
        let (serve_metrics, record_metrics) = match &self.metrics {
            Some(metrics) => (
                metrics
                    .served_at()
                    .is_some()
                    .then(|| EndpointLayer::new(metrics.clone())),
                Some(RecordMetricsLayer::new().finding_routes(route_finder.clone())),
            ),
            None => (None, None),
        };
        #[cfg(feature = "otel")]
        let trace_requests = self
            .trace_requests
            .then(|| TraceRequestsLayer::new().finding_routes(route_finder.clone()));
        let router = match self.route_patterns {
            // Fills in the request's `MatchedRoute`, for the metrics and the spans.
            None if needs_route => self.router.route_layer(MatchedRouteLayer),
            #[cfg(debug_assertions)]
            Some(patterns) if needs_route => {
                self.router
                    .route_layer(crate::metrics::matched_route::CheckRoutePatternsLayer(
                        patterns,
                    ))
            }
            _ => self.router,
        };
        // One tower stack around the whole router, not `Router::layer` per layer: axum boxes
        // every route again for each `Router::layer`, and a boxed route clones its inner service
        // on every call, so n app-wide layers would cost O(n²) clones per request instead of n.
        let stack = ServiceBuilder::new()
            .layer(SetRequestIdLayer)
            // Probes before everything else but the request id: route middleware (rate limits)
            // never sees them, and they log at debug instead of through the request log. The
            // metrics endpoint likewise; neither counts in the metrics nor opens a span.
            .option_layer(self.probes.is_enabled().then(|| self.probes.into_layer()))
            // Under `cargo arbor dev`: while the last build is broken, its error is the answer.
            .option_layer(crate::dev::layer_from_env());
        #[cfg(feature = "metrics")]
        let stack = stack.option_layer(serve_metrics);
        let reference_page = self
            .openapi
            .as_ref()
            .and_then(crate::openapi::OpenApi::reference_page);
        let stack = stack
            .option_layer(self.openapi.map(EndpointLayer::new))
            .option_layer(reference_page.map(EndpointLayer::new));
        #[cfg(feature = "otel")]
        let stack = stack.option_layer(trace_requests);
        #[cfg(feature = "metrics")]
        let stack = stack.option_layer(record_metrics);
        let stack = stack
            .layer(RequestLogLayer::new(self.request_log))
            .option_layer(self.cors);
        // Inside the request log and CORS (they see the response as the handler made it),
        // outside everything that makes a response body.
        #[cfg(feature = "compression")]
        let stack = stack.option_layer(self.compression.map(Compression::into_layer));
        let stack = stack
            .layer(CatchPanicLayer)
            .option_layer(self.timeout.map(RequestTimeoutLayer))
            .layer(ResolveClientIpLayer(self.trusted_proxies))
            .option_layer(self.stores.map(AddExtensionLayer::new))
            // axum's extractors apply its own default (the same 2 MiB) to a request without
            // a limit in its extensions: inserting that one again costs an extension per
            // request and changes nothing.
            .option_layer(
                (self.body_limit != AXUM_DEFAULT_BODY_LIMIT)
                    .then(|| DefaultBodyLimit::max(self.body_limit)),
            )
            // Innermost: what the routes answer in plain text (axum's own rejections, a bare
            // status) leaves in the JSON error shape, before any layer above looks at it.
            .layer(ErrorShapeLayer)
            // Turns handlers into routes once: a router used as a service without it does so
            // for every request (`axum::serve` only prepares the outermost router).
            .service(router.with_state(()));
        Router::new().fallback_service(stack)
    }
}
