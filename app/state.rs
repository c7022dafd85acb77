//! What every handler can reach: configuration, the pool, the services.

use std::sync::Arc;

use crate::config::Config;
use crate::db::{self, Db};
use arbor::cache::MemoryCacheStore;
use arbor::events::Bus;
use arbor::store::Stores;
use arbor::upload::LocalStorage;

use crate::services::posts::Posts;
use crate::services::reports::Reports;
use crate::services::users::Users;

/// Shared application state. One `Arc`: axum clones the state for every request (and the
/// router puts it in the request extensions too), so a clone must be a single reference count.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Services {
    /// Settings.
    pub config: Arc<Config>,
    /// The connection pool.
    pub db: Db,
    /// The read replica's pool (`DATABASE_READ_URL`), or `db` again.
    pub read_db: Db,
    /// Users.
    pub users: Users,
    /// The session middleware and its store (the `sessions` table), which `crate::router`
    /// installs around every route.
    pub sessions: arbor::sessions::SessionManagerLayer,
    /// Posts.
    pub posts: Posts,
    /// Report generation.
    pub reports: Reports,
    /// Per-user live events (`/api/v1/events`): in memory, or shared through Redis.
    pub events: Bus,
    /// The stores of the routes' rate limits, idempotency keys and response cache: Redis when
    /// `REDIS_URL` is set, else one in-memory response cache (so the app can invalidate it).
    pub stores: Stores,
    /// The Redis connection behind `events` and `stores`, when `REDIS_URL` is set: the
    /// readiness probe pings it.
    pub redis: Option<arbor_redis::RedisStores>,
    /// Where uploads are stored.
    pub uploads: Arc<LocalStorage>,
    /// Webhook verification and background processing.
    pub webhooks: crate::webhooks::Webhooks,
    /// The router itself, for `/api/batch` (installed by [`crate::router`]).
    pub dispatcher: crate::batch::Dispatcher,
}

impl AppState {
    /// Connects, migrates and seeds the configured administrator.
    ///
    /// # Errors
    /// A message naming what failed (the database URL's scheme, a migration...).
    pub async fn new(config: Config) -> Result<Self, String> {
        let db = db::connect_with(&config.database_url, &config.db)
            .await
            .map_err(|e| {
                let scheme = config.database_url.split(':').next().unwrap_or_default();
                format!("could not open the {scheme} database: {e}")
            })?;
        let read_db = match &config.db.read_url {
            Some(url) => db::connect_replica(url, &config.db)
                .await
                .map_err(|e| format!("DATABASE_READ_URL: could not open the read replica: {e}"))?,
            None => db.clone(),
        };
        let (events, stores, redis) = match &config.redis_url {
            Some(url) => {
                let mut options = arbor_redis::RedisOptions::default();
                if let Some(prefix) = &config.redis_prefix {
                    options = options.prefix(prefix.clone());
                }
                let redis = arbor_redis::RedisStores::connect_with(url, options)
                    .await
                    .map_err(|e| format!("REDIS_URL: {e}"))?;
                (redis.bus(), redis.stores(), Some(redis))
            }
            None => (
                Bus::in_memory(),
                Stores::new().cache(MemoryCacheStore::default()),
                None,
            ),
        };
        let state = Services {
            users: Users::new(db.clone(), read_db.clone(), config.passwords.clone()),
            sessions: sessions(&db, &config),
            posts: Posts::new(db.clone(), read_db.clone()),
            webhooks: crate::webhooks::Webhooks::start(db.clone(), &config, events.clone()).await?,
            reports: Reports::new(read_db.clone()),
            uploads: Arc::new(LocalStorage::new(config.upload_dir.clone())),
            events,
            stores,
            redis,
            config: Arc::new(config),
            db,
            read_db,
            dispatcher: crate::batch::Dispatcher::default(),
        };
        if let Some((email, password)) = &state.config.admin {
            state
                .users
                .ensure_admin(email, password)
                .await
                .map_err(|e| format!("could not create the administrator: {e}"))?;
        }
        Ok(Self(Arc::new(state)))
    }
}

/// How often expired sessions are deleted from the `sessions` table (they are never served in
/// between: the session layer checks expiry on every request).
const EXPIRED_SESSIONS_DELETION_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Sessions in the database's `sessions` table (shared by every instance; a deleted user's
/// sessions go with them through the foreign key), as a cookie or a bearer token.
fn sessions(db: &Db, config: &Config) -> arbor::sessions::SessionManagerLayer {
    let store = arbor::sessions::SqlStore::with_table(db.clone(), "sessions");
    store.spawn_expired_deletion(EXPIRED_SESSIONS_DELETION_PERIOD);
    arbor::sessions::SessionManagerLayer::new(store)
        .absolute_timeout(std::time::Duration::from_secs(
            config.session_ttl_secs.unsigned_abs(),
        ))
        .idle_timeout(std::time::Duration::from_secs(
            config.session_idle_secs.unsigned_abs(),
        ))
}
