//! One home for pluggable backends: the future type and the error every store trait uses, and
//! [`Stores`], the shared backends an [`App`](crate::App) hands to every route's middleware.
//!
//! Each stateful middleware defines its store trait next to its code:
//!
//! | Trait | Used by | Built-in, one process | Shared by every instance |
//! |---|---|---|---|
//! | [`RateLimitStore`](crate::rate_limit::RateLimitStore) | `rate_limit(..)` | [`rate_limit::MemoryStore`](crate::rate_limit::MemoryStore) | `arbor-redis` |
//! | [`IdempotencyStore`](crate::idempotency::IdempotencyStore) | `idempotency()` | [`idempotency::MemoryStore`](crate::idempotency::MemoryStore) | `arbor-redis` |
//! | [`CacheStore`](crate::cache::CacheStore) | `cache(..)`, `REVALIDATE` | a bounded in-process cache per route | `arbor-redis` |
//! | [`ReplayStore`](crate::webhooks::ReplayStore) | `webhooks::verify(..).replay_ttl(..)` | [`MemoryReplayStore`](crate::webhooks::MemoryReplayStore) | `arbor-redis` |
//! | [`EventBus`](crate::events::EventBus) | [`Bus`](crate::events::Bus), SSE | [`InMemoryBus`](crate::events::InMemoryBus) | `arbor-redis` |
//! | [`Storage`](crate::upload::Storage) | uploads | [`LocalStorage`](crate::upload::LocalStorage) | your object store |
//!
//! Every method returns a [`BoxFuture`] (so the traits are object-safe) of a `Result` whose error
//! is a [`StoreError`], which says whether the backend is unavailable, full, or failed otherwise.
//! A backend crate implements the traits it supports; no route changes.
//!
//! # Choosing backends at start-up
//!
//! Route attributes such as `#[arbor::handler(rate_limit(limit = 5, window = 60))]` are written
//! once, in the route file. Which store they use is decided when the app starts: register the
//! shared stores on [`App::stores`](crate::App::stores), and every `rate_limit`, `idempotency`
//! and `cache` layer that was not given a store of its own finds them in the request's
//! extensions. Without registered stores, each layer keeps its state in memory.
//!
//! ```
//! use arbor::rate_limit::MemoryStore;
//! use arbor::store::{FailureMode, Stores};
//!
//! // What a Redis backend returns; here, one in-memory store shared by every limit.
//! let stores = Stores::new()
//!     .rate_limit(MemoryStore::new(100_000))
//!     .rate_limit_failure(FailureMode::Open);
//! let app = arbor::App::new(arbor::Router::new()).stores(stores);
//! # let _ = app;
//! ```

mod error;
#[cfg(any(feature = "idempotency", feature = "webhooks"))]
pub(crate) mod expiring;
mod registry;

pub use error::{StoreError, StoreErrorKind};
pub use futures_util::future::BoxFuture;
pub use registry::{FailureMode, Stores};

use std::sync::atomic::{AtomicBool, Ordering};

/// Logs a store's outage once when it starts and once when it ends, instead of once per
/// request: an unreachable Redis under load would otherwise write thousands of lines a second.
#[cfg_attr(
    not(any(feature = "cache", feature = "idempotency", feature = "rate-limit")),
    allow(dead_code)
)]
pub(crate) struct OutageLog {
    store: &'static str,
    failing: AtomicBool,
}

#[cfg_attr(
    not(any(feature = "cache", feature = "idempotency", feature = "rate-limit")),
    allow(dead_code)
)]
impl OutageLog {
    pub(crate) const fn new(store: &'static str) -> Self {
        Self {
            store,
            failing: AtomicBool::new(false),
        }
    }

    pub(crate) fn failed(&self, error: &StoreError) {
        if self.failing.swap(true, Ordering::Relaxed) {
            tracing::debug!(store = self.store, %error, "store still failing");
        } else {
            tracing::error!(
                store = self.store,
                %error,
                "store failed; answering by its failure policy until it recovers"
            );
        }
    }

    pub(crate) fn recovered(&self) {
        // A plain load first: the common case (no outage) never writes the shared line.
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(store = self.store, "store recovered");
        }
    }
}
