//! Webhook event ids on Redis: `SET NX PX` marks an id seen, for every instance at once.

use std::time::Duration;

use arbor::store::{BoxFuture, StoreError};
use arbor::webhooks::ReplayStore;

use crate::connection::Redis;

/// A [`ReplayStore`] on Redis: a replay sent to any instance is caught.
#[derive(Clone)]
pub struct RedisReplayStore {
    redis: Redis,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisReplayStore")
    }
}

impl RedisReplayStore {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

impl ReplayStore for RedisReplayStore {
    fn first_seen(&self, key: String, ttl: Duration) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.redis.key("webhook", &key))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            // `OK` when the id was free, nil when it was already there.
            let set: Option<String> = self.redis.query(&cmd).await?;
            Ok(set.is_some())
        })
    }

    fn forget(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(self.redis.key("webhook", &key));
            self.redis.query::<i64>(&cmd).await.map(drop)
        })
    }
}
