//! [`Stores`]: the shared backends registered on an app, found by middleware at run time.

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "cache")]
use crate::cache::CacheStore;
#[cfg(feature = "idempotency")]
use crate::idempotency::IdempotencyStore;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::RateLimitStore;
#[cfg(feature = "webhooks")]
use crate::webhooks::ReplayStore;

/// What a rate limit does when its store fails (see [`Stores::rate_limit_failure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Let the request through without rate limit headers (the default): an outage of the
    /// store must not take the whole API down with it. The outage is logged and counted.
    #[default]
    Open,
    /// Refuse the request with `503 RATE_LIMIT_UNAVAILABLE` and `Retry-After`: for limits that
    /// guard something worth more than availability, such as password guessing on a login.
    Closed,
}

/// The shared stores of an app. Register them with [`App::stores`](crate::App::stores); every
/// request then carries them in its extensions, and the `rate_limit`, `idempotency` and `cache`
/// layers that were not given a store of their own use them.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct Stores {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    #[cfg(feature = "rate-limit")]
    rate_limit: Option<Arc<dyn RateLimitStore>>,
    rate_limit_failure: FailureMode,
    #[cfg(feature = "idempotency")]
    idempotency: Option<Arc<dyn IdempotencyStore>>,
    #[cfg(feature = "cache")]
    cache: Option<Arc<dyn CacheStore>>,
    #[cfg(feature = "webhooks")]
    webhook_replays: Option<Arc<dyn ReplayStore>>,
}

impl Stores {
    /// No shared stores: every layer keeps its state in memory.
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(feature = "rate-limit")]
    /// The store of every `rate_limit(..)` layer without one of its own. Limits that share it
    /// stay apart: the key includes the route, and the quota when several limits wrap one route.
    #[must_use]
    pub fn rate_limit(self, store: impl RateLimitStore) -> Self {
        self.with(|inner| inner.rate_limit = Some(Arc::new(store)))
    }

    /// What rate limits using the shared store do when it fails ([`FailureMode::Open`] by
    /// default). A layer's own `fail_closed(true)` overrides it.
    #[must_use]
    pub fn rate_limit_failure(self, mode: FailureMode) -> Self {
        self.with(|inner| inner.rate_limit_failure = mode)
    }

    #[cfg(feature = "idempotency")]
    /// The store of every `idempotency()` layer without one of its own.
    #[must_use]
    pub fn idempotency(self, store: impl IdempotencyStore) -> Self {
        self.with(|inner| inner.idempotency = Some(Arc::new(store)))
    }

    #[cfg(feature = "cache")]
    /// The store of every `cache(..)` layer (and `REVALIDATE` route) without one of its own.
    #[must_use]
    pub fn cache(self, store: impl CacheStore) -> Self {
        self.with(|inner| inner.cache = Some(Arc::new(store)))
    }

    #[cfg(feature = "webhooks")]
    /// The store of every webhook layer with a [`replay_ttl`](crate::webhooks::VerifyWebhookLayer::replay_ttl)
    /// and no store of its own: event ids seen by one instance are replays on every other.
    #[must_use]
    pub fn webhook_replays(self, store: impl ReplayStore) -> Self {
        self.with(|inner| inner.webhook_replays = Some(Arc::new(store)))
    }

    #[cfg(feature = "rate-limit")]
    /// The shared rate limit store, if one is registered.
    pub fn rate_limit_store(&self) -> Option<&Arc<dyn RateLimitStore>> {
        self.inner.rate_limit.as_ref()
    }

    /// The failure mode of rate limits using the shared store.
    pub fn rate_limit_failure_mode(&self) -> FailureMode {
        self.inner.rate_limit_failure
    }

    #[cfg(feature = "idempotency")]
    /// The shared idempotency store, if one is registered.
    pub fn idempotency_store(&self) -> Option<&Arc<dyn IdempotencyStore>> {
        self.inner.idempotency.as_ref()
    }

    #[cfg(feature = "cache")]
    /// The shared response cache store, if one is registered.
    pub fn cache_store(&self) -> Option<&Arc<dyn CacheStore>> {
        self.inner.cache.as_ref()
    }

    #[cfg(feature = "webhooks")]
    /// The shared webhook replay store, if one is registered.
    pub fn webhook_replay_store(&self) -> Option<&Arc<dyn ReplayStore>> {
        self.inner.webhook_replays.as_ref()
    }

    /// The stores a request carries, if the app registered any.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<&Self> {
        extensions.get::<Self>()
    }

    fn with(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Stores");
        #[cfg(feature = "rate-limit")]
        debug.field("rate_limit", &shared(self.inner.rate_limit.is_some()));
        debug.field("rate_limit_failure", &self.inner.rate_limit_failure);
        #[cfg(feature = "idempotency")]
        debug.field("idempotency", &shared(self.inner.idempotency.is_some()));
        #[cfg(feature = "cache")]
        debug.field("cache", &shared(self.inner.cache.is_some()));
        #[cfg(feature = "webhooks")]
        debug.field(
            "webhook_replays",
            &shared(self.inner.webhook_replays.is_some()),
        );
        debug.finish()
    }
}

#[cfg(any(
    feature = "cache",
    feature = "idempotency",
    feature = "rate-limit",
    feature = "webhooks"
))]
fn shared(present: bool) -> &'static str {
    if present {
        "shared"
    } else {
        "per layer, in memory"
    }
}
