//! Prometheus metrics: request rates and latencies by route pattern, and what the framework's
//! middleware did (rate-limit rejections, cache hits, idempotency replays, SSE connections,
//! upload bytes).
//!
//! ```no_run
//! # fn routes() -> arbor::Router { arbor::Router::new() }
//! # fn run() -> Result<(), arbor::metrics::MetricsError> {
//! use arbor::metrics::Metrics;
//!
//! let metrics = Metrics::install()?; // the process-wide Prometheus recorder
//! let app = arbor::App::new(routes()).metrics(metrics).into_router(); // GET /metrics
//! # Ok(()) }
//! ```
//!
//! **Labels are closed at build time.** Requests are labelled by the pattern of the route that
//! answered (`/api/users/{id}`), never by the raw path, so a scan of random URLs adds no series:
//! everything no route matched counts under `route="unmatched"`. Methods outside the standard
//! nine count as `_OTHER`, statuses by class (`2xx`).
//!
//! **Histograms, not summaries**, so that latencies can be aggregated across instances: every
//! histogram has the buckets of [`LATENCY_BUCKETS`].
//!
//! The framework records through the [`metrics`](https://docs.rs/metrics) facade, so the
//! recorder is the process's: [`Metrics::install`] installs the Prometheus one (once; later
//! calls return the same handle). Without it, recording costs a check of the global recorder and
//! nothing else.
//!
//! The endpoint is served on the main port at [`Metrics::path`] (`/metrics` by default, ahead of
//! the routes, not counted in the request metrics), or on a listener of its own with
//! [`Metrics::router`] and `path(None)`.

#[cfg(feature = "metrics")]
mod endpoint;
mod layer;
pub(crate) mod matched_route;
#[cfg(feature = "metrics")]
mod prometheus;

pub use layer::{RecordMetrics, RecordMetricsLayer, UNMATCHED};
pub use matched_route::{MatchedRoute, MatchedRouteLayer, RecordMatchedRoute};
#[cfg(feature = "metrics")]
pub use prometheus::{Metrics, MetricsError};

/// `http_server_request_duration_seconds`: a histogram of request durations (until the response
/// head), labelled `route`, `method` and `status` (`2xx`); its `_count` is the request count.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// `http_server_active_requests`: requests being handled right now.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// `arbor_rate_limit_rejections_total`: requests refused with `429`, labelled `route`.
pub const RATE_LIMIT_REJECTIONS: &str = "arbor_rate_limit_rejections_total";
/// `arbor_cache_lookups_total`: response-cache lookups, labelled `result` (`hit` or `miss`).
pub const CACHE_LOOKUPS: &str = "arbor_cache_lookups_total";
/// `arbor_idempotency_replays_total`: stored responses replayed for a repeated key.
pub const IDEMPOTENCY_REPLAYS: &str = "arbor_idempotency_replays_total";
/// `arbor_sse_connections`: open Server-Sent Events streams.
pub const SSE_CONNECTIONS: &str = "arbor_sse_connections";
/// `arbor_sse_events_sent_total`: events written to SSE streams.
pub const SSE_EVENTS_SENT: &str = "arbor_sse_events_sent_total";
/// `arbor_upload_bytes_total`: bytes of uploaded files written to storage.
pub const UPLOAD_BYTES: &str = "arbor_upload_bytes_total";
/// `arbor_build_info`: always 1, labelled with the app's `version` and `revision`.
pub const BUILD_INFO: &str = "arbor_build_info";

/// The histogram buckets, in seconds: OpenTelemetry's for HTTP durations, with three below
/// 5 ms, since an API answers many requests in less.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0,
];
