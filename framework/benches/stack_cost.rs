//! In-process cost of Arbor's production stack per request, without sockets: the same route
//! called through `tower::Service` bare and inside `arbor::App` (+ a rate limit), with JSON logs
//! formatted to a sink. Prints nanoseconds per request (median of rounds) and the difference.
//!
//! ```text
//! cargo bench -p arbor --bench stack_cost
//! ```
//!
//! The over-TCP ratio lives in the root `router` benchmark; this one isolates the stack's own
//! work so that it can be profiled (`valgrind --tool=callgrind`) and compared change by change.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::routing::get;
use axum::Router;

use support::{hello, json_logs_to_sink, median, rounds_and_requests, run, runtime};

fn bare() -> Router {
    Router::new().route("/api/hello", get(hello))
}

fn stack() -> Router {
    let routes = bare().route_layer(arbor::rate_limit::rate_limit().limit(u32::MAX).window(60));
    arbor::App::new(routes)
        .cors(arbor::cors::Cors::new().allow_origins(["https://app.example.com"]))
        .unwrap()
        .into_router()
}

fn main() {
    let (rounds, requests) = rounds_and_requests(9, 200_000);
    // `BENCH_LOGS=0`: no subscriber, so every layer runs but no log line is built.
    if std::env::var("BENCH_LOGS").map_or(true, |v| v != "0") {
        json_logs_to_sink();
    }
    runtime().block_on(async {
        // What `axum::serve` does before serving: handlers become routes once, not per request.
        let (mut bare, mut stack) = (bare().with_state(()), stack().with_state(()));
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        let (mut bare_times, mut stack_times) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            if only != "stack" {
                bare_times.push(run(&mut bare, requests).await);
            }
            if only != "bare" {
                stack_times.push(run(&mut stack, requests).await);
            }
        }
        let show = |label: &str, times: Vec<Duration>| {
            if times.is_empty() {
                return Duration::ZERO;
            }
            let m = median(times);
            println!("{label:<28} {:>8} ns/request", m.as_nanos());
            m
        };
        let b = show("bare route", bare_times);
        let s = show("full stack, JSON logs", stack_times);
        if !b.is_zero() && !s.is_zero() {
            println!(
                "stack cost                   {:>8} ns/request",
                s.as_nanos().saturating_sub(b.as_nanos())
            );
        }
    });
}
