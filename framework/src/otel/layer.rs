//! [`TraceRequestsLayer`]: the server span of each request.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::logging::TraceId;
use crate::metrics::MatchedRoute;

/// Opens a server span per request (installed by [`crate::App::trace_requests`]): named
/// `{method} {route}` once the route is known, with `http.request.method`, `url.path`,
/// `url.scheme`, `http.route`, `http.response.status_code`, `user_agent.original` and
/// `network.protocol.version`; an error status for `5xx` answers. The incoming
/// `traceparent` is its parent, and the request's extensions get its [`TraceId`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceRequestsLayer;

impl<S> Layer<S> for TraceRequestsLayer {
    type Service = TraceRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceRequests { inner }
    }
}

/// See [`TraceRequestsLayer`].
#[derive(Debug, Clone)]
pub struct TraceRequests<S> {
    inner: S,
}

impl<S> Service<Request> for TraceRequests<S>
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
        let span = server_span(&request);
        if !span.is_disabled() {
            let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&HeaderExtractor(request.headers()))
            });
            let _ = span.set_parent(parent);
            let trace_id = span.context().span().span_context().trace_id();
            request
                .extensions_mut()
                .insert(TraceId(trace_id.to_string().into()));
        }
        let method = request.method().clone();
        let inner = span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            inner,
            span,
            method,
        }
    }
}

fn server_span(request: &Request) -> Span {
    let method = request.method().as_str();
    let version = match request.version() {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    let user_agent = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    tracing::info_span!(
        target: super::TARGET,
        "HTTP request",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = Empty,
        http.response.status_code = Empty,
        url.path = request.uri().path(),
        url.scheme = request.uri().scheme_str().unwrap_or("http"),
        user_agent.original = user_agent,
        network.protocol.version = version,
    )
}

pin_project_lite::pin_project! {
    /// The future of [`TraceRequests`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        method: http::Method,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        if let Ok(response) = &result {
            let status = response.status();
            // As an i64: OpenTelemetry has no unsigned integers, and a u64 is exported as text.
            this.span
                .record("http.response.status_code", i64::from(status.as_u16()));
            if let Some(route) = response.extensions().get::<MatchedRoute>() {
                this.span.record("http.route", route.as_str());
                // The semantic conventions' name: low-cardinality, like the metrics' labels.
                // The OpenTelemetry span exists by now (its trace id was read), so the name is
                // set on it directly: recording `otel.name` only renames a span not yet built.
                let name = format!("{} {}", this.method, route.as_str());
                this.span.context().span().update_name(name);
            }
            if status.is_server_error() {
                this.span.record("otel.status_code", "ERROR");
            }
        }
        Poll::Ready(result)
    }
}
