//! Replay protection by event id: the [`ReplayStore`] trait and the in-process
//! [`MemoryReplayStore`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::store::expiring::ExpiringMap;
use crate::store::{BoxFuture, StoreError};

/// Where the ids of events already received are kept, for
/// [`replay_ttl`](super::VerifyWebhookLayer::replay_ttl). Keys arrive as `{provider}:{event id}`.
///
/// [`MemoryReplayStore`] is the default; a shared store (`arbor-redis`) catches a replay sent
/// to another instance. Its methods map onto single atomic commands:
///
/// | Method | Redis |
/// |---|---|
/// | `first_seen` | `SET key 1 NX PX ttl` |
/// | `forget` | `DEL key` |
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` for `ttl` and returns `true`, or returns `false` if it is already
    /// recorded (a replay). Two concurrent calls with one key must not both get `true`.
    fn first_seen(&self, key: String, ttl: Duration) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Forgets `key`, so that the next delivery of the event is handled again: the handler
    /// failed, and the provider will retry.
    fn forget(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn first_seen(&self, key: String, ttl: Duration) -> BoxFuture<'_, Result<bool, StoreError>> {
        (**self).first_seen(key, ttl)
    }

    fn forget(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).forget(key)
    }
}

/// An in-process [`ReplayStore`]: ids with their expiry, bounded in size. Clones share the ids.
///
/// When it holds `max_entries` live ids it refuses new ones ([`StoreError::full`], answered
/// `507`) rather than forget one early, which would let a replay through.
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    max_entries: usize,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

/// Live ids; the value carries nothing.
type State = ExpiringMap<()>;

impl MemoryReplayStore {
    /// A store of at most `max_entries` live ids.
    pub fn new(max_entries: usize) -> Self {
        Self::with_parts(max_entries, Arc::new(SystemClock))
    }

    /// The same store configuration on another clock ([`ManualClock`](crate::clock::ManualClock)
    /// in tests). Ids are not carried over.
    #[must_use]
    pub fn with_clock(self, clock: impl Clock) -> Self {
        Self::with_parts(self.inner.max_entries, Arc::new(clock))
    }

    fn with_parts(max_entries: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_entries,
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The number of live ids.
    pub fn len(&self) -> usize {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.purge(now);
        state.len()
    }

    /// Whether no id is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code path panics while holding the lock, and the state stays consistent if one did.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn first_seen_now(&self, key: String, ttl: Duration) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.purge(now);
        if state.get(&key).is_some() {
            return Ok(false);
        }
        if state.len() >= self.inner.max_entries {
            return Err(StoreError::full(format!(
                "the in-memory replay store holds its maximum of {} live event ids",
                self.inner.max_entries
            )));
        }
        state.insert(key, (), now + ttl);
        Ok(true)
    }
}

impl Default for MemoryReplayStore {
    /// 100,000 live ids.
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("max_entries", &self.inner.max_entries)
            .finish_non_exhaustive()
    }
}

impl ReplayStore for MemoryReplayStore {
    fn first_seen(&self, key: String, ttl: Duration) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(std::future::ready(self.first_seen_now(key, ttl)))
    }

    fn forget(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.lock().remove(&key);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn an_id_is_seen_once_until_it_expires_or_is_forgotten() {
        let clock = ManualClock::new();
        let store = MemoryReplayStore::new(10).with_clock(clock.clone());
        let ttl = Duration::from_secs(60);
        assert!(store.first_seen("stripe:evt_1".into(), ttl).await.unwrap());
        assert!(!store.first_seen("stripe:evt_1".into(), ttl).await.unwrap());
        assert!(store.first_seen("github:evt_1".into(), ttl).await.unwrap());
        store.forget("stripe:evt_1".into()).await.unwrap();
        assert!(store.first_seen("stripe:evt_1".into(), ttl).await.unwrap());
        clock.advance(Duration::from_secs(59));
        assert!(!store.first_seen("stripe:evt_1".into(), ttl).await.unwrap());
        clock.advance(Duration::from_secs(1));
        assert!(store.is_empty());
        assert!(store.first_seen("stripe:evt_1".into(), ttl).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_ids() {
        let clock = ManualClock::new();
        let store = MemoryReplayStore::new(1).with_clock(clock.clone());
        let ttl = Duration::from_secs(10);
        assert!(store.first_seen("a".into(), ttl).await.unwrap());
        let error = store.first_seen("b".into(), ttl).await.unwrap_err();
        assert_eq!(error.kind(), crate::store::StoreErrorKind::Full);
        // A known id is still a replay, not an error.
        assert!(!store.first_seen("a".into(), ttl).await.unwrap());
        clock.advance(ttl);
        assert!(store.first_seen("b".into(), ttl).await.unwrap());
        let state = store.lock();
        assert!(state.is_consistent());
    }
}
