//! Server-side sessions: a random token held by the client (an `HttpOnly` cookie, or
//! `Authorization: Bearer`), a record in a [`SessionStore`] keyed by the token's SHA-256, with
//! idle and absolute expiry, a new id on every login, and "log out everywhere".
//!
//! ```
//! use std::time::Duration;
//! use arbor::sessions::{MemoryStore, Session, SessionManagerLayer};
//! use arbor::{ApiError, Json, Router};
//! use axum::routing::{get, post};
//!
//! // app/api/login/route.rs (after checking the password)
//! pub async fn login(session: Session) -> Result<Json<serde_json::Value>, ApiError> {
//!     // A new id (the old one, if any, is deleted): no session fixation.
//!     let token = session.login("user-42").await?;
//!     session.insert("theme", "dark")?;
//!     // Browsers get the cookie; API clients can send `Authorization: Bearer <token>`.
//!     Ok(Json(serde_json::json!({ "token": token })))
//! }
//!
//! pub async fn me(session: Session) -> Result<String, ApiError> {
//!     let user = session.user_id().ok_or_else(|| ApiError::unauthorized("sign in first"))?;
//!     let theme: Option<String> = session.get("theme");
//!     Ok(format!("{user} likes {}", theme.unwrap_or_default()))
//! }
//!
//! pub async fn logout_everywhere(session: Session) -> Result<(), ApiError> {
//!     session.logout_everywhere().await?;
//!     Ok(())
//! }
//!
//! let sessions = SessionManagerLayer::new(MemoryStore::new())
//!     .idle_timeout(Duration::from_secs(30 * 60))
//!     .absolute_timeout(Duration::from_secs(7 * 24 * 3600));
//! let router: Router = Router::new()
//!     .route("/api/login", post(login))
//!     .route("/api/me", get(me))
//!     .route("/api/logout-everywhere", post(logout_everywhere))
//!     .layer(sessions);
//! # let _ = router;
//! ```
//!
//! **Stores.** [`MemoryStore`] (one process), [`SqlStore`] (feature `sqlx`: SQLite or
//! PostgreSQL through `sqlx::AnyPool`) and `arbor_redis::RedisSessionStore`. Each keeps the
//! session data as JSON and an index by user for [`Session::logout_everywhere`]; none sees a
//! token, only its SHA-256.
//!
//! **Why not tower-sessions.** It was evaluated (0.14, for axum 0.8) and does not fit: its
//! session id travels only in a cookie (no bearer transport, which API clients of the
//! reference app use); it stores sessions under the id itself, not a hash of it; it has one
//! expiry (on inactivity *or* at a date), not idle and absolute together; its stores keep no
//! index by user, so "log out everywhere" is not possible without a second store; and its
//! Redis store is on `fred` where `arbor-redis` uses `redis`. What is left to write is small
//! (this module), and the parts that are a solved problem come from crates: `cookie` for the
//! cookie, `sha2` for the hash, `rand`'s OS generator for tokens.
//!
//! **Expiry** is decided here, on the layer's [`Clock`] (so tests move time without
//! sleeping): a session ends `idle_timeout` after its last request, and `absolute_timeout`
//! after it started, whichever comes first. The last request is written back at most once per
//! `touch_interval`, not on every request.
//!
//! **CSRF.** A cookie is sent by the browser on its own, so unsafe requests that rely on it
//! need [`crate::csrf`]; bearer tokens do not.

mod layer;
#[cfg(feature = "sqlx")]
mod sql;
mod store;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use http::request::Parts;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock};
use crate::cookies::CookieConfig;
use crate::ApiError;

pub use layer::{SessionManager, SessionManagerLayer};
#[cfg(feature = "sqlx")]
pub use sql::SqlStore;
pub use store::{MemoryStore, SessionRecord, SessionStore};

/// The session cookie's default name.
pub const DEFAULT_COOKIE: &str = "arbor_session";

/// How clients may present their session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// The session cookie only.
    Cookie,
    /// `Authorization: Bearer <token>` only; no cookie is ever set.
    Bearer,
    /// Either; a bearer token wins over the cookie (the default).
    #[default]
    CookieOrBearer,
}

impl Transport {
    fn cookie(self) -> bool {
        matches!(self, Self::Cookie | Self::CookieOrBearer)
    }

    fn bearer(self) -> bool {
        matches!(self, Self::Bearer | Self::CookieOrBearer)
    }
}

/// How the current request presented its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The session cookie.
    Cookie,
    /// `Authorization: Bearer`.
    Bearer,
}

/// The layer's settings and store, shared by every request.
#[derive(Clone)]
pub(crate) struct Manager {
    store: Arc<dyn SessionStore>,
    cookie_name: String,
    cookies: Option<CookieConfig>,
    transport: Transport,
    idle: Duration,
    absolute: Duration,
    touch_interval: Duration,
    clock: Arc<dyn Clock>,
    /// The wall-clock time of `anchor_instant`: records hold Unix times (shared by processes),
    /// and the clock gives instants, so wall time is the anchor plus the clock's progress.
    anchor_unix_ms: i64,
    anchor_instant: Instant,
}

impl Manager {
    fn new(store: Arc<dyn SessionStore>) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut manager = Self {
            store,
            cookie_name: DEFAULT_COOKIE.into(),
            cookies: None,
            transport: Transport::default(),
            idle: Duration::from_secs(24 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            touch_interval: Duration::from_secs(60),
            clock,
            anchor_unix_ms: 0,
            anchor_instant: Instant::now(),
        };
        manager.anchor();
        manager
    }

    fn anchor(&mut self) {
        self.anchor_instant = self.clock.now();
        self.anchor_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }

    fn now_ms(&self) -> i64 {
        let elapsed = self
            .clock
            .now()
            .saturating_duration_since(self.anchor_instant);
        self.anchor_unix_ms
            .saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }

    fn expiry(&self, created_at: i64, last_seen_at: i64) -> i64 {
        let idle = last_seen_at.saturating_add(millis(self.idle));
        let absolute = created_at.saturating_add(millis(self.absolute));
        idle.min(absolute)
    }

    fn ttl(record: &SessionRecord, now: i64) -> Duration {
        Duration::from_millis(u64::try_from(record.expires_at.saturating_sub(now)).unwrap_or(0))
            .max(Duration::from_millis(1))
    }

    fn new_record(&self, token: &str, user_id: Option<String>, now: i64) -> SessionRecord {
        SessionRecord {
            id: digest(token),
            user_id,
            data: serde_json::Map::new(),
            created_at: now,
            last_seen_at: now,
            expires_at: self.expiry(now, now),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// 256 random bits from the OS, as 64 hex digits.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The stored id of `token`: its SHA-256, hex.
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What the response must do with the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CookieChange {
    Keep,
    Set,
    Clear,
}

#[derive(Debug)]
struct State {
    token: Option<String>,
    record: Option<SessionRecord>,
    credential: Option<Credential>,
    /// The record changed (data, user, a new session) and must be saved.
    changed: bool,
    /// Only `last_seen_at` moved: a failed save is logged, not answered.
    touched: bool,
    cookie: CookieChange,
}

struct Shared {
    manager: Arc<Manager>,
    state: Mutex<State>,
}

/// The current request's session: an extractor, available under a [`SessionManagerLayer`].
///
/// Reads are synchronous (the record was loaded by the layer); changes to the data are saved
/// by the layer once the handler has answered; [`login`](Session::login),
/// [`logout`](Session::logout) and [`logout_everywhere`](Session::logout_everywhere) write
/// to the store at once, so their effect is durable before the handler continues.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Session")
            .field(
                "user_id",
                &state.record.as_ref().and_then(|r| r.user_id.as_ref()),
            )
            .field("credential", &state.credential)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn new(manager: Arc<Manager>, state: State) -> Self {
        Self {
            shared: Arc::new(Shared {
                manager,
                state: Mutex::new(state),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding it; if one did, the state is still whole.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the request has a live session (signed in or not).
    pub fn exists(&self) -> bool {
        self.lock().record.is_some()
    }

    /// The signed-in user, if any.
    pub fn user_id(&self) -> Option<String> {
        self.lock().record.as_ref().and_then(|r| r.user_id.clone())
    }

    /// How the session came with the request (`None` for a session started in this request).
    pub fn credential(&self) -> Option<Credential> {
        self.lock().credential
    }

    /// Value `key` of the session data; `None` if absent or not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let state = self.lock();
        let value = state.record.as_ref()?.data.get(key)?.clone();
        drop(state);
        serde_json::from_value(value).ok()
    }

    /// Sets value `key` of the session data, saved when the handler has answered. Without a
    /// session, starts an anonymous one (and sets its cookie).
    ///
    /// # Errors
    /// `500` if `value` cannot be represented as JSON.
    pub fn insert<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<(), ApiError> {
        let value = serde_json::to_value(value).map_err(ApiError::internal_with)?;
        let mut state = self.lock();
        self.ensure_record(&mut state);
        if let Some(record) = state.record.as_mut() {
            record.data.insert(key.into(), value);
        }
        state.changed = true;
        Ok(())
    }

    /// Removes value `key` of the session data.
    pub fn remove(&self, key: &str) -> Option<serde_json::Value> {
        let mut state = self.lock();
        let removed = state.record.as_mut()?.data.remove(key);
        state.changed |= removed.is_some();
        removed
    }

    fn ensure_record(&self, state: &mut State) {
        if state.record.is_none() {
            let manager = &self.shared.manager;
            let token = new_token();
            state.record = Some(manager.new_record(&token, None, manager.now_ms()));
            state.token = Some(token);
            state.cookie = CookieChange::Set;
        }
    }

    /// Signs `user_id` in: the session gets a new id (the old record is deleted, its data
    /// kept), its absolute lifetime starts now, and the response sets the new cookie. Returns
    /// the new token, for clients that use bearer tokens.
    ///
    /// # Errors
    /// The store's failure (`503 STORE_UNAVAILABLE`...).
    pub async fn login(&self, user_id: impl Into<String>) -> Result<String, ApiError> {
        let manager = Arc::clone(&self.shared.manager);
        let now = manager.now_ms();
        let token = new_token();
        let (old_id, record) = {
            let state = self.lock();
            let old = state.record.as_ref();
            (
                old.map(|r| r.id.clone()),
                SessionRecord {
                    data: old.map(|r| r.data.clone()).unwrap_or_default(),
                    ..manager.new_record(&token, Some(user_id.into()), now)
                },
            )
        };
        manager
            .store
            .save(record.clone(), Manager::ttl(&record, now))
            .await?;
        if let Some(old_id) = old_id {
            manager.store.delete(old_id).await?;
        }
        let mut state = self.lock();
        state.record = Some(record);
        state.token = Some(token.clone());
        state.changed = false;
        state.touched = false;
        state.cookie = CookieChange::Set;
        Ok(token)
    }

    /// Gives the session a new id, keeping its user, data and lifetime (for a privilege
    /// change that is not a login). Returns the new token; `None` without a session.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn rotate(&self) -> Result<Option<String>, ApiError> {
        let manager = Arc::clone(&self.shared.manager);
        let Some(mut record) = self.lock().record.clone() else {
            return Ok(None);
        };
        let now = manager.now_ms();
        let token = new_token();
        let old_id = std::mem::replace(&mut record.id, digest(&token));
        manager
            .store
            .save(record.clone(), Manager::ttl(&record, now))
            .await?;
        manager.store.delete(old_id).await?;
        let mut state = self.lock();
        state.record = Some(record);
        state.token = Some(token.clone());
        state.cookie = CookieChange::Set;
        Ok(Some(token))
    }

    /// Ends this session: deleted from the store, its cookie removed.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn logout(&self) -> Result<(), ApiError> {
        let id = self.lock().record.as_ref().map(|r| r.id.clone());
        if let Some(id) = id {
            self.shared.manager.store.delete(id).await?;
        }
        self.cleared();
        Ok(())
    }

    /// Ends every session of the signed-in user, on every device, this one included. Returns
    /// how many were ended.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn logout_everywhere(&self) -> Result<u64, ApiError> {
        let (id, user) = {
            let state = self.lock();
            let record = state.record.as_ref();
            (
                record.map(|r| r.id.clone()),
                record.and_then(|r| r.user_id.clone()),
            )
        };
        let mut ended = 0;
        if let Some(user) = user {
            ended = self.shared.manager.store.delete_user(user).await?;
        } else if let Some(id) = id {
            self.shared.manager.store.delete(id).await?;
            ended = 1;
        }
        self.cleared();
        Ok(ended)
    }

    fn cleared(&self) {
        let mut state = self.lock();
        state.record = None;
        state.token = None;
        state.changed = false;
        state.touched = false;
        state.cookie = CookieChange::Clear;
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            tracing::error!("`Session` extracted on a route without a SessionManagerLayer");
            ApiError::internal()
        })
    }
}

#[cfg(test)]
mod tests;
