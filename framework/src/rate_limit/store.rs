//! Where rate limit state lives: the [`RateLimitStore`] trait and the in-process [`MemoryStore`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;

use super::gcra::nanos;
use super::{Decision, Quota, DEFAULT_MAX_CAPACITY};
use crate::clock::{Clock, SystemClock};
use crate::store::{BoxFuture, StoreError};

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
                idle: quota.window(),
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

    /// Whether `key` has state (a test hook for idle expiry).
    #[cfg(test)]
    pub(super) fn holds(&self, key: &str) -> bool {
        self.cache.contains_key(key)
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
