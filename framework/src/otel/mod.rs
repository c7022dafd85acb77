//! OpenTelemetry traces over OTLP (the `otel` feature): one server span per request, named and
//! attributed by the HTTP semantic conventions, continuing an incoming W3C `traceparent`.
//!
//! ```no_run
//! # fn routes() -> arbor::Router { arbor::Router::new() }
//! # fn run() -> Result<(), arbor::otel::OtelError> {
//! use arbor::logging::{self, Format};
//! use arbor::otel::OtlpExport;
//!
//! // `None` unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.
//! let export = OtlpExport::from_env("my-service")?;
//! let _logs = logging::init_with(Format::from_env(), export.as_ref().map(OtlpExport::layer));
//! let app = arbor::App::new(routes()).trace_requests(export.is_some()).into_router();
//! // ... serve; dropping `export` at exit flushes the spans still buffered.
//! # Ok(()) }
//! ```
//!
//! Spans are exported over OTLP/HTTP (protobuf) by a batch processor on a thread of its own,
//! so a request never waits for the collector; the standard `OTEL_*` variables configure the
//! endpoint, headers, timeout and batching (`OTEL_BSP_SCHEDULE_DELAY`, ...). The server span
//! has the pattern of the route that answered as `http.route` and in its name (`GET
//! /api/users/{id}`), so that traces group like the metrics. Log lines of a traced request
//! carry its `trace_id`.
//!
//! The `tracing` spans of handlers and middleware become child spans (through the layer that
//! [`OtlpExport::layer`] gives); the request-log span (`arbor::logging`) does not, since the
//! server span already says all it says.

mod layer;

use std::fmt;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{filter_fn, Filtered};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

pub use layer::{TraceRequests, TraceRequestsLayer};

/// The OTLP exporter and its tracer provider. Dropping it flushes and stops the exporter.
#[must_use = "dropping the export stops it"]
pub struct OtlpExport {
    provider: SdkTracerProvider,
}

impl fmt::Debug for OtlpExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExport").finish_non_exhaustive()
    }
}

/// The exporter could not be built (an invalid endpoint, say).
#[derive(Debug)]
pub struct OtelError(String);

impl fmt::Display for OtelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenTelemetry export: {}", self.0)
    }
}

impl std::error::Error for OtelError {}

/// A `tracing` layer that turns spans into OpenTelemetry spans (what
/// [`crate::logging::init_with`] takes).
pub type OtelLayer<S> = Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
    tracing_subscriber::filter::FilterFn,
    S,
>;

impl OtlpExport {
    /// The exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// is set, else `None`. `service_name` is used unless `OTEL_SERVICE_NAME` says otherwise.
    /// Installs the W3C trace-context propagator, so that `traceparent` is continued. Call it
    /// inside the tokio runtime: the exports run on it.
    ///
    /// # Errors
    /// When the exporter cannot be built from the `OTEL_*` settings, or when there is no tokio
    /// runtime to run the exports on.
    pub fn from_env(service_name: &str) -> Result<Option<Self>, OtelError> {
        if !endpoint_configured() {
            return Ok(None);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            OtelError("OtlpExport::from_env must be called inside a tokio runtime".into())
        })?;
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(client::RuntimeHyperClient::new(runtime))
            .build()
            .map_err(|e| OtelError(e.to_string()))?;
        let service_name =
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service_name).build())
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer that exports spans through this exporter (see [`tracing_layer`]).
    pub fn layer<S>(&self) -> OtelLayer<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_layer(self.provider.tracer("arbor"))
    }

    /// Exports what is buffered and stops the exporter (also done on drop).
    ///
    /// # Errors
    /// When the last export fails.
    pub fn shutdown(self) -> Result<(), OtelError> {
        self.provider
            .shutdown()
            .map_err(|e| OtelError(e.to_string()))
    }
}

/// Whether `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set: what
/// makes [`OtlpExport::from_env`] export.
pub fn endpoint_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

/// The `tracing` layer that turns the spans of handlers and middleware into OpenTelemetry
/// spans through `tracer`, for an app that builds its own tracer provider. The request-log spans
/// (`arbor::logging`) are left out: the server span carries what they say, and a handler's span
/// then becomes the server span's child.
pub fn tracing_layer<S>(tracer: opentelemetry_sdk::trace::SdkTracer) -> OtelLayer<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    // Off: busy/idle timing (a clock read on every poll of every span), thread and source
    // location attributes. They cost each request microseconds and say little that the span's
    // own timing and name do not.
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(filter_fn(|metadata| {
            metadata.target() != crate::logging::TARGET && *metadata.level() <= tracing::Level::INFO
        }))
}

impl Drop for OtlpExport {
    fn drop(&mut self) {
        // After `shutdown` this fails at once, harmlessly.
        let _ = self.provider.force_flush();
    }
}

mod client {
    //! The exporter's HTTP client: hyper's, run on the app's tokio runtime.
    //!
    //! The batch processor exports from a thread of its own, outside any runtime, where a
    //! hyper connection (tokio I/O) cannot run; each export is spawned onto the runtime that
    //! was current when the exporter was built.

    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use opentelemetry_http::hyper::HyperClient;
    use opentelemetry_http::{HttpClient, HttpError};

    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    #[derive(Debug, Clone)]
    pub(super) struct RuntimeHyperClient {
        runtime: tokio::runtime::Handle,
        client: HyperClient,
    }

    impl RuntimeHyperClient {
        pub(super) fn new(runtime: tokio::runtime::Handle) -> Self {
            Self {
                runtime,
                client: HyperClient::with_default_connector(EXPORT_TIMEOUT, None),
            }
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for RuntimeHyperClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = self.client.clone();
            self.runtime
                .spawn(async move { client.send_bytes(request).await })
                .await
                .map_err(|e| -> HttpError { Box::new(e) })?
        }
    }
}
