//! Routing cost against the number of routes: routers of 10, 1,000 and 10,000 routes, built as
//! the generated `routes::router()` builds them (each route's methods finished with the
//! automatic `OPTIONS` and the JSON `405`, a JSON `404` fallback), called in process on the
//! route added last, static and with a dynamic segment. Prints nanoseconds per request (median
//! of rounds; the sizes alternate within each round) and each size's throughput against 10
//! routes.
//!
//! ```text
//! cargo bench -p arbor --bench routing_scale
//! BENCH=routing_scale bash benches/instructions.sh     # instructions per request
//! ```

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, MethodRouter};
use axum::Router;
use serde_json::Value;

use arbor::__private::{finish_route, not_found};

use support::{hello, median, rounds_and_requests, run_requests, runtime};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

async fn item(arbor::Path(_id): arbor::Path<String>) -> arbor::Json<Value> {
    arbor::Json(serde_json::json!({ "message": "hello" }))
}

/// `routes` routes in folders of 100, as an app's route files would be spread: half of them
/// static (`/api/g{group}/r{n}`), half with a dynamic segment (`…/{id}`).
fn router(routes: usize) -> Router {
    let mut router = Router::new();
    for n in 0..routes / 2 {
        let group = n / 100;
        let finished = |methods: MethodRouter| finish_route(methods, "GET, HEAD, OPTIONS", true);
        router = router
            .route(&format!("/api/g{group}/r{n}"), finished(get(hello)))
            .route(&format!("/api/g{group}/r{n}/{{id}}"), finished(get(item)));
    }
    router.fallback(not_found)
}

/// The last static and the last dynamic route of a router of `routes` routes.
fn paths(routes: usize) -> (String, String) {
    let n = routes / 2 - 1;
    let group = n / 100;
    (
        format!("/api/g{group}/r{n}"),
        format!("/api/g{group}/r{n}/42"),
    )
}

struct Config {
    name: String,
    routes: usize,
    router: Router,
    path: String,
}

/// Every configuration, or the one named `only`.
fn configs(only: Option<&str>) -> Vec<Config> {
    SIZES
        .iter()
        .flat_map(|&routes| {
            let (static_path, dynamic_path) = paths(routes);
            [("static", static_path), ("dynamic", dynamic_path)]
                .map(|(kind, path)| (format!("{routes}-{kind}"), routes, path))
        })
        .filter(|(name, _, _)| only.is_none_or(|only| only == name))
        .map(|(name, routes, path)| Config {
            name,
            routes,
            router: router(routes).with_state(()),
            path,
        })
        .collect()
}

fn request_to(path: &str) -> http::Request<Body> {
    let mut request = support::request();
    *request.uri_mut() = path.parse().unwrap();
    request
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        for routes in SIZES {
            println!("{routes}-static\n{routes}-dynamic");
        }
        return;
    }
    let (rounds, requests) = rounds_and_requests(9, 200_000);
    let only = std::env::var("BENCH_ONLY").ok();
    runtime().block_on(async {
        let mut configs = configs(only.as_deref());
        assert!(!configs.is_empty(), "BENCH_ONLY names no configuration");
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
        for _ in 0..rounds {
            for (config, times) in configs.iter_mut().zip(&mut times) {
                let path = config.path.clone();
                let make = move || request_to(&path);
                times.push(run_requests(&mut config.router, requests, make).await);
            }
        }
        if only.is_some() {
            return;
        }
        println!("{:<16} {:>8} {:>9}  path", "routes", "ns/req", "vs 10");
        for (index, (config, own)) in configs.iter().zip(&times).enumerate() {
            // Against the router of 10 routes on the same kind of path, round by round.
            let baseline = &times[index % 2];
            let ratios: Vec<u64> = own
                .iter()
                .zip(baseline)
                .map(|(time, base)| (base.as_nanos() * 1000 / time.as_nanos().max(1)) as u64)
                .collect();
            println!(
                "{:<16} {:>8} {:>9.3}  {} ({} routes)",
                config.name,
                median(own.clone()).as_nanos(),
                median(ratios) as f64 / 1000.0,
                config.path,
                config.routes
            );
        }
    });
}
