//! GCRA on Redis: one script per decision, on the server's clock.

use std::sync::OnceLock;
use std::time::Duration;

use arbor::rate_limit::{BoxFuture, Decision, Quota, RateLimitStore};
use arbor::store::StoreError;
use redis::Script;

use crate::connection::{script, Redis};

/// The same arithmetic as [`Quota::evaluate`], in microseconds, atomically per key, with the
/// time read from Redis (`TIME`) so that the instances' clocks cannot skew it. The key expires
/// when its theoretical arrival time passes: its state then equals a key never seen.
///
/// Returns `{allowed, remaining, reset_after_us, retry_after_us}`.
const GCRA: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local capacity = interval * limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead <= capacity then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
  return {1, math.floor((capacity - ahead) / interval), ahead, 0}
end
return {0, 0, tat - now, ahead - capacity}
";

/// A [`RateLimitStore`] on Redis: exact across instances, one round trip per decision.
#[derive(Clone)]
pub struct RedisRateLimitStore {
    redis: Redis,
}

impl std::fmt::Debug for RedisRateLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisRateLimitStore")
    }
}

impl RedisRateLimitStore {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

fn gcra() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| script(GCRA))
}

impl RateLimitStore for RedisRateLimitStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(async move {
            let interval_us = (quota.emission_interval().as_micros() as u64).max(1);
            let mut invocation = gcra().key(self.redis.key("rl", key));
            invocation.arg(interval_us).arg(quota.limit());
            let (allowed, remaining, reset_us, retry_us): (i64, i64, i64, i64) =
                self.redis.invoke(&invocation).await?;
            Ok(Decision {
                allowed: allowed == 1,
                limit: quota.limit(),
                remaining: u32::try_from(remaining).unwrap_or(0),
                reset_after: micros(reset_us),
                retry_after: micros(retry_us),
            })
        })
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}
