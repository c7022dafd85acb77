//! The `webhook_events` table: every query the webhook queue makes (`crate::webhooks`), the
//! same SQL on SQLite and PostgreSQL.
//!
//! Statuses: `pending` (stored, not yet attempted), `processing` (an attempt holds the lease),
//! `processed`, `failed` (the last attempt failed: retried at `next_attempt_at` while attempts
//! are left, given up otherwise, with `next_attempt_at` empty).

use crate::db::{is_unique_violation, Db};

/// Stored, not yet attempted.
pub const PENDING: &str = "pending";
/// An attempt holds the lease (`locked_until`).
pub const PROCESSING: &str = "processing";
/// Done.
pub const PROCESSED: &str = "processed";
/// The last attempt failed.
pub const FAILED: &str = "failed";

/// A stored event, as `webhook_events` holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    /// `stripe` or `github`.
    pub provider: String,
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `processing`, `processed` or `failed`.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i64,
    /// The error of the last failed attempt (kept once the event is processed).
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub received_at: i64,
    /// Unix milliseconds, once processed.
    pub processed_at: Option<i64>,
    /// When the next attempt is due (unix milliseconds); empty when none is.
    pub next_attempt_at: Option<i64>,
    /// The user the event concerns, once processed.
    pub user_id: Option<String>,
}

/// An event being stored.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// `stripe` or `github`.
    pub provider: &'a str,
    /// The provider's event id.
    pub event_id: &'a str,
    /// The event type.
    pub event_type: &'a str,
    /// The raw body.
    pub payload: &'a str,
}

/// An attempt just claimed by [`WebhookEvents::claim`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Claimed {
    /// The event type.
    pub event_type: String,
    /// The raw body.
    pub payload: String,
    /// Attempts started so far, this one included.
    pub attempts: i64,
}

/// Where an event stands, for deciding when to look at it again.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Standing {
    /// The status.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i64,
    /// When a failed event's next attempt is due.
    pub next_attempt_at: Option<i64>,
    /// When a running attempt's lease ends.
    pub locked_until: Option<i64>,
}

const COLUMNS: &str = "provider, event_id, event_type, status, attempts, last_error, received_at, processed_at, next_attempt_at, user_id";

/// The webhook event store.
#[derive(Debug, Clone)]
pub struct WebhookEvents {
    db: Db,
}

impl WebhookEvents {
    /// The store over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Stores a new event as `pending`, due `now`. `Ok(false)` if an event with the same
    /// provider and id is already stored (the primary key decides, so concurrent deliveries
    /// of one event store it once).
    ///
    /// # Errors
    /// A database failure.
    pub async fn insert(&self, event: NewEvent<'_>, now: i64) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO webhook_events (provider, event_id, event_type, payload, status, attempts, received_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        )
        .bind(event.provider)
        .bind(event.event_id)
        .bind(event.event_type)
        .bind(event.payload)
        .bind(PENDING)
        .bind(now)
        .bind(now)
        .execute(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The stored event, if any.
    ///
    /// # Errors
    /// A database failure.
    pub async fn find(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<Option<EventRecord>, sqlx::Error> {
        sqlx::query_as::<_, EventRecord>(&format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE provider = $1 AND event_id = $2"
        ))
        .bind(provider)
        .bind(event_id)
        .fetch_optional(&self.db)
        .await
    }

    /// Records as failed every event whose last attempt (`attempts >= max_attempts`) was
    /// interrupted: its lease ended before `now` and it will never be retried.
    ///
    /// # Errors
    /// A database failure.
    pub async fn fail_interrupted_last_attempts(
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
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// `(provider, event_id)` of every unprocessed event with attempts left, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub async fn unfinished(
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
        .fetch_all(&self.db)
        .await
    }

    /// Claims the next attempt if one is due at `now`: counts it and takes the lease until
    /// `lease_until`. One statement decides who runs the attempt: a second claimer finds the
    /// lease taken and gets `None`.
    ///
    /// # Errors
    /// A database failure.
    pub async fn claim(
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
        .fetch_optional(&self.db)
        .await
    }

    /// Records a successful attempt, and the user the event concerns.
    ///
    /// # Errors
    /// A database failure.
    pub async fn mark_processed(
        &self,
        provider: &str,
        event_id: &str,
        user_id: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_events SET status = $1, processed_at = $2, user_id = $3, locked_until = NULL, next_attempt_at = NULL \
             WHERE provider = $4 AND event_id = $5",
        )
        .bind(PROCESSED)
        .bind(now)
        .bind(user_id)
        .bind(provider)
        .bind(event_id)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Records a failed attempt, and when the next one is due (`None`: never).
    ///
    /// # Errors
    /// A database failure.
    pub async fn mark_failed(
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
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Where the event stands, if it is stored.
    ///
    /// # Errors
    /// A database failure.
    pub async fn standing(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<Option<Standing>, sqlx::Error> {
        sqlx::query_as::<_, Standing>(
            "SELECT status, attempts, next_attempt_at, locked_until FROM webhook_events WHERE provider = $1 AND event_id = $2",
        )
        .bind(provider)
        .bind(event_id)
        .fetch_optional(&self.db)
        .await
    }
}
