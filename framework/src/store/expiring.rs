//! The map behind the in-memory stores that keep entries until a deadline (idempotency
//! records, webhook replay ids): lookups by key, and expired entries dropped soonest first.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// Values by key, each with its expiry.
#[derive(Debug)]
pub(crate) struct ExpiringMap<V> {
    entries: HashMap<String, (V, Instant)>,
    /// `(expires_at, key)` for every entry, soonest first.
    expiry: BTreeSet<(Instant, String)>,
}

impl<V> Default for ExpiringMap<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            expiry: BTreeSet::new(),
        }
    }
}

impl<V> ExpiringMap<V> {
    /// Drops the entries whose expiry is `now` or earlier.
    pub(crate) fn purge(&mut self, now: Instant) {
        while let Some((expires_at, _)) = self.expiry.first() {
            if *expires_at > now {
                break;
            }
            if let Some((_, key)) = self.expiry.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    /// The value of `key`, expired or not (call [`purge`](Self::purge) first).
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// The number of entries, expired or not.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sets `key` to `value` until `expires_at`, replacing any entry it had.
    pub(crate) fn insert(&mut self, key: String, value: V, expires_at: Instant) {
        self.remove(&key);
        self.expiry.insert((expires_at, key.clone()));
        self.entries.insert(key, (value, expires_at));
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some((_, expires_at)) = self.entries.remove(key) {
            self.expiry.remove(&(expires_at, key.to_owned()));
        }
    }

    /// Whether the two indexes agree (for tests).
    #[cfg(test)]
    pub(crate) fn is_consistent(&self) -> bool {
        self.entries.len() == self.expiry.len()
    }
}
