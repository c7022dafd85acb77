//! Per-route rate limiting with GCRA, pluggable storage and the standard `429`.
//!
//! ```
//! use arbor::rate_limit;
//!
//! // app/api/(auth)/login/route.rs: 5 attempts per minute, per client address.
//! #[arbor::handler(rate_limit(limit = 5, window = 60))]
//! pub async fn POST() -> &'static str {
//!     "welcome"
//! }
//! ```
//!
//! [`rate_limit()`] returns a [`RateLimit`] builder that is a tower layer. Every response of a
//! limited route carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`;
//! a request over the limit is answered `429 RATE_LIMITED` with `Retry-After`, without running
//! the handler.
//!
//! The algorithm is GCRA (the generic cell rate algorithm): each key holds one timestamp, the
//! *theoretical arrival time* (TAT). A quota of `limit` per `window` admits one request every
//! `window / limit` on average and a burst of up to `limit` after a quiet period. Unlike a fixed
//! window, there is no boundary at which a client can send `2 × limit` requests in a moment.
//!
//! State lives in a [`RateLimitStore`]; the default [`MemoryStore`] keeps one atomic per key in a
//! bounded [`moka`] cache that forgets idle keys. See `docs/rate-limiting.md`.

use std::any::Any;
use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::{self, Either, FutureExt, Join, Map, Ready};
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;
use tower::{Layer, Service};

use crate::ready::take_ready;
use crate::{ApiError, ClientIp};

/// The boxed future [`RateLimitStore::check`] returns (from `futures-util`).
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::store::StoreError;
pub use futures_util::future::BoxFuture;

/// Requests allowed per window when [`RateLimit::limit`] is not called.
pub const DEFAULT_LIMIT: u32 = 100;
/// The window when [`RateLimit::window`] is not called: 60 seconds.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Keys a [`MemoryStore`] holds at most when built with [`MemoryStore::default`].
pub const DEFAULT_MAX_CAPACITY: u64 = 10_000;

/// `X-RateLimit-Limit`: the requests allowed per window.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: the requests the client may still send right now.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: seconds until the client's whole allowance is available again.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A rate limit of 100 requests per 60 seconds per client and route, in memory: configure it
/// with the [`RateLimit`] setters.
///
/// ```
/// use std::time::Duration;
///
/// use arbor::rate_limit;
/// use arbor::rate_limit::MemoryStore;
///
/// let login = rate_limit().limit(5).window(60);
/// let search = rate_limit()
///     .limit(20)
///     .window_duration(Duration::from_millis(1500))
///     .key(|parts| {
///         parts
///             .headers
///             .get("x-api-key")
///             .and_then(|v| v.to_str().ok())
///             .map(|key| format!("api-key:{key}"))
///     })
///     .store(MemoryStore::new(100_000));
/// # let _ = (login, search);
/// ```
pub fn rate_limit() -> RateLimit {
    RateLimit {
        quota: Quota::new(DEFAULT_LIMIT, DEFAULT_WINDOW),
        key: None,
        backend: Backend::Memory(MemoryStore::default()),
    }
}

/// A custom key function: the bucket a request counts against.
pub type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// The rate limit layer and its builder; made by [`rate_limit()`].
///
/// All routes and methods wrapped by one `RateLimit` (and its clones) share its store. Each
/// [`rate_limit()`] call makes a new in-memory store, so two `#[arbor::handler(rate_limit(..))]`
/// attributes never share counters.
#[derive(Clone)]
#[must_use = "a rate limit does nothing until it wraps a route"]
pub struct RateLimit {
    quota: Quota,
    key: Option<KeyFn>,
    backend: Backend,
}

impl RateLimit {
    /// Requests allowed per window, and the largest burst (default 100).
    ///
    /// # Panics
    /// If `limit` is 0: refuse a route's requests with your own middleware instead.
    pub fn limit(mut self, limit: u32) -> Self {
        self.quota = Quota::new(limit, self.quota.window);
        self
    }

    /// The window in seconds (default 60).
    ///
    /// # Panics
    /// If `seconds` is 0.
    pub fn window(self, seconds: u64) -> Self {
        self.window_duration(Duration::from_secs(seconds))
    }

    /// The window as a [`Duration`], for windows that are not whole seconds.
    ///
    /// # Panics
    /// If `window` is zero.
    pub fn window_duration(mut self, window: Duration) -> Self {
        self.quota = Quota::new(self.quota.limit, window);
        self
    }

    /// Counts requests per key returned by `key` (a user id, an API key, ...) instead of per
    /// client address and route. A request for which `key` returns `None` is counted under the
    /// default key.
    ///
    /// The key is used as is: with a store shared by several routes, include the route in it
    /// if each route should have its own allowance.
    pub fn key<F>(self, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.key_fn(Arc::new(key))
    }

    /// [`key`](Self::key) with a shared function.
    pub fn key_fn(mut self, key: KeyFn) -> Self {
        self.key = Some(key);
        self
    }

    /// Keeps state in `store` instead of a new [`MemoryStore`]. Pass clones of one store to
    /// several limits to bound their memory together, or a store shared by every instance of
    /// the service (such as Redis) to limit across instances.
    pub fn store<S: RateLimitStore>(mut self, store: S) -> Self {
        // The in-memory store answers synchronously: keep it unboxed so that a request's
        // check needs no allocation beyond its key.
        let mut store = Some(store);
        self.backend = match (&mut store as &mut dyn Any)
            .downcast_mut::<Option<MemoryStore>>()
            .and_then(Option::take)
        {
            Some(memory) => Backend::Memory(memory),
            None => store.map_or_else(
                || Backend::Memory(MemoryStore::default()),
                |store| Backend::Custom(Arc::new(store)),
            ),
        };
        self
    }

    /// The configured quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("quota", &self.quota)
            .field(
                "key",
                &if self.key.is_some() {
                    "custom"
                } else {
                    "client ip + route"
                },
            )
            .field("store", &self.backend)
            .finish()
    }
}

impl<S> Layer<S> for RateLimit {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: Arc::new(Shared {
                quota: self.quota,
                key: self.key.clone(),
                backend: self.backend.clone(),
                warned_no_ip: AtomicBool::new(false),
            }),
        }
    }
}

#[derive(Clone)]
enum Backend {
    Memory(MemoryStore),
    Custom(Arc<dyn RateLimitStore>),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(store) => store.fmt(f),
            Self::Custom(_) => f.write_str("custom"),
        }
    }
}

struct Shared {
    quota: Quota,
    key: Option<KeyFn>,
    backend: Backend,
    warned_no_ip: AtomicBool,
}

impl Shared {
    /// The request's bucket: the custom key, else the client address and the route.
    fn key(&self, request: Request) -> (Request, String) {
        let (request, custom) = match &self.key {
            Some(key_fn) => {
                let (parts, body) = request.into_parts();
                let key = key_fn(&parts);
                (Request::from_parts(parts, body), key)
            }
            None => (request, None),
        };
        if let Some(key) = custom {
            return (request, key);
        }
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| request.uri().path(), MatchedPath::as_str);
        let mut key = String::with_capacity(44 + route.len());
        // IPv4-mapped IPv6 peers (dual-stack sockets) count as IPv4.
        let ip = ClientIp::from_extensions(request.extensions()).map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        });
        match ip {
            // One IPv6 client usually holds a whole /64: count it as one.
            Some(IpAddr::V6(ip)) => {
                let prefix = Ipv6Addr::from(u128::from(ip) & !u128::from(u64::MAX));
                let _ = write!(key, "{prefix}/64");
            }
            Some(IpAddr::V4(ip)) => {
                // By hand: `Display` for addresses goes through the formatting machinery.
                let mut digits = itoa::Buffer::new();
                for (index, octet) in ip.octets().into_iter().enumerate() {
                    if index > 0 {
                        key.push('.');
                    }
                    key.push_str(digits.format(octet));
                }
            }
            None => {
                if !self.warned_no_ip.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        route,
                        "rate limit: the request has no client address (serve with \
                         arbor::serve, which records it); such requests share one allowance"
                    );
                }
                key.push_str("unknown");
            }
        }
        key.push(' ');
        key.push_str(route);
        (request, key)
    }

    fn reject(&self, decision: &Decision) -> Response {
        let retry_after = decision.retry_after_secs();
        let window = self.quota.window;
        let window_secs = if window.subsec_nanos() == 0 {
            serde_json::Value::from(window.as_secs())
        } else {
            serde_json::Value::from(window.as_secs_f64())
        };
        let message = format!(
            "too many requests: the limit is {} per {window_secs} s; retry in {retry_after} s",
            self.quota.limit
        );
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
            .with_details(serde_json::json!({
                "limit": self.quota.limit,
                "window_secs": window_secs,
                "retry_after_secs": retry_after,
            }))
            .with_header(header::RETRY_AFTER, number(retry_after))
            .into_response();
        decision.write_headers(response.headers_mut());
        response
    }
}

/// The service made by [`RateLimit`].
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("quota", &self.shared.quota)
            .field("store", &self.shared.backend)
            .finish_non_exhaustive()
    }
}

type Finish<E> = fn((Result<Response, E>, Decision)) -> Result<Response, E>;

/// The future of [`RateLimitService`]: a `429`, the inner service's response with the rate
/// limit headers added, or (with a custom store) the whole check boxed. Its exact type is an
/// implementation detail.
pub type ResponseFuture<F, E> = Either<
    Ready<Result<Response, E>>,
    Either<Map<Join<F, Ready<Decision>>, Finish<E>>, BoxFuture<'static, Result<Response, E>>>,
>;

fn finish<E>((response, decision): (Result<Response, E>, Decision)) -> Result<Response, E> {
    let mut response = response?;
    decision.write_headers(response.headers_mut());
    Ok(response)
}

impl<S> Service<Request> for RateLimitService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (request, key) = self.shared.key(request);
        match &self.shared.backend {
            Backend::Memory(store) => {
                let decision = store.check_now(&key, self.shared.quota);
                if !decision.allowed {
                    return Either::Left(future::ready(Ok(self.shared.reject(&decision))));
                }
                let response = self.inner.call(request);
                Either::Right(Either::Left(
                    future::join(response, future::ready(decision))
                        .map(finish::<S::Error> as Finish<S::Error>),
                ))
            }
            Backend::Custom(store) => {
                let store = Arc::clone(store);
                let shared = Arc::clone(&self.shared);
                let mut inner = take_ready(&mut self.inner);
                Either::Right(Either::Right(Box::pin(async move {
                    match store.check(&key, shared.quota).await {
                        Ok(decision) if !decision.allowed => Ok(shared.reject(&decision)),
                        Ok(decision) => finish((inner.call(request).await, decision)),
                        Err(error) => {
                            tracing::error!(
                                error = %error,
                                "rate limit store failed; letting the request through"
                            );
                            inner.call(request).await
                        }
                    }
                })))
            }
        }
    }
}

/// A limit of `limit` requests per `window`, with bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    window: Duration,
}

impl Quota {
    /// `limit` requests per `window`.
    ///
    /// # Panics
    /// If `limit` is 0 or `window` is zero.
    pub fn new(limit: u32, window: Duration) -> Self {
        assert!(
            limit > 0,
            "a rate limit must allow at least 1 request per window"
        );
        assert!(
            !window.is_zero(),
            "a rate limit window must be longer than zero"
        );
        Self { limit, window }
    }

    /// Requests per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The time one request uses up: `window / limit` (at least 1 ns).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    fn interval_nanos(&self) -> u64 {
        (nanos(self.window) / u64::from(self.limit)).max(1)
    }

    /// One GCRA step: the decision for a request at `now`, given the key's stored theoretical
    /// arrival time (`None` for a key never seen), and the arrival time to store if the request
    /// is allowed (a denied request changes nothing).
    ///
    /// `tat` and `now` are durations since any origin the store chooses, the same for both.
    /// Stores that keep state elsewhere (Redis, a database) apply this atomically per key.
    pub fn evaluate(&self, tat: Option<Duration>, now: Duration) -> (Decision, Option<Duration>) {
        let (decision, tat) = self.evaluate_nanos(tat.map_or(0, nanos), nanos(now));
        (decision, tat.map(Duration::from_nanos))
    }

    fn evaluate_nanos(&self, tat: u64, now: u64) -> (Decision, Option<u64>) {
        let interval = self.interval_nanos();
        // The burst tolerance: `limit` intervals, i.e. the window rounded down to them.
        let capacity = interval.saturating_mul(u64::from(self.limit));
        let new_tat = tat.max(now).saturating_add(interval);
        let ahead = new_tat - now;
        if ahead <= capacity {
            let remaining = (capacity - ahead) / interval;
            let decision = Decision {
                allowed: true,
                limit: self.limit,
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                reset_after: Duration::from_nanos(ahead),
                retry_after: Duration::ZERO,
            };
            (decision, Some(new_tat))
        } else {
            // Denied, so `tat > now`: the next request fits once `tat + interval - now` is
            // down to `capacity`.
            let decision = Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_after: Duration::from_nanos(tat.saturating_sub(now)),
                retry_after: Duration::from_nanos(ahead - capacity),
            };
            (decision, None)
        }
    }
}

/// The outcome of checking one request against a [`Quota`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The quota's limit.
    pub limit: u32,
    /// Requests the key may still send right now, after this one.
    pub remaining: u32,
    /// Time until the key's whole allowance (`limit` requests) is available again.
    pub reset_after: Duration,
    /// For a denied request, the time until the next request is allowed; zero otherwise.
    pub retry_after: Duration,
}

impl Decision {
    /// [`reset_after`](Self::reset_after) in whole seconds, rounded up: `X-RateLimit-Reset`.
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }

    /// [`retry_after`](Self::retry_after) in whole seconds, rounded up and at least 1 for a
    /// denied request: `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        if self.allowed {
            0
        } else {
            ceil_secs(self.retry_after).max(1)
        }
    }

    /// Sets `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`, unless the
    /// headers already describe a limit with fewer requests remaining (an inner limit), so that
    /// nested limits report the one closest to refusing.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let tighter = headers
            .get(&X_RATELIMIT_REMAINING)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|existing| existing < u64::from(self.remaining));
        if tighter {
            return;
        }
        headers.reserve(3);
        headers.insert(X_RATELIMIT_LIMIT, number(u64::from(self.limit)));
        headers.insert(X_RATELIMIT_REMAINING, number(u64::from(self.remaining)));
        headers.insert(X_RATELIMIT_RESET, number(self.reset_after_secs()));
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A header value for `n`; small numbers come from a table, without allocating.
fn number(n: u64) -> HeaderValue {
    const SMALL: usize = 1024;
    static TABLE: OnceLock<Box<[HeaderValue]>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..SMALL as u64).map(HeaderValue::from).collect());
    usize::try_from(n)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(n))
}

/// Where rate limit state lives: implement it to keep state outside the process (Redis, a
/// database) without changing any route.
///
/// `check` decides one request for `key` under `quota` and records it if allowed, atomically:
/// concurrent checks of one key must not both take the last slot. The store keeps its own time
/// (for Redis, the server's clock); [`Quota::evaluate`] does the arithmetic.
///
/// When `check` fails, the request is let through without rate limit headers and the error is
/// logged: an unavailable store must not take the API down with it.
///
/// ```
/// use std::time::Duration;
///
/// use arbor::rate_limit::{BoxFuture, Decision, Quota, RateLimitStore, StoreError};
///
/// struct Redis { /* a connection pool */ }
///
/// impl RateLimitStore for Redis {
///     fn check<'a>(&'a self, key: &'a str, quota: Quota) -> BoxFuture<'a, Result<Decision, StoreError>> {
///         Box::pin(async move {
///             // A Lua script: read the key's TAT, apply GCRA with the server's time, write the
///             // new TAT with an expiry of `quota.window()` if allowed.
///             # let _ = key;
///             # let (decision, _) = quota.evaluate(None, Duration::ZERO);
///             Ok(decision)
///         })
///     }
/// }
/// ```
pub trait RateLimitStore: Send + Sync + 'static {
    /// Decides the request counted under `key`, recording it if allowed.
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>>;
}

impl<T: RateLimitStore + ?Sized> RateLimitStore for Arc<T> {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        (**self).check(key, quota)
    }
}

/// The in-process store: one atomic timestamp per key in a bounded, concurrent cache.
///
/// - **Bounded**: at most `max_capacity` keys; past that the least recently used are dropped
///   (they start again with a full allowance).
/// - **Idle keys are forgotten**: a key unused for its quota's window is removed. Its state
///   then equals that of a new key, so nothing is lost.
/// - **Lock-free per request**: a lookup in [moka]'s concurrent map and a compare-and-swap.
///
/// Clones share the same state. Counters are per process: with several instances behind a
/// load balancer, each allows the full limit.
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<String, Arc<Slot>>,
    clock: Arc<dyn Clock>,
    /// Times are measured from here, so they fit the per-key atomic.
    origin: Instant,
}

struct Slot {
    /// The theoretical arrival time, in nanoseconds since the clock's origin.
    tat: AtomicU64,
    /// How long the key may sit unused before it is dropped: its quota's window.
    idle: Duration,
}

struct IdleExpiry;

impl Expiry<String, Arc<Slot>> for IdleExpiry {
    fn expire_after_create(&self, _: &String, slot: &Arc<Slot>, _: Instant) -> Option<Duration> {
        Some(slot.idle)
    }

    fn expire_after_read(
        &self,
        _: &String,
        slot: &Arc<Slot>,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(slot.idle)
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Arc<Slot>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.idle)
    }
}

impl MemoryStore {
    /// A store holding at most `max_capacity` keys, on the system's monotonic clock.
    pub fn new(max_capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_capacity)
            // LRU rather than TinyLFU: TinyLFU may refuse to admit a new key, which would then
            // get a fresh allowance on every request.
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(IdleExpiry)
            .build();
        Self {
            cache,
            clock: Arc::new(SystemClock),
            origin: Instant::now(),
        }
    }

    /// Uses `clock` for time (a [`ManualClock`] in tests); times count from its current reading.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.origin = clock.now();
        self.clock = Arc::new(clock);
        self
    }

    /// Decides a request for `key` at the clock's current time.
    pub fn check_now(&self, key: &str, quota: Quota) -> Decision {
        let now = self.clock.now().saturating_duration_since(self.origin);
        self.check_at(key, quota, now)
    }

    /// Decides a request for `key` at `now` (a duration since the store's origin).
    pub fn check_at(&self, key: &str, quota: Quota, now: Duration) -> Decision {
        // Allocates (a copy of the key) only for a key not in the cache.
        let slot = self.cache.get_with_by_ref(key, || {
            Arc::new(Slot {
                tat: AtomicU64::new(0),
                idle: quota.window,
            })
        });
        let now = nanos(now);
        let mut tat = slot.tat.load(Ordering::Acquire);
        loop {
            let (decision, new_tat) = quota.evaluate_nanos(tat, now);
            let Some(new_tat) = new_tat else {
                return decision;
            };
            match slot
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return decision,
                Err(current) => tat = current,
            }
        }
    }

    /// The number of keys held (approximate until [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Applies pending evictions now (they otherwise happen in the course of later requests).
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}

impl Default for MemoryStore {
    /// [`DEFAULT_MAX_CAPACITY`] keys on the system clock.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CAPACITY)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entry_count", &self.cache.entry_count())
            .field("max_capacity", &self.cache.policy().max_capacity())
            .finish_non_exhaustive()
    }
}

impl RateLimitStore for MemoryStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(future::ready(Ok(self.check_now(key, quota))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn store() -> (MemoryStore, ManualClock) {
        let clock = ManualClock::new();
        (MemoryStore::new(1_000).with_clock(clock.clone()), clock)
    }

    #[test]
    fn bursts_up_to_the_limit_then_refuses() {
        let (store, _clock) = store();
        let quota = Quota::new(5, 60 * SEC);
        for expected_remaining in (0..5).rev() {
            let decision = store.check_now("k", quota);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = store.check_now("k", quota);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        // Other keys are untouched.
        assert_eq!(store.check_now("other", quota).remaining, 4);
    }

    #[test]
    fn refills_one_request_per_interval() {
        let (store, clock) = store();
        let quota = Quota::new(5, 60 * SEC);
        assert_eq!(quota.emission_interval(), 12 * SEC);
        for _ in 0..5 {
            assert!(store.check_now("k", quota).allowed);
        }
        clock.advance(12 * SEC - Duration::from_nanos(1));
        assert!(!store.check_now("k", quota).allowed);
        clock.advance(Duration::from_nanos(1));
        let decision = store.check_now("k", quota);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
        assert!(!store.check_now("k", quota).allowed);

        // Sustained: one every interval, for ever, and no more.
        for _ in 0..100 {
            clock.advance(12 * SEC);
            assert!(store.check_now("k", quota).allowed);
            assert!(!store.check_now("k", quota).allowed);
        }

        // A full window of silence restores the whole burst, and no more than it.
        clock.advance(600 * SEC);
        let allowed = (0..20)
            .filter(|_| store.check_now("k", quota).allowed)
            .count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn no_fixed_window_boundary_to_exploit() {
        // A fixed window allows `limit` at the end of one window and `limit` again at the start
        // of the next. GCRA allows at most `limit + elapsed / interval` in any stretch of time.
        let (store, clock) = store();
        let quota = Quota::new(10, 60 * SEC);
        clock.set(59 * SEC);
        let first = (0..10)
            .filter(|_| store.check_now("k", quota).allowed)
            .count();
        clock.set(61 * SEC);
        let second = (0..10)
            .filter(|_| store.check_now("k", quota).allowed)
            .count();
        assert_eq!((first, second), (10, 0));
    }

    #[test]
    fn remaining_and_reset_report_the_bucket() {
        let (store, clock) = store();
        let quota = Quota::new(3, 30 * SEC);
        let first = store.check_now("k", quota);
        assert_eq!((first.remaining, first.reset_after), (2, 10 * SEC));
        let second = store.check_now("k", quota);
        assert_eq!((second.remaining, second.reset_after), (1, 20 * SEC));
        assert_eq!(second.reset_after_secs(), 20);
        clock.advance(Duration::from_millis(2_500));
        let third = store.check_now("k", quota);
        // 20 s were owed, 2.5 s passed, 10 s added: full again in 27.5 s, and 2.5 s of credit
        // is not yet a whole request.
        assert_eq!(third.remaining, 0);
        assert_eq!(third.reset_after, Duration::from_millis(27_500));
        assert_eq!(third.reset_after_secs(), 28);
        let refused = store.check_now("k", quota);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(7_500));
        assert_eq!(refused.retry_after_secs(), 8);
        assert_eq!(refused.reset_after_secs(), 28);
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        let quota = Quota::new(7, 60 * SEC);
        // interval = 8.571428571 s
        let (refused, tat) = quota.evaluate(Some(60 * SEC), Duration::ZERO);
        assert!(!refused.allowed && tat.is_none());
        assert_eq!(refused.retry_after_secs(), 9);

        let fast = Quota::new(10, SEC);
        let (refused, _) = fast.evaluate(Some(SEC), Duration::ZERO);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(refused.retry_after_secs(), 1);

        let (allowed, tat) = fast.evaluate(None, Duration::ZERO);
        assert!(allowed.allowed);
        assert_eq!(allowed.retry_after_secs(), 0);
        assert_eq!(tat, Some(Duration::from_millis(100)));
    }

    #[test]
    fn uneven_windows_never_allow_more_than_the_limit() {
        for limit in [1, 3, 7, 13, 1_000, 999_999] {
            let quota = Quota::new(limit, Duration::from_nanos(1_000_000_007));
            let mut tat = None;
            let mut allowed = 0;
            while let (decision, Some(next)) = quota.evaluate(tat, Duration::ZERO) {
                assert!(decision.allowed);
                allowed += 1;
                tat = Some(next);
            }
            assert_eq!(allowed, limit);
        }
    }

    #[test]
    #[should_panic(expected = "at least 1 request")]
    fn a_zero_limit_is_a_configuration_error() {
        let _ = rate_limit().limit(0);
    }

    #[test]
    #[should_panic(expected = "longer than zero")]
    fn a_zero_window_is_a_configuration_error() {
        let _ = rate_limit().window(0);
    }

    #[test]
    fn concurrent_checks_allow_exactly_the_limit() {
        let (store, _clock) = store();
        let quota = Quota::new(500, 60 * SEC);
        let allowed = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..250 {
                        if store.check_now("shared", quota).allowed {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(allowed.load(Ordering::Relaxed), 500);
    }

    #[test]
    fn memory_is_bounded_by_max_capacity() {
        let clock = ManualClock::new();
        let store = MemoryStore::new(10_000).with_clock(clock);
        let quota = Quota::new(10, 60 * SEC);
        for i in 0..100_000 {
            store.check_now(&format!("client-{i}"), quota);
        }
        store.run_pending_tasks();
        assert!(
            store.entry_count() <= 10_000,
            "{} keys held",
            store.entry_count()
        );
        // The most recent keys are the ones kept.
        assert_eq!(store.check_now("client-99999", quota).remaining, 8);
    }

    #[test]
    fn idle_keys_are_forgotten_after_their_window() {
        // moka measures idleness on the real clock, so this test waits (briefly) for real; the
        // store's own clock stays put, so only the eviction can explain a fresh allowance.
        let (store, _clock) = store();
        let quota = Quota::new(1, Duration::from_millis(20));
        assert!(store.check_now("idle", quota).allowed);
        assert!(!store.check_now("idle", quota).allowed);
        assert!(store.cache.contains_key("idle"));
        std::thread::sleep(Duration::from_millis(120));
        assert!(!store.cache.contains_key("idle"));
        assert!(store.check_now("idle", quota).allowed);
    }

    #[test]
    fn headers_keep_the_tighter_of_nested_limits() {
        let quota = Quota::new(10, 60 * SEC);
        let (loose, _) = quota.evaluate(None, Duration::ZERO);
        let (tight, _) = Quota::new(2, 60 * SEC).evaluate(None, Duration::ZERO);
        let mut headers = HeaderMap::new();
        tight.write_headers(&mut headers);
        loose.write_headers(&mut headers);
        assert_eq!(headers[&X_RATELIMIT_LIMIT], "2");
        assert_eq!(headers[&X_RATELIMIT_REMAINING], "1");
        assert_eq!(headers[&X_RATELIMIT_RESET], "30");
        let mut headers = HeaderMap::new();
        loose.write_headers(&mut headers);
        tight.write_headers(&mut headers);
        assert_eq!(headers[&X_RATELIMIT_LIMIT], "2");
    }

    #[test]
    fn numbers_render_with_and_without_the_table() {
        assert_eq!(number(0), "0");
        assert_eq!(number(1023), "1023");
        assert_eq!(number(1024), "1024");
        assert_eq!(number(u64::MAX), "18446744073709551615");
    }

    #[test]
    fn store_accepts_memory_stores_unboxed_and_others_boxed() {
        let memory = rate_limit().store(MemoryStore::new(5));
        assert!(matches!(memory.backend, Backend::Memory(_)));
        let shared: Arc<dyn RateLimitStore> = Arc::new(MemoryStore::new(5));
        let custom = rate_limit().store(shared);
        assert!(matches!(custom.backend, Backend::Custom(_)));
    }
}
