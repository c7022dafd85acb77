//! The reference app's streaming routes, in-process through `arbor::test::TestClient` (the
//! guide's "test without a running server", streams included): report progress read as typed
//! events, the per-user event stream, uploads with progress. What only TCP shows (an encoder
//! holding events back, a client that hangs up) is in `framework/tests/compression.rs` and
//! `framework/tests/sse_backpressure.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use arbor::test::{Multipart, ProgressEvent, TestClient, TestStream};
use arbor_app::AppState;
use common::{on_every_backend, Backend, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::{json, Value};

async fn app(
    backend: Backend,
    configure: impl FnOnce(&mut arbor_app::Config),
) -> (TestClient, AppState, tempfile::TempDir) {
    let (state, dir) = common::state_with(backend, configure).await;
    (TestClient::new(arbor_app::app(state.clone())), state, dir)
}

async fn login(client: &TestClient, email: &str, password: &str) -> String {
    let reply = client
        .post("/api/v1/login")
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    reply.json::<Value>()["token"].as_str().unwrap().to_owned()
}

/// Registers a user: (id, token).
async fn register(client: &TestClient, email: &str) -> (String, String) {
    let reply = client
        .post("/api/v1/register")
        .json(&json!({ "email": email, "name": "Test User", "password": "Str0ngPassword" }))
        .send()
        .await;
    assert_eq!(reply.status(), 201, "{}", reply.text());
    let body: Value = reply.json();
    (
        body["user"]["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

#[track_caller]
fn assert_event_stream(stream: &TestStream) {
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-cache"));
}

#[track_caller]
fn assert_error(reply: &arbor::test::TestResponse, status: u16, code: &str) -> Value {
    assert_eq!(reply.status().as_u16(), status, "{}", reply.text());
    let body: Value = reply.json();
    assert_eq!(body["error"], code, "{body}");
    body
}

#[tokio::test]
async fn report_generation_streams_progress_then_the_report() {
    on_every_backend(report_scenario).await;
}

async fn report_scenario(backend: Backend) {
    let (client, _state, _dir) = app(backend, |_| {}).await;
    let admin = login(&client, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, author) = register(&client, "author@example.com").await;
    for n in 0..3 {
        let created = client
            .post("/api/v1/posts")
            .bearer_auth(&author)
            .json(&json!({ "title": format!("post {n}"), "body": "b" }))
            .send()
            .await;
        assert_eq!(created.status(), 201);
    }

    let request =
        json!({ "dateRange": { "from": "2000-01-01", "to": "2100-12-31" }, "format": "json" });
    let mut stream = client
        .post("/api/v1/reports/generate")
        .bearer_auth(&admin)
        .json(&request)
        .stream()
        .await;
    assert_event_stream(&stream);
    assert_eq!(stream.next_progress().await, Some(ProgressEvent::Started));
    let mut steps = Vec::new();
    let report = loop {
        match stream
            .next_progress()
            .await
            .expect("the stream ended early")
        {
            ProgressEvent::Processing { progress, .. } => steps.push(progress),
            ProgressEvent::Complete { result } => break result,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(steps, [10, 50, 90]);
    assert_eq!(
        stream.next_progress().await,
        None,
        "nothing after `complete`"
    );
    assert_eq!(report["summary"]["newPosts"], 3);
    assert_eq!(report["summary"]["newUsers"], 2, "the admin and the author");
    assert_eq!(report["topAuthors"][0]["posts"], 3);

    // The raw events carry increasing ids.
    let events = client
        .post("/api/v1/reports/generate")
        .bearer_auth(&admin)
        .json(&request)
        .stream()
        .await
        .events()
        .await;
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let csv = json!({ "dateRange": { "from": "2000-01-01", "to": "2100-12-31" }, "format": "csv" });
    let events = client
        .post("/api/v1/reports/generate")
        .bearer_auth(&admin)
        .json(&csv)
        .stream()
        .await
        .events()
        .await;
    let last: Value = events.last().unwrap().json();
    let csv = last["result"]["csv"].as_str().unwrap();
    assert!(
        csv.starts_with("author_id,name,posts\n") && csv.contains(",Test User,3\n"),
        "{csv}"
    );

    // Validated before the stream starts; authenticated; administrators only.
    let generate = |body: Value, token: Option<&str>| {
        let request = client.post("/api/v1/reports/generate").json(&body);
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send()
    };
    let backwards =
        json!({ "dateRange": { "from": "2026-02-01", "to": "2026-01-01" }, "format": "json" });
    let invalid = generate(backwards, Some(&admin)).await;
    // The nested struct's own rule is reported on its field (validator names fields as in Rust).
    assert_eq!(
        assert_error(&invalid, 400, "VALIDATION_ERROR")["details"]["fieldErrors"]["date_range"],
        json!(["`from` must not be after `to`"])
    );
    let bad_date =
        json!({ "dateRange": { "from": "2026-02-30", "to": "2026-03-01" }, "format": "pdf" });
    assert_error(
        &generate(bad_date, Some(&admin)).await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(&generate(request.clone(), None).await, 401, "UNAUTHORIZED");
    assert_error(&generate(request, Some(&author)).await, 403, "FORBIDDEN");
}

#[tokio::test]
async fn event_stream_delivers_the_users_events_and_cleans_up() {
    let (client, state, _dir) = app(Backend::Sqlite, |_| {}).await;
    assert_error(
        &client.get("/api/v1/events").send().await,
        401,
        "UNAUTHORIZED",
    );

    let (user_id, token) = register(&client, "listener@example.com").await;
    let created = client
        .post("/api/v1/posts")
        .bearer_auth(&token)
        .json(&json!({ "title": "watched", "body": "b" }))
        .send()
        .await;
    let post_id = created.json::<Value>()["id"].as_str().unwrap().to_owned();

    let mut stream = client
        .get("/api/v1/events")
        .bearer_auth(&token)
        .stream()
        .await;
    assert_event_stream(&stream);
    let connected = stream.next_event().await.unwrap();
    assert_eq!(connected.name(), "connected");
    assert_eq!(connected.json::<Value>()["userId"], user_id);
    assert_eq!(state.events.subscriber_count(), 1);

    // An administrator edits the user's post: the user hears about it.
    let admin = login(&client, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let edited = client
        .patch(&format!("/api/v1/posts/{post_id}"))
        .bearer_auth(&admin)
        .header("if-match", "\"1\"")
        .json(&json!({ "title": "edited by admin" }))
        .send()
        .await;
    assert_eq!(edited.status(), 200, "{}", edited.text());
    let event = stream.next_event().await.unwrap();
    assert_eq!(event.name(), "post.updated");
    let data: Value = event.json();
    assert_eq!(data["id"], post_id);
    assert_eq!(data["version"], 2);
    assert!(event.id.is_some());

    // The client goes away: the subscription is gone too.
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.events.subscriber_count() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription leaked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn uploads_stream_to_storage_with_progress_and_are_served_back() {
    let (client, _state, _dir) = app(Backend::Sqlite, |config| {
        config.upload_max_bytes = 4 * 1024 * 1024;
    })
    .await;
    let (_, token) = register(&client, "uploader@example.com").await;
    let anonymous = client.clone();
    let client = client.with_bearer_auth(&token);

    let bytes: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let form = Multipart::new().file("file", "data.bin", "application/octet-stream", &bytes);
    let mut stream = client.post("/api/v1/upload").multipart(form).stream().await;
    assert_event_stream(&stream);
    assert_eq!(stream.next_progress().await, Some(ProgressEvent::Started));
    let mut processing = 0;
    let result = loop {
        match stream
            .next_progress()
            .await
            .expect("the stream ended early")
        {
            ProgressEvent::Processing { .. } => processing += 1,
            ProgressEvent::Complete { result } => break result,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(processing > 0);
    assert_eq!(result["size"], bytes.len());
    assert_eq!(result["name"], "data.bin");

    let served = client.get(result["url"].as_str().unwrap()).send().await;
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(served.bytes().as_ref(), bytes.as_slice());
    assert_error(
        &client
            .get("/api/v1/uploads/0123456789abcdef0123456789abcdef")
            .send()
            .await,
        404,
        "NOT_FOUND",
    );

    let upload = |form: Multipart| client.post("/api/v1/upload").multipart(form).send();
    let no_file = upload(Multipart::new().text("note", "hello")).await;
    assert_error(&no_file, 400, "FILE_REQUIRED");
    let exe = Multipart::new().file("file", "x.exe", "application/x-msdownload", [0u8; 10]);
    assert_error(&upload(exe).await, 415, "UNSUPPORTED_MEDIA_TYPE");
    let huge = Multipart::new().file(
        "file",
        "big.bin",
        "application/octet-stream",
        vec![1u8; 5 * 1024 * 1024],
    );
    assert_error(&upload(huge).await, 413, "PAYLOAD_TOO_LARGE");
    let anonymous = anonymous
        .post("/api/v1/upload")
        .multipart(Multipart::new().file("file", "a.bin", "application/octet-stream", [1u8; 4]))
        .send()
        .await;
    assert_error(&anonymous, 401, "UNAUTHORIZED");
}
