//! The reference app tested in-process through `arbor::test::TestClient`: no socket, as the
//! guide's "test without a running server".

#![allow(clippy::unwrap_used)]

mod common;

use arbor::test::TestClient;
use serde_json::{json, Value};

async fn client() -> (TestClient, tempfile::TempDir) {
    let (state, dir) = common::state(common::Backend::Sqlite).await;
    (TestClient::new(arbor_app::app(state)), dir)
}

#[tokio::test]
async fn handlers_answer_without_a_server() {
    let (client, _dir) = client().await;
    let response = client.get("/api/v1/items/5").send().await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>(), json!({"id": 5, "name": "item 5"}));

    let response = client
        .post("/api/hello")
        .json(&json!({"name": "Grace"}))
        .send()
        .await;
    assert_eq!(response.json::<Value>(), json!({"message": "hello, Grace"}));

    let response = client.get("/api/v1/docs/a/b").send().await;
    assert_eq!(response.json::<Value>()["slug"], json!(["a", "b"]));
}

#[tokio::test]
async fn errors_have_the_standard_shape_in_process_too() {
    let (client, _dir) = client().await;
    let response = client.delete("/api/hello").send().await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    assert_eq!(response.json::<Value>()["error"], "METHOD_NOT_ALLOWED");
}

#[test]
fn route_table_lists_every_handler_with_its_chain() {
    let routes = arbor_app::routes::ROUTES;
    let find = |method: &str, path: &str| {
        routes
            .iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("{method} {path} missing from {routes:#?}"))
    };
    assert_eq!(
        find("GET", "/api/v1/items/[id]").file,
        "app/api/v1/items/[id]/route.rs"
    );
    assert_eq!(
        find("DELETE", "/api/v1/items/[id]").middleware,
        ["arbor::csrf()"]
    );
    // Folder (outer first), then file, then fn level.
    assert_eq!(
        find("GET", "/api/v1/whoami").middleware,
        [
            "arbor::csrf()",
            "server_timing",
            "require_auth_with_state::<Sessions>"
        ]
    );
    assert_eq!(
        find("GET", "/api/v1/session").middleware,
        [
            "arbor::csrf()",
            "crate::middleware::no_store",
            "require_auth_with_state::<Sessions>"
        ]
    );
    assert_eq!(
        find("POST", "/api/v1/login").middleware,
        [
            "arbor::csrf()",
            "crate::middleware::no_store",
            "arbor::rate_limit(limit = 5, window = 60, fail_closed = true)"
        ]
    );
    assert_eq!(
        find("PATCH", "/api/v1/users/[id]").middleware,
        ["arbor::csrf()", "require_auth_with_state::<Sessions>"]
    );
    assert_eq!(
        find("GET", "/api/v1/session").file,
        "app/api/v1/(auth)/session/route.rs"
    );
    assert_eq!(find("GET", "/api/hello").middleware, &[] as &[&str]);
    assert!(routes.iter().all(|r| !r.file.contains("/_lib/")));

    let table = arbor::RouteInfo::table(routes);
    assert!(table.starts_with("METHOD"), "{table}");
    assert_eq!(table.lines().count(), routes.len() + 1);
    assert!(
        table.contains("server_timing > require_auth_with_state::<Sessions>"),
        "{table}"
    );
}
