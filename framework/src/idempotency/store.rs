//! What an idempotency store keeps, the [`IdempotencyStore`] trait, and the in-process
//! [`MemoryStore`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::IDEMPOTENT_REPLAYED;
use crate::clock::{Clock, SystemClock};
use crate::store::expiring::ExpiringMap;
use crate::store::{BoxFuture, StoreError};

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
        ::metrics::counter!(crate::metrics::IDEMPOTENCY_REPLAYS).increment(1);
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

type MemoryState = ExpiringMap<Record>;

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
        state.len()
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
        if let Some(record) = state.get(&key) {
            return Ok(Claim::Existing(record.clone()));
        }
        if state.len() >= self.inner.max_entries {
            return Err(StoreError::full(format!(
                "the in-memory store holds its maximum of {} live keys",
                self.inner.max_entries
            )));
        }
        let record = Record {
            fingerprint,
            state: RecordState::InFlight,
        };
        state.insert(key, record, now + ttl);
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
        self.lock().insert(key, record, now + ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn release(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut state = self.lock();
        if matches!(
            state.get(&key),
            Some(Record {
                state: RecordState::InFlight,
                ..
            })
        ) {
            state.remove(&key);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn get(&self, key: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.purge(now);
        let record = state.get(&key).cloned();
        Box::pin(std::future::ready(Ok(record)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

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
        assert!(state.is_consistent());
    }
}
