//! The metrics endpoint on the main port: answered ahead of the routes and of the request
//! metrics, so that scrapes neither need a route nor count as requests.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use http::{header, HeaderValue, Method};
use tower::{Layer, Service};

use super::Metrics;

/// The Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The scrape answer.
pub(super) fn exposition(metrics: &Metrics) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        metrics.render(),
    )
        .into_response()
}

/// Answers `GET`/`HEAD` on [`Metrics::served_at`] (installed by [`crate::App::metrics`]).
// Behind an `Arc`: the app's stack is cloned for every request, and `Metrics` holds a list.
#[derive(Debug, Clone)]
pub(crate) struct ServeMetricsLayer(pub(crate) Arc<Metrics>);

impl<S> Layer<S> for ServeMetricsLayer {
    type Service = ServeMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServeMetrics {
            inner,
            metrics: Arc::clone(&self.0),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ServeMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for ServeMetrics<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let scrape = matches!(*request.method(), Method::GET | Method::HEAD)
            && self.metrics.served_at() == Some(request.uri().path());
        if scrape {
            tracing::debug!(path = request.uri().path(), "metrics scrape");
            return Either::Left(std::future::ready(Ok(exposition(&self.metrics))));
        }
        Either::Right(self.inner.call(request))
    }
}
