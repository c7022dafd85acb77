//! Middleware the reference app's routes list in `#[arbor::handler(..)]` and `middleware.rs`.

use std::time::Instant;

use arbor::http::{header, HeaderValue};
use arbor::{Next, Request, Response};

/// Adds `Server-Timing: app;dur=<ms>` so clients can see time spent in the handler.
pub async fn server_timing(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut response = next.run(request).await;
    let value = format!("app;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// Marks responses as never to be stored by caches: what session endpoints need.
pub async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
