//! In-process cost of each of Arbor's middleware alone: the empty route of `stack_cost`, bare
//! and behind one layer at a time, called through `tower::Service` without sockets. Prints, per
//! layer, nanoseconds per request above the bare route (the median over rounds of the
//! difference within each round; the bare route runs in every round, before the layers).
//!
//! ```text
//! cargo bench -p arbor --bench middleware_cost
//! BENCH_ONLY=cors BENCH_REQUESTS=20000 valgrind --tool=callgrind target/release/deps/middleware_cost-…
//! ```
//!
//! `BENCH_ONLY` runs one configuration (by its name in the table, `--list` lists them) once, for
//! a profiler: `bash benches/instructions.sh` counts instructions per request with callgrind.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use tower::Layer;

use arbor::logging::{RequestLogLayer, RequestLogLines};
use arbor::request_id::SetRequestIdLayer;

use support::{
    hello, json_logs_to_sink, median, request, rounds_and_requests, run_requests, runtime,
};

const ORIGIN: &str = "https://app.example.com";

fn bare() -> Router {
    Router::new().route("/api/hello", get(hello))
}

/// The bare route, its handler made a route once (as `arbor::serve` does).
fn prepared() -> Router {
    bare().with_state(())
}

/// The same request from an allowed origin: what the CORS policy actually works on (without an
/// `Origin` it only checks for the header).
fn cross_origin_request() -> http::Request<Body> {
    let mut request = request();
    request
        .headers_mut()
        .insert(http::header::ORIGIN, http::HeaderValue::from_static(ORIGIN));
    request
}

/// `service` as `App::into_router` returns its stack: a router's fallback. Every configuration
/// is wrapped so, the bare route too, so that the differences are the layers' alone. A layer
/// goes around the whole prepared router (`layer.layer(prepared())`), as `App` applies its
/// layers, not through `Router::layer` (which wraps every route on its own).
fn wrapped<S>(service: S) -> Router
where
    S: tower::Service<
            http::Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    Router::new().fallback_service(service)
}

/// One configuration: a name, what it measures, the router and the request it is sent.
struct Config {
    name: &'static str,
    what: &'static str,
    router: Router,
    request: fn() -> http::Request<Body>,
}

fn configs() -> Vec<Config> {
    let cors = arbor::cors::Cors::new()
        .allow_origins([ORIGIN])
        .build()
        .unwrap();
    // The rate limit, the timeout and the cache are route middleware; the others wrap the whole
    // router (see `wrapped`).
    vec![
        Config {
            name: "bare",
            what: "the empty route alone",
            router: wrapped(prepared()),
            request,
        },
        Config {
            name: "request-id",
            what: "request id: a UUID v4 made, kept in the extensions, echoed",
            router: wrapped(SetRequestIdLayer.layer(prepared())),
            request,
        },
        Config {
            name: "log-pair",
            what: "request log, `request` and `response` JSON lines and the span (default)",
            router: wrapped(RequestLogLayer::new(RequestLogLines::Pair).layer(prepared())),
            request,
        },
        Config {
            name: "log-access",
            what: "request log, one access line and the span (`ARBOR_REQUEST_LOG=access`)",
            router: wrapped(RequestLogLayer::new(RequestLogLines::Access).layer(prepared())),
            request,
        },
        Config {
            name: "rate-limit",
            what: "rate limit, in memory, GCRA, never refusing, three headers",
            router: wrapped(
                bare()
                    .route_layer(arbor::rate_limit().limit(1_000_000).window(60))
                    .with_state(()),
            ),
            request,
        },
        Config {
            name: "cors",
            what: "CORS policy, a request from an allowed origin",
            router: wrapped(cors.layer(prepared())),
            request: cross_origin_request,
        },
        Config {
            name: "timeout",
            what: "timeout: a route's `timeout(10)` (its own timer)",
            router: wrapped(bare().route_layer(arbor::timeout(10)).with_state(())),
            request,
        },
        Config {
            name: "cache-hit",
            what: "response cache, a hit: key, lookup, the stored answer cloned",
            router: wrapped(bare().route_layer(arbor::cache().ttl(60)).with_state(())),
            request,
        },
    ]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        for config in configs() {
            println!("{}", config.name);
        }
        return;
    }
    let (rounds, requests) = rounds_and_requests(9, 100_000);
    let only = std::env::var("BENCH_ONLY").ok();
    // The logging layers format their lines as `arbor::logging::init(Format::Json)` does, into
    // a sink; the other layers log nothing on these requests.
    json_logs_to_sink();
    runtime().block_on(async {
        // What `arbor::serve` does before serving: handlers become routes once.
        let mut configs: Vec<Config> = configs()
            .into_iter()
            .filter(|config| only.as_deref().is_none_or(|name| name == config.name))
            .map(|config| Config {
                router: config.router.with_state(()),
                ..config
            })
            .collect();
        assert!(!configs.is_empty(), "BENCH_ONLY names no configuration");
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
        for _ in 0..rounds {
            for (config, times) in configs.iter_mut().zip(&mut times) {
                times.push(run_requests(&mut config.router, requests, config.request).await);
            }
        }
        if only.is_some() {
            return;
        }
        let bare = &times[0];
        println!("{:<12} {:>9} {:>9}  what", "layer", "ns/req", "+ns/req");
        for (config, times) in configs.iter().zip(&times) {
            let added: Vec<i128> = times
                .iter()
                .zip(bare)
                .map(|(with, without)| with.as_nanos() as i128 - without.as_nanos() as i128)
                .collect();
            println!(
                "{:<12} {:>9} {:>9}  {}",
                config.name,
                median(times.clone()).as_nanos(),
                median(added),
                config.what
            );
        }
    });
}
