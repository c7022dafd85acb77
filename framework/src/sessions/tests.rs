use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::*;
use crate::clock::ManualClock;
use crate::test::{TestClient, TestResponse};

fn app(store: Arc<MemoryStore>, clock: ManualClock) -> TestClient {
    let layer = SessionManagerLayer::with_store(store)
        .idle_timeout(Duration::from_secs(600))
        .absolute_timeout(Duration::from_secs(3600))
        .touch_interval(Duration::from_secs(60))
        .clock(clock);
    TestClient::new(routes().layer(layer))
}

fn routes() -> Router {
    Router::new()
        .route(
            "/login",
            post(|session: Session, body: String| async move {
                session
                    .login(body)
                    .await
                    .map(|token| json!({ "token": token }).to_string())
            }),
        )
        .route(
            "/me",
            get(|session: Session| async move {
                let via = match session.credential() {
                    Some(Credential::Bearer) => "bearer",
                    Some(Credential::Cookie) => "cookie",
                    None => "none",
                };
                let note: Option<String> = session.get("note");
                json!({ "user": session.user_id(), "via": via, "note": note }).to_string()
            }),
        )
        .route(
            "/note",
            post(|session: Session, body: String| async move { session.insert("note", body) }),
        )
        .route(
            "/logout",
            post(|session: Session| async move { session.logout().await }),
        )
        .route(
            "/logout-everywhere",
            post(|session: Session| async move {
                session.logout_everywhere().await.map(|n| n.to_string())
            }),
        )
}

fn token_of(response: &TestResponse) -> String {
    let body: Value = response.json();
    body["token"].as_str().unwrap_or_default().to_owned()
}

async fn me(client: &TestClient, token: &str) -> Value {
    client
        .get("/me")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await
        .json()
}

async fn me_by_cookie(client: &TestClient, token: &str) -> Value {
    client
        .get("/me")
        .header("cookie", &format!("arbor_session={token}"))
        .send()
        .await
        .json()
}

#[tokio::test]
async fn login_sets_the_cookie_and_stores_only_the_tokens_hash() {
    let store = Arc::new(MemoryStore::new());
    let client = app(Arc::clone(&store), ManualClock::new());
    let response = client.post("/login").body("alice").send().await;
    let token = token_of(&response);
    assert_eq!(token.len(), 64);
    let cookie = response.header("set-cookie").unwrap_or_default().to_owned();
    assert!(
        cookie.starts_with(&format!("arbor_session={token};")),
        "{cookie}"
    );
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Secure",
        "Max-Age=3600",
    ] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(
        store.load(token.clone()).await.ok().flatten().is_none(),
        "not under the token"
    );
    let stored = store.load(digest(&token)).await.ok().flatten();
    assert_eq!(stored.and_then(|r| r.user_id).as_deref(), Some("alice"));

    assert_eq!(me(&client, &token).await["via"], "bearer");
    let by_cookie = me_by_cookie(&client, &token).await;
    assert_eq!(
        (by_cookie["user"].as_str(), by_cookie["via"].as_str()),
        (Some("alice"), Some("cookie"))
    );
}

#[tokio::test]
async fn login_rotates_the_id_and_keeps_the_data() {
    let store = Arc::new(MemoryStore::new());
    let client = app(Arc::clone(&store), ManualClock::new());
    // An anonymous session with data, started by the first insert.
    let noted = client.post("/note").body("remember me").send().await;
    let set = noted.header("set-cookie").unwrap_or_default();
    let anonymous = set
        .strip_prefix("arbor_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        me_by_cookie(&client, &anonymous).await["note"],
        "remember me"
    );

    let login = client
        .post("/login")
        .header("cookie", &format!("arbor_session={anonymous}"))
        .body("bob")
        .send()
        .await;
    let token = token_of(&login);
    assert_ne!(token, anonymous, "a new id on login");
    assert!(
        me_by_cookie(&client, &anonymous).await["user"].is_null(),
        "the old id is dead"
    );
    let after = me_by_cookie(&client, &token).await;
    assert_eq!(
        (after["user"].as_str(), after["note"].as_str()),
        (Some("bob"), Some("remember me"))
    );
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn idle_sessions_expire_and_active_ones_are_touched() {
    let clock = ManualClock::new();
    let client = app(Arc::new(MemoryStore::new()), clock.clone());
    let token = token_of(&client.post("/login").body("carol").send().await);
    // Active every 9 minutes: idle never reaches 10.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(9 * 60));
        assert_eq!(me(&client, &token).await["user"], "carol");
    }
    clock.advance(Duration::from_secs(10 * 60));
    let expired = client
        .get("/me")
        .header("cookie", &format!("arbor_session={token}"))
        .send()
        .await;
    assert!(expired.json::<Value>()["user"].is_null());
    let cleared = expired.header("set-cookie").unwrap_or_default();
    assert!(
        cleared.contains("Max-Age=0"),
        "a dead cookie is removed: {cleared}"
    );
}

#[tokio::test]
async fn absolute_expiry_ends_even_an_active_session() {
    let clock = ManualClock::new();
    let client = app(Arc::new(MemoryStore::new()), clock.clone());
    let token = token_of(&client.post("/login").body("dave").send().await);
    for _ in 0..6 {
        clock.advance(Duration::from_secs(9 * 60));
        assert_eq!(me(&client, &token).await["user"], "dave");
    }
    // 54 minutes in, last seen just now; the hour is up at 60.
    clock.advance(Duration::from_secs(6 * 60));
    assert!(me(&client, &token).await["user"].is_null());
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_everywhere_all_of_the_users() {
    let store = Arc::new(MemoryStore::new());
    let client = app(Arc::clone(&store), ManualClock::new());
    let phone = token_of(&client.post("/login").body("erin").send().await);
    let laptop = token_of(&client.post("/login").body("erin").send().await);
    let tablet = token_of(&client.post("/login").body("erin").send().await);
    let other = token_of(&client.post("/login").body("frank").send().await);

    let logout = client
        .post("/logout")
        .header("authorization", &format!("Bearer {phone}"))
        .send()
        .await;
    assert!(logout
        .header("set-cookie")
        .unwrap_or_default()
        .contains("Max-Age=0"));
    assert!(me(&client, &phone).await["user"].is_null());
    assert_eq!(me(&client, &laptop).await["user"], "erin");

    let everywhere = client
        .post("/logout-everywhere")
        .header("cookie", &format!("arbor_session={laptop}"))
        .send()
        .await;
    assert_eq!(everywhere.text(), "2");
    assert!(me(&client, &laptop).await["user"].is_null());
    assert!(me(&client, &tablet).await["user"].is_null());
    assert_eq!(
        me(&client, &other).await["user"],
        "frank",
        "other users keep theirs"
    );
}

#[tokio::test]
async fn malformed_and_unknown_tokens_are_no_session() {
    let client = app(Arc::new(MemoryStore::new()), ManualClock::new());
    for token in ["short", &"z".repeat(64), &"a".repeat(64)] {
        assert!(me(&client, token).await["user"].is_null(), "{token}");
    }
}

#[tokio::test]
async fn bearer_only_transport_never_sets_cookies_nor_reads_them() {
    let store = Arc::new(MemoryStore::new());
    let client = TestClient::new(
        routes().layer(SessionManagerLayer::with_store(store).transport(Transport::Bearer)),
    );
    let login = client.post("/login").body("gina").send().await;
    assert!(login.header("set-cookie").is_none());
    let token = token_of(&login);
    assert!(me_by_cookie(&client, &token).await["user"].is_null());
    assert_eq!(me(&client, &token).await["user"], "gina");
}

#[tokio::test]
async fn a_session_extracted_without_the_layer_is_a_json_500() {
    let client = TestClient::new(routes());
    let response = client.get("/me").send().await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.json::<Value>()["error"], "INTERNAL_ERROR");
}
