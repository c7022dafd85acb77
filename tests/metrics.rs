//! The reference app's `/metrics` over TCP: the series its routes and middleware produce, the
//! database pool and build gauges, the endpoint on a listener of its own (a real process), and
//! the Grafana dashboard in `docs/grafana/`, whose every query must name a metric the app
//! exports.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use reqwest::Method;
use serde_json::{json, Value};

use common::process::AppProcess;
use common::{Backend, Client, ADMIN_EMAIL, ADMIN_PASSWORD};

/// The app with its metrics on the main port, over TCP, with Redis stores when the test
/// command provides a server (so that the Redis panels have data).
async fn start() -> (Client, tempfile::TempDir) {
    // Before the state connects to Redis, which registers its metrics with the recorder.
    arbor::metrics::Metrics::install().map(drop).unwrap();
    let redis_url = std::env::var("ARBOR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let (state, dir) = common::state_with(Backend::Sqlite, |config| {
        config.redis_url = redis_url;
        config.redis_prefix = Some(format!("metrics:{}", uuid::Uuid::new_v4().simple()));
    })
    .await;
    let metrics = arbor_app::metrics::metrics(&state).unwrap();
    let app = arbor::App::new(arbor_app::router(state.clone()))
        .stores(state.stores.clone())
        .metrics(metrics)
        .into_router();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(arbor::serve(listener, app));
    (Client::new(base), dir)
}

/// Exercises every kind of metric: routes, unmatched paths, the cache, a rate limit, an
/// idempotent replay, an SSE stream with an event, and an upload.
async fn exercise(client: &Client) {
    client.get("/api/hello", None).await.expect_status(200);
    client.get("/no/such/page", None).await.expect_status(404);
    for _ in 0..2 {
        client
            .get("/api/v1/docs/guide/intro", None)
            .await
            .expect_status(200);
    }
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // The administrator's login took one of the five a minute: the fifth of these is refused.
    for _ in 0..5 {
        client
            .json(
                Method::POST,
                "/api/v1/login",
                None,
                json!({ "email": "nobody@example.com", "password": "wrong-password" }),
            )
            .await;
    }
    let create = || {
        client
            .request(Method::POST, "/api/v1/posts")
            .bearer_auth(&admin)
            .header("idempotency-key", "metrics-once")
            .json(&json!({ "title": "counted", "body": "b" }))
    };
    let created = client.send(create()).await;
    created.expect_status(201);
    client.send(create()).await.expect_status(201);
    let post_id = created.json()["id"].as_str().unwrap().to_owned();

    let mut stream = client
        .events(
            client
                .request(Method::GET, "/api/v1/events")
                .bearer_auth(&admin),
        )
        .await;
    assert_eq!(stream.next().await.name, "connected");
    client
        .send(
            client
                .request(Method::PATCH, &format!("/api/v1/posts/{post_id}"))
                .bearer_auth(&admin)
                .header("if-match", "\"1\"")
                .json(&json!({ "title": "watched" })),
        )
        .await
        .expect_status(200);
    assert_eq!(stream.next().await.name, "post.updated");

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![7u8; 4096])
            .file_name("counted.bin")
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    let uploaded = client
        .send(
            client
                .request(Method::POST, "/api/v1/upload")
                .bearer_auth(&admin)
                .multipart(form),
        )
        .await;
    assert_eq!(uploaded.events().last().unwrap().name, "complete");
    drop(stream);
}

/// The sample names of an exposition (`name` of `name{labels} value`).
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

fn sample(exposition: &str, name: &str, labels: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|line| line.starts_with(name) && line.contains(labels))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn the_app_exports_its_routes_middleware_pool_and_build_and_all_the_dashboard_needs() {
    let (client, _dir) = start().await;
    exercise(&client).await;
    let scrape = client.get("/metrics", None).await;
    scrape.expect_status(200);
    let exposition = scrape.text.clone();

    let count = "http_server_request_duration_seconds_count";
    assert_eq!(
        sample(
            &exposition,
            count,
            r#"route="/api/hello",method="GET",status="2xx""#
        ),
        Some(1.0),
        "{exposition}"
    );
    assert!(sample(
        &exposition,
        count,
        r#"route="unmatched",method="GET",status="4xx""#
    )
    .is_some_and(|n| n >= 1.0));
    assert!(!exposition.contains("/no/such/page"));
    assert_eq!(
        sample(
            &exposition,
            "arbor_rate_limit_rejections_total",
            r#"route="/api/v1/login""#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&exposition, "arbor_cache_lookups_total", r#"result="hit""#),
        Some(1.0)
    );
    assert_eq!(
        sample(&exposition, "arbor_idempotency_replays_total", ""),
        Some(1.0)
    );
    assert!(sample(&exposition, "arbor_sse_events_sent_total", "").is_some_and(|n| n >= 1.0));
    assert_eq!(
        sample(&exposition, "arbor_upload_bytes_total", ""),
        Some(4096.0)
    );
    // SQLite's pool holds at most 8 connections; some are open after the requests above.
    assert_eq!(
        sample(&exposition, "arbor_db_pool_max_connections", ""),
        Some(8.0)
    );
    let idle = sample(&exposition, "arbor_db_pool_connections", r#"state="idle""#).unwrap();
    let in_use = sample(
        &exposition,
        "arbor_db_pool_connections",
        r#"state="in_use""#,
    )
    .unwrap();
    assert!((1.0..=8.0).contains(&(idle + in_use)), "{idle} + {in_use}");
    let version = format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"));
    assert_eq!(sample(&exposition, "arbor_build_info", &version), Some(1.0));

    // The dashboard: every query names a metric exported above.
    let exported = sample_names(&exposition);
    let redis = std::env::var("ARBOR_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana/arbor-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            queries += 1;
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|word| word.starts_with("arbor_") || word.starts_with("http_"))
                .collect();
            assert!(!names.is_empty(), "{expr} names no metric");
            for name in names {
                if name.starts_with("arbor_redis_") && !redis {
                    eprintln!("note: no Redis configured; {name} not checked");
                    continue;
                }
                assert!(
                    exported.contains(name),
                    "panel {:?}: {name} is not exported; the app exports {exported:?}",
                    panel["title"]
                );
            }
        }
    }
    assert!(queries >= 10, "{queries}");
}

#[tokio::test]
async fn the_endpoint_can_move_to_a_listener_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppProcess::spawn(
        &[
            ("ARBOR_METRICS", "127.0.0.1:0".into()),
            ("RUST_LOG", "info".into()),
            (
                "DATABASE_URL",
                format!("sqlite://{}/app.db?mode=rwc", dir.path().display()),
            ),
        ],
        dir.path(),
    );
    // Printed before the main port's line.
    let metrics = app.url_after("metrics on http://").await;
    app.listening().await;
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(get(app.url("/api/hello")).await.0, 200);
    let (status, exposition) = get(metrics).await;
    assert_eq!(status, 200);
    assert!(exposition.contains(r#"route="/api/hello""#), "{exposition}");
    // The main port no longer answers it: only the routes do, and they have no such path.
    assert_eq!(get(app.url("/metrics")).await.0, 404);
}
