//! Every error leaves the app in the JSON error shape, including the rejections of axum's own
//! extractors (`axum::Json`, `String`, `Bytes`), which answer in plain text by themselves.

#![allow(clippy::unwrap_used)]

use arbor::test::TestClient;
use arbor::{App, Router};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Html;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{json, Value};

fn app() -> TestClient {
    let router = Router::new()
        .route(
            "/axum-json",
            post(|axum::Json(value): axum::Json<Value>| async move { axum::Json(value) }),
        )
        .route("/text", post(|text: String| async move { text }))
        .route(
            "/bytes",
            post(|bytes: Bytes| async move { bytes.len().to_string() }),
        )
        .route("/bare", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/plain-500",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "connection to 10.0.0.7:5432 refused",
                )
            }),
        )
        .route(
            "/retry",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, HeaderValue::from_static("3"))],
                    "down for maintenance",
                )
            }),
        )
        .route(
            "/html",
            get(|| async { (StatusCode::BAD_REQUEST, Html("<p>kept</p>")) }),
        )
        .route("/ok-text", get(|| async { "plain success stays plain" }));
    TestClient::new(App::new(router).body_limit(16).into_router())
}

#[track_caller]
fn assert_shape(response: &arbor::test::TestResponse, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body: Value = response.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test]
async fn axum_extractor_rejections_answer_in_the_standard_shape() {
    let client = app();
    let syntax = client
        .post("/axum-json")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await;
    let body = assert_shape(&syntax, 400, "BAD_REQUEST");
    // axum's own explanation is kept: it is about the client's input.
    assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");
    let media = client.post("/axum-json").body("{}").send().await;
    assert_shape(&media, 415, "UNSUPPORTED_MEDIA_TYPE");
    let too_large = client.post("/bytes").body(vec![b'x'; 64]).send().await;
    assert_shape(&too_large, 413, "PAYLOAD_TOO_LARGE");
    let not_utf8 = client.post("/text").body(vec![0xff, 0xfe]).send().await;
    assert_shape(&not_utf8, 400, "BAD_REQUEST");
}

#[tokio::test]
async fn bare_statuses_and_plain_text_errors_are_shaped_and_server_errors_leak_nothing() {
    let client = app();
    let bare = client.get("/bare").send().await;
    let body = assert_shape(&bare, 404, "NOT_FOUND");
    assert_eq!(body["message"], "Not Found");

    let internal = client.get("/plain-500").send().await;
    let body = assert_shape(&internal, 500, "INTERNAL_ERROR");
    assert_eq!(body["message"], "An unexpected error occurred");
    assert!(!internal.text().contains("10.0.0.7"));

    let retry = client.get("/retry").send().await;
    assert_shape(&retry, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(retry.header("retry-after"), Some("3"));
}

#[tokio::test]
async fn other_bodies_and_successes_pass_untouched() {
    let client = app();
    let html = client.get("/html").send().await;
    assert_eq!(html.status(), StatusCode::BAD_REQUEST);
    assert_eq!(html.text(), "<p>kept</p>");
    let ok = client.get("/ok-text").send().await;
    assert_eq!(ok.text(), "plain success stays plain");
    assert!(ok.header("content-type").unwrap().starts_with("text/plain"));
    // Arbor's own errors are already in shape, and stay as they were.
    let arbor_405 = client.post("/bare").send().await;
    assert_eq!(arbor_405.status(), StatusCode::METHOD_NOT_ALLOWED);
    let unknown = client.get("/nowhere").send().await;
    let body: Value = unknown.json();
    assert_eq!(body["error"], json!("NOT_FOUND"));
}
