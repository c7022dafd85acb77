#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{Probes, Unhealthy};
use crate::test::TestClient;
use crate::{App, Router, Shutdown};

fn routes() -> Router {
    Router::new().route("/api/hello", get(|| async { "hello" }))
}

fn client_with(probes: Probes) -> TestClient {
    TestClient::new(App::new(routes()).probes(probes).into_router())
}

/// A check that counts its runs and answers `result()`.
fn counted(
    runs: &Arc<AtomicUsize>,
    result: impl Fn() -> Result<(), Unhealthy> + Send + Sync + 'static,
) -> impl super::HealthCheck {
    let runs = Arc::clone(runs);
    let result = Arc::new(result);
    move || {
        runs.fetch_add(1, Ordering::SeqCst);
        let result = Arc::clone(&result);
        async move { result() }
    }
}

fn failing_redis() -> Result<(), Unhealthy> {
    Err(
        Unhealthy::new("unavailable").with_source(std::io::Error::other(
            "connection refused: redis://:hunter2@redis.internal:6379",
        )),
    )
}

#[tokio::test]
async fn liveness_answers_without_running_any_check() {
    let runs = Arc::new(AtomicUsize::new(0));
    let client = client_with(Probes::new().check("redis", counted(&runs, failing_redis)));

    let response = client.get("/livez").send().await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>(), json!({ "status": "alive" }));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert!(response.header("x-request-id").is_some());
    assert_eq!(client.head("/livez").send().await.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 0, "liveness checks nothing");

    let post = client.post("/livez").send().await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(post.json::<Value>()["error"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn readiness_names_each_failed_check_and_why_without_secrets() {
    let runs = Arc::new(AtomicUsize::new(0));
    let redis_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = Arc::clone(&redis_up);
    let client = client_with(
        Probes::new()
            .check("database", counted(&runs, || Ok(())))
            .check(
                "redis",
                counted(&runs, move || {
                    if up.load(Ordering::SeqCst) {
                        Ok(())
                    } else {
                        failing_redis()
                    }
                }),
            ),
    );

    let response = client.get("/readyz").send().await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(
        response.json::<Value>(),
        json!({
            "error": "NOT_READY",
            "message": "not ready: redis failed",
            "details": { "checks": {
                "database": { "status": "ok" },
                "redis": { "status": "failed", "reason": "unavailable" },
            } },
        })
    );
    assert!(!response.text().contains("hunter2"), "{}", response.text());
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    redis_up.store(true, Ordering::SeqCst);
    let response = client.get("/readyz").send().await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>(),
        json!({
            "status": "ready",
            "checks": { "database": { "status": "ok" }, "redis": { "status": "ok" } },
        })
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "a finished run is never reused"
    );
}

#[tokio::test(start_paused = true)]
async fn checks_run_concurrently_and_a_hanging_one_is_cut_at_the_timeout() {
    let hang = || std::future::pending::<Result<(), Unhealthy>>();
    let client = client_with(
        Probes::new()
            .timeout(Duration::from_millis(300))
            .check("database", || async { Ok::<(), Unhealthy>(()) })
            .check("redis", hang)
            .check("search", hang),
    );

    let started = tokio::time::Instant::now();
    let response = client.get("/readyz").send().await;
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.json::<Value>();
    assert_eq!(body["message"], "not ready: redis, search failed");
    assert_eq!(
        body["details"]["checks"]["redis"],
        json!({ "status": "failed", "reason": "no answer within 300 ms" })
    );
    assert_eq!(body["details"]["checks"]["database"]["status"], "ok");
    // Two hanging checks, one timeout: they ran side by side.
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(400),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_panicking_check_fails_alone() {
    let client = client_with(
        Probes::new()
            .check("database", || async { Ok::<(), Unhealthy>(()) })
            .check("broken", || async {
                let bug = true;
                if bug {
                    panic!("a bug in the check");
                }
                Ok::<(), Unhealthy>(())
            }),
    );
    let response = client.get("/readyz").send().await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.json::<Value>()["details"]["checks"],
        json!({
            "database": { "status": "ok" },
            "broken": { "status": "failed", "reason": "the check panicked" },
        })
    );
}

/// Readiness requests that arrive while the checks run share that run.
#[tokio::test(start_paused = true)]
async fn concurrent_readiness_requests_share_one_run() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let client = client_with(Probes::new().check("database", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<(), Unhealthy>(())
        }
    }));
    // The paused clock only moves when every task waits: all five requests have joined the
    // run before its check can finish.
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/readyz").send().await.status() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn send(router: &Router, path: &str, shutdown: &Shutdown) -> (StatusCode, Value) {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    // What `serve_with` puts in every request.
    request.extensions_mut().insert(shutdown.clone());
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn readiness_fails_as_soon_as_the_shutdown_starts_and_liveness_does_not() {
    let runs = Arc::new(AtomicUsize::new(0));
    let router = App::new(routes())
        .probes(Probes::new().check("database", counted(&runs, || Ok(()))))
        .into_router();
    let shutdown = Shutdown::new();
    assert_eq!(send(&router, "/readyz", &shutdown).await.0, StatusCode::OK);

    shutdown.trigger();
    let (status, body) = send(&router, "/readyz", &shutdown).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "SHUTTING_DOWN");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "no check runs once shutting down"
    );
    assert_eq!(send(&router, "/livez", &shutdown).await.0, StatusCode::OK);

    // With no checks registered, readiness follows the shutdown alone.
    let bare = App::new(routes()).into_router();
    let shutdown = Shutdown::new();
    assert_eq!(
        send(&bare, "/readyz", &shutdown).await,
        (StatusCode::OK, json!({ "status": "ready", "checks": {} }))
    );
    shutdown.trigger();
    assert_eq!(
        send(&bare, "/readyz", &shutdown).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn paths_are_configurable_and_probes_can_be_turned_off() {
    let client = client_with(
        Probes::new()
            .liveness_path("healthz")
            .readiness_path("/internal/ready"),
    );
    assert_eq!(client.get("/healthz").send().await.status(), StatusCode::OK);
    assert_eq!(
        client.get("/internal/ready").send().await.status(),
        StatusCode::OK
    );
    assert_eq!(
        client.get("/livez").send().await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.get("/api/hello").send().await.text(),
        "hello",
        "other paths reach the routes"
    );

    let client = client_with(Probes::new().without_readiness());
    assert_eq!(client.get("/livez").send().await.status(), StatusCode::OK);
    assert_eq!(
        client.get("/readyz").send().await.status(),
        StatusCode::NOT_FOUND
    );

    let client = client_with(Probes::disabled());
    assert_eq!(
        client.get("/livez").send().await.status(),
        StatusCode::NOT_FOUND
    );
}

/// Probes are answered before the routes: a rate-limited fallback never counts them.
#[cfg(feature = "rate-limit")]
#[tokio::test]
async fn probes_never_reach_route_middleware() {
    let limited = Router::new()
        .fallback(|| async { "fallback" })
        .layer(crate::rate_limit().limit(1).window(60));
    let client = TestClient::new(App::new(limited.clone()).into_router());
    for _ in 0..5 {
        assert_eq!(client.get("/readyz").send().await.status(), StatusCode::OK);
        assert_eq!(client.get("/livez").send().await.status(), StatusCode::OK);
    }
    // The client's one request per minute is still there.
    let first = client.get("/anything").send().await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.text(), "fallback");
    assert_eq!(
        client.get("/anything").send().await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Without probes, the same paths are ordinary requests, and counted.
    let client = TestClient::new(App::new(limited).probes(Probes::disabled()).into_router());
    assert_eq!(client.get("/readyz").send().await.text(), "fallback");
    assert_eq!(
        client.get("/readyz").send().await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
