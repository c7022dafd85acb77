//! End-to-end tests: the reference app served over real TCP, driven by the shared HTTP client.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, Client, Server};
use reqwest::Method;
use serde_json::json;

/// The app on SQLite, and a client for it. Keep the server alive.
async fn start() -> (Server, Client) {
    let server = Server::start(Backend::Sqlite).await;
    let client = server.client();
    (server, client)
}

/// Registers a user and returns their bearer token.
async fn bearer(client: &Client) -> String {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    client.register(&email).await.1
}

#[tokio::test]
async fn every_segment_kind_routes_and_decodes() {
    let (_server, client) = start().await;

    let hello = client.get("/api/hello", None).await;
    assert_eq!(hello.status, 200);
    // The app runs inside Arbor's stack: every answer carries a request id.
    assert!(hello
        .header("x-request-id")
        .is_some_and(|id| id.len() == 36));
    hello.expect_header("content-type", "application/json");
    hello.expect_json(200, &json!({"message": "hello"}));

    client
        .get("/api/v1/items/42", None)
        .await
        .expect_json(200, &json!({"id": 42, "name": "item 42"}));

    client
        .get("/api/v1/files/a%2Fb/c%20d/e", None)
        .await
        .expect_json(200, &json!({"segments": ["a/b", "c d", "e"]}));
    client
        .get("/api/v1/files", None)
        .await
        .error(404, "NOT_FOUND");

    let index = client.get("/api/v1/docs", None).await;
    index.expect_json(200, &json!({"page": "index"}));
    // `REVALIDATE` (60 s, five minutes stale-while-revalidate) says so to CDNs too.
    assert_eq!(
        index.header("cache-control"),
        Some("public, s-maxage=60, stale-while-revalidate=300")
    );
    client
        .get("/api/v1/docs/guide/intro", None)
        .await
        .expect_json(
            200,
            &json!({"page": "guide/intro", "slug": ["guide", "intro"]}),
        );

    let internal = client.get("/api/_internal", None).await;
    assert_eq!(internal.status, 200);
    assert_eq!(internal.json()["status"], "ok");

    // The group adds nothing to the URL; the private folder is never routed.
    client
        .get("/api/v1/(auth)/session", None)
        .await
        .error(404, "NOT_FOUND");
    client.get("/api/_lib", None).await.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn bad_params_are_400_in_the_standard_shape() {
    let (_server, client) = start().await;
    let reply = client.get("/api/v1/items/abc", None).await;
    let body = reply.error(400, "INVALID_PATH_PARAMS");
    assert_eq!(body["details"]["param"], "id");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("`abc` is not a valid u64"),
        "{body}"
    );

    let reply = client.get("/api/v1/items/%FF", None).await;
    assert_eq!(
        reply.error(400, "INVALID_PATH_PARAMS")["details"]["param"],
        "id"
    );

    let reply = client
        .get("/api/v1/items/99999999999999999999999", None)
        .await;
    assert_eq!(
        reply.error(400, "INVALID_PATH_PARAMS")["details"]["param"],
        "id"
    );
}

#[tokio::test]
async fn methods_405_head_and_options() {
    let (_server, client) = start().await;

    let patch = client.call(Method::PATCH, "/api/hello").await;
    patch.error(405, "METHOD_NOT_ALLOWED");
    patch.expect_header("allow", "GET, HEAD, POST, OPTIONS");

    let put = client.call(Method::PUT, "/api/v1/items/1").await;
    put.error(405, "METHOD_NOT_ALLOWED");
    put.expect_header("allow", "GET, HEAD, DELETE, OPTIONS");

    let head = client.call(Method::HEAD, "/api/hello").await;
    head.expect(200, "");
    head.expect_header("content-type", "application/json");
    head.expect_header("content-length", "19");

    let options = client.call(Method::OPTIONS, "/api/v1/items/7").await;
    options.expect(204, "");
    options.expect_header("allow", "GET, HEAD, DELETE, OPTIONS");

    client
        .call(Method::DELETE, "/api/v1/items/7")
        .await
        .expect_json(200, &json!({"deleted": 7}));

    client
        .send(
            client
                .request(Method::POST, "/api/hello")
                .header("content-type", "application/json")
                .body(r#"{"name":"Ada"}"#),
        )
        .await
        .expect_json(200, &json!({"message": "hello, Ada"}));
}

#[tokio::test]
async fn unknown_paths_are_json_404_and_trailing_slashes_redirect() {
    let (_server, client) = start().await;
    let reply = client.get("/api/does/not/exist", None).await;
    let body = reply.error(404, "NOT_FOUND");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("/api/does/not/exist"));

    let redirect = client.get("/api/hello/?x=1", None).await;
    redirect.expect_status(308);
    redirect.expect_header("location", "/api/hello?x=1");
}

#[tokio::test]
async fn fn_level_chain_runs_first_listed_outermost() {
    let (_server, client) = start().await;

    // `require_token` ends the request early; `server_timing`, listed first, still wraps it.
    let denied = client.get("/api/v1/whoami", None).await;
    denied.error(401, "UNAUTHORIZED");
    denied.expect_header("www-authenticate", "Bearer");
    assert!(denied
        .header("server-timing")
        .is_some_and(|v| v.starts_with("app;dur=")));

    client
        .get("/api/v1/whoami", Some("nope"))
        .await
        .error(401, "UNAUTHORIZED");

    let bearer = bearer(&client).await;
    let allowed = client.get("/api/v1/whoami", Some(&bearer)).await;
    allowed.expect_status(200);
    assert_eq!(allowed.json()["role"], "user");
    assert!(allowed.header("server-timing").is_some());
}

#[tokio::test]
async fn folder_middleware_wraps_every_answer_of_the_group() {
    let (_server, client) = start().await;
    let bearer = bearer(&client).await;
    let ok = client.get("/api/v1/session", Some(&bearer)).await;
    ok.expect_status(200);
    assert_eq!(ok.json()["credential"], "bearer");
    ok.expect_header("cache-control", "no-store");

    // Folder middleware is outside the handler's own chain, so it sees the early 401 too,
    // and it also wraps the automatic OPTIONS. A method the route does not have is refused
    // with 405 before any middleware.
    let denied = client.get("/api/v1/session", None).await;
    denied.error(401, "UNAUTHORIZED");
    denied.expect_header("cache-control", "no-store");
    let options = client.call(Method::OPTIONS, "/api/v1/session").await;
    options.expect_status(204);
    options.expect_header("cache-control", "no-store");
    let post = client.call(Method::POST, "/api/v1/session").await;
    post.error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(
        post.header("cache-control"),
        None,
        "no middleware saw the 405"
    );

    // Routes outside the group are untouched.
    assert_eq!(
        client.get("/api/hello", None).await.header("cache-control"),
        None
    );
}
