//! In-process cost per request of Arbor's metrics and of trace export, on top of the production
//! stack (request id, JSON logs to a sink, CORS, rate limit, timeout, panic catcher): the same
//! empty route through `tower::Service`, three ways, alternated round by round.
//!
//! ```text
//! cargo bench -p arbor --features otel --bench telemetry_cost
//! ```
//!
//! 1. the stack;
//! 2. the stack with [`arbor::metrics`] (the request histogram and the active-requests gauge),
//!    given the router's patterns as generated apps give them ([`arbor::App::route_patterns`]);
//! 3. (2) with a server span per request exported over OTLP/HTTP to a receiver in this process
//!    (the batch processor's thread does the export; what the request pays is the span);
//! 4. (2) without the patterns, as for a hand-written router: the route comes from a layer on
//!    the route.
//!
//! 15 rounds of 20,000 requests each; the costs are medians of the per-round differences.
//!
//! For a profiler, `-- --only stack|metrics|traces|metrics-slot [--requests N]` runs one once
//! (instruction counts under callgrind are steady where wall-clock times on two cores are not):
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profiled_run*' \
//!     target/release/deps/telemetry_cost-* --only metrics --requests 20000
//! ```

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

use support::{hello, median, run};

const PATTERNS: &[&str] = &["/api/hello"];

fn app() -> arbor::App {
    let routes = Router::new()
        .route("/api/hello", get(hello))
        .route_layer(arbor::rate_limit::rate_limit().limit(u32::MAX).window(60));
    arbor::App::new(routes)
        .cors(arbor::cors::Cors::new().allow_origins(["https://app.example.com"]))
        .unwrap()
}

fn nanos(duration: Duration) -> i128 {
    i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX)
}

/// A JSON-lines log layer writing to a sink, as in production minus the I/O.
fn logs<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(arbor::logging::JsonLines)
        .event_format(arbor::logging::JsonLines)
        .with_writer(std::io::sink)
        .with_filter(tracing::level_filters::LevelFilter::INFO)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (rounds, requests) = if quick { (1, 100) } else { (15, 20_000) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The OTLP receiver, and the exporter's HTTP calls, run on a runtime of their own (another
    // thread), so that the measured thread pays for the spans, not for shipping them.
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The OTLP receiver: accepts and drops what it is sent.
    let endpoint = background.block_on(async {
        let receiver = Router::new().route("/v1/traces", post(|| async { "" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, receiver).await });
        endpoint
    });
    // The exporter reads its endpoint from the environment, as in an app.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    let export = background.block_on(async { arbor::otel::OtlpExport::from_env("bench").unwrap() });
    let export = export.unwrap();
    let metrics = arbor::metrics::Metrics::install().unwrap();

    let logged = tracing_subscriber::registry().with(logs());
    let traced = tracing_subscriber::registry()
        .with(export.layer())
        .with(logs());
    let (logged, traced) = (
        tracing::Dispatch::new(logged),
        tracing::Dispatch::new(traced),
    );

    let mut stack = app().into_router().with_state(());
    let mut with_metrics = app()
        .route_patterns(PATTERNS)
        .metrics(metrics.clone())
        .into_router()
        .with_state(());
    let mut with_traces = app()
        .route_patterns(PATTERNS)
        .metrics(metrics.clone())
        .trace_requests(true)
        .into_router()
        .with_state(());
    let mut with_metrics_slot = app().metrics(metrics).into_router().with_state(());
    let args: Vec<String> = std::env::args().collect();
    if let Some((name, requests)) = only(&args) {
        let (router, dispatch) = match name.as_str() {
            "stack" => (&mut stack, &logged),
            "metrics" => (&mut with_metrics, &logged),
            "traces" => (&mut with_traces, &traced),
            "metrics-slot" => (&mut with_metrics_slot, &logged),
            other => panic!("--only stack|metrics|traces|metrics-slot, not {other}"),
        };
        let took = tracing::dispatcher::with_default(dispatch, || {
            // Lazy set-up (the clock calibration of the metrics' histograms, which loops for a
            // while) happens here, outside what a profiler counts with
            // `--toggle-collect='*profiled_run*'`.
            runtime.block_on(run(router, 100));
            profiled_run(&runtime, router, requests)
        });
        println!("{name}: {} ns/request", took.as_nanos());
        return;
    }
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        tracing::dispatcher::with_default(&logged, || {
            a.push(runtime.block_on(run(&mut stack, requests)));
            b.push(runtime.block_on(run(&mut with_metrics, requests)));
            d.push(runtime.block_on(run(&mut with_metrics_slot, requests)));
        });
        tracing::dispatcher::with_default(&traced, || {
            c.push(runtime.block_on(run(&mut with_traces, requests)));
        });
    }
    // Medians of the per-round differences: the four run back to back in each round, so a
    // slow round (the machine has two cores) weighs on all alike.
    let differences = |from: &[Duration], to: &[Duration]| -> Vec<i128> {
        from.iter()
            .zip(to)
            .map(|(from, to)| nanos(*to) - nanos(*from))
            .collect()
    };
    let costs = Costs {
        metrics: median(differences(&a, &b)),
        spans: median(differences(&b, &c)),
        metrics_slot: median(differences(&a, &d)),
    };
    print_costs([median(a), median(b), median(c), median(d)], &costs);
    drop(export);
}

/// The measured requests of `--only`, in a function of its own for a profiler to single out.
#[inline(never)]
fn profiled_run(runtime: &tokio::runtime::Runtime, router: &mut Router, requests: u32) -> Duration {
    runtime.block_on(run(router, requests))
}

/// `--only NAME [--requests N]`: the variant to run once, for a profiler.
fn only(args: &[String]) -> Option<(String, u32)> {
    let name = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args[i + 1].clone())?;
    let requests = args
        .iter()
        .position(|a| a == "--requests")
        .map_or(20_000, |i| args[i + 1].parse().unwrap());
    Some((name, requests))
}

/// Medians of the per-round differences, in ns per request.
struct Costs {
    metrics: i128,
    spans: i128,
    metrics_slot: i128,
}

fn print_costs(times: [Duration; 4], costs: &Costs) {
    let names = [
        "stack (JSON logs to a sink)",
        "+ metrics",
        "+ metrics + exported spans",
        "+ metrics, route from a layer",
    ];
    for (name, time) in names.iter().zip(times) {
        println!("{name:<40} {:>7} ns/request", time.as_nanos());
    }
    println!(
        "{:<40} {:>7} ns/request",
        "metrics cost (median of rounds)", costs.metrics
    );
    println!(
        "{:<40} {:>7} ns/request",
        "span cost (median of rounds)", costs.spans
    );
    println!(
        "{:<40} {:>7} ns/request",
        "metrics cost, route from a layer", costs.metrics_slot
    );
}
