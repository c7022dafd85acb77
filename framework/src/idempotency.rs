//! Idempotency keys: a retried `POST`/`PUT`/`PATCH` is answered with the first attempt's
//! response instead of running the handler again.
//!
//! ```
//! use arbor::idempotency::idempotency;
//! use arbor::http::StatusCode;
//! use arbor::Json;
//! use serde_json::{json, Value};
//!
//! // app/api/payments/route.rs
//! #[arbor::handler(idempotency())]
//! pub async fn POST(Json(payment): Json<Value>) -> (StatusCode, Json<Value>) {
//!     // charge the card once, however often the client retries
//!     (StatusCode::CREATED, Json(json!({ "charged": payment["amount"] })))
//! }
//! ```
//!
//! A client sends `Idempotency-Key: <unique string>` with the request. The first request with a
//! key runs the handler and its response is kept for the TTL (24 h by default); a retry with the
//! same key and the same request gets that response again, with `Idempotent-Replayed: true`.
//!
//! | Situation | Answer |
//! |---|---|
//! | first request with the key | the handler runs; a non-`5xx` response is stored |
//! | same key, same method, path and body | the stored response, `Idempotent-Replayed: true` |
//! | same key, different body (or query) | `422 IDEMPOTENCY_KEY_REUSED` |
//! | same key while the first is still running | `409 IDEMPOTENCY_IN_FLIGHT`, `Retry-After: 1` |
//! | the handler answered `5xx` | not stored: the key is released, the client may retry |
//! | key empty, longer than 255, or not visible ASCII | `400 INVALID_IDEMPOTENCY_KEY` |
//! | body over [`max_body_bytes`](IdempotencyLayer::max_body_bytes) | `413 PAYLOAD_TOO_LARGE` |
//! | the store fails or is full | `503 IDEMPOTENCY_UNAVAILABLE` |
//!
//! Keys belong to a client: the [`Scope`] an upstream middleware inserted (such as the
//! authenticated user), or else the client's IP ([`crate::ClientIp`]). They are also scoped by
//! method and path, so the same key on two endpoints names two operations. Once claimed, the
//! handler runs to the end even if the client disconnects, so that its retry finds the result.
//!
//! Storage is pluggable through [`IdempotencyStore`]; [`MemoryStore`] is the default, for a
//! single process. See `docs/idempotency.md`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::cache::{buffer_body, Buffered};
pub use crate::clock::{Clock, ManualClock, SystemClock};
use crate::ready::take_ready;
pub use crate::store::StoreError;
use crate::{ApiError, ClientIp};

/// `Idempotency-Key`, the request header that names an operation.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `Idempotent-Replayed: true`, on a response that was stored and is sent again.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The longest TTL accepted (ten years); larger values are clamped.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// Whose keys these are. Insert one from a middleware that runs before [`idempotency`] (listed
/// before it) to scope keys by user instead of by client IP:
///
/// ```
/// use arbor::idempotency::{idempotency, Scope};
/// use arbor::{Next, Request, Response};
///
/// pub async fn require_user(mut request: Request, next: Next) -> Response {
///     let user_id = "user-42"; // from the verified session or token
///     request.extensions_mut().insert(Scope(user_id.to_owned()));
///     next.run(request).await
/// }
///
/// #[arbor::handler(require_user, idempotency())]
/// pub async fn POST() -> &'static str {
///     "created"
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(pub String);

/// The future type of [`IdempotencyStore`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A response kept for replay.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers the handler set.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl StoredResponse {
    /// The response to send again, with `Idempotent-Replayed: true`.
    pub fn replay(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        response
    }
}

/// The state of a claimed key.
#[derive(Debug, Clone)]
pub enum RecordState {
    /// The first request is still running.
    InFlight,
    /// The first request finished with this response.
    Completed(StoredResponse),
}

/// What a store keeps for a key.
#[derive(Debug, Clone)]
pub struct Record {
    /// SHA-256 (hex) of the request that claimed the key: method, path and query, body.
    pub fingerprint: String,
    /// Running, or done.
    pub state: RecordState,
}

/// The outcome of [`IdempotencyStore::claim`].
#[derive(Debug, Clone)]
pub enum Claim {
    /// The key was free and is now in flight for the caller.
    Acquired,
    /// The key was already taken; nothing changed.
    Existing(Record),
}

/// Where idempotency records live. Keys arrive already scoped and hashed (64 hex characters).
///
/// [`MemoryStore`] is the default. A shared store (Redis, a database) makes keys work across
/// processes; its methods map onto single atomic commands:
///
/// | Method | Redis |
/// |---|---|
/// | `claim` | `SET key <in-flight record> NX PX ttl`, then `GET key` if it was taken |
/// | `complete` | `SET key <completed record> PX ttl` |
/// | `release` | a script that deletes the key if its record is still in flight |
/// | `get` | `GET key` |
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically takes `key` as in flight with `fingerprint` for `ttl`, or reports the record
    /// that holds it. Two concurrent claims of a free key must not both get
    /// [`Claim::Acquired`].
    fn claim(
        &self,
        key: String,
        fingerprint: String,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<Claim, StoreError>>;

    /// Records the response of the request that claimed `key`, kept for `ttl`.
    fn complete(
        &self,
        key: String,
        fingerprint: String,
        response: StoredResponse,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Frees `key` if it is still in flight (the handler failed), so that a retry runs again.
    /// A completed record is left alone.
    fn release(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The live record for `key`, if any.
    fn get(&self, key: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;
}

impl<T: IdempotencyStore + ?Sized> IdempotencyStore for Arc<T> {
    fn claim(
        &self,
        key: String,
        fingerprint: String,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<Claim, StoreError>> {
        (**self).claim(key, fingerprint, ttl)
    }

    fn complete(
        &self,
        key: String,
        fingerprint: String,
        response: StoredResponse,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).complete(key, fingerprint, response, ttl)
    }

    fn release(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).release(key)
    }

    fn get(&self, key: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        (**self).get(key)
    }
}

// ---------------------------------------------------------------------------------------------
// MemoryStore
// ---------------------------------------------------------------------------------------------

/// An in-process store: a map behind a mutex, with per-record expiry, bounded in size.
///
/// Clones share the same records. When it holds `max_entries` live records it refuses new keys
/// (`503`) rather than evict one that is still in its TTL, which would let a retry run twice.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    max_entries: usize,
    clock: Arc<dyn Clock>,
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    records: HashMap<String, (Record, Instant)>,
    /// `(expires_at, key)` for every record, soonest first.
    expiry: BTreeSet<(Instant, String)>,
}

impl MemoryState {
    fn purge(&mut self, now: Instant) {
        while let Some((expires_at, _)) = self.expiry.first() {
            if *expires_at > now {
                break;
            }
            if let Some((_, key)) = self.expiry.pop_first() {
                self.records.remove(&key);
            }
        }
    }

    fn set(&mut self, key: String, record: Record, expires_at: Instant) {
        self.remove(&key);
        self.expiry.insert((expires_at, key.clone()));
        self.records.insert(key, (record, expires_at));
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, expires_at)) = self.records.remove(key) {
            self.expiry.remove(&(expires_at, key.to_owned()));
        }
    }
}

impl MemoryStore {
    /// A store of at most `max_entries` live records.
    pub fn new(max_entries: usize) -> Self {
        Self::with_parts(max_entries, Arc::new(SystemClock))
    }

    /// The same store configuration on another clock ([`ManualClock`] in tests). Records are not
    /// carried over.
    #[must_use]
    pub fn with_clock(self, clock: impl Clock) -> Self {
        Self::with_parts(self.inner.max_entries, Arc::new(clock))
    }

    fn with_parts(max_entries: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                max_entries,
                clock,
                state: Mutex::new(MemoryState::default()),
            }),
        }
    }

    /// The number of live records.
    pub fn len(&self) -> usize {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.purge(now);
        state.records.len()
    }

    /// Whether no record is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // No code path panics while holding the lock, and the state stays consistent if one did.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn claim_now(
        &self,
        key: String,
        fingerprint: String,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.purge(now);
        if let Some((record, _)) = state.records.get(&key) {
            return Ok(Claim::Existing(record.clone()));
        }
        if state.records.len() >= self.inner.max_entries {
            return Err(StoreError::new(format!(
                "the in-memory store holds its maximum of {} live keys",
                self.inner.max_entries
            )));
        }
        let record = Record {
            fingerprint,
            state: RecordState::InFlight,
        };
        state.set(key, record, now + ttl);
        Ok(Claim::Acquired)
    }
}

impl Default for MemoryStore {
    /// 10,000 live records.
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.inner.max_entries)
            .finish_non_exhaustive()
    }
}

impl IdempotencyStore for MemoryStore {
    fn claim(
        &self,
        key: String,
        fingerprint: String,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<Claim, StoreError>> {
        let result = self.claim_now(key, fingerprint, ttl);
        Box::pin(std::future::ready(result))
    }

    fn complete(
        &self,
        key: String,
        fingerprint: String,
        response: StoredResponse,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let now = self.inner.clock.now();
        let record = Record {
            fingerprint,
            state: RecordState::Completed(response),
        };
        self.lock().set(key, record, now + ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn release(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut state = self.lock();
        if matches!(
            state.records.get(&key),
            Some((
                Record {
                    state: RecordState::InFlight,
                    ..
                },
                _
            ))
        ) {
            state.remove(&key);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn get(&self, key: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.purge(now);
        let record = state.records.get(&key).map(|(record, _)| record.clone());
        Box::pin(std::future::ready(Ok(record)))
    }
}

// ---------------------------------------------------------------------------------------------
// idempotency() middleware
// ---------------------------------------------------------------------------------------------

/// Idempotency for `POST`, `PUT` and `PATCH` requests that carry an `Idempotency-Key`
/// (others pass through untouched): responses kept 24 h in a [`MemoryStore`], request
/// bodies up to 1 MiB.
///
/// ```
/// use arbor::idempotency::idempotency;
///
/// #[arbor::handler(idempotency(ttl = 3600))]
/// pub async fn POST(body: String) -> String {
///     format!("created {body}")
/// }
/// ```
pub fn idempotency() -> IdempotencyLayer {
    IdempotencyLayer {
        store: Arc::new(MemoryStore::default()),
        ttl: Duration::from_secs(24 * 60 * 60),
        in_flight_ttl: Duration::from_secs(5 * 60),
        max_body_bytes: 1024 * 1024,
    }
}

/// The layer made by [`idempotency`]. Every service it makes shares its store.
#[derive(Clone)]
#[must_use]
pub struct IdempotencyLayer {
    store: Arc<dyn IdempotencyStore>,
    ttl: Duration,
    in_flight_ttl: Duration,
    max_body_bytes: usize,
}

impl fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("ttl", &self.ttl)
            .field("in_flight_ttl", &self.in_flight_ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl IdempotencyLayer {
    /// How long a response is kept for replay, in seconds (86,400: 24 h, by default).
    pub fn ttl(mut self, secs: u64) -> Self {
        self.ttl = Duration::from_secs(secs.min(MAX_TTL_SECS));
        self
    }

    /// How long a claim may stay in flight, in seconds (300 by default). It only matters when
    /// a shared store outlives a crashed process: the claim then expires instead of answering
    /// `409` for the whole TTL. Set it above your longest handler time.
    pub fn in_flight_ttl(mut self, secs: u64) -> Self {
        self.in_flight_ttl = Duration::from_secs(secs.min(MAX_TTL_SECS));
        self
    }

    /// The largest request body accepted with a key (larger: `413`), and the largest response
    /// body stored (a larger response replays its status and headers only). 1 MiB by default.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Where records live; a [`MemoryStore`] by default. Pass a clone of one store (or an
    /// `Arc`) to several routes to share it.
    pub fn store(mut self, store: impl IdempotencyStore) -> Self {
        self.store = Arc::new(store);
        self
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// The service made by [`IdempotencyLayer`].
#[derive(Clone)]
pub struct IdempotencyService<S> {
    inner: S,
    config: Arc<IdempotencyLayer>,
}

impl<S: fmt::Debug> fmt::Debug for IdempotencyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Service<Request> for IdempotencyService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        Box::pin(handle(self.config.clone(), inner, request))
    }
}

async fn handle<S>(
    config: Arc<IdempotencyLayer>,
    mut inner: S,
    request: Request,
) -> Result<Response, S::Error>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH
    ) || !request.headers().contains_key(IDEMPOTENCY_KEY)
    {
        return inner.call(request).await;
    }
    let key = match idempotency_key(request.headers()) {
        Ok(key) => key.to_owned(),
        Err(error) => return Ok(error.into_response()),
    };
    let Some(scope) = scope_of(request.extensions()) else {
        tracing::error!(
            "idempotency: no Scope and no client address; serve with arbor::serve (it records \
             the peer address) or insert arbor::idempotency::Scope in a middleware"
        );
        return Ok(ApiError::internal().into_response());
    };

    let (parts, body) = request.into_parts();
    let body = match buffer_body(body, config.max_body_bytes).await {
        Buffered::Complete(bytes) => bytes,
        Buffered::Partial { failed: true, .. } => {
            return Ok(ApiError::bad_request("the request body could not be read").into_response())
        }
        Buffered::Partial { failed: false, .. } => {
            return Ok(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!(
                    "a request with an Idempotency-Key may have a body of at most {} bytes",
                    config.max_body_bytes
                ),
            )
            .into_response())
        }
    };
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let method = parts.method.as_str();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let store_key = digest(&[
        scope.as_bytes(),
        method.as_bytes(),
        uri.path().as_bytes(),
        key.as_bytes(),
    ]);
    let fingerprint = digest(&[method.as_bytes(), target.as_bytes(), &body]);
    let request = Request::from_parts(parts, Body::from(body));

    let claim = config
        .store
        .claim(store_key.clone(), fingerprint.clone(), config.in_flight_ttl)
        .await;
    match claim {
        Err(error) => {
            tracing::error!(%error, "idempotency: could not claim a key");
            Ok(unavailable())
        }
        Ok(Claim::Existing(record)) if record.fingerprint != fingerprint => Ok(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used with a different request; \
             send a new key for a new operation",
        )
        .into_response()),
        Ok(Claim::Existing(Record {
            state: RecordState::InFlight,
            ..
        })) => Ok(ApiError::new(
            StatusCode::CONFLICT,
            "IDEMPOTENCY_IN_FLIGHT",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        .into_response()),
        Ok(Claim::Existing(Record {
            state: RecordState::Completed(stored),
            ..
        })) => Ok(stored.replay()),
        Ok(Claim::Acquired) => {
            let guard = ClaimGuard {
                store: config.store.clone(),
                key: Some(store_key.clone()),
            };
            // Called here, while `inner` is the service that was polled ready.
            let response = inner.call(request);
            let run = finish(config, guard, response, store_key, fingerprint);
            // Spawned, so that the handler and the recording of its response finish even if
            // the client goes away: its retry then gets the replay.
            match tokio::spawn(run.instrument(tracing::Span::current())).await {
                Ok(result) => result,
                Err(error) => {
                    tracing::error!(%error, "idempotency: the handler panicked; the key is released");
                    Ok(ApiError::internal().into_response())
                }
            }
        }
    }
}

/// Runs the claimed request and records its response.
async fn finish<F, E>(
    config: Arc<IdempotencyLayer>,
    mut guard: ClaimGuard,
    response: F,
    store_key: String,
    fingerprint: String,
) -> Result<Response, E>
where
    F: Future<Output = Result<Response, E>>,
{
    // An error drops `guard`, which releases the key.
    let response = response.await?;
    if response.status().is_server_error() {
        guard.release().await;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let (stored, body) = match buffer_body(body, config.max_body_bytes).await {
        Buffered::Complete(bytes) => (
            StoredResponse {
                status: parts.status,
                headers: parts.headers.clone(),
                body: bytes.clone(),
            },
            Body::from(bytes),
        ),
        Buffered::Partial { body, failed: true } => {
            // The response broke while being produced: treat it as a failure.
            guard.release().await;
            return Ok(Response::from_parts(parts, body));
        }
        Buffered::Partial {
            body,
            failed: false,
        } => {
            // Too large to keep: the handler ran, so the key must not run it again; a replay
            // gets the status and headers without the body.
            let mut headers = parts.headers.clone();
            headers.remove(header::CONTENT_LENGTH);
            headers.remove(header::CONTENT_TYPE);
            let stored = StoredResponse {
                status: parts.status,
                headers,
                body: Bytes::new(),
            };
            (stored, body)
        }
    };
    if let Err(error) = config
        .store
        .complete(store_key, fingerprint, stored, config.ttl)
        .await
    {
        // The handler's effect happened: leave the key in flight until its in-flight TTL
        // rather than let a retry run it again.
        tracing::error!(%error, "idempotency: could not record a response");
    }
    guard.disarm();
    Ok(Response::from_parts(parts, body))
}

/// Releases a claimed key unless disarmed, also when dropped (an error, a panic).
struct ClaimGuard {
    store: Arc<dyn IdempotencyStore>,
    key: Option<String>,
}

impl ClaimGuard {
    async fn release(&mut self) {
        if let Some(key) = self.key.take() {
            if let Err(error) = self.store.release(key).await {
                tracing::error!(%error, "idempotency: could not release a key");
            }
        }
    }

    fn disarm(&mut self) {
        self.key = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release(key).await {
                    tracing::error!(%error, "idempotency: could not release a key");
                }
            });
        }
    }
}

fn unavailable() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "IDEMPOTENCY_UNAVAILABLE",
        "idempotency keys cannot be honoured right now; retry later with the same key",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    .into_response()
}

/// The key, if it is one header of 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_IDEMPOTENCY_KEY",
            format!(
                "send one Idempotency-Key header of 1 to {MAX_KEY_LEN} visible ASCII characters \
                 (a UUID is a good key)"
            ),
        )
    };
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(invalid());
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    value.to_str().map_err(|_| invalid())
}

/// `scope:<Scope>` or `ip:<client address>`.
fn scope_of(extensions: &http::Extensions) -> Option<String> {
    if let Some(Scope(scope)) = extensions.get::<Scope>() {
        return Some(format!("scope:{scope}"));
    }
    ClientIp::from_extensions(extensions).map(|ip| format!("ip:{ip}"))
}

/// SHA-256 of the parts, each length-prefixed so that no two lists collide, in hex.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &'static str) -> StoredResponse {
        StoredResponse {
            status: StatusCode::CREATED,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[tokio::test]
    async fn claims_are_exclusive_until_released_or_expired() {
        let clock = ManualClock::new();
        let store = MemoryStore::new(10).with_clock(clock.clone());
        let ttl = Duration::from_secs(60);
        let claim = |key: &str| store.claim_now(key.into(), "fp".into(), ttl).unwrap();

        assert!(matches!(claim("a"), Claim::Acquired));
        assert!(matches!(
            claim("a"),
            Claim::Existing(Record {
                state: RecordState::InFlight,
                ..
            })
        ));
        store.release("a".into()).await.unwrap();
        assert!(matches!(claim("a"), Claim::Acquired));

        store
            .complete("a".into(), "fp".into(), stored("done"), ttl)
            .await
            .unwrap();
        // A completed record survives a release.
        store.release("a".into()).await.unwrap();
        match claim("a") {
            Claim::Existing(Record {
                state: RecordState::Completed(response),
                fingerprint,
            }) => {
                assert_eq!(response.body, "done");
                assert_eq!(fingerprint, "fp");
            }
            other => panic!("expected the completed record, got {other:?}"),
        }
        clock.advance(Duration::from_secs(61));
        assert!(store.is_empty());
        assert!(matches!(claim("a"), Claim::Acquired));
    }

    #[test]
    fn a_full_store_refuses_new_keys_but_not_existing_ones() {
        let clock = ManualClock::new();
        let store = MemoryStore::new(2).with_clock(clock.clone());
        let ttl = Duration::from_secs(10);
        assert!(store.claim_now("a".into(), "fp".into(), ttl).is_ok());
        assert!(store
            .claim_now("b".into(), "fp".into(), Duration::from_secs(20))
            .is_ok());
        let error = store.claim_now("c".into(), "fp".into(), ttl).unwrap_err();
        assert!(error.to_string().contains("maximum of 2"), "{error}");
        assert!(matches!(
            store.claim_now("a".into(), "fp".into(), ttl),
            Ok(Claim::Existing(_))
        ));
        // Expiry frees room: `a` goes, `b` stays.
        clock.advance(Duration::from_secs(10));
        assert_eq!(store.len(), 1);
        assert!(matches!(
            store.claim_now("c".into(), "fp".into(), ttl),
            Ok(Claim::Acquired)
        ));
        let state = store.lock();
        assert_eq!(state.records.len(), state.expiry.len());
    }

    #[test]
    fn keys_must_be_visible_ascii_of_bounded_length() {
        let check = |value: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_bytes(value).unwrap());
            idempotency_key(&headers).map(str::to_owned)
        };
        assert_eq!(check(b"order-1_A~").unwrap(), "order-1_A~");
        assert!(check(&[b'k'; 255]).is_ok());
        assert!(check(&[b'k'; 256]).is_err());
        assert!(check(b"").is_err());
        assert!(check(b"has space").is_err());
        assert!(check("cl\u{e9}".as_bytes()).is_err());
        let mut two = HeaderMap::new();
        two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert!(idempotency_key(&two).is_err());
    }

    #[test]
    fn digests_are_unambiguous() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"x"]).len(), 64);
    }
}
