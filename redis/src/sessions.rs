//! Sessions on Redis: a JSON record per session with Redis's TTL, and a set per user of their
//! session ids for "log out everywhere".

use std::sync::OnceLock;
use std::time::Duration;

use arbor::sessions::{SessionRecord, SessionStore};
use arbor::store::{BoxFuture, StoreError};
use redis::Script;

use crate::connection::{script, Redis};

/// Writes the record with its TTL and indexes it under its user; the index lives as long as
/// the longest-lived session in it.
const SAVE: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[4] == '1' then
  local ttl = tonumber(ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  if redis.call('PTTL', KEYS[2]) < ttl then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
return 1
";

/// Deletes a record and takes it out of its user's index.
const DELETE: &str = r"
local record = redis.call('GET', KEYS[1])
if not record then
  return 0
end
redis.call('DEL', KEYS[1])
local ok, decoded = pcall(cjson.decode, record)
if ok and type(decoded) == 'table' and type(decoded.user_id) == 'string' then
  redis.call('SREM', ARGV[1] .. decoded.user_id, ARGV[2])
end
return 1
";

/// Deletes every session in a user's index, and the index.
const DELETE_USER: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
local deleted = 0
for _, id in ipairs(ids) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return deleted
";

/// A [`SessionStore`] on Redis, shared by every instance: `GET` to load, one script to save
/// (`SET PX` and the user index) or delete.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = arbor_redis::RedisStores::connect("redis://127.0.0.1:6379").await?;
/// let sessions = arbor::sessions::SessionManagerLayer::new(redis.sessions().clone());
/// # let _ = sessions; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSessionStore {
    redis: Redis,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSessionStore")
    }
}

impl RedisSessionStore {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

fn cached(cell: &'static OnceLock<Script>, source: &'static str) -> &'static Script {
    cell.get_or_init(|| script(source))
}

static SAVE_SCRIPT: OnceLock<Script> = OnceLock::new();
static DELETE_SCRIPT: OnceLock<Script> = OnceLock::new();
static DELETE_USER_SCRIPT: OnceLock<Script> = OnceLock::new();

impl SessionStore for RedisSessionStore {
    fn load(&self, id: String) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.redis.key("session", &id));
            let bytes: Option<Vec<u8>> = self.redis.query(&cmd).await?;
            bytes
                .map(|bytes| serde_json::from_slice(&bytes).map_err(StoreError::new))
                .transpose()
        })
    }

    fn save(&self, record: SessionRecord, ttl: Duration) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_vec(&record).map_err(StoreError::new)?;
            let user = record.user_id.as_deref();
            let mut invocation =
                cached(&SAVE_SCRIPT, SAVE).key(self.redis.key("session", &record.id));
            invocation.key(self.redis.key("session-user", user.unwrap_or_default()));
            invocation
                .arg(json)
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                .arg(&record.id)
                .arg(if user.is_some() { "1" } else { "0" });
            self.redis.invoke::<i64>(&invocation).await.map(drop)
        })
    }

    fn delete(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut invocation = cached(&DELETE_SCRIPT, DELETE).key(self.redis.key("session", &id));
            invocation.arg(self.redis.key("session-user", "")).arg(&id);
            self.redis.invoke::<i64>(&invocation).await.map(drop)
        })
    }

    fn delete_user(&self, user_id: String) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut invocation = cached(&DELETE_USER_SCRIPT, DELETE_USER)
                .key(self.redis.key("session-user", &user_id));
            invocation.arg(self.redis.key("session", ""));
            let deleted: i64 = self.redis.invoke(&invocation).await?;
            Ok(u64::try_from(deleted).unwrap_or(0))
        })
    }
}
