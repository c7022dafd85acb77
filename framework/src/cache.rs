//! HTTP caching: `Cache-Control` helpers and an in-memory response cache for `GET` routes.
//!
//! Three tools, usable on their own or together:
//!
//! - [`CacheControl`] builds a `Cache-Control` value (`public, s-maxage=60`,
//!   `private, no-cache`, `no-store`, ...). A handler can return it as part of its response.
//! - [`cache_control`] is middleware that gives a route a default `Cache-Control` when the handler
//!   set none.
//! - [`cache`] is middleware that keeps successful `GET` responses in memory and answers
//!   repeats without running the handler (`X-Cache: HIT`).
//!
//! ```
//! use arbor::cache::{cache, cache_control, CacheControl};
//! use arbor::Json;
//! use serde_json::{json, Value};
//!
//! // app/api/products/route.rs: CDN and in-process caching for 60 s.
//! #[arbor::handler(cache_control(CacheControl::public().s_maxage(60)), cache(ttl = 60))]
//! pub async fn GET() -> Json<Value> {
//!     Json(json!({ "products": [] }))
//! }
//! ```
//!
//! The response cache beats the guide's `withCache`: it is bounded, keeps status and headers,
//! honours `Vary`, `Cache-Control: private`/`no-store` and cookies, never caches errors or
//! other clients' credentialed responses, and runs the handler once when many identical requests
//! miss at the same time. See `docs/caching.md` for the rules.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::response::{IntoResponseParts, Response, ResponseParts};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use tokio::sync::watch;
use tower::{Layer, Service};

use crate::ready::take_ready;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// `X-Cache`: whether a response came from the cache (`HIT`) or from the handler (`MISS`).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The longest TTL accepted (ten years); larger values are clamped.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;

pub use crate::clock::{Clock, ManualClock, SystemClock};

// ---------------------------------------------------------------------------------------------
// Cache-Control
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visibility {
    Public,
    Private,
}

/// A `Cache-Control` header value.
///
/// ```
/// use arbor::cache::CacheControl;
///
/// assert_eq!(CacheControl::public().s_maxage(60).to_string(), "public, s-maxage=60");
/// assert_eq!(CacheControl::private_no_cache().to_string(), "private, no-cache");
/// assert_eq!(CacheControl::no_store().to_string(), "no-store");
/// ```
///
/// The guide's advice: `private, no-cache` for authenticated endpoints, `public, s-maxage=60`
/// for public data. A handler can return one as part of its response, which overrides a
/// route's [`cache_control`] default:
///
/// ```
/// use arbor::cache::CacheControl;
/// use arbor::Json;
/// use serde_json::{json, Value};
///
/// pub async fn GET() -> (CacheControl, Json<Value>) {
///     (CacheControl::public().max_age(30), Json(json!({ "ok": true })))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct CacheControl {
    visibility: Option<Visibility>,
    no_cache: bool,
    no_store: bool,
    must_revalidate: bool,
    immutable: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_while_revalidate: Option<u64>,
    stale_if_error: Option<u64>,
}

impl CacheControl {
    /// No directives; add them with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// `public`: any cache, shared ones (CDNs, proxies) included, may store the response.
    pub fn public() -> Self {
        Self {
            visibility: Some(Visibility::Public),
            ..Self::default()
        }
    }

    /// `private`: only the client's own cache may store the response.
    pub fn private() -> Self {
        Self {
            visibility: Some(Visibility::Private),
            ..Self::default()
        }
    }

    /// `private, no-cache`: for authenticated endpoints; the browser revalidates every time
    /// and no shared cache stores it.
    pub fn private_no_cache() -> Self {
        Self {
            visibility: Some(Visibility::Private),
            no_cache: true,
            ..Self::default()
        }
    }

    /// `no-cache`: caches must revalidate before each reuse.
    pub fn no_cache() -> Self {
        Self {
            no_cache: true,
            ..Self::default()
        }
    }

    /// `no-store`: no cache may keep any part of the response (secrets, tokens).
    pub fn no_store() -> Self {
        Self {
            no_store: true,
            ..Self::default()
        }
    }

    /// `max-age=<secs>`: fresh for that long in any cache.
    pub fn max_age(mut self, secs: u64) -> Self {
        self.max_age = Some(secs);
        self
    }

    /// `s-maxage=<secs>`: fresh for that long in shared caches (overrides `max-age` there).
    pub fn s_maxage(mut self, secs: u64) -> Self {
        self.s_maxage = Some(secs);
        self
    }

    /// `stale-while-revalidate=<secs>`.
    pub fn stale_while_revalidate(mut self, secs: u64) -> Self {
        self.stale_while_revalidate = Some(secs);
        self
    }

    /// `stale-if-error=<secs>`.
    pub fn stale_if_error(mut self, secs: u64) -> Self {
        self.stale_if_error = Some(secs);
        self
    }

    /// `must-revalidate`.
    pub fn must_revalidate(mut self) -> Self {
        self.must_revalidate = true;
        self
    }

    /// `immutable`.
    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// Whether `public` is set.
    pub fn is_public(&self) -> bool {
        self.visibility == Some(Visibility::Public)
    }

    /// Whether `private` is set (in any form, `private="set-cookie"` included).
    pub fn is_private(&self) -> bool {
        self.visibility == Some(Visibility::Private)
    }

    /// Whether `no-store` is set.
    pub fn is_no_store(&self) -> bool {
        self.no_store
    }

    /// Whether `no-cache` is set (in any form).
    pub fn is_no_cache(&self) -> bool {
        self.no_cache
    }

    /// The `max-age`, if set.
    pub fn max_age_secs(&self) -> Option<u64> {
        self.max_age
    }

    /// The `s-maxage`, if set.
    pub fn s_maxage_secs(&self) -> Option<u64> {
        self.s_maxage
    }

    /// Reads the `Cache-Control` headers of a message (all lines combined), or `None` when it
    /// has none. Directives this type does not model are ignored; malformed numbers count as
    /// `0` (that is, stale), as RFC 9111 recommends.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(header::CACHE_CONTROL).iter().peekable();
        values.peek()?;
        let mut parsed = Self::default();
        for value in values {
            let Ok(value) = value.to_str() else {
                continue;
            };
            parsed.merge(value);
        }
        Some(parsed)
    }

    /// Parses one header value (lenient, like [`from_headers`](Self::from_headers)).
    pub fn parse(value: &str) -> Self {
        let mut parsed = Self::default();
        parsed.merge(value);
        parsed
    }

    fn merge(&mut self, value: &str) {
        for directive in split_directives(value) {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let seconds = || argument.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
            match name.to_ascii_lowercase().as_str() {
                "public" if self.visibility.is_none() => {
                    self.visibility = Some(Visibility::Public);
                }
                // `private` wins over `public` whatever the order.
                "private" => self.visibility = Some(Visibility::Private),
                "no-cache" => self.no_cache = true,
                "no-store" => self.no_store = true,
                "must-revalidate" => self.must_revalidate = true,
                "immutable" => self.immutable = true,
                "max-age" => self.max_age = Some(seconds()),
                "s-maxage" => self.s_maxage = Some(seconds()),
                "stale-while-revalidate" => self.stale_while_revalidate = Some(seconds()),
                "stale-if-error" => self.stale_if_error = Some(seconds()),
                _ => {}
            }
        }
    }

    /// Whether this value lets a cache store the response for later reuse (a value that only
    /// restricts caching returns `false`).
    fn permits_storing(&self) -> bool {
        !self.no_store
            && !self.no_cache
            && (self.is_public()
                || self.max_age.is_some_and(|s| s > 0)
                || self.s_maxage.is_some_and(|s| s > 0))
    }

    /// The header value.
    pub fn to_header_value(&self) -> HeaderValue {
        // Only ASCII letters, digits, `-`, `=`, `,` and spaces: always a valid value.
        HeaderValue::try_from(self.to_string()).unwrap_or(HeaderValue::from_static("no-store"))
    }
}

/// Splits on commas outside quoted strings (`private="set-cookie, x-token"` is one directive).
fn split_directives(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

impl fmt::Display for CacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        match self.visibility {
            Some(Visibility::Public) => parts.push("public".into()),
            Some(Visibility::Private) => parts.push("private".into()),
            None => {}
        }
        if self.no_cache {
            parts.push("no-cache".into());
        }
        if self.no_store {
            parts.push("no-store".into());
        }
        if let Some(s) = self.max_age {
            parts.push(format!("max-age={s}"));
        }
        if let Some(s) = self.s_maxage {
            parts.push(format!("s-maxage={s}"));
        }
        if let Some(s) = self.stale_while_revalidate {
            parts.push(format!("stale-while-revalidate={s}"));
        }
        if let Some(s) = self.stale_if_error {
            parts.push(format!("stale-if-error={s}"));
        }
        if self.must_revalidate {
            parts.push("must-revalidate".into());
        }
        if self.immutable {
            parts.push("immutable".into());
        }
        f.write_str(&parts.join(", "))
    }
}

impl From<CacheControl> for HeaderValue {
    fn from(value: CacheControl) -> Self {
        value.to_header_value()
    }
}

impl From<&CacheControl> for HeaderValue {
    fn from(value: &CacheControl) -> Self {
        value.to_header_value()
    }
}

impl IntoResponseParts for CacheControl {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, self.to_header_value());
        Ok(res)
    }
}

// ---------------------------------------------------------------------------------------------
// cache_control(..) middleware
// ---------------------------------------------------------------------------------------------

/// Middleware that sets `Cache-Control` on responses whose handler did not set one.
///
/// ```
/// use arbor::cache::{cache_control, CacheControl};
///
/// #[arbor::handler(cache_control(CacheControl::private_no_cache()))]
/// pub async fn GET() -> &'static str {
///     "your account"
/// }
/// ```
///
/// A default that lets caches store the response (`public`, `max-age`/`s-maxage` above 0) is
/// applied to successful (`2xx`) and `304` responses only, so that a CDN never keeps an error
/// for a minute. A restrictive default (`no-store`, `no-cache`, `private` without an age) is
/// applied to every response.
pub fn cache_control(value: CacheControl) -> CacheControlLayer {
    CacheControlLayer {
        storable: value.permits_storing(),
        value: value.to_header_value(),
    }
}

/// The layer made by [`cache_control`].
#[derive(Debug, Clone)]
pub struct CacheControlLayer {
    value: HeaderValue,
    storable: bool,
}

impl<S> Layer<S> for CacheControlLayer {
    type Service = CacheControlService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheControlService {
            inner,
            value: self.value.clone(),
            storable: self.storable,
        }
    }
}

/// The service made by [`CacheControlLayer`].
#[derive(Debug, Clone)]
pub struct CacheControlService<S> {
    inner: S,
    value: HeaderValue,
    storable: bool,
}

impl<S> Service<Request> for CacheControlService<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let future = self.inner.call(request);
        let value = self.value.clone();
        let storable = self.storable;
        Box::pin(async move {
            let mut response = future.await?;
            let status = response.status();
            let applies = !storable || status.is_success() || status == StatusCode::NOT_MODIFIED;
            if applies && !response.headers().contains_key(header::CACHE_CONTROL) {
                response.headers_mut().insert(header::CACHE_CONTROL, value);
            }
            Ok(response)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// cache() middleware
// ---------------------------------------------------------------------------------------------

/// A response cache for `GET` routes, with a 60 s TTL, 1,000 entries and 1 MiB bodies by
/// default.
///
/// ```
/// use arbor::cache::cache;
///
/// #[arbor::handler(cache(ttl = 300, max_entries = 500))]
/// pub async fn GET() -> &'static str {
///     "expensive"
/// }
/// ```
///
/// What is cached, and what is not, is listed in `docs/caching.md`. In short: `2xx` answers to
/// `GET` without `Cache-Control: private`/`no-store`/`no-cache`, `Set-Cookie` or `Vary: *`,
/// whose body fits [`max_body_bytes`](CacheLayer::max_body_bytes); requests carrying
/// `Authorization` or `Cookie` use and fill the cache only with responses marked `public`.
/// Every `GET`/`HEAD` answer carries `X-Cache: HIT` or `X-Cache: MISS`.
pub fn cache() -> CacheLayer {
    CacheLayer {
        config: CacheConfig {
            ttl: Duration::from_secs(60),
            max_entries: 1_000,
            max_body_bytes: 1024 * 1024,
        },
        clock: Arc::new(SystemClock),
        store: Arc::new(OnceLock::new()),
    }
}

#[derive(Debug, Clone, Copy)]
struct CacheConfig {
    ttl: Duration,
    max_entries: u64,
    max_body_bytes: usize,
}

/// The layer made by [`cache`]. Every service it makes (one per method of the route) shares one
/// store.
#[derive(Clone)]
#[must_use]
pub struct CacheLayer {
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    store: Arc<OnceLock<Arc<Store>>>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// How long an entry is served, in seconds (60 by default; at most ten years). A response's
    /// own `s-maxage` (or else `max-age`) shortens it; `0` caches nothing.
    pub fn ttl(mut self, secs: u64) -> Self {
        self.config.ttl = Duration::from_secs(secs.min(MAX_TTL_SECS));
        self.fresh_store()
    }

    /// The most entries kept (1,000 by default); the least useful are evicted beyond it.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.config.max_entries = entries;
        self.fresh_store()
    }

    /// The largest body cached, in bytes (1 MiB by default). A larger response is passed
    /// through, whole and uncached.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self.fresh_store()
    }

    /// The time source for expiry ([`SystemClock`] by default; [`ManualClock`] in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.fresh_store()
    }

    fn fresh_store(mut self) -> Self {
        self.store = Arc::new(OnceLock::new());
        self
    }

    fn store(&self) -> Arc<Store> {
        self.store
            .get_or_init(|| Arc::new(Store::new(self.config, self.clock.clone())))
            .clone()
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService {
            inner,
            store: self.store(),
        }
    }
}

/// The service made by [`CacheLayer`].
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    store: Arc<Store>,
}

impl<S: fmt::Debug> fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request> for CacheService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        Box::pin(self.store.clone().handle(inner, request))
    }
}

/// One cached response.
#[derive(Debug)]
struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    public: bool,
    stored_at: Instant,
    expires_at: Instant,
}

/// The exact key of an entry: method and URI, plus the request's values of the headers the
/// response's `Vary` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryKey {
    primary: Arc<str>,
    vary: Vec<(HeaderName, Option<Bytes>)>,
}

type VaryList = Arc<[HeaderName]>;

struct Store {
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    entries: moka::sync::Cache<EntryKey, Arc<Entry>>,
    /// The `Vary` list last stored for each method + URI, to build the exact key of a lookup.
    vary: moka::sync::Cache<Arc<str>, VaryList>,
    /// Misses being answered now, by method + URI: identical requests wait for the first.
    flights: Mutex<HashMap<Arc<str>, watch::Receiver<()>>>,
}

enum Flight {
    Leader(FlightGuard),
    Follower(watch::Receiver<()>),
}

/// Ends a flight when dropped (stored, uncacheable, or cancelled): followers wake up.
struct FlightGuard {
    store: Arc<Store>,
    primary: Arc<str>,
    _done: watch::Sender<()>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.store
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.primary);
        // `_done` drops after this, which wakes every receiver.
    }
}

/// Why a response is stored, and for how long.
struct Storable {
    ttl: Duration,
    vary: VaryList,
    public: bool,
}

impl Store {
    fn new(config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let mut entries = moka::sync::Cache::builder().max_capacity(config.max_entries);
        let mut vary = moka::sync::Cache::builder().max_capacity(config.max_entries);
        if !config.ttl.is_zero() {
            // A backstop that frees memory; freshness itself is checked with `clock`.
            entries = entries.time_to_live(config.ttl);
            vary = vary.time_to_live(config.ttl);
        }
        Self {
            config,
            clock,
            entries: entries.build(),
            vary: vary.build(),
            flights: Mutex::new(HashMap::new()),
        }
    }

    async fn handle<S>(
        self: Arc<Self>,
        mut inner: S,
        request: Request,
    ) -> Result<Response, S::Error>
    where
        S: Service<Request, Response = Response> + Send + 'static,
        S::Future: Send + 'static,
    {
        let method = request.method().clone();
        if method != Method::GET && method != Method::HEAD {
            return inner.call(request).await;
        }
        let head = method == Method::HEAD;
        let credentials = request.headers().contains_key(header::AUTHORIZATION)
            || request.headers().contains_key(header::COOKIE);
        let primary = primary_key(&request);

        if let Some(entry) = self.lookup(&primary, request.headers()) {
            if !credentials || entry.public {
                return Ok(self.hit(&entry, head));
            }
        }

        // Identical anonymous GETs that miss together run the handler once: the first leads,
        // the others wait for it and look again.
        let mut flight = None;
        if !credentials && !head {
            match self.begin_flight(&primary) {
                Flight::Leader(guard) => flight = Some(guard),
                Flight::Follower(mut done) => {
                    // Err means the leader finished (its sender is gone): the expected wake-up.
                    let _ = done.changed().await;
                    if let Some(entry) = self.lookup(&primary, request.headers()) {
                        return Ok(self.hit(&entry, false));
                    }
                }
            }
        }

        let request_headers = request.headers().clone();
        let response = inner.call(request).await?;
        let mut response = if head {
            // A HEAD answer has no body to reuse; only GET fills the cache.
            response
        } else {
            self.store(primary, &request_headers, credentials, response)
                .await
        };
        drop(flight);
        response
            .headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("MISS"));
        Ok(response)
    }

    fn begin_flight(self: &Arc<Self>, primary: &Arc<str>) -> Flight {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(done) = flights.get(primary) {
            return Flight::Follower(done.clone());
        }
        let (tx, rx) = watch::channel(());
        flights.insert(primary.clone(), rx);
        Flight::Leader(FlightGuard {
            store: self.clone(),
            primary: primary.clone(),
            _done: tx,
        })
    }

    fn lookup(&self, primary: &Arc<str>, request_headers: &HeaderMap) -> Option<Arc<Entry>> {
        let vary = self.vary.get(primary)?;
        let key = entry_key(primary, &vary, request_headers);
        let entry = self.entries.get(&key)?;
        if self.clock.now() >= entry.expires_at {
            self.entries.invalidate(&key);
            return None;
        }
        Some(entry)
    }

    fn hit(&self, entry: &Entry, head: bool) -> Response {
        let age = self.clock.now().saturating_duration_since(entry.stored_at);
        let body = if head {
            Body::empty()
        } else {
            Body::from(entry.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = entry.status;
        *response.headers_mut() = entry.headers.clone();
        let headers = response.headers_mut();
        if head {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        }
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
        headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
        response
    }

    fn storable(&self, response: &Response, credentials: bool) -> Option<Storable> {
        let status = response.status();
        if !status.is_success() || status == StatusCode::PARTIAL_CONTENT {
            return None;
        }
        let headers = response.headers();
        if headers.contains_key(header::SET_COOKIE) {
            return None;
        }
        let control = CacheControl::from_headers(headers).unwrap_or_default();
        if control.is_private() || control.is_no_store() || control.is_no_cache() {
            return None;
        }
        if credentials && !control.is_public() {
            return None;
        }
        let mut ttl = self.config.ttl;
        if let Some(secs) = control.s_maxage_secs().or(control.max_age_secs()) {
            ttl = ttl.min(Duration::from_secs(secs));
        }
        if ttl.is_zero() {
            return None;
        }
        let vary = vary_list(headers)?;
        if let Some(length) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if length > u64::try_from(self.config.max_body_bytes).unwrap_or(u64::MAX) {
                return None;
            }
        }
        Some(Storable {
            ttl,
            vary,
            public: control.is_public(),
        })
    }

    async fn store(
        &self,
        primary: Arc<str>,
        request_headers: &HeaderMap,
        credentials: bool,
        response: Response,
    ) -> Response {
        let Some(storable) = self.storable(&response, credentials) else {
            return response;
        };
        let (parts, body) = response.into_parts();
        let bytes = match buffer_body(body, self.config.max_body_bytes).await {
            Buffered::Complete(bytes) => bytes,
            Buffered::Partial { body, .. } => return Response::from_parts(parts, body),
        };
        let now = self.clock.now();
        let key = entry_key(&primary, &storable.vary, request_headers);
        self.entries.insert(
            key,
            Arc::new(Entry {
                status: parts.status,
                headers: parts.headers.clone(),
                body: bytes.clone(),
                public: storable.public,
                stored_at: now,
                expires_at: now + storable.ttl,
            }),
        );
        self.vary.insert(primary, storable.vary);
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// `GET <path?query>`: HEAD shares GET's entries. The URI is the one the client sent
/// (before any `nest` stripped a prefix).
fn primary_key(request: &Request) -> Arc<str> {
    let uri = request
        .extensions()
        .get::<OriginalUri>()
        .map_or(request.uri(), |original| &original.0);
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Arc::from(format!("GET {target}"))
}

/// The header names in the response's `Vary`, lowercased, sorted and deduplicated; `None` for
/// `Vary: *` or a malformed name (uncacheable).
fn vary_list(headers: &HeaderMap) -> Option<VaryList> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let value = value.to_str().ok()?;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(HeaderName::from_bytes(name.as_bytes()).ok()?);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names.into())
}

fn entry_key(primary: &Arc<str>, vary: &[HeaderName], request_headers: &HeaderMap) -> EntryKey {
    let vary = vary
        .iter()
        .map(|name| {
            let mut values = request_headers.get_all(name).iter().peekable();
            let value = values.peek().is_some().then(|| {
                let mut joined = BytesMut::new();
                for (i, value) in values.enumerate() {
                    if i > 0 {
                        joined.extend_from_slice(b", ");
                    }
                    joined.extend_from_slice(value.as_bytes());
                }
                joined.freeze()
            });
            (name.clone(), value)
        })
        .collect();
    EntryKey {
        primary: primary.clone(),
        vary,
    }
}

// ---------------------------------------------------------------------------------------------
// Body buffering, shared with idempotency
// ---------------------------------------------------------------------------------------------

/// A body read up to a cap.
pub(crate) enum Buffered {
    /// The whole body, within the cap.
    Complete(Bytes),
    /// Not bufferable; `body` replays what was read and then the rest, so nothing is lost.
    Partial {
        body: Body,
        /// The body failed while being read (the replay ends with that error).
        failed: bool,
    },
}

/// What one `frame()` call yields: `Option<Result<http_body::Frame<Bytes>, axum::Error>>`
/// (`http_body` is not a direct dependency).
type ReadFrame = <http_body_util::combinators::Frame<'static, Body> as Future>::Output;

/// Reads `body` whole if it fits in `cap` bytes and has no trailers.
pub(crate) async fn buffer_body(mut body: Body, cap: usize) -> Buffered {
    if axum::body::HttpBody::size_hint(&body).lower() > u64::try_from(cap).unwrap_or(u64::MAX) {
        return Buffered::Partial {
            body,
            failed: false,
        };
    }
    let mut read: Vec<ReadFrame> = Vec::new();
    let mut total = 0usize;
    loop {
        let next = body.frame().await;
        match &next {
            None => break,
            Some(Ok(frame)) => {
                let overflow = match frame.data_ref() {
                    Some(data) => {
                        total = total.saturating_add(data.len());
                        total > cap
                    }
                    // Trailers: not something an entry keeps.
                    None => true,
                };
                read.push(next);
                if overflow {
                    return Buffered::Partial {
                        body: replay(read, Some(body)),
                        failed: false,
                    };
                }
            }
            Some(Err(_)) => {
                read.push(next);
                return Buffered::Partial {
                    body: replay(read, None),
                    failed: true,
                };
            }
        }
    }
    let mut bytes = BytesMut::with_capacity(total);
    for frame in read.into_iter().flatten().flatten() {
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Buffered::Complete(bytes.freeze())
}

/// A body that yields the frames in `read` and then what is left of `rest`.
fn replay(read: Vec<ReadFrame>, rest: Option<Body>) -> Body {
    let head = stream::iter(read.into_iter().flatten());
    match rest {
        Some(rest) => Body::new(StreamBody::new(head.chain(BodyStream::new(rest)))),
        None => Body::new(StreamBody::new(head)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_cache_control() {
        let parsed = CacheControl::parse("Public, S-MaxAge=60, max-age=\"10\", x-unknown");
        assert!(parsed.is_public());
        assert_eq!(parsed.s_maxage_secs(), Some(60));
        assert_eq!(parsed.max_age_secs(), Some(10));
        assert_eq!(parsed.to_string(), "public, max-age=10, s-maxage=60");

        let private = CacheControl::parse("public, private=\"set-cookie, x-a\", no-cache");
        assert!(private.is_private());
        assert!(private.is_no_cache());
        assert_eq!(CacheControl::parse("max-age=abc").max_age_secs(), Some(0));
        assert_eq!(
            CacheControl::public()
                .max_age(5)
                .stale_while_revalidate(30)
                .must_revalidate()
                .immutable()
                .to_string(),
            "public, max-age=5, stale-while-revalidate=30, must-revalidate, immutable"
        );
        assert!(CacheControl::public().s_maxage(1).permits_storing());
        assert!(!CacheControl::private_no_cache().permits_storing());
        assert!(!CacheControl::public()
            .s_maxage(0)
            .no_store_flag()
            .permits_storing());
    }

    impl CacheControl {
        fn no_store_flag(mut self) -> Self {
            self.no_store = true;
            self
        }
    }

    #[test]
    fn vary_lists_are_normalised_and_star_is_uncacheable() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::VARY,
            HeaderValue::from_static("Accept-Language, accept"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Accept"));
        let list = vary_list(&headers).unwrap();
        let names: Vec<&str> = list.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept", "accept-language"]);
        headers.append(header::VARY, HeaderValue::from_static("*"));
        assert!(vary_list(&headers).is_none());
    }

    #[test]
    fn the_store_is_bounded_by_max_entries() {
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            max_entries: 5,
            max_body_bytes: 1024,
        };
        let store = Store::new(config, Arc::new(SystemClock));
        let now = Instant::now();
        for i in 0..50 {
            store.entries.insert(
                entry_key(&Arc::from(format!("GET /{i}")), &[], &HeaderMap::new()),
                Arc::new(Entry {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    public: false,
                    stored_at: now,
                    expires_at: now + Duration::from_secs(60),
                }),
            );
        }
        store.entries.run_pending_tasks();
        assert!(
            store.entries.entry_count() <= 5,
            "{}",
            store.entries.entry_count()
        );
    }

    #[tokio::test]
    async fn buffering_keeps_every_byte_of_a_large_body() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..10u8).map(|i| Ok(Bytes::from(vec![i; 100]))).collect();
        let body = Body::from_stream(stream::iter(chunks));
        let Buffered::Partial { body, failed } = buffer_body(body, 250).await else {
            panic!("a 1000-byte body does not fit in 250");
        };
        assert!(!failed);
        let bytes = body.collect().await.unwrap().to_bytes();
        let expected: Vec<u8> = (0..10u8).flat_map(|i| vec![i; 100]).collect();
        assert_eq!(bytes.as_ref(), expected.as_slice());

        let Buffered::Complete(small) = buffer_body(Body::from("hello"), 5).await else {
            panic!("fits exactly");
        };
        assert_eq!(small, "hello");
    }
}
