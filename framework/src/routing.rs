//! Answers the generated router gives by itself: `OPTIONS`, `405` and `404`.

use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::Route;
use http::{header, HeaderValue, Method, StatusCode, Uri};
use tower::Layer;

use crate::ApiError;

/// `OPTIONS` on a route that does not export it: `204` with `Allow`.
pub async fn options(allow: &'static str) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::ALLOW, HeaderValue::from_static(allow))],
    )
        .into_response()
}

/// A method the route does not export: `405`, `Allow` (RFC 9110) and the JSON error body.
pub async fn method_not_allowed(method: Method, allow: &'static str) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed here; allowed: {allow}"),
    )
    .with_header(header::ALLOW, HeaderValue::from_static(allow))
    .into_response()
}

/// No route matched: a JSON `404`, or a `308` to the same path without its trailing slash
/// (as Next.js does), keeping the query.
pub async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let target = match uri.query() {
            Some(query) => format!("{}?{query}", if trimmed.is_empty() { "/" } else { trimmed }),
            None => if trimmed.is_empty() { "/" } else { trimmed }.to_owned(),
        };
        return Redirect::permanent(&target).into_response();
    }
    ApiError::not_found(format!("no route for {path}")).into_response()
}

/// A tower layer that can wrap a route: what a constructor in a middleware list must return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as middleware",
    label = "not a tower `Layer` that wraps an axum route",
    note = "a constructor in a middleware list must return a `tower::Layer<axum::routing::Route>` whose service answers with `impl IntoResponse` and never fails",
    note = "to use an async fn `(Request, Next) -> Response`, name it without parentheses: `#[arbor::handler(my_middleware)]`"
)]
pub trait MiddlewareLayer: Layer<Route> + Clone + Send + Sync + 'static {}

impl<L> MiddlewareLayer for L
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Response: IntoResponse + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Error:
        Into<std::convert::Infallible> + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
}

/// Identity, with a bound whose failure reads as "this is not middleware".
pub fn layer<L: MiddlewareLayer>(layer: L) -> L {
    layer
}
