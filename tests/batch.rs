//! `/api/batch`, in-process through `arbor::test::TestClient`, on SQLite and (when the test
//! command starts one) PostgreSQL: results in order, the caller's authentication and every
//! route's middleware and validation applied per operation, and the refusals.

#![allow(clippy::unwrap_used)]

mod common;

use common::{on_every_backend, App, Backend, Client, Reply, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

async fn batch(client: &Client, token: Option<&str>, operations: Value) -> Reply {
    client
        .json(
            Method::POST,
            "/api/batch",
            token,
            json!({ "operations": operations }),
        )
        .await
}

/// The results of a batch that itself succeeded.
fn ok_results(reply: &Reply) -> &Vec<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.body["results"].as_array().unwrap()
}

/// Asserts one operation's result has the standard error shape.
fn assert_error(result: &Value, status: u16, code: &str) {
    assert_eq!(result["status"], status, "{result}");
    assert_eq!(result["body"]["error"], code, "{result}");
    assert!(
        result["body"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{result}"
    );
}

#[tokio::test]
async fn mixed_results_come_back_in_request_order() {
    on_every_backend(mixed_scenario).await;
}

async fn mixed_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let reply = batch(
        &client,
        Some(&admin),
        json!([
            { "method": "GET", "path": "/api/v1/whoami" },
            { "method": "post", "path": "/api/v1/posts", "body": { "title": "First", "body": "Hello" } },
            { "method": "POST", "path": "/api/v1/posts", "body": { "title": "" } },
            { "method": "GET", "path": "/api/v1/users/nope" },
            { "method": "GET", "path": "/api/v1/posts?limit=abc" },
            { "method": "PUT", "path": "/api/hello" },
            { "method": "POST", "path": "/api/graphql", "body": { "query": "{ users { name posts { title } } }" } },
            { "method": "GET", "path": "/api/v1/posts" },
            { "method": "HEAD", "path": "/api/hello" },
        ]),
    )
    .await;
    let results = ok_results(&reply);
    assert_eq!(results.len(), 9);
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[0]["body"]["email"], ADMIN_EMAIL);
    assert_eq!(results[1]["status"], 201, "{}", results[1]);
    assert_eq!(results[1]["headers"]["etag"], "\"1\"");
    let post_id = results[1]["body"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        results[1]["headers"]["location"],
        format!("/api/v1/posts/{post_id}")
    );
    let invalid = &results[2];
    assert_error(invalid, 400, "VALIDATION_ERROR");
    assert!(
        invalid["body"]["details"]["fieldErrors"]["title"].is_array()
            || invalid["body"]["details"]["fieldErrors"]["body"].is_array(),
        "{invalid}"
    );
    assert_error(&results[3], 404, "NOT_FOUND");
    assert_error(&results[4], 400, "VALIDATION_ERROR");
    assert_error(&results[5], 405, "METHOD_NOT_ALLOWED");
    assert_eq!(results[6]["status"], 200);
    assert_eq!(
        results[6]["body"]["data"]["users"][0]["posts"][0]["title"], "First",
        "{}",
        results[6]
    );
    // Operations run in order: the listing sees the post created three operations earlier.
    assert_eq!(
        results[7]["body"][0]["id"],
        post_id.as_str(),
        "{}",
        results[7]
    );
    assert_eq!(results[8]["status"], 200);
    assert_eq!(results[8]["body"], Value::Null);

    // Per-operation headers: optimistic locking works through a batch.
    let path = format!("/api/v1/posts/{post_id}");
    let reply = batch(
        &client,
        Some(&admin),
        json!([
            { "method": "PATCH", "path": path, "body": { "title": "No precondition" } },
            { "method": "PATCH", "path": path, "headers": { "If-Match": "\"1\"" }, "body": { "title": "Second" } },
            { "method": "PATCH", "path": path, "headers": { "if-match": "\"1\"" }, "body": { "title": "Stale" } },
            { "method": "GET", "path": path },
        ]),
    )
    .await;
    let results = ok_results(&reply);
    assert_error(&results[0], 428, "PRECONDITION_REQUIRED");
    assert_eq!(results[1]["status"], 200, "{}", results[1]);
    assert_eq!(results[1]["headers"]["etag"], "\"2\"");
    assert_error(&results[2], 409, "CONFLICT");
    assert_eq!(results[3]["body"]["title"], "Second");
    assert_eq!(results[3]["body"]["version"], 2);
}

#[tokio::test]
async fn the_callers_authentication_applies_to_each_operation() {
    on_every_backend(auth_scenario).await;
}

async fn auth_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (user_id, user) = client
        .register(&format!(
            "batch-{}@example.com",
            uuid::Uuid::new_v4().simple()
        ))
        .await;
    let operations = json!([
        { "method": "GET", "path": "/api/v1/whoami" },
        { "method": "GET", "path": "/api/v1/users" },
        { "method": "POST", "path": "/api/v1/posts", "body": { "title": "t", "body": "b" } },
        { "method": "GET", "path": "/api/hello" },
    ]);

    // Anonymous: a failing operation does not fail the batch.
    let anonymous = batch(&client, None, operations.clone()).await;
    let results = ok_results(&anonymous);
    assert_error(&results[0], 401, "UNAUTHORIZED");
    assert_error(&results[1], 401, "UNAUTHORIZED");
    assert_error(&results[2], 401, "UNAUTHORIZED");
    assert_eq!(results[3]["status"], 200);

    // A user: signed in, but not an administrator.
    let as_user = batch(&client, Some(&user), operations.clone()).await;
    let results = ok_results(&as_user);
    assert_eq!(results[0]["body"]["id"], user_id.as_str());
    assert_error(&results[1], 403, "FORBIDDEN");
    assert_eq!(results[2]["status"], 201);
    assert_eq!(results[2]["body"]["authorId"], user_id.as_str());

    let as_admin = batch(&client, Some(&admin), operations.clone()).await;
    let results = ok_results(&as_admin);
    assert_eq!(results[0]["body"]["email"], ADMIN_EMAIL);
    assert_eq!(results[1]["status"], 200);
    assert_eq!(results[1]["body"]["pagination"]["total"], 2);

    // The session cookie is passed on, and so are Origin and Host for the CSRF check.
    let host = client.base.trim_start_matches("http://").to_owned();
    let cookie = format!("arbor_session={user}");
    let body = json!({ "operations": [{ "method": "POST", "path": "/api/v1/posts", "body": { "title": "c", "body": "b" } }] });
    let request = client
        .http
        .post(client.url("/api/batch"))
        .header("cookie", &cookie);
    let same_site = client
        .send(
            request
                .header("origin", format!("http://{host}"))
                .json(&body),
        )
        .await;
    assert_eq!(
        ok_results(&same_site)[0]["status"],
        201,
        "{}",
        same_site.text
    );
    let request = client
        .http
        .post(client.url("/api/batch"))
        .header("cookie", &cookie);
    client
        .send(request.header("origin", "https://evil.example").json(&body))
        .await
        .error(403, "CSRF_FAILED");

    // An operation cannot claim other credentials.
    let spoofed = batch(
        &client,
        Some(&user),
        json!([
            { "method": "GET", "path": "/api/v1/users", "headers": { "Authorization": format!("Bearer {admin}") } },
            { "method": "GET", "path": "/api/v1/users", "headers": { "cookie": format!("arbor_session={admin}") } },
        ]),
    )
    .await;
    for result in ok_results(&spoofed) {
        assert_error(result, 400, "BAD_REQUEST");
    }
}

#[tokio::test]
async fn route_middleware_runs_per_operation_on_the_same_router() {
    on_every_backend(rate_limit_scenario).await;
}

async fn rate_limit_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    // Login allows 5 attempts a minute per client: the sixth operation is limited, and the
    // limiter is the one HTTP requests use (the same router), so a plain login is limited too.
    let attempt = json!({ "method": "POST", "path": "/api/v1/login", "body": { "email": ADMIN_EMAIL, "password": "Wrong-passw0rd" } });
    let reply = batch(&client, None, Value::Array(vec![attempt; 6])).await;
    let results = ok_results(&reply);
    for result in &results[..5] {
        assert_error(result, 401, "UNAUTHORIZED");
    }
    assert_error(&results[5], 429, "RATE_LIMITED");
    assert!(
        results[5]["headers"]["retry-after"].is_string(),
        "{}",
        results[5]
    );
    let direct = client
        .json(
            Method::POST,
            "/api/v1/login",
            None,
            json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(direct.status, 429, "{}", direct.text);
}

#[tokio::test]
async fn bad_batches_and_refused_operations() {
    let server = App::start(Backend::Sqlite).await;
    let client = server.client();
    let hello = json!({ "method": "GET", "path": "/api/hello" });

    for operations in [json!([]), Value::Array(vec![hello.clone(); 11])] {
        let reply = batch(&client, None, operations).await;
        let details = &reply.error(400, "VALIDATION_ERROR")["details"]["fieldErrors"];
        assert!(details.get("operations").is_some(), "{}", reply.text);
    }
    let ten = batch(&client, None, Value::Array(vec![hello.clone(); 10])).await;
    assert_eq!(ok_results(&ten).len(), 10);
    for body in [
        json!({}),
        json!({ "operations": "GET /api/hello" }),
        json!({ "operations": [{ "path": "/api/hello" }] }),
    ] {
        client
            .json(Method::POST, "/api/batch", None, body)
            .await
            .error(400, "VALIDATION_ERROR");
    }
    let not_json = client
        .send(
            client
                .http
                .post(client.url("/api/batch"))
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    not_json.error(400, "INVALID_JSON");

    let refused = [
        "/api/batch",
        "/api/batch/",
        "/api/batch?x=1",
        "/",
        "/etc/passwd",
        "api/hello",
        "/apix/hello",
        "http://127.0.0.1/api/hello",
        "//evil.example/api/hello",
        "/api/../api/batch",
        "/api/./hello",
        "/api//batch",
    ];
    for paths in refused.chunks(6) {
        let operations: Vec<_> = paths
            .iter()
            .map(|path| json!({ "method": "GET", "path": path }))
            .collect();
        let reply = batch(&client, None, Value::Array(operations)).await;
        let results = ok_results(&reply);
        assert_eq!(results.len(), paths.len());
        for (path, result) in paths.iter().zip(results) {
            assert_error(result, 400, "BAD_REQUEST");
            let message = result["body"]["message"].as_str().unwrap();
            if path.starts_with("/api/batch") {
                assert!(message.contains("Nested batch"), "{path}: {message}");
            }
        }
    }

    let reply = batch(
        &client,
        None,
        json!([
            { "method": "TRACE", "path": "/api/hello" },
            { "method": "CONNECT", "path": "/api/hello" },
            { "method": "GET", "path": "/api/hello", "headers": { "host": "evil.example" } },
            { "method": "GET", "path": "/api/hello", "headers": { "accept": 7 } },
            hello,
        ]),
    )
    .await;
    let results = ok_results(&reply);
    for result in &results[..4] {
        assert_error(result, 400, "BAD_REQUEST");
    }
    assert_eq!(results[4]["status"], 200);
}

#[tokio::test]
async fn responses_become_results() {
    use arbor::http::{header, StatusCode};
    use arbor::IntoResponse;
    use arbor_app::batch::{result, MAX_OPERATION_RESPONSE_BYTES};

    let text = result((StatusCode::ACCEPTED, "plain text").into_response()).await;
    assert_eq!((text.status, text.body), (202, json!("plain text")));
    let empty = result(StatusCode::NO_CONTENT.into_response()).await;
    assert_eq!((empty.status, empty.body), (204, Value::Null));
    let binary = result(vec![0xff_u8, 0xfe, 0x00].into_response()).await;
    assert_eq!((binary.status, binary.body), (200, Value::Null));
    let bad_json =
        result(([(header::CONTENT_TYPE, "application/json")], "{").into_response()).await;
    assert_eq!(bad_json.body, json!("{"));
    let problem = result(
        (
            [(header::CONTENT_TYPE, "application/problem+json")],
            r#"{"a":1}"#,
        )
            .into_response(),
    )
    .await;
    assert_eq!(problem.body, json!({ "a": 1 }));

    let stream =
        result(([(header::CONTENT_TYPE, "text/event-stream")], "data: 1\n\n").into_response())
            .await;
    assert_eq!(stream.status, 400);
    assert_eq!(stream.body["error"], "BAD_REQUEST");
    assert!(stream.body["message"]
        .as_str()
        .unwrap()
        .contains("event-stream"));
    let huge = result(vec![b'a'; MAX_OPERATION_RESPONSE_BYTES + 1].into_response()).await;
    assert_eq!(huge.status, 500);
    assert_eq!(huge.body["error"], "RESPONSE_TOO_LARGE");
    let largest = result(vec![b'a'; MAX_OPERATION_RESPONSE_BYTES].into_response()).await;
    assert_eq!(largest.status, 200);
}
