//! [`TraceRequestsLayer`]: the server span of each request.
//!
//! The span is made with the OpenTelemetry API directly, not through a `tracing` span and
//! `tracing-opentelemetry`: that bridge builds every span's attributes as owned values and
//! starts the span whether or not it is sampled, which cost a request about 8 µs. Here a span
//! that is not sampled costs its ids, and a sampled one its attributes. The span's context is
//! made current while the request is polled, so the `tracing` spans of handlers and middleware
//! become its children.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_http::HeaderExtractor;
use tower::{Layer, Service};

use crate::logging::TraceId;
use crate::metrics::matched_route::{FoundRoute, RouteFinder};

/// Opens a server span per request (installed by [`crate::App::trace_requests`]), following
/// the HTTP semantic conventions: named `{method} {route}` (the method alone when no route
/// matched), of kind `SERVER`, with `http.request.method`, `url.path`, `url.scheme`,
/// `http.route`, `http.response.status_code`, `user_agent.original` and
/// `network.protocol.version`; an error status for `5xx` answers. An incoming `traceparent` is
/// its parent, and the request's extensions get its [`TraceId`].
#[derive(Clone)]
pub struct TraceRequestsLayer {
    tracer: Arc<BoxedTracer>,
    routes: RouteFinder,
}

impl fmt::Debug for TraceRequestsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceRequestsLayer").finish_non_exhaustive()
    }
}

impl Default for TraceRequestsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceRequestsLayer {
    /// Spans from the global tracer provider (set by [`super::OtlpExport::from_env`]).
    pub fn new() -> Self {
        Self {
            tracer: Arc::new(opentelemetry::global::tracer("arbor")),
            routes: RouteFinder::Slot,
        }
    }

    pub(crate) fn finding_routes(self, routes: RouteFinder) -> Self {
        Self { routes, ..self }
    }
}

impl<S> Layer<S> for TraceRequestsLayer {
    type Service = TraceRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceRequests {
            inner,
            tracer: self.tracer.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// See [`TraceRequestsLayer`].
#[derive(Clone)]
pub struct TraceRequests<S> {
    inner: S,
    tracer: Arc<BoxedTracer>,
    routes: RouteFinder,
}

impl<S: fmt::Debug> fmt::Debug for TraceRequests<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceRequests")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
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
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let method = method_name(request.method());
        let span = self
            .tracer
            .span_builder(method)
            .with_kind(SpanKind::Server)
            .with_attributes(request_attributes(&request, method))
            .start_with_context(&*self.tracer, &parent);
        let span_context = span.span_context().clone();
        if span_context.is_valid() {
            request
                .extensions_mut()
                .insert(TraceId(trace_id_hex(span_context.trace_id())));
        }
        let context = parent.with_span(span);
        let method = request.method().clone();
        let route = self.routes.find(&mut request);
        let inner = {
            let _current = context.clone().attach();
            self.inner.call(request)
        };
        ResponseFuture {
            inner,
            context,
            method,
            route,
        }
    }
}

/// The trace id as the 32 lowercase hex digits of W3C Trace Context, for the logs: written
/// straight into one string (`Display` goes through the formatting machinery, a few hundred
/// instructions more per request).
fn trace_id_hex(trace_id: opentelemetry::trace::TraceId) -> std::sync::Arc<str> {
    let mut hex = [0u8; 32];
    // Cannot fail: 16 bytes make exactly 32 digits.
    let _ = hex::encode_to_slice(trace_id.to_bytes(), &mut hex);
    std::str::from_utf8(&hex).unwrap_or_default().into()
}

/// The method's name, static so that it costs no allocation.
fn method_name(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        // The conventions' name for the others, which keeps span names a closed set.
        _ => "_OTHER",
    }
}

fn request_attributes(request: &Request, method: &'static str) -> Vec<KeyValue> {
    let version = match request.version() {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.path", request.uri().path().to_owned()),
        // Static, so that it costs no allocation: servers see `https` only behind a proxy
        // that says so in the URI, which is rare; anything else is `http`.
        KeyValue::new(
            "url.scheme",
            if request.uri().scheme_str() == Some("https") {
                "https"
            } else {
                "http"
            },
        ),
        KeyValue::new("network.protocol.version", version),
    ];
    if let Some(agent) = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    attributes
}

pin_project_lite::pin_project! {
    /// The future of [`TraceRequests`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        context: OtelContext,
        method: http::Method,
        route: FoundRoute,
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
            let _current = this.context.clone().attach();
            ready!(this.inner.poll(cx))
        };
        let span = this.context.span();
        if let Ok(response) = &result {
            if span.is_recording() {
                let status = response.status();
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if let Some(route) = this.route.shared_pattern() {
                    // Low-cardinality, like the metrics' labels.
                    span.update_name(format!("{} {}", method_name(this.method), route));
                    span.set_attribute(KeyValue::new(
                        "http.route",
                        opentelemetry::StringValue::from(route),
                    ));
                }
                if status.is_server_error() {
                    span.set_status(Status::error(""));
                }
            }
        }
        // The response head is out: the span ends here (a stream's body goes on without it).
        span.end();
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceId;

    #[test]
    fn trace_ids_are_written_as_display_writes_them() {
        for id in [
            TraceId::from_bytes([0; 16]),
            TraceId::from_bytes([0xab; 16]),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        ] {
            assert_eq!(&*super::trace_id_hex(id), id.to_string());
        }
    }
}
