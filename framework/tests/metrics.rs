//! Prometheus metrics through the app stack: series by route pattern, a closed label set under
//! a scan of random URLs, the framework's own counters, and both ways of serving the endpoint.
//!
//! One test binary installs the process-wide recorder; the tests here share it, so each reads
//! the series of routes only it uses, and they run one at a time, so that process-wide values
//! (requests in flight) are each test's own.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use arbor::metrics::Metrics;
use arbor::test::TestClient;
use arbor::{App, Path};
use axum::routing::{get, post};
use http::{Method, StatusCode};

fn metrics() -> Metrics {
    Metrics::install().unwrap()
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The sample lines of `name` (`name{labels} value`), from a scrape.
fn samples(exposition: &str, name: &str) -> Vec<String> {
    exposition
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .map(str::to_owned)
        .collect()
}

/// The value of the one sample of `name` whose labels contain every one of `labels`.
fn value(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let found: Vec<String> = samples(exposition, name)
        .into_iter()
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .collect();
    assert!(found.len() <= 1, "{labels:?} matches {found:?}");
    found.first().map(|line| {
        line.rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{line}: {e}"))
    })
}

async fn scrape(client: &TestClient) -> String {
    let response = client.get("/metrics").send().await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text()
}

/// The app around `routes`, finding routes by `patterns` when there are some, else from the layer
/// `App` puts on every route: the tests below check both ways.
fn app(routes: arbor::Router, patterns: Option<&[&str]>) -> App {
    let app = App::new(routes).metrics(metrics());
    match patterns {
        Some(patterns) => app.route_patterns(patterns),
        None => app,
    }
}

#[tokio::test]
async fn requests_are_labelled_by_route_pattern_method_and_status_class() {
    let _alone = ONE_AT_A_TIME.lock().await;
    labelled_by_route("/labels", false).await;
    labelled_by_route("/patterns", true).await;
}

/// Routes under `prefix` (series of their own in the shared recorder).
async fn labelled_by_route(prefix: &str, with_patterns: bool) {
    let users = format!("{prefix}/users/{{id}}");
    let hello = format!("{prefix}/hello");
    let routes = arbor::Router::new()
        .route(
            &users,
            get(|Path(id): Path<u32>| async move { id.to_string() }),
        )
        .route(&hello, post(|| async { "hi" }));
    let patterns = [users.as_str(), hello.as_str()];
    let client = TestClient::new(app(routes, with_patterns.then_some(&patterns[..])).into_router());

    for id in [1, 2, 3] {
        let response = client.get(&format!("{prefix}/users/{id}")).send().await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // A path parameter of the wrong type: still the route's pattern, as a 4xx.
    client.get(&format!("{prefix}/users/x")).send().await;
    // The wrong method on a known path: the route's pattern, 405.
    let refused = client.get(&hello).send().await;
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);

    let exposition = scrape(&client).await;
    let count = "http_server_request_duration_seconds_count";
    let users = format!(r#"route="{users}""#);
    assert_eq!(
        value(
            &exposition,
            count,
            &[&users, r#"method="GET""#, r#"status="2xx""#]
        ),
        Some(3.0),
        "{exposition}"
    );
    assert_eq!(
        value(
            &exposition,
            count,
            &[&users, r#"method="GET""#, r#"status="4xx""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &exposition,
            count,
            &[
                &format!(r#"route="{hello}""#),
                r#"method="GET""#,
                r#"status="4xx""#
            ]
        ),
        Some(1.0)
    );
    // Histograms with buckets, not summaries.
    assert!(
        exposition.contains("# TYPE http_server_request_duration_seconds histogram"),
        "{exposition}"
    );
    assert!(!samples(&exposition, "http_server_request_duration_seconds_bucket").is_empty());
    // No raw path became a label, and the scrape itself is not a request.
    assert!(!exposition.contains(&format!("{prefix}/users/1")));
    assert!(!exposition.contains(r#"route="/metrics""#));
    // Every request has finished.
    assert_eq!(
        value(&exposition, "http_server_active_requests", &[]),
        Some(0.0)
    );
}

async fn panics() -> &'static str {
    panic!("a handler bug")
}

#[tokio::test]
async fn a_panic_and_a_timeout_keep_their_route() {
    let _alone = ONE_AT_A_TIME.lock().await;
    for (prefix, with_patterns) in [("/failing", false), ("/failing-patterns", true)] {
        let (panicking, slow) = (format!("{prefix}/panics"), format!("{prefix}/slow"));
        let routes = arbor::Router::new().route(&panicking, get(panics)).route(
            &slow,
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                "late"
            }),
        );
        let patterns = [panicking.as_str(), slow.as_str()];
        let app = app(routes, with_patterns.then_some(&patterns[..]))
            .timeout(Some(std::time::Duration::from_millis(50)));
        let client = TestClient::new(app.into_router());
        let panicked = client.get(&panicking).send().await;
        assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let timed_out = client.get(&slow).send().await;
        assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);

        let exposition = scrape(&client).await;
        let count = "http_server_request_duration_seconds_count";
        for route in patterns {
            let label = format!(r#"route="{route}""#);
            assert_eq!(
                value(&exposition, count, &[&label, r#"status="5xx""#]),
                Some(1.0),
                "{route}: {exposition}"
            );
        }
    }
}

/// A writer for a test's log lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_route_missing_from_the_patterns_is_reported_in_debug_builds() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let routes = arbor::Router::new()
        .route("/partly/listed", get(|| async { "ok" }))
        .route("/partly/forgotten", get(|| async { "ok" }));
    let client = TestClient::new(app(routes, Some(&["/partly/listed"])).into_router());
    for path in ["/partly/listed", "/partly/forgotten", "/partly/forgotten"] {
        assert_eq!(client.get(path).send().await.status(), StatusCode::OK);
    }

    let exposition = scrape(&client).await;
    let count = "http_server_request_duration_seconds_count";
    assert_eq!(
        value(&exposition, count, &[r#"route="/partly/listed""#]),
        Some(1.0)
    );
    // Not a series of its own: the patterns are the closed set of labels.
    assert!(!exposition.contains("/partly/forgotten"), "{exposition}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let reports: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("route missing from `App::route_patterns`"))
        .collect();
    if cfg!(debug_assertions) {
        assert_eq!(reports.len(), 1, "once per route: {logs}");
        assert!(reports[0].contains("/partly/forgotten"), "{logs}");
        assert!(reports[0].contains("counted_as=\"unmatched\""), "{logs}");
    } else {
        assert!(reports.is_empty(), "{logs}");
    }
}

#[tokio::test]
async fn a_scan_of_ten_thousand_random_urls_adds_no_series() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let routes = arbor::Router::new().route("/scan/known", get(|| async { "ok" }));
    let client = TestClient::new(App::new(routes).metrics(metrics()).into_router());
    // The tests of this binary run one at a time: whatever series appear are this scan's.
    let series = |exposition: &str| -> BTreeSet<String> {
        samples(exposition, "http_server_request_duration_seconds_count")
            .into_iter()
            .map(|line| line.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    };
    let methods = [Method::GET, Method::POST, Method::DELETE];
    // One unmatched request per method first: the series the scan may grow.
    for method in &methods {
        client.request(method.clone(), "/warm-up").send().await;
    }
    client
        .request(Method::from_bytes(b"PROPFIND").unwrap(), "/warm-up")
        .send()
        .await;
    let before = series(&scrape(&client).await);

    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move || {
        // xorshift64*: deterministic, so a failure can be replayed.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for n in 0..10_000 {
        let path = format!("/{:x}/{:x}?q={n}", random(), random());
        let method = match random() % 5 {
            0..=2 => methods[n % 3].clone(),
            3 => Method::from_bytes(format!("X{:X}", random() % 1000).as_bytes()).unwrap(),
            _ => Method::from_bytes(b"PROPFIND").unwrap(),
        };
        let response = client.request(method, &path).send().await;
        assert_ne!(response.status(), StatusCode::OK);
    }

    let exposition = scrape(&client).await;
    let after = series(&exposition);
    assert_eq!(
        after.difference(&before).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    let unmatched: f64 = samples(&exposition, "http_server_request_duration_seconds_count")
        .iter()
        .filter(|line| line.contains(r#"route="unmatched""#))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(unmatched >= 10_000.0, "{unmatched}");
    assert!(exposition.contains(r#"method="_OTHER""#));
}

#[tokio::test]
async fn the_frameworks_counters_are_exported() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let routes = arbor::Router::new().route(
        "/counted/limited",
        get(|| async { "ok" }).layer(arbor::rate_limit::rate_limit().limit(1)),
    );
    let client = TestClient::new(App::new(routes).metrics(metrics()).into_router());
    assert_eq!(
        client.get("/counted/limited").send().await.status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            client.get("/counted/limited").send().await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let exposition = scrape(&client).await;
    assert_eq!(
        value(
            &exposition,
            "arbor_rate_limit_rejections_total",
            &[r#"route="/counted/limited""#]
        ),
        Some(3.0),
        "{exposition}"
    );
}

#[tokio::test]
async fn the_endpoint_moves_to_a_listener_of_its_own() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let routes = arbor::Router::new().route("/elsewhere/page", get(|| async { "ok" }));
    let metrics = metrics().path(None);
    let client = TestClient::new(App::new(routes).metrics(metrics.clone()).into_router());
    client.get("/elsewhere/page").send().await;
    // Not on the main port any more: that path is the app's, here a 404.
    assert_eq!(
        client.get("/metrics").send().await.status(),
        StatusCode::NOT_FOUND
    );
    let admin = TestClient::new(metrics.router());
    let exposition = scrape(&admin).await;
    assert!(exposition.contains(r#"route="/elsewhere/page""#));
}

#[tokio::test]
async fn build_info_names_the_version_and_revision() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let client = TestClient::new(
        App::new(arbor::Router::new())
            .metrics(metrics().build_info("1.2.3", Some("abc123")))
            .into_router(),
    );
    let exposition = scrape(&client).await;
    assert_eq!(
        value(
            &exposition,
            "arbor_build_info",
            &[r#"version="1.2.3""#, r#"revision="abc123""#]
        ),
        Some(1.0)
    );
}
