//! What the generated router calls: the answers it gives by itself (`OPTIONS`, `405`, `404`)
//! and the steps that finish each route (`finish_route`, `max_duration`, `revalidate_route`),
//! so that the generated file holds one call per step rather than their code.

use std::time::Duration;

use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, Route};
use http::{header, HeaderValue, Method, StatusCode, Uri};
use tower::Layer;

use crate::timeout::MaxDuration;
use crate::ApiError;

/// Finishes a route's methods: with `automatic_options` (the file exports no `OPTIONS`),
/// `OPTIONS` answers `204` with `Allow`; any method the file does not export answers `405` with
/// `Allow` and the JSON error. `allow` lists what the route answers, as the `Allow` header
/// writes it.
///
/// The automatic `OPTIONS` is an endpoint of the route, so file and folder middleware (added
/// afterwards with `route_layer`) wrap it, as a CORS or `no-store` layer needs; the `405` is
/// the route's fallback, which no middleware sees: a method the route does not have is
/// refused as such before authentication or signature checks could answer `401` instead.
pub fn finish_route<S>(
    methods: MethodRouter<S>,
    allow: &'static str,
    automatic_options: bool,
) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let methods = match automatic_options {
        true => methods.options(move || options(allow)),
        false => methods,
    };
    methods.fallback(move |method: Method| method_not_allowed(method, allow))
}

/// A route's `pub const MAX_DURATION: u64` (seconds): the deadline for everything the route
/// answers, its middleware included.
pub fn max_duration<S>(methods: MethodRouter<S>, seconds: u64) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    methods.layer(MaxDuration(Some(Duration::from_secs(seconds))))
}

/// A route's `pub const REVALIDATE` (seconds, or a [`Revalidate`](crate::cache::Revalidate)),
/// applied to its `GET` endpoint: responses are cached that long, and answered with
/// `Cache-Control: public, s-maxage=N` unless the handler (or authentication) set one. Generated
/// code calls it through `__private::revalidate!`, which names
/// the route file when the `cache` feature is off.
#[cfg(feature = "cache")]
pub fn revalidate_route<S>(
    get: MethodRouter<S>,
    revalidate: impl Into<crate::cache::Revalidate>,
) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let revalidate = revalidate.into();
    // The default `Cache-Control` outside the cache: stored responses keep the handler's own
    // headers, so a request with credentials is not served one as if it were `public`.
    get.route_layer(crate::cache::cache().ttl(revalidate.seconds()))
        .route_layer(crate::cache::cache_control(revalidate.cache_control()))
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::routing::{get, options as options_route, post};
    use axum::Router;

    use super::*;
    use crate::test::TestClient;

    const ALLOW: &str = "GET, HEAD, POST, OPTIONS";

    fn route_client(methods: MethodRouter) -> TestClient {
        TestClient::new(Router::new().route("/r", methods))
    }

    #[tokio::test]
    async fn finish_route_answers_options_and_405_with_allow() {
        let client = route_client(finish_route(
            get(|| async { "got" }).post(|| async { "posted" }),
            ALLOW,
            true,
        ));
        let response = client.get("/r").send().await;
        assert_eq!(
            (response.status(), response.text()),
            (StatusCode::OK, "got".into())
        );
        let response = client.head("/r").send().await;
        assert_eq!(
            (response.status(), response.text()),
            (StatusCode::OK, String::new())
        );

        let response = client.options("/r").send().await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(response.headers()[header::ALLOW], ALLOW);
        assert_eq!(response.text(), "");

        for method in [
            Method::DELETE,
            Method::PUT,
            Method::from_bytes(b"FOO").unwrap(),
        ] {
            let response = client.request(method.clone(), "/r").send().await;
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
            assert_eq!(response.headers()[header::ALLOW], ALLOW);
            let body: serde_json::Value = response.json();
            assert_eq!(body["error"], "METHOD_NOT_ALLOWED");
            assert_eq!(
                body["message"],
                format!("{method} is not allowed here; allowed: {ALLOW}")
            );
        }
    }

    #[tokio::test]
    async fn an_exported_options_is_not_replaced() {
        let client = route_client(finish_route(
            post(|| async { "posted" }).merge(options_route(|| async { "my options" })),
            "POST, OPTIONS",
            false,
        ));
        let response = client.options("/r").send().await;
        assert_eq!(
            (response.status(), response.text()),
            (StatusCode::OK, "my options".into())
        );
        let response = client.get("/r").send().await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST, OPTIONS");
    }

    #[tokio::test]
    async fn route_layers_added_after_finish_route_cover_options_but_not_405() {
        let methods = finish_route(get(|| async { "got" }), "GET, HEAD, OPTIONS", true)
            .route_layer(axum::middleware::map_response(
                |mut response: Response| async move {
                    response
                        .headers_mut()
                        .insert("x-folder", HeaderValue::from_static("yes"));
                    response
                },
            ));
        let client = route_client(methods);
        for method in [Method::GET, Method::OPTIONS] {
            let response = client.request(method.clone(), "/r").send().await;
            assert_eq!(response.headers()["x-folder"], "yes", "{method}");
        }
        // File and folder middleware (route layers) never turn the 405 into something else.
        let response = client.request(Method::DELETE, "/r").send().await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(response.headers().get("x-folder").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn max_duration_times_out_the_route_and_its_answers() {
        let slow = get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        });
        let client = route_client(max_duration(
            finish_route(slow, "GET, HEAD, OPTIONS", true),
            2,
        ));
        let response = client.get("/r").send().await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.json::<serde_json::Value>()["error"], "TIMEOUT");
        // Quick answers are untouched.
        let response = client.options("/r").send().await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);

        let quick = get(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "in time"
        });
        let response = route_client(max_duration(quick, 2)).get("/r").send().await;
        assert_eq!(
            (response.status(), response.text()),
            (StatusCode::OK, "in time".into())
        );
    }

    #[cfg(feature = "cache")]
    #[tokio::test]
    async fn revalidate_route_caches_get_responses() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let endpoint = get(move || {
            let counter = Arc::clone(&counter);
            async move { format!("call {}", counter.fetch_add(1, Ordering::SeqCst) + 1) }
        });
        let client = route_client(finish_route(
            revalidate_route(endpoint, 60).merge(post(|| async { "posted" })),
            ALLOW,
            true,
        ));
        let first = client.get("/r").send().await;
        let second = client.get("/r").send().await;
        assert_eq!(first.text(), "call 1");
        assert_eq!(second.text(), "call 1");
        assert_eq!(second.headers()[crate::cache::X_CACHE], "HIT");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Only `GET` is wrapped: the automatic answers and other methods are not cached.
        let options = client.options("/r").send().await;
        assert!(options.headers().get(crate::cache::X_CACHE).is_none());
        assert_eq!(client.post("/r").send().await.text(), "posted");
    }
}
