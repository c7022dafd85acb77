//! The Prometheus recorder and its endpoint (the `metrics` feature).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::endpoint;
use super::{
    ACTIVE_REQUESTS, BUILD_INFO, CACHE_LOOKUPS, IDEMPOTENCY_REPLAYS, LATENCY_BUCKETS,
    RATE_LIMIT_REJECTIONS, REQUEST_DURATION, SSE_CONNECTIONS, SSE_EVENTS_SENT, UPLOAD_BYTES,
};

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

type ScrapeHook = Arc<dyn Fn() + Send + Sync>;

/// The installed Prometheus recorder, and where and how it is served.
#[derive(Clone)]
#[must_use]
pub struct Metrics {
    handle: PrometheusHandle,
    path: Option<Arc<str>>,
    on_scrape: Vec<ScrapeHook>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("path", &self.path)
            .field("on_scrape", &self.on_scrape.len())
            .finish_non_exhaustive()
    }
}

/// Another `metrics` recorder was installed first, so Arbor's cannot be.
#[derive(Debug, Clone)]
pub struct MetricsError(String);

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot install the Prometheus recorder: {}", self.0)
    }
}

impl std::error::Error for MetricsError {}

static INSTALLED: OnceLock<Result<PrometheusHandle, MetricsError>> = OnceLock::new();

impl Metrics {
    /// Installs the Prometheus recorder for the whole process, with [`LATENCY_BUCKETS`] for
    /// every histogram, and starts its upkeep thread. Calling it again returns the same
    /// recorder, so tests and several apps in one process can all call it.
    ///
    /// # Errors
    /// When another `metrics` recorder is already installed.
    pub fn install() -> Result<Self, MetricsError> {
        let handle = INSTALLED.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .map_err(|e| MetricsError(e.to_string()))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| MetricsError(e.to_string()))?;
            describe();
            let upkeep = handle.clone();
            // A thread, not a task: the recorder may be installed before any runtime exists.
            let _ = std::thread::Builder::new()
                .name("arbor-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            Ok(handle)
        });
        let handle = handle.clone()?;
        Ok(Self {
            handle,
            path: Some(Arc::from("/metrics")),
            on_scrape: Vec::new(),
        })
    }

    /// Where the main port serves the metrics (`/metrics` by default); `None` serves them
    /// nowhere on it (use [`Metrics::router`] on a listener of its own).
    pub fn path(mut self, path: Option<&str>) -> Self {
        self.path = path.map(Arc::from);
        self
    }

    /// The path the main port serves the metrics at, if any.
    pub fn served_at(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Runs `hook` before each scrape: the place to set gauges that are read, not counted
    /// (a connection pool's size, say).
    pub fn on_scrape(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_scrape.push(Arc::new(hook));
        self
    }

    /// Sets `arbor_build_info{version, revision} 1`.
    pub fn build_info(self, version: &str, revision: Option<&str>) -> Self {
        metrics::gauge!(
            BUILD_INFO,
            "version" => version.to_owned(),
            "revision" => revision.unwrap_or("unknown").to_owned()
        )
        .set(1.0);
        self
    }

    /// The metrics in the Prometheus text format, after running the scrape hooks.
    pub fn render(&self) -> String {
        for hook in &self.on_scrape {
            hook();
        }
        #[cfg(feature = "logging")]
        metrics::counter!("arbor_log_lines_dropped_total")
            .absolute(crate::logging::dropped_lines());
        self.handle.render()
    }

    /// A router that serves the metrics at `/metrics`, for a listener of its own (an admin
    /// port that the load balancer does not expose):
    ///
    /// ```no_run
    /// # async fn run(metrics: arbor::metrics::Metrics) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:9100").await?;
    /// tokio::spawn(arbor::serve(listener, metrics.router()));
    /// # Ok(()) }
    /// ```
    pub fn router(&self) -> axum::Router {
        let metrics = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move { endpoint::exposition(&metrics) }
            }),
        )
    }
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP requests until the response head, by route pattern, method and status class"
    );
    describe_gauge!(ACTIVE_REQUESTS, "HTTP requests being handled");
    describe_counter!(
        RATE_LIMIT_REJECTIONS,
        "Requests refused by a rate limit, by route pattern"
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Response cache lookups, by result (hit or miss)"
    );
    describe_counter!(
        IDEMPOTENCY_REPLAYS,
        "Stored responses replayed for a repeated Idempotency-Key"
    );
    describe_gauge!(SSE_CONNECTIONS, "Open Server-Sent Events streams");
    describe_counter!(
        SSE_EVENTS_SENT,
        "Events written to Server-Sent Events streams"
    );
    describe_counter!(
        UPLOAD_BYTES,
        Unit::Bytes,
        "Bytes of uploaded files written to storage"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say which build is running"
    );
}
