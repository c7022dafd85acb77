//! The [`cache()`] layer and the service it makes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};

use super::response::ResponseCache;
use super::{CacheStore, MAX_TTL_SECS};
use crate::clock::{Clock, SystemClock};
use crate::service::take_ready;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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
            tags: Arc::from([]),
        },
        clock: Arc::new(SystemClock),
        shared: None,
        engine: Arc::new(OnceLock::new()),
    }
}

#[derive(Debug, Clone)]
pub(super) struct CacheConfig {
    pub(super) ttl: Duration,
    pub(super) max_entries: u64,
    pub(super) max_body_bytes: usize,
    /// Tags of every response the layer stores (a response adds its own `CacheTags`).
    pub(super) tags: Arc<[String]>,
}

/// The layer made by [`cache`]. Every service it makes (one per method of the route) shares one
/// store: its own [`store`](Self::store), else the app's shared one, else its own memory.
#[derive(Clone)]
#[must_use]
pub struct CacheLayer {
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    shared: Option<Arc<dyn CacheStore>>,
    engine: Arc<OnceLock<Arc<ResponseCache>>>,
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

    /// Tags every response the layer stores (`cache(ttl = 60, tags = ["posts"])`), so that
    /// [`Invalidator::tag`](super::Invalidator::tag) drops them; a response adds its own with
    /// [`CacheTags`](super::CacheTags).
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.config.tags = tags.into_iter().map(Into::into).collect();
        self.fresh_store()
    }

    /// The time source for expiry ([`SystemClock`] by default; [`ManualClock`] in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.fresh_store()
    }

    /// Keeps entries in `store` instead of the app's shared store or the layer's own memory.
    pub fn store(mut self, store: impl CacheStore) -> Self {
        self.shared = Some(Arc::new(store));
        self.fresh_store()
    }

    fn fresh_store(mut self) -> Self {
        self.engine = Arc::new(OnceLock::new());
        self
    }

    fn engine(&self) -> Arc<ResponseCache> {
        self.engine
            .get_or_init(|| {
                let cache = Arc::new(ResponseCache::new(
                    self.config.clone(),
                    self.clock.clone(),
                    self.shared.clone(),
                ));
                super::invalidate::register(&cache);
                cache
            })
            .clone()
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache {
            inner,
            engine: self.engine(),
        }
    }
}

/// The service made by [`CacheLayer`].
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    engine: Arc<ResponseCache>,
}

impl<S: fmt::Debug> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request> for Cache<S>
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
        Box::pin(self.engine.clone().handle(inner, request))
    }
}
