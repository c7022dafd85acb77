//! Carries the pattern of the route that answered out to the app-wide layers.
//!
//! axum puts [`MatchedPath`] in the request's extensions when a route matches, but the
//! app-wide stack wraps the router from the outside and never sees that request again. This
//! layer, put on the routes themselves ([`axum::Router::route_layer`]), copies it onto the
//! response, where [`super::RecordMetrics`] (and anything else outside) can read it.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower::{Layer, Service};

/// The pattern of the route that produced a response (`/api/users/{id}`), in the response's
/// extensions; absent when no route matched.
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub MatchedPath);

impl MatchedRoute {
    /// The pattern, in axum's syntax.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Puts [`MatchedRoute`] on each response of the routes it wraps (installed by
/// [`crate::App`] when metrics are on).
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchedRouteLayer;

impl<S> Layer<S> for MatchedRouteLayer {
    type Service = RecordMatchedRoute<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMatchedRoute { inner }
    }
}

/// See [`MatchedRouteLayer`].
#[derive(Debug, Clone)]
pub struct RecordMatchedRoute<S> {
    inner: S,
}

impl<S> Service<Request> for RecordMatchedRoute<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        ResponseFuture {
            inner: self.inner.call(request),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RecordMatchedRoute`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(route) = this.route.take() {
            response.extensions_mut().insert(MatchedRoute(route));
        }
        Poll::Ready(Ok(response))
    }
}
