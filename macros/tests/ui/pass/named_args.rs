//! `name(a, key = value)` calls `name(a).key(value)`: named arguments are builder setters.

// Route files are compiled inside `arbor::routes!`, which allows uppercase handler names.
#![allow(non_snake_case)]

use std::time::Duration;

use arbor::{IntoResponse, Request};
use tower::{Layer, Service};

/// A (do-nothing) rate limiter configured through setters.
#[derive(Clone, Debug)]
pub struct RateLimit {
    bucket: &'static str,
    limit: u32,
    window: Duration,
}

pub fn rate_limit(bucket: &'static str) -> RateLimit {
    RateLimit {
        bucket,
        limit: 100,
        window: Duration::from_secs(60),
    }
}

impl RateLimit {
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub fn window(mut self, seconds: u64) -> Self {
        self.window = Duration::from_secs(seconds);
        self
    }
}

impl<S> Layer<S> for RateLimit {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let _ = (self.bucket, self.limit, self.window);
        RateLimited { inner }
    }
}

#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
}

impl<S: Service<Request>> Service<Request> for RateLimited<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.inner.call(request)
    }
}

#[arbor::handler(rate_limit("login", limit = 5, window = 60))]
pub async fn POST() -> impl IntoResponse {
    "ok"
}

#[arbor::handler(rate_limit("reads", window = 1 + 1, limit = u32::MAX,))]
pub async fn GET() -> impl IntoResponse {
    "ok"
}

fn _router() -> arbor::Router {
    arbor::Router::new().route(
        "/",
        __arbor_handler_middleware_POST(axum::routing::post(POST), &())
            .merge(__arbor_handler_middleware_GET(axum::routing::get(GET), &())),
    )
}

fn main() {}
