//! The promises that the property tests (`framework/tests/properties.rs`) and the fuzz targets
//! (`fuzz/`) check, one copy for both (included with `#[path]`): each panics when its promise
//! does not hold for the input it is given.

// `pub` for the fuzz crate, which re-exports them; a test uses what it needs.
#![allow(dead_code, unreachable_pub)]

use arbor::test::{ProgressEvent, TestClient, TestResponse};
use arbor::upload::{LocalStorage, Upload, UploadLimits};
use arbor::{App, Form, Json, Path, Query};
use axum::routing::{get, post};
use serde::Deserialize;

/// A `200`, or a refusal with one of the `allowed` statuses in the standard error shape.
pub fn assert_answered_or_refused(response: &TestResponse, allowed: &[u16]) {
    let status = response.status().as_u16();
    if status == 200 {
        return;
    }
    assert!(
        allowed.contains(&status),
        "status {status}: {}",
        response.text()
    );
    let body: serde_json::Value = serde_json::from_slice(response.bytes())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()));
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    page: Option<u32>,
    q: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    name: String,
    count: u16,
}

/// An app whose routes read a path parameter, a query, a JSON body and a form body.
pub fn extractors() -> TestClient {
    let routes = arbor::Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<u64>| async move { id.to_string() }),
        )
        .route("/search", get(|Query(_): Query<Page>| async { "ok" }))
        .route("/json", post(|Json(_): Json<Item>| async { "ok" }))
        .route("/form", post(|Form(_): Form<Item>| async { "ok" }));
    TestClient::new(App::new(routes).body_limit(1024).into_router())
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// Each extractor of [`extractors`] answers its input, or refuses it as a client error.
pub async fn extractors_answer(
    client: &TestClient,
    segment: &[u8],
    query: &[u8],
    json: &[u8],
    form: &[u8],
) {
    let item = client
        .get(&format!("/items/{}", percent_encode(segment)))
        .send()
        .await;
    assert_answered_or_refused(&item, &[400, 404]);
    let search = client
        .get(&format!("/search?{}", percent_encode(query)))
        .send()
        .await;
    assert_answered_or_refused(&search, &[400]);
    for (path, content_type, body) in [
        ("/json", "application/json", json),
        ("/form", "application/x-www-form-urlencoded", form),
    ] {
        let answer = client
            .post(path)
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await;
        assert_answered_or_refused(&answer, &[400, 413]);
    }
}

/// A multipart upload (boundary `B`, at most 1,024 bytes of `text/plain`) of `body`: stored
/// whole, or refused in the standard shape with nothing left in storage.
pub async fn upload_whole_or_nothing(body: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalStorage::new(dir.path());
    let routes = arbor::Router::new().route(
        "/upload",
        post(move |request: arbor::Request| async move {
            let limits = UploadLimits::new().max_size(1024).allow(["text/plain"]);
            let upload = Upload::accept(request, &limits).await?;
            let file = upload.save(&storage, |_| {}).await?;
            Ok::<_, arbor::ApiError>(Json(file.size))
        }),
    );
    let client = TestClient::new(App::new(routes).into_router());
    let response = client
        .post("/upload")
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body.to_vec())
        .send()
        .await;
    assert_answered_or_refused(&response, &[400, 413, 415]);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .map(|entries| entries.filter_map(Result::ok).collect())
        .unwrap_or_default();
    if response.status() == 200 {
        // The file, and its metadata beside it at most.
        let size: u64 = response.json();
        assert!(
            size <= 1024 && !files.is_empty() && files.len() <= 2,
            "{files:?}"
        );
    } else {
        assert!(
            files.is_empty(),
            "a {} left {files:?} behind",
            response.status()
        );
    }
}

/// A progress stream of `steps` (percentage, message) ending in `result`, or failing with it:
/// every step and the end arrive intact, in order.
pub async fn progress_intact(steps: Vec<(u8, Option<String>)>, result: String, fails: bool) {
    let (work_steps, work_result) = (steps.clone(), result.clone());
    let routes = arbor::Router::new().route(
        "/work",
        post(move || {
            let (steps, result) = (work_steps.clone(), work_result.clone());
            async move {
                arbor::progress::stream(move |progress| async move {
                    for (percent, message) in steps {
                        match message {
                            Some(message) => progress.step(percent, message).await,
                            None => progress.processing(percent).await,
                        };
                    }
                    if fails {
                        return Err(arbor::ApiError::bad_request(result));
                    }
                    Ok(result)
                })
            }
        }),
    );
    let client = TestClient::new(App::new(routes).into_router());
    let mut stream = client.post("/work").stream().await;
    assert_eq!(stream.next_progress().await, Some(ProgressEvent::Started));
    for (percent, message) in &steps {
        assert_eq!(
            stream.next_progress().await,
            Some(ProgressEvent::Processing {
                progress: *percent,
                message: message.clone()
            })
        );
    }
    let last = stream.next_progress().await;
    if fails {
        let Some(ProgressEvent::Failed { error, message, .. }) = last else {
            panic!("{last:?}")
        };
        assert_eq!(
            (error.as_str(), message.as_str()),
            ("BAD_REQUEST", result.as_str())
        );
    } else {
        assert_eq!(
            last,
            Some(ProgressEvent::Complete {
                result: serde_json::json!(result)
            })
        );
    }
    assert_eq!(stream.next_progress().await, None);
}
