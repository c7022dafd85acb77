//! [`SqlStore`]: sessions in SQLite or PostgreSQL, through `sqlx::AnyPool`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AnyPool, Row};

use super::{SessionRecord, SessionStore};
use crate::store::{BoxFuture, StoreError};

/// Sessions in a SQL table, on SQLite or PostgreSQL (one set of statements for both:
/// `$n` placeholders, `TEXT` and `BIGINT` columns, `ON CONFLICT` upserts).
///
/// The table (default `arbor_sessions`) is created by [`SqlStore::create_table`], or by your
/// migrations with the same columns:
///
/// ```sql
/// CREATE TABLE arbor_sessions (
///     id TEXT PRIMARY KEY,            -- SHA-256 of the token, hex
///     user_id TEXT,                   -- indexed, for "log out everywhere"
///     data TEXT NOT NULL,             -- the session data, JSON
///     created_at BIGINT NOT NULL,     -- Unix milliseconds
///     last_seen_at BIGINT NOT NULL,
///     expires_at BIGINT NOT NULL
/// );
/// CREATE INDEX arbor_sessions_user_id ON arbor_sessions (user_id);
/// CREATE INDEX arbor_sessions_expires_at ON arbor_sessions (expires_at);
/// ```
///
/// Expired rows are never served (the layer checks expiry); [`SqlStore::delete_expired`]
/// removes them, and [`SqlStore::spawn_expired_deletion`] does so periodically.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use arbor::sessions::{SessionManagerLayer, SqlStore};
///
/// sqlx::any::install_default_drivers();
/// let pool = sqlx::AnyPool::connect("sqlite::memory:").await?;
/// let store = SqlStore::new(pool);
/// store.create_table().await?;
/// let sessions = SessionManagerLayer::new(store);
/// # let _ = sessions; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    table: String,
    statements: Statements,
}

#[derive(Debug, Clone)]
struct Statements {
    load: String,
    save: String,
    delete: String,
    delete_user: String,
    delete_expired: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        Self {
            load: format!(
                "SELECT id, user_id, data, created_at, last_seen_at, expires_at FROM {table} WHERE id = $1"
            ),
            save: format!(
                "INSERT INTO {table} (id, user_id, data, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                 user_id = excluded.user_id, data = excluded.data, created_at = excluded.created_at, \
                 last_seen_at = excluded.last_seen_at, expires_at = excluded.expires_at"
            ),
            delete: format!("DELETE FROM {table} WHERE id = $1"),
            delete_user: format!("DELETE FROM {table} WHERE user_id = $1"),
            delete_expired: format!("DELETE FROM {table} WHERE expires_at <= $1"),
        }
    }
}

impl SqlStore {
    /// Sessions in table `arbor_sessions` of `pool`.
    pub fn new(pool: AnyPool) -> Self {
        Self::with_table(pool, "arbor_sessions")
    }

    /// Sessions in table `table`.
    ///
    /// # Panics
    /// If `table` is not a plain SQL identifier (letters, digits, `_`, optionally one `.`
    /// for a schema): it is written into the statements.
    pub fn with_table(pool: AnyPool, table: &str) -> Self {
        let valid = !table.is_empty()
            && table.split('.').count() <= 2
            && table.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        assert!(
            valid,
            "session table name `{table}` is not a plain SQL identifier"
        );
        Self {
            pool,
            statements: Statements::new(table),
            table: table.to_owned(),
        }
    }

    /// Creates the table and its indexes if they do not exist.
    ///
    /// # Errors
    /// The database's.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let table = &self.table;
        let index = table.replace('.', "_");
        for statement in [
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, user_id TEXT, \
                 data TEXT NOT NULL, created_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, \
                 expires_at BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {index}_user_id ON {table} (user_id)"),
            format!("CREATE INDEX IF NOT EXISTS {index}_expires_at ON {table} (expires_at)"),
        ] {
            sqlx::query(&statement)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    /// Deletes the sessions that expired by `now_unix_ms`; returns how many.
    ///
    /// # Errors
    /// The database's.
    pub async fn delete_expired(&self, now_unix_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.statements.delete_expired)
            .bind(now_unix_ms)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }

    /// Deletes the expired sessions now and then every `period`, on a task of its own, until
    /// the returned handle is aborted or the runtime stops. A failure (the database down) is
    /// logged and the next tick tries again. Every instance of an app may run one: the
    /// deletion is one idempotent statement.
    pub fn spawn_expired_deletion(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                match store.delete_expired(now).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::debug!(table = %store.table, deleted, "expired sessions deleted");
                    }
                    Err(error) => {
                        tracing::warn!(table = %store.table, %error, "deleting expired sessions failed");
                    }
                }
            }
        })
    }
}

fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::unavailable(error)
        }
        other => StoreError::new(other),
    }
}

impl SessionStore for SqlStore {
    fn load(&self, id: String) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async move {
            let Some(row) = sqlx::query(&self.statements.load)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?
            else {
                return Ok(None);
            };
            let data: String = row.try_get("data").map_err(store_error)?;
            Ok(Some(SessionRecord {
                id: row.try_get("id").map_err(store_error)?,
                user_id: row.try_get("user_id").map_err(store_error)?,
                data: serde_json::from_str(&data).map_err(StoreError::new)?,
                created_at: row.try_get("created_at").map_err(store_error)?,
                last_seen_at: row.try_get("last_seen_at").map_err(store_error)?,
                expires_at: row.try_get("expires_at").map_err(store_error)?,
            }))
        })
    }

    fn save(&self, record: SessionRecord, _ttl: Duration) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let data = serde_json::to_string(&record.data).map_err(StoreError::new)?;
            sqlx::query(&self.statements.save)
                .bind(record.id)
                .bind(record.user_id)
                .bind(data)
                .bind(record.created_at)
                .bind(record.last_seen_at)
                .bind(record.expires_at)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn delete(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(&self.statements.delete)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn delete_user(&self, user_id: String) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(&self.statements.delete_user)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected())
        })
    }
}
