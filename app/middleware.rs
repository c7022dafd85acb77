//! Middleware the reference app's routes list in `#[arbor::handler(..)]` and `middleware.rs`.

use std::time::Instant;

use arbor::http::{header, HeaderValue};
use arbor::{ApiError, IntoResponse, Next, Request, Response};

/// Who made the request, as established by [`require_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject.
    pub subject: String,
}

/// Requires `Authorization: Bearer <token>` matching `ARBOR_API_TOKEN` (default `dev-token`),
/// and hands the handler a [`Principal`]. Answers `401 UNAUTHORIZED` otherwise.
pub async fn require_token(mut request: Request, next: Next) -> Response {
    let expected = std::env::var("ARBOR_API_TOKEN").unwrap_or_else(|_| "dev-token".into());
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            request.extensions_mut().insert(Principal {
                subject: "api-client".into(),
            });
            next.run(request).await
        }
        _ => ApiError::unauthorized("a valid bearer token is required")
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
            .into_response(),
    }
}

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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
