//! The hand-written axum 0.8 peer of Arbor's peer benchmark (`benches/peers/run.sh`).
//!
//! - `GET /api/hello`, `GET /api/users/{id}`, `POST /api/users` (validated JSON): bare routes,
//!   no middleware (`axum-bare` in the results).
//! - `GET /api/stack`: the same answer as `/api/hello`, behind the four naive middleware of the
//!   Route Handlers guide written with `middleware::from_fn` (`axum-4mw`): a request-id
//!   counter, a log line formatted to nowhere, a `Mutex<HashMap>` fixed-window rate limiter that
//!   never trips, and an error catcher.
//! - `GET /api/users?page=&limit=` (only with `DATABASE_URL`): the Arbor reference app's
//!   `GET /api/v1/users` written by hand on `sqlx`'s SQLite driver. The same statements on the
//!   same database and the same JSON, after the same work before the list: the bearer token's
//!   session row in `sessions` (keyed by the token's SHA-256, idle and absolute expiry, the
//!   last request written back at most once a minute), its user, and the administrator check.
//!
//! `PORT` (default 3001) on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

static NEXT_USER_ID: AtomicU64 = AtomicU64::new(1);
static REQ_SEQ: AtomicU64 = AtomicU64::new(1);

async fn hello() -> Json<serde_json::Value> {
    Json(json!({ "message": "hello" }))
}

async fn get_user(Path(id): Path<String>) -> Json<serde_json::Value> {
    let name = format!("user {id}");
    Json(json!({ "id": id, "name": name }))
}

#[derive(Deserialize)]
struct CreateUser {
    email: Option<String>,
    name: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct UserOut {
    id: u64,
    email: String,
    name: String,
}

// Same rule as the JS side: /^[^\s@]+@[^\s@]+\.[^\s@]+$/
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') || e.chars().any(char::is_whitespace) {
        return false;
    }
    // some '.' with at least one char on each side
    domain.len() >= 3 && domain.as_bytes()[1..domain.len() - 1].contains(&b'.')
}

async fn create_user(body: Result<Json<CreateUser>, JsonRejection>) -> Response {
    let Ok(Json(b)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid json"})),
        )
            .into_response();
    };
    let (Some(email), Some(name), Some(password)) = (b.email, b.name, b.password) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "missing field"})),
        )
            .into_response();
    };
    let mut errors = Vec::new();
    if !valid_email(&email) {
        errors.push("email");
    }
    let nlen = name.chars().count();
    if !(2..=100).contains(&nlen) {
        errors.push("name");
    }
    if password.chars().count() < 8 {
        errors.push("password");
    }
    if !errors.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "validation", "fields": errors})),
        )
            .into_response();
    }
    let id = NEXT_USER_ID.fetch_add(1, Ordering::Relaxed);
    (StatusCode::CREATED, Json(UserOut { id, email, name })).into_response()
}

// ---- 4 middleware layers for /api/stack ----
async fn mw_request_id(mut req: Request, next: Next) -> Response {
    let id = format!("req-{}", REQ_SEQ.fetch_add(1, Ordering::Relaxed));
    let hv = HeaderValue::from_str(&id).expect("`req-` and digits make a header value");
    req.headers_mut().insert("x-request-id", hv.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert("x-request-id", hv);
    res
}

async fn mw_logging(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    // log to nowhere
    let line = format!(
        "{} {} {} {:?}",
        method,
        path,
        res.status().as_u16(),
        start.elapsed()
    );
    std::hint::black_box(line);
    res
}

#[derive(Clone, Default)]
struct RateLimiter {
    map: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
}
const RL_LIMIT: u64 = 1_000_000_000; // never trips during benchmark
const RL_WINDOW: Duration = Duration::from_secs(60);

async fn mw_rate_limit(State(rl): State<RateLimiter>, req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let over = {
        let mut m = rl
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let e = m.entry(key).or_insert((0, now));
        if now.duration_since(e.1) > RL_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        e.0 > RL_LIMIT
    };
    if over {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "rate limited"})),
        )
            .into_response();
    }
    next.run(req).await
}

async fn mw_error_catch(req: Request, next: Next) -> Response {
    // axum handlers are infallible; emulate the JS try/catch by mapping 5xx to a JSON error body
    let res = next.run(req).await;
    if res.status().is_server_error() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "internal"})),
        )
            .into_response();
    }
    res
}

// ---- GET /api/users: the reference app's paginated list, by hand ----

/// The session lifetimes the reference app has by default (`ARBOR_SESSION_IDLE_SECS`,
/// `ARBOR_SESSION_TTL_SECS`) and how often a session's last request is written back.
const SESSION_IDLE_MS: i64 = 24 * 3600 * 1000;
const SESSION_ABSOLUTE_MS: i64 = 7 * 24 * 3600 * 1000;
const SESSION_TOUCH_MS: i64 = 60 * 1000;

/// A user as the reference app shows it (`app/services/users.rs`): same fields, same order,
/// same names, so the JSON is byte for byte the same.
#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    email: String,
    name: String,
    role: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(Serialize)]
struct Page {
    users: Vec<User>,
    pagination: Pagination,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    page: u32,
    limit: u32,
    total: i64,
    total_pages: i64,
}

/// `?page=&limit=`, with the reference app's defaults and bounds (`app/validation.rs`).
#[derive(Deserialize)]
struct PageQuery {
    #[serde(default = "first_page")]
    page: u32,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn first_page() -> u32 {
    1
}

fn default_limit() -> u32 {
    20
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

fn database_error(e: sqlx::Error) -> Response {
    eprintln!("database error: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "An unexpected error occurred",
    )
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "Authentication required",
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The administrator whose bearer token the request carries: `401` without a live session,
/// `403` for a user who is not an administrator.
async fn current_admin(db: &SqlitePool, headers: &HeaderMap) -> Result<User, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(unauthorized)?;
    let session_id = hex::encode(Sha256::digest(token.as_bytes()));
    let session: Option<(Option<String>, i64, i64, i64)> = sqlx::query_as(
        "SELECT user_id, created_at, last_seen_at, expires_at FROM sessions WHERE id = $1",
    )
    .bind(&session_id)
    .fetch_optional(db)
    .await
    .map_err(database_error)?;
    let Some((Some(user_id), created_at, last_seen_at, expires_at)) = session else {
        return Err(unauthorized());
    };
    let now = now_ms();
    let expiry = expires_at
        .min(last_seen_at.saturating_add(SESSION_IDLE_MS))
        .min(created_at.saturating_add(SESSION_ABSOLUTE_MS));
    if now >= expiry {
        return Err(unauthorized());
    }
    if now - last_seen_at >= SESSION_TOUCH_MS {
        let expires_at = now
            .saturating_add(SESSION_IDLE_MS)
            .min(created_at.saturating_add(SESSION_ABSOLUTE_MS));
        sqlx::query("UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id = $3")
            .bind(now)
            .bind(expires_at)
            .bind(&session_id)
            .execute(db)
            .await
            .map_err(database_error)?;
    }
    let user: User = sqlx::query_as(
        "SELECT id, email, name, role, created_at, updated_at FROM users WHERE id = $1",
    )
    .bind(&user_id)
    .fetch_optional(db)
    .await
    .map_err(database_error)?
    .ok_or_else(unauthorized)?;
    if user.role != "admin" {
        return Err(error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "Administrator role required",
        ));
    }
    Ok(user)
}

async fn list_users(
    State(db): State<SqlitePool>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page>, Response> {
    current_admin(&db, &headers).await?;
    let Ok(Query(PageQuery { page, limit })) = query else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid query parameters",
        ));
    };
    if !(1..=100_000).contains(&page) || !(1..=100).contains(&limit) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid query parameters",
        ));
    }
    let offset = i64::from(page - 1) * i64::from(limit);
    let users: Vec<User> = sqlx::query_as(
        "SELECT id, email, name, role, created_at, updated_at FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2",
    )
    .bind(i64::from(limit))
    .bind(offset)
    .fetch_all(&db)
    .await
    .map_err(database_error)?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&db)
        .await
        .map_err(database_error)?;
    Ok(Json(Page {
        users,
        pagination: Pagination {
            page,
            limit,
            total,
            total_pages: (total + i64::from(limit) - 1) / i64::from(limit),
        },
    }))
}

/// The pool as the reference app opens SQLite (`app/db.rs`): 8 connections, WAL, a busy
/// timeout, foreign keys on. The database must exist (it is the reference app's, migrated).
async fn connect(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let users: MethodRouter = match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let db = connect(&url)
                .await
                .unwrap_or_else(|e| panic!("DATABASE_URL={url}: {e}"));
            post(create_user).get(list_users).with_state(db)
        }
        Err(_) => post(create_user),
    };
    let rl = RateLimiter::default();
    // Layers: last added = outermost. Order (outer->inner): request-id, logging, rate-limit, error-catch.
    let stack = Router::new()
        .route("/api/stack", get(hello))
        .layer(middleware::from_fn(mw_error_catch))
        .layer(middleware::from_fn_with_state(rl.clone(), mw_rate_limit))
        .layer(middleware::from_fn(mw_logging))
        .layer(middleware::from_fn(mw_request_id));
    let app = Router::new()
        .route("/api/hello", get(hello))
        .route("/api/users/{id}", get(get_user))
        .route("/api/users", users)
        .merge(stack);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("binding {addr}: {e}"));
    eprintln!("axum listening on {addr}");
    axum::serve(listener, app).await.expect("serving");
}
