//! Multipart uploads (boundary `B`, at most 1,024 bytes of `text/plain`): whatever the body, the
//! file is stored whole, or refused in the standard shape with nothing left in storage.
#![no_main]

use std::sync::LazyLock;

use arbor::test::TestClient;
use arbor::upload::{LocalStorage, Upload, UploadLimits};
use arbor::{App, Json};
use arbor_fuzz::assert_answered_or_refused;
use axum::routing::post;
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(arbor_fuzz::runtime);

fuzz_target!(|body: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalStorage::new(dir.path());
    let (status, stored) = RUNTIME.block_on(async {
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
        let stored = (response.status() == 200).then(|| response.json::<u64>());
        (response.status().as_u16(), stored)
    });
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .map(|entries| entries.filter_map(Result::ok).collect())
        .unwrap_or_default();
    match stored {
        // The file and its metadata beside it at most.
        Some(size) => assert!(
            size <= 1024 && !files.is_empty() && files.len() <= 2,
            "{files:?}"
        ),
        None => assert!(files.is_empty(), "a {status} left {files:?} behind"),
    }
});
