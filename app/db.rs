//! The database: sqlx pools, SQLite by default, PostgreSQL when `DATABASE_URL` says so. The
//! same migrations and queries run on both (`$n` placeholders in order of appearance, TEXT ids,
//! BIGINT times). Pool size, acquire timeout and statement timeout come from the environment
//! ([`DbSettings`]), and an optional read replica serves the read-only service calls.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbor::http::{header, HeaderValue, StatusCode};
use arbor::ApiError;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

/// A shared connection pool.
pub type Db = AnyPool;

/// How the pools are sized and bounded: `ARBOR_DB_*` and `DATABASE_READ_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSettings {
    /// `ARBOR_DB_MAX_CONNECTIONS`: connections per pool (default 8 on SQLite, 16 on
    /// PostgreSQL: size it so that instances × pools × this stays under the server's
    /// `max_connections`).
    pub max_connections: Option<u32>,
    /// `ARBOR_DB_ACQUIRE_TIMEOUT_MS`: how long a request waits for a free connection before it
    /// is answered `503 DATABASE_UNAVAILABLE` (default 5000).
    pub acquire_timeout: Duration,
    /// `ARBOR_DB_STATEMENT_TIMEOUT_MS`: the longest a statement may run on PostgreSQL before
    /// the server cancels it and the request is answered `504 DATABASE_TIMEOUT` (default: no
    /// limit). SQLite has no such setting: there it is ignored, with a warning at start-up.
    pub statement_timeout: Option<Duration>,
    /// `DATABASE_READ_URL`: a read replica for the read-only service calls (lists and
    /// lookups); writes, and reads that decide a write, stay on `DATABASE_URL`.
    pub read_url: Option<String>,
}

impl Default for DbSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: None,
            read_url: None,
        }
    }
}

impl DbSettings {
    /// Reads the environment over the defaults.
    ///
    /// # Errors
    /// A variable that is set but unusable, named in the message.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// As [`from_env`](Self::from_env), from any source of variables.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let positive = |name: &str| -> Result<Option<u64>, String> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("{name} must be a positive whole number, not `{v}`"))
                })
                .transpose()
        };
        let mut settings = Self::default();
        if let Some(max) = positive("ARBOR_DB_MAX_CONNECTIONS")? {
            settings.max_connections = Some(
                u32::try_from(max)
                    .map_err(|_| "ARBOR_DB_MAX_CONNECTIONS is too large".to_owned())?,
            );
        }
        if let Some(ms) = positive("ARBOR_DB_ACQUIRE_TIMEOUT_MS")? {
            settings.acquire_timeout = Duration::from_millis(ms);
        }
        settings.statement_timeout =
            positive("ARBOR_DB_STATEMENT_TIMEOUT_MS")?.map(Duration::from_millis);
        settings.read_url = var("DATABASE_READ_URL");
        Ok(settings)
    }
}

/// Opens the pool with the default settings and applies the migrations in `app/migrations`.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
    connect_with(url, &DbSettings::default()).await
}

/// Opens the pool of `url` with `settings` and applies the migrations in `app/migrations`.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn connect_with(url: &str, settings: &DbSettings) -> Result<Db, sqlx::Error> {
    let pool = open(url, settings).await?;
    sqlx::migrate!("app/migrations").run(&pool).await?;
    Ok(pool)
}

/// Opens the read replica's pool (no migrations: the primary's reach it by replication).
///
/// # Errors
/// When the replica cannot be reached.
pub async fn connect_replica(url: &str, settings: &DbSettings) -> Result<Db, sqlx::Error> {
    open(url, settings).await
}

async fn open(url: &str, settings: &DbSettings) -> Result<Db, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    if sqlite {
        create_parent_dir(url);
        if settings.statement_timeout.is_some() {
            tracing::warn!(
                "ARBOR_DB_STATEMENT_TIMEOUT_MS is ignored: SQLite has no statement timeout"
            );
        }
    }
    // `SET` takes no bind parameters; the value is a number we formatted.
    let statement_timeout = settings
        .statement_timeout
        .filter(|_| !sqlite)
        .map(|timeout| format!("SET statement_timeout = {}", timeout.as_millis()));
    AnyPoolOptions::new()
        .max_connections(settings.max_connections.unwrap_or(if sqlite { 8 } else { 16 }))
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |connection, _| {
            let statement_timeout = statement_timeout.clone();
            Box::pin(async move {
                if sqlite {
                    // WAL lets readers run beside the writer; the busy timeout makes writers
                    // queue instead of failing under contention; foreign keys are off by default.
                    connection
                        .execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                }
                if let Some(statement) = statement_timeout {
                    connection.execute(statement.as_str()).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// `.or_db()` on a query's result: the error a client should see for a database failure.
pub trait DbResultExt<T> {
    /// No free connection in time, or the database unreachable: `503 DATABASE_UNAVAILABLE`
    /// with `Retry-After`; a statement cancelled by the statement timeout:
    /// `504 DATABASE_TIMEOUT`; anything else: a logged `500`.
    ///
    /// # Errors
    /// When `self` is an error.
    fn or_db(self) -> Result<T, ApiError>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn or_db(self) -> Result<T, ApiError> {
        self.map_err(db_error)
    }
}

/// See [`DbResultExt::or_db`].
pub fn db_error(error: sqlx::Error) -> ApiError {
    match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(%error, "database unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DATABASE_UNAVAILABLE",
                "The database is busy or unreachable; try again shortly",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        }
        // PostgreSQL's `query_canceled`: the statement timeout fired.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
            tracing::warn!(%error, "statement timed out");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "DATABASE_TIMEOUT",
                "The database took too long to answer",
            )
        }
        _ => ApiError::internal_with(error),
    }
}

fn create_parent_dir(url: &str) {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A new random id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether an error is a unique-constraint violation (the same code on both databases:
/// SQLite `2067`/`1555`, PostgreSQL `23505`).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("23505" | "2067" | "1555"))
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::DbSettings;

    fn settings(vars: &[(&str, &str)]) -> Result<DbSettings, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DbSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn settings_come_from_the_environment_with_defaults() {
        assert_eq!(settings(&[]).unwrap(), DbSettings::default());
        let set = settings(&[
            ("ARBOR_DB_MAX_CONNECTIONS", "32"),
            ("ARBOR_DB_ACQUIRE_TIMEOUT_MS", "250"),
            ("ARBOR_DB_STATEMENT_TIMEOUT_MS", "5000"),
            ("DATABASE_READ_URL", "postgres://replica/app"),
        ])
        .unwrap();
        assert_eq!(set.max_connections, Some(32));
        assert_eq!(set.acquire_timeout, Duration::from_millis(250));
        assert_eq!(set.statement_timeout, Some(Duration::from_secs(5)));
        assert_eq!(set.read_url.as_deref(), Some("postgres://replica/app"));
    }

    #[test]
    fn unusable_values_are_refused_by_name() {
        for (name, value) in [
            ("ARBOR_DB_MAX_CONNECTIONS", "0"),
            ("ARBOR_DB_MAX_CONNECTIONS", "many"),
            ("ARBOR_DB_ACQUIRE_TIMEOUT_MS", "-1"),
            ("ARBOR_DB_STATEMENT_TIMEOUT_MS", "1.5"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert!(error.starts_with(name) && error.contains(value), "{error}");
        }
    }
}
