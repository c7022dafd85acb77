#![allow(clippy::unwrap_used)]

//! Cookies, sessions and CSRF over real TCP, seen by a real HTTP client (reqwest with its
//! cookie store, which honours `Max-Age`, `Path` and removal the way a browser does); the SQL
//! session store on SQLite, and on PostgreSQL when `ARBOR_TEST_POSTGRES_URL` is set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arbor::cookies::{Cookie, CookieConfig, Cookies};
use arbor::sessions::{SessionManagerLayer, SessionRecord, SessionStore, SqlStore};
use arbor::{ApiError, Router};
use axum::routing::{get, post};
use serde_json::{json, Value};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(arbor::serve(listener, router));
    format!("http://{address}")
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn cookie_attributes_reach_the_client_and_removal_deletes_the_cookie() {
    let router = Router::new()
        .route(
            "/theme",
            post(|mut jar: Cookies| async move {
                jar.add(Cookie::new("theme", "dark"));
                jar
            })
            .get(|jar: Cookies| async move { jar.value("theme").unwrap_or("none").to_owned() })
            .delete(|mut jar: Cookies| async move {
                jar.remove("theme");
                jar
            }),
        )
        .layer(CookieConfig::new().secure(false).into_layer());
    let base = serve(router).await;
    let client = browser();

    let set = client.post(format!("{base}/theme")).send().await.unwrap();
    let header = set_cookies(&set).join("\n");
    for attribute in ["theme=dark", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(header.contains(attribute), "{attribute}: {header}");
    }
    assert!(!header.contains("Secure"), "development config: {header}");
    let read = client.get(format!("{base}/theme")).send().await.unwrap();
    assert_eq!(
        read.text().await.unwrap(),
        "dark",
        "the client sent it back"
    );

    let removed = client.delete(format!("{base}/theme")).send().await.unwrap();
    assert!(set_cookies(&removed).join("").contains("Max-Age=0"));
    let read = client.get(format!("{base}/theme")).send().await.unwrap();
    assert_eq!(read.text().await.unwrap(), "none", "the client dropped it");
}

#[tokio::test]
async fn secure_cookies_by_default() {
    let router = Router::new().route(
        "/c",
        get(|mut jar: Cookies| async move {
            jar.add(Cookie::new("c", "1"));
            jar
        }),
    );
    let base = serve(router).await;
    let response = reqwest::get(format!("{base}/c")).await.unwrap();
    assert!(set_cookies(&response)[0].contains("Secure"));
}

fn session_routes() -> Router {
    Router::new()
        .route(
            "/login",
            post(
                |session: arbor::sessions::Session, user: String| async move {
                    let token = session.login(user).await?;
                    Ok::<_, ApiError>(arbor::Json(json!({ "token": token })))
                },
            ),
        )
        .route(
            "/me",
            get(|session: arbor::sessions::Session| async move {
                arbor::Json(json!({ "user": session.user_id() }))
            }),
        )
        .route(
            "/posts",
            post(|session: arbor::sessions::Session| async move {
                session
                    .user_id()
                    .map(|user| format!("posted by {user}"))
                    .ok_or_else(|| ApiError::unauthorized("sign in"))
            }),
        )
        .route(
            "/logout",
            post(|session: arbor::sessions::Session| async move { session.logout().await }),
        )
        .route(
            "/logout-everywhere",
            post(|session: arbor::sessions::Session| async move {
                session.logout_everywhere().await.map(|n| n.to_string())
            }),
        )
}

async fn user_of(client: &reqwest::Client, base: &str) -> Value {
    let me: Value = client
        .get(format!("{base}/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["user"].clone()
}

/// Login, rotation, logout and logout-everywhere through two "browsers" and a bearer client,
/// with CSRF in front: the whole cookie-session flow over TCP.
async fn session_flow(store: Arc<dyn SessionStore>) {
    let router = session_routes()
        .layer(arbor::csrf())
        .layer(SessionManagerLayer::with_store(Arc::clone(&store)))
        .layer(CookieConfig::new().secure(false).into_layer());
    let base = serve(router).await;
    let (laptop, phone) = (browser(), browser());

    let first = laptop
        .post(format!("{base}/login"))
        .body("ada")
        .send()
        .await
        .unwrap();
    let cookie = set_cookies(&first).join("");
    assert!(
        cookie.starts_with("arbor_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let token: Value = first.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    assert_eq!(user_of(&laptop, &base).await, "ada");
    assert!(
        store.load(token.clone()).await.unwrap().is_none(),
        "the store holds no raw token"
    );

    // Logging in again on the same browser rotates the id: the old token is dead.
    // (A browser sends `Origin` on a same-origin POST; the session cookie makes it needed.)
    let second: Value = laptop
        .post(format!("{base}/login"))
        .header("origin", &base)
        .body("ada")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated = second["token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, token);
    let bearer = reqwest::Client::new();
    let old: Value = bearer
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(old["user"].is_null(), "{old}");

    // CSRF: the cookie alone cannot post cross-site; same-origin can; bearer needs no check.
    let evil = laptop
        .post(format!("{base}/posts"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let refusal: Value = evil.json().await.unwrap();
    assert_eq!(refusal["error"], "CSRF_FAILED");
    let same = laptop
        .post(format!("{base}/posts"))
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(same.text().await.unwrap(), "posted by ada");
    let by_bearer = bearer
        .post(format!("{base}/posts"))
        .bearer_auth(&rotated)
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), 200);

    // A second device, then "log out everywhere" from the laptop ends both.
    phone
        .post(format!("{base}/login"))
        .body("ada")
        .send()
        .await
        .unwrap();
    assert_eq!(user_of(&phone, &base).await, "ada");
    let everywhere = laptop
        .post(format!("{base}/logout-everywhere"))
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(everywhere.text().await.unwrap(), "2");
    assert!(user_of(&laptop, &base).await.is_null());
    assert!(user_of(&phone, &base).await.is_null());

    // Logout removes the cookie from the client.
    laptop
        .post(format!("{base}/login"))
        .header("origin", &base)
        .body("ada")
        .send()
        .await
        .unwrap();
    let logout = laptop
        .post(format!("{base}/logout"))
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&logout).join("").contains("Max-Age=0"));
    let after = laptop.get(format!("{base}/me")).send().await.unwrap();
    assert!(
        after.headers().get("set-cookie").is_none(),
        "no cookie was sent back"
    );
}

#[tokio::test]
async fn cookie_sessions_over_tcp_on_the_memory_store() {
    session_flow(Arc::new(arbor::sessions::MemoryStore::new())).await;
}

async fn sqlite_store() -> SqlStore {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let store = SqlStore::new(pool);
    store.create_table().await.unwrap();
    store
}

async fn postgres_store() -> Option<SqlStore> {
    let server = std::env::var("ARBOR_TEST_POSTGRES_URL").ok()?;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&server).await.unwrap();
    // A table of its own per run, so that parallel runs on one server do not meet.
    let table = format!("sessions_{}", uuid::Uuid::new_v4().simple());
    let store = SqlStore::with_table(pool, &table);
    store.create_table().await.unwrap();
    Some(store)
}

#[tokio::test]
async fn cookie_sessions_over_tcp_on_sqlite() {
    session_flow(Arc::new(sqlite_store().await)).await;
}

#[tokio::test]
async fn cookie_sessions_over_tcp_on_postgres() {
    let Some(store) = postgres_store().await else {
        eprintln!("note: ARBOR_TEST_POSTGRES_URL not set; PostgreSQL session store skipped");
        return;
    };
    session_flow(Arc::new(store)).await;
}

fn record(id: &str, user: Option<&str>, expires_at: i64) -> SessionRecord {
    let mut data = serde_json::Map::new();
    data.insert("cart".into(), json!([1, 2, { "sku": "ü" }]));
    SessionRecord {
        id: id.into(),
        user_id: user.map(Into::into),
        data,
        created_at: 1_000,
        last_seen_at: 2_000,
        expires_at,
    }
}

async fn store_contract(store: &SqlStore) {
    let ttl = Duration::from_secs(60);
    store
        .save(record("a", Some("u1"), 5_000), ttl)
        .await
        .unwrap();
    store
        .save(record("b", Some("u1"), 9_000), ttl)
        .await
        .unwrap();
    store.save(record("c", None, 9_000), ttl).await.unwrap();
    assert_eq!(
        store.load("a".into()).await.unwrap(),
        Some(record("a", Some("u1"), 5_000)),
        "JSON data and every column round-trip"
    );
    // Upsert: a login moves the anonymous session "c" to a user.
    store
        .save(record("c", Some("u2"), 9_000), ttl)
        .await
        .unwrap();
    assert_eq!(store.delete_expired(6_000).await.unwrap(), 1);
    assert_eq!(store.delete_user("u1".into()).await.unwrap(), 1);
    assert!(store.load("b".into()).await.unwrap().is_none());
    store.delete("c".into()).await.unwrap();
    assert!(store.load("c".into()).await.unwrap().is_none());
}

#[tokio::test]
async fn sql_store_contract_on_sqlite_and_postgres() {
    store_contract(&sqlite_store().await).await;
    if let Some(store) = postgres_store().await {
        store_contract(&store).await;
    }
}

#[tokio::test]
async fn the_periodic_deletion_removes_expired_sessions_and_keeps_live_ones() {
    let store = sqlite_store().await;
    let ttl = Duration::from_secs(60);
    let far_future = i64::MAX / 2;
    store
        .save(record("expired", None, 5_000), ttl)
        .await
        .unwrap();
    store
        .save(record("live", None, far_future), ttl)
        .await
        .unwrap();
    // The first deletion runs at once; the second would come an hour later.
    let task = store.spawn_expired_deletion(Duration::from_secs(3600));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.load("expired".into()).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired session is still there after 10 seconds"
        );
        tokio::task::yield_now().await;
    }
    assert!(store.load("live".into()).await.unwrap().is_some());
    task.abort();
}
