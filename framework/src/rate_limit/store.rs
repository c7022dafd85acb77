//! Where rate limit state lives: the [`RateLimitStore`] trait and the in-process [`MemoryStore`].

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future;
use hashbrown::HashTable;

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

/// The in-process store: one timestamp per key, in a bounded table split into locked shards.
///
/// - **Bounded**: at most `max_capacity` keys. A shard that is full first drops its idle keys;
///   if it is still full, it drops the eighth of its keys nearest to a full allowance (the
///   smallest theoretical arrival times), which gives away the least: a flood of new clients
///   does not push out the clients that have used up their allowance.
/// - **Idle keys are forgotten**: a key unused for its quota's window has the state of a new key,
///   so dropping it loses nothing. Each shard drops them when a new key arrives and a window has
///   passed since it last did, and [`run_pending_tasks`](Self::run_pending_tasks) drops them
///   everywhere now.
/// - **One uncontended lock per request**: the key is hashed once, picks its shard, and is
///   looked up and updated under that shard's lock; a key already held allocates nothing.
///
/// Clones share the same state. Counters are per process: with several instances behind a
/// load balancer, each allows the full limit.
///
/// (A concurrent cache, moka, cost about 1,700 instructions a request here, with its read log,
/// epoch-based reclamation and housekeeping; this table costs about 400. A rate limit needs
/// neither a recency order nor expiry timers: a key's own timestamp says when it is idle.)
#[derive(Clone)]
pub struct MemoryStore {
    table: Arc<Table>,
    clock: Arc<dyn Clock>,
    /// Times are measured from here, in nanoseconds.
    origin: Instant,
}

struct Table {
    hasher: RandomState,
    shards: Box<[Shard]>,
    /// `shards.len() - 1`; the count is a power of two.
    shard_mask: u64,
    /// Keys per shard, so that all shards together hold at most the store's `max_capacity`.
    shard_capacity: usize,
}

/// Aligned so that two shards' locks never share a cache line.
#[repr(align(128))]
struct Shard(Mutex<Slots>);

struct Slots {
    /// `(key, theoretical arrival time)`.
    keys: HashTable<(Box<str>, u64)>,
    /// When this shard next drops its idle keys as a new key arrives.
    purge_at: u64,
}

/// Shards of one store at most: enough that cores rarely wait on one another's lock.
const MAX_SHARDS: u64 = 32;

/// Keys per shard at least, so that a small store is not split into shards too small to choose
/// which key to drop.
const MIN_SHARD_CAPACITY: u64 = 64;

impl MemoryStore {
    /// A store holding at most `max_capacity` keys (at least 1), on the system's monotonic clock.
    pub fn new(max_capacity: u64) -> Self {
        let max_capacity = max_capacity.max(1);
        let shard_count = 1
            << (max_capacity / MIN_SHARD_CAPACITY)
                .clamp(1, MAX_SHARDS)
                .ilog2();
        let shard_capacity = usize::try_from(max_capacity / shard_count).unwrap_or(usize::MAX);
        let shards = (0..shard_count)
            .map(|_| {
                Shard(Mutex::new(Slots {
                    keys: HashTable::new(),
                    purge_at: 0,
                }))
            })
            .collect();
        Self {
            table: Arc::new(Table {
                hasher: RandomState::new(),
                shards,
                shard_mask: shard_count - 1,
                shard_capacity,
            }),
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
        self.check_at(key, quota, self.elapsed())
    }

    /// Decides a request for `key` at `now` (a duration since the store's origin).
    pub fn check_at(&self, key: &str, quota: Quota, now: Duration) -> Decision {
        let now = nanos(now);
        let hash = self.table.hasher.hash_one(key);
        let mut slots = self.table.shard(hash);
        if let Some((_, tat)) = slots.keys.find_mut(hash, |(held, _)| **held == *key) {
            let (decision, new_tat) = quota.evaluate_nanos(*tat, now);
            if let Some(new_tat) = new_tat {
                *tat = new_tat;
            }
            return decision;
        }
        let (decision, new_tat) = quota.evaluate_nanos(0, now);
        if let Some(new_tat) = new_tat {
            if now >= slots.purge_at || slots.keys.len() >= self.table.shard_capacity {
                slots.drop_idle(now);
                slots.purge_at = now.saturating_add(nanos(quota.window()));
            }
            if slots.keys.len() >= self.table.shard_capacity {
                slots.drop_nearest_to_full(self.table.shard_capacity.div_ceil(8));
            }
            let hasher = &self.table.hasher;
            slots
                .keys
                .insert_unique(hash, (key.into(), new_tat), |(held, _)| {
                    hasher.hash_one(&**held)
                });
        }
        decision
    }

    /// Whether `key` has state (a test hook for idle expiry).
    #[cfg(test)]
    pub(super) fn holds(&self, key: &str) -> bool {
        let hash = self.table.hasher.hash_one(key);
        self.table
            .shard(hash)
            .keys
            .find(hash, |(held, _)| **held == *key)
            .is_some()
    }

    /// The number of keys held, idle ones included until they are dropped.
    pub fn entry_count(&self) -> u64 {
        self.table
            .shards
            .iter()
            .map(|shard| shard.lock().keys.len() as u64)
            .sum()
    }

    /// Drops every idle key now (they are otherwise dropped as new keys arrive).
    pub fn run_pending_tasks(&self) {
        let now = nanos(self.elapsed());
        for shard in &self.table.shards {
            shard.lock().drop_idle(now);
        }
    }

    fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.origin)
    }
}

impl Table {
    fn shard(&self, hash: u64) -> MutexGuard<'_, Slots> {
        // Bits from the middle: hashbrown places keys by the low bits and tags them with the
        // top seven, so neither would spread keys across shards independently of their place.
        let index = usize::try_from((hash >> 32) & self.shard_mask).unwrap_or(0);
        self.shards[index].lock()
    }
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // The table is never left half-updated (nothing under the lock panics midway), so a
        // poisoned lock holds valid state.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Slots {
    /// Drops the keys whose theoretical arrival time has passed: their state equals a new key's.
    fn drop_idle(&mut self, now: u64) {
        self.keys.retain(|(_, tat)| *tat > now);
    }

    /// Drops `count` keys with the smallest theoretical arrival times.
    fn drop_nearest_to_full(&mut self, count: usize) {
        let count = count.min(self.keys.len());
        if count == 0 {
            return;
        }
        let mut tats: Vec<u64> = self.keys.iter().map(|(_, tat)| *tat).collect();
        let threshold = *tats.select_nth_unstable(count - 1).1;
        // Everything below the threshold goes, and as many at it as make up `count`.
        let mut at_threshold = count - tats.iter().filter(|tat| **tat < threshold).count();
        self.keys.retain(|(_, tat)| match (*tat).cmp(&threshold) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if at_threshold > 0 => {
                at_threshold -= 1;
                false
            }
            _ => true,
        });
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
            .field("entry_count", &self.entry_count())
            .field(
                "max_capacity",
                &(self.table.shard_capacity as u64 * self.table.shards.len() as u64),
            )
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
