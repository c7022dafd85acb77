//! [`RequestLogLayer`]: a span per request, with one `request` and one `response` event.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Span;

use super::TraceId;
use crate::request_id::RequestId;

/// Logs every request (installed by [`crate::App`], after the request id).
///
/// Each request gets an `INFO` span named `request` with `request_id`, `method` and `path`, so
/// every log line written while it is handled carries them. Inside it, one `request` event
/// (redacted `query`, `user_agent`) and, when the response is ready, one `response` event
/// (`status`, `duration_ms`); a request whose client went away first gets a `request
/// cancelled` event instead.
///
/// It keeps the response body as it is. tower-http's `TraceLayer` wraps the body to observe the
/// end of the stream, which costs a second boxing of every body; the response event here is
/// the time to the response head, which is what `TraceLayer`'s `on_response` reports too.
///
/// With [`RequestLogLines::Access`], one line per request instead: the `request` event comes
/// when the response is ready and carries everything (`query` and `user_agent` are fields of
/// the span then, so lines logged by the handler carry them too).
///
/// To log a router served without `App` (the span has `request_id = "-"` unless something
/// before it records a [`RequestId`]):
///
/// ```
/// use arbor::logging::{RequestLogLayer, RequestLogLines};
///
/// let routes: arbor::Router = arbor::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let logged = routes.layer(RequestLogLayer::new(RequestLogLines::Access));
/// # let _ = logged;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLogLayer {
    lines: RequestLogLines,
}

impl RequestLogLayer {
    /// A request log writing `lines`.
    pub fn new(lines: RequestLogLines) -> Self {
        Self { lines }
    }
}

/// What the request log writes for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestLogLines {
    /// A `request` event when the request arrives (`query`, `user_agent`) and a `response`
    /// event when its response is ready (`status`, `duration_ms`): a request that never
    /// finishes still shows in the log.
    #[default]
    Pair,
    /// One `request` event when the response is ready, with `method`, `path`, `query`,
    /// `user_agent`, `status` and `duration_ms`: the access-log line of nginx and most proxies,
    /// half as many lines to format and ship.
    Access,
    /// No request log at all (the span stays, so lines logged by handlers keep their request
    /// id).
    Off,
}

impl RequestLogLines {
    /// `ARBOR_REQUEST_LOG`: `access`, `off`, anything else (or nothing) [`Self::Pair`].
    pub fn from_env() -> Self {
        match std::env::var("ARBOR_REQUEST_LOG").as_deref() {
            Ok("access") => Self::Access,
            Ok("off") => Self::Off,
            _ => Self::Pair,
        }
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog {
            inner,
            lines: self.lines,
        }
    }
}

/// See [`RequestLogLayer`].
#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
    lines: RequestLogLines,
}

impl<S, E> Service<Request> for RequestLog<S>
where
    S: Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let span = request_span(&request, self.lines);
        if span.is_disabled() || self.lines == RequestLogLines::Off {
            // Nobody listens at this level: no clock reading, no events.
            return ResponseFuture {
                inner: span.in_scope(|| self.inner.call(request)),
                span,
                started: None,
                lines: self.lines,
            };
        }
        let started = Some(Instant::now());
        // The inner services' synchronous work logs inside the span too.
        let inner = span.in_scope(|| {
            // `Off` returned above; the access line has everything in its span already.
            if self.lines == RequestLogLines::Pair {
                log_request(&request);
            }
            self.inner.call(request)
        });
        ResponseFuture {
            inner,
            span,
            started,
            lines: self.lines,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestLog`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // `None` once the response is logged, or when the span is disabled.
        started: Option<Instant>,
        lines: RequestLogLines,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(started) = this.started.take() {
                let _entered = this.span.enter();
                tracing::info!(target: TARGET, duration_ms = millis(started), "request cancelled");
            }
        }
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        if let (Some(started), Ok(response)) = (this.started.take(), &result) {
            let status = response.status().as_u16();
            let duration_ms = millis(started);
            if *this.lines == RequestLogLines::Access {
                tracing::info!(target: TARGET, status, duration_ms, "request");
            } else {
                tracing::info!(target: TARGET, status, duration_ms, "response");
            }
        }
        Poll::Ready(result)
    }
}

/// The target of the request log, stable whatever module writes it (for `RUST_LOG` filters).
pub(crate) const TARGET: &str = "arbor::logging";

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn request_span(request: &Request, lines: RequestLogLines) -> Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or("-", RequestId::as_str);
    // The access line's `query` and `user_agent` are filled in as the span is made (recording
    // them afterwards formats the span's fields a second time), and only when the span is
    // enabled: the macro evaluates field values then. `None` leaves a field unrecorded.
    let access = lines == RequestLogLines::Access;
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        request_id = id,
        trace_id = tracing::field::Empty,
        method = request.method().as_str(),
        path = request.uri().path(),
        query = access.then(|| redacted_query(request)).as_deref(),
        user_agent = access.then(|| user_agent(request)),
    );
    if let Some(TraceId(trace_id)) = request.extensions().get::<TraceId>() {
        span.record("trace_id", &**trace_id);
    }
    span
}

fn user_agent(request: &Request) -> &str {
    request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// The query string with secrets redacted (empty without one).
fn redacted_query(request: &Request) -> std::borrow::Cow<'_, str> {
    request
        .uri()
        .query()
        .map_or(std::borrow::Cow::Borrowed(""), super::redact_query)
}

fn log_request(request: &Request) {
    tracing::info!(
        target: TARGET,
        query = &*redacted_query(request),
        user_agent = user_agent(request),
        "request"
    );
}
