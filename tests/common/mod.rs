//! Shared by the app's integration tests: an `AppState` on a fresh database, the app around it
//! in-process ([`App`]) or as a real TCP server ([`Server`]), and the one HTTP client every test
//! talks to either with ([`http`]).

#![allow(dead_code, unused_imports, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;

use arbor_app::{AppState, Config};

pub mod http;
#[path = "../../redis/tests/support/own_redis.rs"]
pub mod own_redis;
pub mod process;

pub use http::{Client, Reply};
pub use own_redis::OwnRedis;

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

/// A new, empty database on the `ARBOR_TEST_POSTGRES_URL` server; its URL.
pub async fn fresh_postgres_database() -> String {
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

/// The app in-process: requests go straight into its router through
/// `arbor::test::TestClient`, which is how a test checks anything but the transport.
pub struct App {
    pub state: AppState,
    router: arbor::Router,
    _dir: tempfile::TempDir,
}

impl App {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Like [`App::start`], with `configure` applied to the config first.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let (state, dir) = state_with(backend, configure).await;
        Self {
            router: arbor_app::app(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// The shared HTTP client ([`http::Client`]) for this app, in-process.
    pub fn client(&self) -> Client {
        Client::in_process(self.router.clone())
    }
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

    /// The shared HTTP client ([`http::Client`]) pointed at this server.
    pub fn client(&self) -> Client {
        Client::new(self.base.clone())
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
