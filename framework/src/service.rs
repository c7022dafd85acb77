//! Helpers for writing tower services.

use std::sync::Arc;

/// Takes the service that `poll_ready` readied and leaves a fresh clone in its place.
///
/// A middleware whose future calls the inner service later (after an `.await`) must own it, and
/// tower's contract is that only the instance `poll_ready` answered for may be called: a clone
/// is not ready. The clone left behind is readied by the next `poll_ready`.
pub(crate) fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// Something answered at one path, ahead of the routes: the metrics endpoint, the API
/// contract. Neither a route's middleware nor the request metrics see those requests.
pub(crate) trait Endpoint {
    /// Where it is answered (`GET` and `HEAD`), if anywhere.
    fn path(&self) -> Option<&str>;
    /// The answer.
    fn answer(&self) -> axum::response::Response;
}

/// Answers `GET`/`HEAD` on its [`Endpoint`]'s path; passes every other request on.
#[derive(Debug, Clone)]
pub(crate) struct EndpointLayer<E>(Arc<E>);

impl<E> EndpointLayer<E> {
    pub(crate) fn new(endpoint: E) -> Self {
        Self(Arc::new(endpoint))
    }
}

impl<S, E: Endpoint> tower::Layer<S> for EndpointLayer<E> {
    type Service = ServeEndpoint<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        ServeEndpoint {
            inner,
            endpoint: Arc::clone(&self.0),
        }
    }
}

/// See [`EndpointLayer`]. The endpoint sits behind an `Arc`: the app's stack is cloned for every
/// request, and an endpoint holds several shared parts (the contract: five) that would each be
/// counted up and down again.
#[derive(Debug)]
pub(crate) struct ServeEndpoint<S, E> {
    inner: S,
    endpoint: Arc<E>,
}

impl<S: Clone, E> Clone for ServeEndpoint<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            endpoint: Arc::clone(&self.endpoint),
        }
    }
}

impl<S, E> tower::Service<axum::extract::Request> for ServeEndpoint<S, E>
where
    S: tower::Service<axum::extract::Request, Response = axum::response::Response>,
    E: Endpoint,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<axum::response::Response, S::Error>>,
        S::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        use futures_util::future::Either;
        let asked = matches!(*request.method(), http::Method::GET | http::Method::HEAD)
            && self.endpoint.path() == Some(request.uri().path());
        if asked {
            tracing::debug!(
                path = request.uri().path(),
                "endpoint answered ahead of the routes"
            );
            return Either::Left(std::future::ready(Ok(self.endpoint.answer())));
        }
        Either::Right(self.inner.call(request))
    }
}
