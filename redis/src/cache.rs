//! The response cache on Redis: every instance reads and fills the same entries, and removing
//! a URL's key reaches them all.

use std::time::Duration;

use arbor::cache::{CacheItem, CacheStore};
use arbor::store::{BoxFuture, StoreError};
use bytes::Bytes;

use crate::connection::Redis;

/// A [`CacheStore`] on Redis; entries expire with Redis's own TTL.
#[derive(Clone)]
pub struct RedisCacheStore {
    redis: Redis,
}

impl std::fmt::Debug for RedisCacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisCacheStore")
    }
}

impl RedisCacheStore {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

impl CacheStore for RedisCacheStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<CacheItem>, StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.redis.key("cache", key));
            let bytes: Option<Vec<u8>> = self.redis.query(&cmd).await?;
            bytes
                .map(|bytes| CacheItem::decode(Bytes::from(bytes)))
                .transpose()
        })
    }

    fn put(
        &self,
        key: String,
        item: CacheItem,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.redis.key("cache", &key))
                .arg(item.encode().as_ref())
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            self.redis.query::<()>(&cmd).await
        })
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(self.redis.key("cache", key));
            let removed: i64 = self.redis.query(&cmd).await?;
            Ok(removed > 0)
        })
    }
}
