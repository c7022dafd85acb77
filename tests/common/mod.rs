//! Shared by the app's integration tests: an `AppState` on a fresh database, and a real TCP
//! server around it.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;

use arbor_app::{AppState, Config};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "Admin-Passw0rd";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A state on a new, empty database (plus the seeded administrator). Keep the guard alive.
pub async fn state(backend: Backend) -> (AppState, tempfile::TempDir) {
    state_with(backend, |_| {}).await
}

/// `ARBOR_TEST_POSTGRES_URL` (a server URL such as `postgres://postgres@127.0.0.1:55432/postgres`)
/// or `None`; `ARBOR_REQUIRE_POSTGRES=1` (set by the test command) makes a missing server a
/// failure instead of a skip.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("ARBOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("ARBOR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("ARBOR_REQUIRE_POSTGRES=1 but ARBOR_TEST_POSTGRES_URL is not set");
    }
    url
}

/// Runs `scenario` on SQLite, and on PostgreSQL when a server is configured.
pub async fn on_every_backend<F, Fut>(scenario: F)
where
    F: Fn(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    scenario(Backend::Sqlite).await;
    if postgres_url().is_some() {
        scenario(Backend::Postgres).await;
    } else {
        eprintln!("note: ARBOR_TEST_POSTGRES_URL not set; PostgreSQL half of this test skipped");
    }
}

async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let server = postgres_url().expect("postgres backend without ARBOR_TEST_POSTGRES_URL");
    let name = format!("arbor_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// The app served over real TCP on an ephemeral port.
pub struct Server {
    pub base: String,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .cookie_store(false)
                .build()
                .unwrap(),
        }
    }
}

/// A thin HTTP client with the helpers tests need.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the standard error shape and returns the body.
    pub fn error(&self, status: u16, code: &str) -> &serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["error"], code, "{}", self.text);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        &self.body
    }
}

impl Client {
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(with_token(self.http.get(self.url(path)), token))
            .await
    }

    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Reply {
        self.send(with_token(self.http.request(method, self.url(path)), token).json(&body))
            .await
    }

    /// Logs in and returns the bearer token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let reply = self
            .json(
                reqwest::Method::POST,
                "/api/v1/login",
                None,
                serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    /// Registers a new user and returns (id, token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let reply = self
            .json(
                reqwest::Method::POST,
                "/api/v1/register",
                None,
                serde_json::json!({ "email": email, "name": "Test User", "password": "Str0ngPassword" }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        (
            reply.body["user"]["id"].as_str().unwrap().to_owned(),
            reply.body["token"].as_str().unwrap().to_owned(),
        )
    }
}

fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Like [`state`], with `configure` applied to the config first (webhook secrets, ...).
pub async fn state_with(
    backend: Backend,
    configure: impl FnOnce(&mut Config),
) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
        Backend::Postgres => fresh_postgres_database().await,
    };
    let mut config = Config {
        database_url,
        admin: Some((ADMIN_EMAIL.into(), ADMIN_PASSWORD.into())),
        upload_dir: dir.path().join("uploads"),
        ..Config::default()
    };
    configure(&mut config);
    (AppState::new(config).await.unwrap(), dir)
}

impl Server {
    /// Like [`Server::start`], with `configure` applied to the config first.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let (state, dir) = state_with(backend, configure).await;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(arbor::serve(listener, arbor_app::app(state.clone())));
        Self {
            base,
            state,
            _dir: dir,
        }
    }
}
