//! The `webhook_events` table: its schema and every query the queue makes, the same SQL on
//! SQLite and PostgreSQL (`$n` placeholders in order of appearance, TEXT and BIGINT columns).

use sqlx::any::AnyRow;
use sqlx::{AnyPool, FromRow, Row};

use super::{EventRecord, FAILED, PENDING, PROCESSED, PROCESSING};

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS webhook_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    received_at BIGINT NOT NULL,
    processed_at BIGINT,
    next_attempt_at BIGINT,
    locked_until BIGINT,
    reference TEXT,
    PRIMARY KEY (provider, event_id)
)";

const CREATE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS webhook_events_status ON webhook_events (status)";

const COLUMNS: &str = "provider, event_id, event_type, status, attempts, last_error, received_at, processed_at, next_attempt_at, reference";

/// An attempt just claimed.
#[derive(Debug)]
pub(super) struct Claimed {
    pub(super) event_type: String,
    pub(super) payload: String,
    pub(super) attempts: i64,
}

impl FromRow<'_, AnyRow> for Claimed {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            event_type: row.try_get("event_type")?,
            payload: row.try_get("payload")?,
            attempts: row.try_get("attempts")?,
        })
    }
}

/// Where an event stands, for deciding when to look at it again.
#[derive(Debug)]
pub(super) struct Standing {
    pub(super) status: String,
    pub(super) attempts: i64,
    pub(super) next_attempt_at: Option<i64>,
    pub(super) locked_until: Option<i64>,
}

impl FromRow<'_, AnyRow> for Standing {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            locked_until: row.try_get("locked_until")?,
        })
    }
}

impl FromRow<'_, AnyRow> for EventRecord {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            provider: row.try_get("provider")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            received_at: row.try_get("received_at")?,
            processed_at: row.try_get("processed_at")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            reference: row.try_get("reference")?,
        })
    }
}

/// The queries, over one pool.
#[derive(Debug, Clone)]
pub(super) struct Events {
    pub(super) pool: AnyPool,
}

impl Events {
    pub(super) async fn ensure_schema(&self) -> Result<(), sqlx::Error> {
        let created = async {
            sqlx::query(CREATE_TABLE).execute(&self.pool).await?;
            sqlx::query(CREATE_INDEX).execute(&self.pool).await
        }
        .await;
        match created {
            Ok(_) => Ok(()),
            // Two processes creating the table at once: PostgreSQL may refuse the second even
            // with IF NOT EXISTS. What matters is that the table is there now.
            Err(error) => match sqlx::query("SELECT 1 FROM webhook_events WHERE 1 = 0")
                .execute(&self.pool)
                .await
            {
                Ok(_) => Ok(()),
                Err(_) => Err(error),
            },
        }
    }

    /// Stores a new event as `pending`, due `now`. `Ok(false)` if one with the same provider
    /// and id is stored: the primary key decides, so concurrent deliveries store it once.
    pub(super) async fn insert(
        &self,
        provider: &str,
        event_id: &str,
        event_type: &str,
        payload: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO webhook_events (provider, event_id, event_type, payload, status, attempts, received_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7) ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .bind(event_type)
        .bind(payload)
        .bind(PENDING)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() > 0)
    }

    pub(super) async fn find(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<Option<EventRecord>, sqlx::Error> {
        sqlx::query_as::<_, EventRecord>(&format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE provider = $1 AND event_id = $2"
        ))
        .bind(provider)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records as failed every event whose last attempt was interrupted: its lease ended
    /// before `now` and it will never be retried.
    pub(super) async fn fail_interrupted_last_attempts(
        &self,
        max_attempts: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_events SET status = $1, locked_until = NULL, next_attempt_at = NULL, \
             last_error = COALESCE(last_error, 'interrupted') \
             WHERE status = $2 AND attempts >= $3 AND locked_until <= $4",
        )
        .bind(FAILED)
        .bind(PROCESSING)
        .bind(max_attempts)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `(provider, event_id)` of every unprocessed event with attempts left, oldest first.
    pub(super) async fn unfinished(
        &self,
        max_attempts: i64,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT provider, event_id FROM webhook_events \
             WHERE status IN ($1, $2, $3) AND attempts < $4 ORDER BY received_at",
        )
        .bind(PENDING)
        .bind(FAILED)
        .bind(PROCESSING)
        .bind(max_attempts)
        .fetch_all(&self.pool)
        .await
    }

    /// Claims the next attempt if one is due at `now`: counts it and takes the lease until
    /// `lease_until`. One statement decides who runs the attempt: a second claimer finds the
    /// lease taken and gets `None`.
    pub(super) async fn claim(
        &self,
        provider: &str,
        event_id: &str,
        max_attempts: i64,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<Claimed>, sqlx::Error> {
        sqlx::query_as::<_, Claimed>(
            "UPDATE webhook_events SET status = $1, attempts = attempts + 1, locked_until = $2, next_attempt_at = NULL \
             WHERE provider = $3 AND event_id = $4 AND attempts < $5 \
             AND ((status IN ($6, $7) AND COALESCE(next_attempt_at, 0) <= $8) OR (status = $9 AND locked_until <= $10)) \
             RETURNING event_type, payload, attempts",
        )
        .bind(PROCESSING)
        .bind(lease_until)
        .bind(provider)
        .bind(event_id)
        .bind(max_attempts)
        .bind(PENDING)
        .bind(FAILED)
        .bind(now)
        .bind(PROCESSING)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a successful attempt and what it referred to.
    pub(super) async fn mark_processed(
        &self,
        provider: &str,
        event_id: &str,
        reference: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_events SET status = $1, processed_at = $2, reference = $3, locked_until = NULL, next_attempt_at = NULL \
             WHERE provider = $4 AND event_id = $5",
        )
        .bind(PROCESSED)
        .bind(now)
        .bind(reference)
        .bind(provider)
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt, and when the next one is due (`None`: never).
    pub(super) async fn mark_failed(
        &self,
        provider: &str,
        event_id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_events SET status = $1, last_error = $2, locked_until = NULL, next_attempt_at = $3 \
             WHERE provider = $4 AND event_id = $5",
        )
        .bind(FAILED)
        .bind(error)
        .bind(next_attempt_at)
        .bind(provider)
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn standing(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<Option<Standing>, sqlx::Error> {
        sqlx::query_as::<_, Standing>(
            "SELECT status, attempts, next_attempt_at, locked_until FROM webhook_events WHERE provider = $1 AND event_id = $2",
        )
        .bind(provider)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await
    }
}
