//! The metrics endpoint on the main port: answered ahead of the routes and of the request
//! metrics, so that scrapes neither need a route nor count as requests.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue};

use super::Metrics;
use crate::service::Endpoint;

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

/// Answered on [`Metrics::served_at`] (installed by [`crate::App::metrics`] as an
/// [`crate::service::EndpointLayer`]).
impl Endpoint for Metrics {
    fn path(&self) -> Option<&str> {
        self.served_at()
    }

    fn answer(&self) -> Response {
        exposition(self)
    }
}
