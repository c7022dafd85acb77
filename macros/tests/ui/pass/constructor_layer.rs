//! Constructor entries whose values are tower layers: a hand-written one, and tower's own.

// Route files are compiled inside `arbor::routes!`, which allows uppercase handler names.
#![allow(non_snake_case)]

use std::task::{Context, Poll};

use arbor::http::{HeaderName, HeaderValue};
use arbor::{IntoResponse, Request};
use tower::layer::util::Identity;
use tower::{Layer, Service};

/// Adds a header to every request before the handler sees it.
#[derive(Clone)]
pub struct AddHeader {
    name: HeaderName,
    value: HeaderValue,
}

pub fn add_header(name: &'static str, value: &'static str) -> AddHeader {
    AddHeader {
        name: HeaderName::from_static(name),
        value: HeaderValue::from_static(value),
    }
}

impl<S> Layer<S> for AddHeader {
    type Service = AddHeaderService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddHeaderService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AddHeaderService<S> {
    inner: S,
    layer: AddHeader,
}

impl<S: Service<Request>> Service<Request> for AddHeaderService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        request
            .headers_mut()
            .insert(self.layer.name.clone(), self.layer.value.clone());
        self.inner.call(request)
    }
}

pub fn nothing() -> Identity {
    Identity::new()
}

#[arbor::handler(
    add_header("x-request-source", "test"),
    nothing(),
    tower::layer::util::Identity::new()
)]
pub async fn POST() -> impl IntoResponse {
    "created"
}

fn _router() -> arbor::Router {
    arbor::Router::new().route(
        "/",
        __arbor_handler_middleware_POST(axum::routing::post(POST), &()),
    )
}

fn main() {}
