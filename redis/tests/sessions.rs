#![allow(clippy::unwrap_used)]

//! The Redis session store against a real Redis: the store's contract, Redis's TTL on the
//! records, and two instances of an app sharing sessions (a login on one is seen by the other;
//! "log out everywhere" on one ends the sessions the other started).

#[allow(unused_imports)]
mod support;

use std::time::Duration;

use arbor::sessions::{Session, SessionManagerLayer, SessionRecord, SessionStore};
use arbor::test::TestClient;
use arbor::Router;
use axum::routing::{get, post};
use serde_json::{json, Value};
use support::{instance, redis_url, unique_prefix};

fn record(id: &str, user: Option<&str>) -> SessionRecord {
    let mut data = serde_json::Map::new();
    data.insert("cart".into(), json!([1, { "sku": "ü" }]));
    SessionRecord {
        id: id.into(),
        user_id: user.map(Into::into),
        data,
        created_at: 1_000,
        last_seen_at: 2_000,
        expires_at: 3_000,
    }
}

#[tokio::test]
async fn redis_session_store_keeps_records_with_a_ttl_and_an_index_by_user() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("sessions");
    let stores = instance(&url, &prefix).await;
    let store = stores.sessions().clone();
    let minute = Duration::from_secs(60);
    store.save(record("a", Some("u1")), minute).await.unwrap();
    store.save(record("b", Some("u1")), minute).await.unwrap();
    store.save(record("c", None), minute).await.unwrap();
    store.save(record("d", Some("u2")), minute).await.unwrap();
    assert_eq!(
        store.load("a".into()).await.unwrap(),
        Some(record("a", Some("u1")))
    );

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}:session:a"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");

    store.delete("b".into()).await.unwrap();
    let index: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:session-user:u1"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(index, ["a"], "a deleted session leaves its user's index");
    assert_eq!(store.delete_user("u1".into()).await.unwrap(), 1);
    assert!(store.load("a".into()).await.unwrap().is_none());
    assert!(store.load("c".into()).await.unwrap().is_some());
    assert!(
        store.load("d".into()).await.unwrap().is_some(),
        "other users keep theirs"
    );
    assert_eq!(store.delete_user("nobody".into()).await.unwrap(), 0);
}

fn app(stores: &arbor_redis::RedisStores) -> TestClient {
    let router = Router::new()
        .route(
            "/login",
            post(|session: Session, user: String| async move { session.login(user).await }),
        )
        .route(
            "/me",
            get(
                |session: Session| async move { arbor::Json(json!({ "user": session.user_id() })) },
            ),
        )
        .route(
            "/logout-everywhere",
            post(|session: Session| async move {
                session.logout_everywhere().await.map(|n| n.to_string())
            }),
        )
        .layer(SessionManagerLayer::new(stores.sessions().clone()));
    TestClient::new(router)
}

#[tokio::test]
async fn two_instances_share_sessions_and_logout_everywhere() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("sessions-shared");
    let (a, b) = (
        app(&instance(&url, &prefix).await),
        app(&instance(&url, &prefix).await),
    );
    let on_a = a.post("/login").body("ada").send().await.text();
    let on_b = b.post("/login").body("ada").send().await.text();
    let user = |client: &TestClient, token: &str| {
        let request = client
            .get("/me")
            .header("authorization", &format!("Bearer {token}"));
        async move { request.send().await.json::<Value>()["user"].clone() }
    };
    assert_eq!(user(&b, &on_a).await, "ada", "a login on A is seen by B");
    assert_eq!(user(&a, &on_b).await, "ada");
    let ended = b
        .post("/logout-everywhere")
        .header("authorization", &format!("Bearer {on_a}"))
        .send()
        .await;
    assert_eq!(ended.text(), "2");
    assert!(user(&a, &on_a).await.is_null());
    assert!(user(&a, &on_b).await.is_null());
}
