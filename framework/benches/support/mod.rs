//! Shared by the in-process benchmarks: the empty route, a request to it, and a timed loop of
//! requests through a router as a `tower::Service`.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{Service, ServiceExt};

pub async fn hello() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}

pub fn request() -> http::Request<Body> {
    let mut request = http::Request::builder()
        .uri("/api/hello")
        .header("host", "bench")
        .header("user-agent", "bench/1.0")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

/// The mean time per request of `requests` sequential calls of `GET /api/hello`, each answer
/// checked.
pub async fn run(router: &mut Router, requests: u32) -> Duration {
    run_requests(router, requests, request).await
}

/// [`run`] with each request made by `make`.
pub async fn run_requests(
    router: &mut Router,
    requests: u32,
    make: impl Fn() -> http::Request<Body>,
) -> Duration {
    let started = Instant::now();
    for _ in 0..requests {
        let response = ServiceExt::<http::Request<Body>>::ready(router)
            .await
            .unwrap()
            .call(make())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"message":"hello"}"#);
    }
    started.elapsed() / requests
}

/// Rounds and requests per round: `(1, 100)` when run as a test (`cargo test --benches`), the
/// given ones under `cargo bench`; `BENCH_REQUESTS` overrides the requests (for a profiler).
pub fn rounds_and_requests(rounds: usize, requests: u32) -> (usize, u32) {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (rounds, requests) = if quick { (1, 100) } else { (rounds, requests) };
    let requests = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(requests);
    (rounds, requests)
}

/// Log lines formatted as `arbor::logging::init(Format::Json)` formats them, into a sink.
pub fn json_logs_to_sink() {
    tracing_subscriber::fmt()
        .fmt_fields(arbor::logging::JsonLines)
        .event_format(arbor::logging::JsonLines)
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .init();
}

/// One thread, as a server pinned to one core runs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}
