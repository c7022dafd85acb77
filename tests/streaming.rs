//! The reference app's streaming routes over real TCP, reading the raw event stream: report
//! progress, the per-user event stream, uploads with progress.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{on_every_backend, Backend, Server, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn report_generation_streams_progress_then_the_report() {
    on_every_backend(report_scenario).await;
}

async fn report_scenario(backend: Backend) {
    let server = Server::start(backend).await;
    let client = server.client();
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, author) = client.register("author@example.com").await;
    for n in 0..3 {
        let created = client
            .json(
                Method::POST,
                "/api/v1/posts",
                Some(&author),
                json!({ "title": format!("post {n}"), "body": "b" }),
            )
            .await;
        assert_eq!(created.status, 201);
    }

    let request =
        json!({ "dateRange": { "from": "2000-01-01", "to": "2100-12-31" }, "format": "json" });
    let events = client
        .send(
            client
                .request(Method::POST, "/api/v1/reports/generate")
                .bearer_auth(&admin)
                .json(&request),
        )
        .await
        .events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "started",
            "processing",
            "processing",
            "processing",
            "complete"
        ],
        "{events:#?}"
    );
    let progress: Vec<i64> = events
        .iter()
        .map(|e| e.data["progress"].as_i64().unwrap())
        .collect();
    assert_eq!(progress, [0, 10, 50, 90, 100]);
    let ids: Vec<u64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let report = &events[4].data["result"];
    assert_eq!(report["summary"]["newPosts"], 3);
    assert_eq!(report["summary"]["newUsers"], 2, "the admin and the author");
    assert_eq!(report["topAuthors"][0]["posts"], 3);

    let csv = json!({ "dateRange": { "from": "2000-01-01", "to": "2100-12-31" }, "format": "csv" });
    let events = client
        .send(
            client
                .request(Method::POST, "/api/v1/reports/generate")
                .bearer_auth(&admin)
                .json(&csv),
        )
        .await
        .events();
    let csv = events.last().unwrap().data["result"]["csv"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        csv.starts_with("author_id,name,posts\n") && csv.contains(",Test User,3\n"),
        "{csv}"
    );

    // Validated before the stream starts; authenticated; administrators only.
    let backwards =
        json!({ "dateRange": { "from": "2026-02-01", "to": "2026-01-01" }, "format": "json" });
    let invalid = client
        .json(
            Method::POST,
            "/api/v1/reports/generate",
            Some(&admin),
            backwards,
        )
        .await;
    // The nested struct's own rule is reported on its field (validator names fields as in Rust).
    assert_eq!(
        invalid.error(400, "VALIDATION_ERROR")["details"]["fieldErrors"]["date_range"],
        json!(["`from` must not be after `to`"])
    );
    let bad_date =
        json!({ "dateRange": { "from": "2026-02-30", "to": "2026-03-01" }, "format": "pdf" });
    let invalid = client
        .json(
            Method::POST,
            "/api/v1/reports/generate",
            Some(&admin),
            bad_date,
        )
        .await;
    invalid.error(400, "VALIDATION_ERROR");
    client
        .json(
            Method::POST,
            "/api/v1/reports/generate",
            None,
            request.clone(),
        )
        .await
        .error(401, "UNAUTHORIZED");
    client
        .json(
            Method::POST,
            "/api/v1/reports/generate",
            Some(&author),
            request,
        )
        .await
        .error(403, "FORBIDDEN");
}

#[tokio::test]
async fn event_stream_delivers_the_users_events_and_cleans_up() {
    let server = Server::start(Backend::Sqlite).await;
    let client = server.client();
    client
        .get("/api/v1/events", None)
        .await
        .error(401, "UNAUTHORIZED");

    let (user_id, token) = client.register("listener@example.com").await;
    let created = client
        .json(
            Method::POST,
            "/api/v1/posts",
            Some(&token),
            json!({ "title": "watched", "body": "b" }),
        )
        .await;
    let post_id = created.body["id"].as_str().unwrap().to_owned();

    let mut stream = client
        .events(
            client
                .request(Method::GET, "/api/v1/events")
                .bearer_auth(&token),
        )
        .await;
    let connected = stream.next().await;
    assert_eq!(connected.name, "connected");
    assert_eq!(connected.data["userId"], user_id);
    assert_eq!(server.state.events.subscriber_count(), 1);

    // An administrator edits the user's post: the user hears about it.
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let edited = client
        .send(
            client
                .request(Method::PATCH, &format!("/api/v1/posts/{post_id}"))
                .bearer_auth(&admin)
                .header("if-match", "\"1\"")
                .json(&json!({ "title": "edited by admin" })),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.text);
    let event = stream.next().await;
    assert_eq!(event.name, "post.updated");
    assert_eq!(event.data["id"], post_id);
    assert_eq!(event.data["version"], 2);
    assert!(event.id.is_some());

    // The client goes away: the subscription is gone too.
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.state.events.subscriber_count() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription leaked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn uploads_stream_to_storage_with_progress_and_are_served_back() {
    let server = Server::start_with(Backend::Sqlite, |config| {
        config.upload_max_bytes = 4 * 1024 * 1024
    })
    .await;
    let client = server.client();
    let (_, token) = client.register("uploader@example.com").await;

    let bytes: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone())
            .file_name("data.bin")
            .mime_str("application/octet-stream")
            .unwrap(),
    );
    let events = client
        .send(
            client
                .request(Method::POST, "/api/v1/upload")
                .bearer_auth(&token)
                .multipart(form),
        )
        .await
        .events();
    assert_eq!(events.first().unwrap().name, "started");
    assert!(events.iter().any(|e| e.name == "processing"), "{events:#?}");
    let complete = events.last().unwrap();
    assert_eq!(complete.name, "complete", "{events:#?}");
    let result = &complete.data["result"];
    assert_eq!(result["size"], bytes.len());
    assert_eq!(result["name"], "data.bin");
    let url = result["url"].as_str().unwrap();

    let served = client.get(url, None).await;
    served.expect_status(200);
    served.expect_header("content-type", "application/octet-stream");
    assert_eq!(served.bytes.as_ref(), bytes.as_slice());
    client
        .get("/api/v1/uploads/0123456789abcdef0123456789abcdef", None)
        .await
        .error(404, "NOT_FOUND");

    let upload = |part: reqwest::multipart::Part, field: &'static str| {
        client
            .request(Method::POST, "/api/v1/upload")
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part(field, part))
    };
    let no_file = client
        .send(upload(reqwest::multipart::Part::text("hello"), "note"))
        .await;
    no_file.error(400, "FILE_REQUIRED");
    let exe = reqwest::multipart::Part::bytes(vec![0u8; 10])
        .file_name("x.exe")
        .mime_str("application/x-msdownload")
        .unwrap();
    client
        .send(upload(exe, "file"))
        .await
        .error(415, "UNSUPPORTED_MEDIA_TYPE");
    let huge = reqwest::multipart::Part::bytes(vec![1u8; 5 * 1024 * 1024])
        .file_name("big.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    client
        .send(upload(huge, "file"))
        .await
        .error(413, "PAYLOAD_TOO_LARGE");
    let anonymous = client.request(Method::POST, "/api/v1/upload").multipart(
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(vec![1u8; 4])),
    );
    client.send(anonymous).await.error(401, "UNAUTHORIZED");
}
