//! The path, query, JSON and form extractors through the app stack: any input is answered, or
//! refused with a client-error status in the standard shape, never a 500 or a panic.
//! Fields: path segment, query, JSON body, form body.
#![no_main]

use std::sync::LazyLock;

use arbor::test::TestClient;
use arbor::{App, Form, Json, Path, Query};
use arbor_fuzz::{assert_answered_or_refused, fields};
use axum::routing::{get, post};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

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
    tags: Option<Vec<String>>,
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(arbor_fuzz::runtime);

static CLIENT: LazyLock<TestClient> = LazyLock::new(|| {
    let routes = arbor::Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<u64>| async move { id.to_string() }),
        )
        .route("/search", get(|Query(_): Query<Page>| async { "ok" }))
        .route("/json", post(|Json(_): Json<Item>| async { "ok" }))
        .route("/form", post(|Form(_): Form<Item>| async { "ok" }));
    TestClient::new(App::new(routes).body_limit(1024).into_router())
});

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let [segment, query, json, form] = fields(data, 4)[..] else {
        unreachable!()
    };
    RUNTIME.block_on(async {
        let client = &*CLIENT;
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
        let json = client
            .post("/json")
            .header("content-type", "application/json")
            .body(json.to_vec())
            .send()
            .await;
        assert_answered_or_refused(&json, &[400, 413]);
        let form = client
            .post("/form")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_vec())
            .send()
            .await;
        assert_answered_or_refused(&form, &[400, 413]);
    });
});
