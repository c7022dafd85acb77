//! Redis backends for Arbor: set `REDIS_URL` and every guarantee holds across instances.
//!
//! | Store | What is shared | One call per request |
//! |---|---|---|
//! | [`RedisRateLimitStore`] | GCRA state, on Redis's clock (`TIME`) | one script |
//! | [`RedisIdempotencyStore`] | the in-flight claim (`SET NX PX`) and the stored response | one script to claim, one `SET` to record |
//! | [`RedisCacheStore`] | response-cache entries, with Redis's TTL | `GET` (two when the URL varies), `SET` on a miss |
//! | [`RedisSessionStore`] | sessions (JSON records with Redis's TTL) and each user's set of session ids | `GET` to load, one script to save or delete |
//! | [`RedisReplayStore`] | webhook event ids already received (`SET NX PX`) | one `SET` |
//! | [`RedisBus`] | events: a stream per topic for replay, one pub/sub channel for live fan-out | one script to publish |
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use arbor_redis::RedisStores;
//!
//! let redis = RedisStores::connect("redis://127.0.0.1:6379").await?;
//! let app = arbor::App::new(arbor::Router::new()).stores(redis.stores());
//! let bus = redis.bus(); // hand it to your state for SSE and publishing
//! # let _ = (app, bus); Ok(()) }
//! ```
//!
//! **Failures.** Every call has a budget ([`RedisOptions::budget`], 50 ms by default). When
//! Redis is unreachable the stores answer by their policies: rate limits let requests through
//! (or refuse them, see [`arbor::store::FailureMode`]), idempotency answers `503` with
//! `Retry-After`, the cache is bypassed, and events reach this instance's subscribers only.
//! After a failure, calls fail at once for a quarter of a second instead of each waiting for
//! its budget; the outage is logged once when it starts and once when it ends. The connection
//! comes back by itself: no instance needs restarting. See `docs/deployment.md`.

mod cache;
mod connection;
mod events;
mod idempotency;
mod rate_limit;
mod sessions;
mod webhooks;

use std::time::Duration;

use arbor::events::{Bus, BusOptions};
use arbor::store::{BoxFuture, FailureMode, StoreError, Stores};

pub use cache::RedisCacheStore;
pub use connection::{COMMAND_DURATION, ERRORS};
pub use events::{RedisBus, ReplayWindow};
pub use idempotency::RedisIdempotencyStore;
pub use rate_limit::RedisRateLimitStore;
pub use sessions::RedisSessionStore;
pub use webhooks::RedisReplayStore;

use connection::Redis;

/// Settings of [`RedisStores`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    budget: Duration,
    prefix: String,
    replay: ReplayWindow,
    rate_limit_failure: FailureMode,
    local_bus: BusOptions,
}

impl Default for RedisOptions {
    /// A 50 ms budget, keys under `arbor:`, a replay window of 10,000 events / 5 minutes per
    /// topic, rate limits that fail open.
    fn default() -> Self {
        Self {
            budget: Duration::from_millis(50),
            prefix: "arbor".into(),
            replay: ReplayWindow::default(),
            rate_limit_failure: FailureMode::Open,
            local_bus: BusOptions::default(),
        }
    }
}

impl RedisOptions {
    /// How long one Redis call may take before the store treats Redis as unavailable.
    #[must_use]
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// The prefix of every key (`arbor` by default), so several apps can share one Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How much of each topic's history is kept for `Last-Event-ID` resume.
    #[must_use]
    pub fn replay(mut self, window: ReplayWindow) -> Self {
        self.replay = window;
        self
    }

    /// What rate limits do when Redis is unreachable ([`FailureMode::Open`] by default: the
    /// API stays up; a route can insist with `rate_limit(.., fail_closed = true)`).
    #[must_use]
    pub fn rate_limit_failure(mut self, mode: FailureMode) -> Self {
        self.rate_limit_failure = mode;
        self
    }

    /// Options of the in-memory bus each instance delivers its subscribers' events through.
    #[must_use]
    pub fn local_bus(mut self, options: BusOptions) -> Self {
        self.local_bus = options;
        self
    }
}

/// Every Redis store of an app, on one connection.
#[derive(Debug, Clone)]
pub struct RedisStores {
    redis: Redis,
    rate_limit: RedisRateLimitStore,
    idempotency: RedisIdempotencyStore,
    cache: RedisCacheStore,
    webhook_replays: RedisReplayStore,
    bus: RedisBus,
    sessions: RedisSessionStore,
    failure: FailureMode,
}

impl RedisStores {
    /// Connects with the default [`RedisOptions`].
    ///
    /// # Errors
    /// If the URL is not a Redis URL. An unreachable server is not an error: the stores answer
    /// by their failure policies until it can be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisOptions::default()).await
    }

    /// Connects with `options`. Must be called within a tokio runtime (the event listener is
    /// spawned on it).
    ///
    /// # Errors
    /// If the URL is not a Redis URL.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::new)?;
        let redis = Redis::new(client, options.budget, options.prefix).map_err(StoreError::new)?;
        // One round trip now, so that a server that is down is reported at start-up (but does
        // not stop it).
        if let Err(error) = redis.query::<String>(&redis::cmd("PING")).await {
            tracing::warn!(target: "arbor_redis", %error, "Redis is not reachable yet; starting anyway");
        }
        Ok(Self {
            redis: redis.clone(),
            rate_limit: RedisRateLimitStore::new(redis.clone()),
            idempotency: RedisIdempotencyStore::new(redis.clone()),
            cache: RedisCacheStore::new(redis.clone()),
            sessions: RedisSessionStore::new(redis.clone()),
            webhook_replays: RedisReplayStore::new(redis.clone()),
            bus: RedisBus::start(redis, options.replay, options.local_bus),
            failure: options.rate_limit_failure,
        })
    }

    /// One `PING` within the budget: `Ok` when Redis answers right now. While Redis is known to
    /// be down (the quarter of a second after a failure), it fails at once, like every call.
    ///
    /// # Errors
    /// [`StoreErrorKind::Unavailable`](arbor::store::StoreErrorKind::Unavailable) when Redis
    /// cannot be reached or does not answer within the budget.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.redis
            .query::<String>(&redis::cmd("PING"))
            .await
            .map(drop)
    }

    /// The stores to register on [`arbor::App::stores`].
    pub fn stores(&self) -> Stores {
        Stores::new()
            .rate_limit(self.rate_limit.clone())
            .rate_limit_failure(self.failure)
            .idempotency(self.idempotency.clone())
            .cache(self.cache.clone())
            .webhook_replays(self.webhook_replays.clone())
    }

    /// The event bus, shared by every instance.
    pub fn bus(&self) -> Bus {
        Bus::new(self.bus.clone())
    }

    /// The rate limit store.
    pub fn rate_limit(&self) -> &RedisRateLimitStore {
        &self.rate_limit
    }

    /// The idempotency store.
    pub fn idempotency(&self) -> &RedisIdempotencyStore {
        &self.idempotency
    }

    /// The response cache store.
    pub fn cache(&self) -> &RedisCacheStore {
        &self.cache
    }

    /// The session store, for [`arbor::sessions::SessionManagerLayer`].
    pub fn sessions(&self) -> &RedisSessionStore {
        &self.sessions
    }

    /// The webhook replay store.
    pub fn webhook_replays(&self) -> &RedisReplayStore {
        &self.webhook_replays
    }
}

/// Redis as a readiness check: a [`RedisStores::ping`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = arbor_redis::RedisStores::connect("redis://127.0.0.1:6379").await?;
/// let probes = arbor::health::Probes::new().check("redis", redis.clone());
/// # let _ = probes; Ok(()) }
/// ```
impl arbor::health::HealthCheck for RedisStores {
    fn check(&self) -> BoxFuture<'_, Result<(), arbor::health::Unhealthy>> {
        Box::pin(async move { self.ping().await.map_err(Into::into) })
    }
}
