//! The database settings from the environment, through the app: a pool that has no free
//! connection answers `503`, a statement past its timeout `504`, and the read replica serves
//! the read-only calls while writes stay on the primary.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use arbor::test::TestClient;
use arbor_app::db::DbResultExt;
use common::Backend;
use serde_json::{json, Value};

#[tokio::test]
async fn a_pool_without_a_free_connection_answers_503_in_the_standard_shape() {
    let (state, _dir) = common::state_with(Backend::Sqlite, |config| {
        config.db.max_connections = Some(1);
        config.db.acquire_timeout = Duration::from_millis(500);
    })
    .await;
    let client = TestClient::new(arbor_app::app(state.clone()));
    assert_eq!(client.get("/api/v1/posts").send().await.status(), 200);

    let held = state.db.acquire().await.unwrap();
    let busy = client.get("/api/v1/posts").send().await;
    assert_eq!(busy.status(), 503, "{}", busy.text());
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(busy.json::<Value>()["error"], "DATABASE_UNAVAILABLE");
    drop(held);
    assert_eq!(client.get("/api/v1/posts").send().await.status(), 200);
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_cancelled_and_answers_504() {
    if common::postgres_url().is_none() {
        eprintln!("note: ARBOR_TEST_POSTGRES_URL not set; statement timeout test skipped");
        return;
    }
    let (state, _dir) = common::state_with(Backend::Postgres, |config| {
        config.db.statement_timeout = Some(Duration::from_millis(200));
    })
    .await;
    let (setting,): (String,) = sqlx::query_as("SELECT current_setting('statement_timeout')")
        .fetch_one(&state.db)
        .await
        .unwrap();
    assert_eq!(setting, "200ms");
    let error = sqlx::query("SELECT pg_sleep(5)")
        .execute(&state.db)
        .await
        .or_db()
        .unwrap_err();
    assert_eq!(
        (error.status().as_u16(), error.code()),
        (504, "DATABASE_TIMEOUT")
    );
    // The connection is still good afterwards.
    sqlx::query("SELECT 1").execute(&state.db).await.unwrap();
}

#[tokio::test]
async fn the_read_replica_serves_reads_and_never_writes() {
    if common::postgres_url().is_none() {
        eprintln!("note: ARBOR_TEST_POSTGRES_URL not set; read replica test skipped");
        return;
    }
    // The "replica" is the same database through connections that are read-only and named,
    // so the test can see which pool a request used and that it cannot write.
    let (state, _dir) = common::state_with(Backend::Postgres, |config| {
        let separator = if config.database_url.contains('?') { '&' } else { '?' };
        config.db.read_url = Some(format!(
            "{}{separator}application_name=arbor-replica&options=-c%20default_transaction_read_only%3Don",
            config.database_url
        ));
    })
    .await;
    let client = TestClient::new(arbor_app::app(state.clone()));
    let token = client
        .post("/api/v1/login")
        .json(&json!({ "email": common::ADMIN_EMAIL, "password": common::ADMIN_PASSWORD }))
        .send()
        .await
        .json::<Value>()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = client
        .post("/api/v1/posts")
        .header("authorization", &format!("Bearer {token}"))
        .json(&json!({ "title": "On the primary", "body": "written" }))
        .send()
        .await;
    assert_eq!(created.status(), 201, "{}", created.text());
    let list = client.get("/api/v1/posts").send().await;
    assert_eq!(list.json::<Value>()[0]["title"], "On the primary");

    let (replica_connections,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'arbor-replica' AND datname = current_database()",
    )
    .fetch_one(&state.db)
    .await
    .unwrap();
    assert!(
        replica_connections > 0,
        "the list was not read through the replica"
    );
    let write = sqlx::query("CREATE TABLE never (id INT)")
        .execute(&state.read_db)
        .await
        .unwrap_err();
    let code = match &write {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("25006"), "{write}");
    assert_eq!(client.get("/readyz").send().await.status(), 200);
}
