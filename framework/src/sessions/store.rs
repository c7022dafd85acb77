//! The session store trait, the stored record, and the in-memory store.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::{BoxFuture, StoreError};

/// One session as stored. The store never sees the token the client holds: `id` is its
/// SHA-256 (hex), so a leaked store cannot be replayed as sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// SHA-256 of the client's token, lowercase hex.
    pub id: String,
    /// The signed-in user, if any: the index of [`SessionStore::delete_user`].
    pub user_id: Option<String>,
    /// The session's data, a JSON object.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// When the session started (Unix milliseconds): the absolute expiry counts from here.
    pub created_at: i64,
    /// The last request seen (Unix milliseconds, refreshed at most once per touch interval):
    /// the idle expiry counts from here.
    pub last_seen_at: i64,
    /// The earlier of the idle and the absolute expiry (Unix milliseconds).
    pub expires_at: i64,
}

/// Where sessions live. Every method returns a [`BoxFuture`] so the trait is object-safe;
/// stores: [`MemoryStore`] (one process), [`SqlStore`](crate::sessions::SqlStore) (feature
/// `sqlx`), and `arbor_redis::RedisSessionStore`.
///
/// Expiry is decided by the session middleware on its clock; `ttl` lets a store drop records
/// it will never be asked for again (Redis `PX`, a sweep).
pub trait SessionStore: Send + Sync + 'static {
    /// The record of `id`, if stored.
    fn load(&self, id: String) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>>;

    /// Inserts or replaces `record`; it may be dropped after `ttl`.
    fn save(&self, record: SessionRecord, ttl: Duration) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes `id` (no error if absent).
    fn delete(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes every session of `user_id` ("log out everywhere"); returns how many.
    fn delete_user(&self, user_id: String) -> BoxFuture<'_, Result<u64, StoreError>>;
}

/// Sessions in this process's memory: for development, tests and single-instance apps. Lost on
/// restart; expired records are swept as new ones are saved.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    records: HashMap<String, (SessionRecord, Instant)>,
    by_user: HashMap<String, HashSet<String>>,
    saves: u64,
}

impl Memory {
    fn remove(&mut self, id: &str) -> Option<SessionRecord> {
        let (record, _) = self.records.remove(id)?;
        if let Some(user) = &record.user_id {
            if let Some(ids) = self.by_user.get_mut(user) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_user.remove(user);
                }
            }
        }
        Some(record)
    }

    fn sweep(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .records
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions are stored (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A panic while holding the lock leaves consistent maps: every update is one insert
        // or remove.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionStore for MemoryStore {
    fn load(&self, id: String) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        let record = self.lock().records.get(&id).map(|(r, _)| r.clone());
        Box::pin(async move { Ok(record) })
    }

    fn save(&self, record: SessionRecord, ttl: Duration) -> BoxFuture<'_, Result<(), StoreError>> {
        let now = Instant::now();
        let mut memory = self.lock();
        memory.saves += 1;
        if memory.saves.is_multiple_of(1024) {
            memory.sweep(now);
        }
        // A record that changed hands (login on an anonymous session) leaves the old index.
        memory.remove(&record.id);
        if let Some(user) = &record.user_id {
            memory
                .by_user
                .entry(user.clone())
                .or_default()
                .insert(record.id.clone());
        }
        let until = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        memory.records.insert(record.id.clone(), (record, until));
        drop(memory);
        Box::pin(async { Ok(()) })
    }

    fn delete(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.lock().remove(&id);
        Box::pin(async { Ok(()) })
    }

    fn delete_user(&self, user_id: String) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut memory = self.lock();
        let ids = memory.by_user.remove(&user_id).unwrap_or_default();
        let mut deleted = 0;
        for id in ids {
            if memory.records.remove(&id).is_some() {
                deleted += 1;
            }
        }
        drop(memory);
        Box::pin(async move { Ok(deleted) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, user: Option<&str>) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            user_id: user.map(Into::into),
            data: serde_json::Map::new(),
            created_at: 0,
            last_seen_at: 0,
            expires_at: 1,
        }
    }

    #[tokio::test]
    async fn memory_store_indexes_sessions_by_user() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        for (id, user) in [
            ("a", Some("u1")),
            ("b", Some("u1")),
            ("c", Some("u2")),
            ("d", None),
        ] {
            store.save(record(id, user), ttl).await.ok();
        }
        assert_eq!(store.delete_user("u1".into()).await.ok(), Some(2));
        assert_eq!(store.load("a".into()).await.ok(), Some(None));
        assert!(store.load("c".into()).await.ok().flatten().is_some());
        assert!(store.load("d".into()).await.ok().flatten().is_some());
        // Re-saving under another user moves the index.
        store.save(record("c", Some("u3")), ttl).await.ok();
        assert_eq!(store.delete_user("u2".into()).await.ok(), Some(0));
        assert_eq!(store.delete_user("u3".into()).await.ok(), Some(1));
        store.delete("d".into()).await.ok();
        assert!(store.is_empty());
    }
}
