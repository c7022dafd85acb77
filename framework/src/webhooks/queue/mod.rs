//! Durable webhook processing (feature `sqlx`): each event is stored once, answered at once,
//! and processed after the `200` on a background task, with persisted attempts, exponential
//! backoff, and recovery at start-up.
//!
//! ```
//! use arbor::webhooks::queue::{processor_fn, Outcome, WebhookQueue};
//! use arbor::webhooks::{verify, GitHub, WebhookEvent};
//! use arbor::{ApiError, Json, State};
//! use serde_json::Value;
//!
//! // app/api/webhooks/github/route.rs: verify, store once, answer.
//! #[arbor::handler(verify(GitHub::new("secret")))]
//! pub async fn POST(
//!     State(queue): State<WebhookQueue>,
//!     event: WebhookEvent,
//! ) -> Result<Json<Value>, ApiError> {
//!     queue.receive(event).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sqlx::Error> {
//! // At start-up: the table is created if missing, and unfinished events resume.
//! sqlx::any::install_default_drivers();
//! # let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
//! # /*
//! let pool = sqlx::AnyPool::connect(&std::env::var("DATABASE_URL").unwrap()).await?;
//! # */
//! let queue = WebhookQueue::new(pool, processor_fn(|event| async move {
//!     match event.event_type.as_str() {
//!         "push" => { /* deploy; Err(message) to retry later */ }
//!         _ => {}
//!     }
//!     Ok(Outcome::default())
//! }));
//! queue.start().await?;
//! let router: arbor::Router = arbor::Router::new()
//!     .route("/api/webhooks/github", axum::routing::post(POST))
//!     .with_state(queue);
//! # let _ = router;
//! # Ok(())
//! # }
//! ```
//!
//! # How an event is processed
//!
//! 1. [`WebhookQueue::enqueue`] inserts the event as `pending` under the primary key
//!    `(provider, event_id)`. A second delivery of the same id hits the key and is a
//!    [`Enqueued::Duplicate`]; concurrent copies store it exactly once.
//! 2. A task claims an attempt: one `UPDATE .. RETURNING` sets `processing`, counts the
//!    attempt and takes a lease (`locked_until`, twice the attempt timeout). It only succeeds
//!    when an attempt is due, so two tasks or two processes never run the same attempt.
//! 3. The [`Processor`] runs, within the attempt timeout; at most `concurrency` events run at
//!    once (8 by default).
//! 4. Success records `processed` (and the [`Outcome::reference`]); failure records `failed`,
//!    `last_error` and `next_attempt_at` after the [`RetryPolicy`]'s backoff, until
//!    `max_attempts` attempts have been made.
//!
//! Everything is in the table, so [`WebhookQueue::start`] (through [`recover`](WebhookQueue::recover))
//! resumes what a stopped process left: `pending` events at once, `failed` ones at their
//! `next_attempt_at`, interrupted ones once their lease expires. An interrupted *last* attempt
//! is recorded as `failed` with `last_error = 'interrupted'`. Processing is at least once:
//! processors should be idempotent.
//!
//! # The table
//!
//! [`WebhookQueue::ensure_schema`] creates `webhook_events` if it does not exist (SQLite and
//! PostgreSQL):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS webhook_events (
//!     provider TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
//!     payload TEXT NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL,
//!     last_error TEXT, received_at BIGINT NOT NULL, processed_at BIGINT,
//!     next_attempt_at BIGINT, locked_until BIGINT, reference TEXT,
//!     PRIMARY KEY (provider, event_id)
//! );
//! CREATE INDEX IF NOT EXISTS webhook_events_status ON webhook_events (status);
//! ```
//!
//! Times are Unix milliseconds. An app with its own migrations may create the same table there
//! instead; `ensure_schema` then leaves it alone.

mod sql;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sqlx::AnyPool;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::WebhookEvent;
use crate::store::BoxFuture;
use crate::{ApiError, Json};

/// `status` of an event stored, not yet attempted.
pub const PENDING: &str = "pending";
/// `status` of an event whose attempt holds the lease.
pub const PROCESSING: &str = "processing";
/// `status` of an event processed.
pub const PROCESSED: &str = "processed";
/// `status` of an event whose last attempt failed: retried at `next_attempt_at` while
/// attempts are left, given up otherwise.
pub const FAILED: &str = "failed";

/// How many events are processed at the same time by default.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// An event as the [`Processor`] sees it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Who sent it ([`WebhookVerifier::name`](super::WebhookVerifier::name)).
    pub provider: String,
    /// The provider's event id.
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// The raw body.
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
}

impl Event {
    /// The payload parsed as JSON.
    ///
    /// # Errors
    /// The payload is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

/// What a successful attempt found out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// What the event led to, if worth keeping (a user id, an order id): stored as the event's
    /// `reference`.
    pub reference: Option<String>,
}

/// Handles events. An `Err` (or running past [`RetryPolicy::attempt_timeout`]) fails the
/// attempt, which is retried with backoff; the message becomes `last_error`.
///
/// Processing is at least once: a process that stops between the work and recording it runs
/// the event again after a restart, so implementations should be idempotent.
pub trait Processor: Send + Sync + 'static {
    /// Processes one attempt of `event`.
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>>;
}

impl<T: Processor + ?Sized> Processor for Arc<T> {
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>> {
        (**self).process(event)
    }
}

/// A [`Processor`] from an async closure over an owned [`Event`].
pub fn processor_fn<F, Fut>(f: F) -> ProcessorFn<F>
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, String>> + Send + 'static,
{
    ProcessorFn(f)
}

/// The [`Processor`] made by [`processor_fn`].
#[derive(Clone, Copy)]
pub struct ProcessorFn<F>(F);

impl<F> fmt::Debug for ProcessorFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProcessorFn")
    }
}

impl<F, Fut> Processor for ProcessorFn<F>
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, String>> + Send + 'static,
{
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin((self.0)(event.clone()))
    }
}

/// How failed attempts are retried: attempt `n` (from 1) that fails is retried after
/// `min(base_delay * 2^(n-1), max_delay)`, until `max_attempts` attempts have been made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 5.
    pub max_attempts: u32,
    /// The delay after the first failure. Default 2 s.
    pub base_delay: Duration,
    /// The longest delay. Default 5 min.
    pub max_delay: Duration,
    /// How long an attempt may run before it counts as failed. Default 30 s. An attempt holds
    /// a lease of twice this, after which another process may take the event over.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (from 1).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    fn max_attempts(&self) -> i64 {
        i64::from(self.max_attempts)
    }

    fn lease_ms(&self) -> i64 {
        millis(self.attempt_timeout.saturating_mul(2))
    }
}

/// A stored event, as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The provider's name.
    pub provider: String,
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// [`PENDING`], [`PROCESSING`], [`PROCESSED`] or [`FAILED`].
    pub status: String,
    /// Attempts started so far.
    pub attempts: i64,
    /// The error of the last failed attempt (kept once the event is processed).
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub received_at: i64,
    /// Unix milliseconds, once processed.
    pub processed_at: Option<i64>,
    /// When the next attempt is due (Unix milliseconds); empty when none is.
    pub next_attempt_at: Option<i64>,
    /// The successful attempt's [`Outcome::reference`].
    pub reference: Option<String>,
}

/// What [`WebhookQueue::enqueue`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored; processing starts in the background.
    New,
    /// An event with this provider and id was stored before: nothing to do.
    Duplicate,
}

/// Why an event could not be stored.
#[derive(Debug)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The body is not UTF-8 (the table keeps payloads as text): `400 INVALID_PAYLOAD`.
    NotText,
    /// The database failed: `500`, and the provider delivers the event again later.
    Database(sqlx::Error),
}

impl fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnqueueError::NotText => f.write_str("the webhook body is not UTF-8"),
            EnqueueError::Database(error) => {
                write!(f, "could not store the webhook event: {error}")
            }
        }
    }
}

impl std::error::Error for EnqueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnqueueError::NotText => None,
            EnqueueError::Database(error) => Some(error),
        }
    }
}

impl From<EnqueueError> for ApiError {
    fn from(error: EnqueueError) -> Self {
        match error {
            EnqueueError::NotText => ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PAYLOAD",
                "The webhook body is not UTF-8 text",
            ),
            EnqueueError::Database(error) => ApiError::internal_with(error),
        }
    }
}

impl IntoResponse for EnqueueError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// The durable queue over the `webhook_events` table. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct WebhookQueue {
    inner: Arc<Inner>,
}

struct Inner {
    events: sql::Events,
    processor: RwLock<Arc<dyn Processor>>,
    policy: RwLock<RetryPolicy>,
    permits: Semaphore,
}

impl fmt::Debug for WebhookQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookQueue")
            .field("policy", &self.retry_policy())
            .finish_non_exhaustive()
    }
}

enum Step {
    Done,
    RetryIn(Duration),
}

impl WebhookQueue {
    /// A queue over `pool` (any driver sqlx's `Any` supports: SQLite, PostgreSQL) handing
    /// events to `processor`, [`DEFAULT_CONCURRENCY`] at a time. Call
    /// [`start`](Self::start) before serving.
    pub fn new(pool: AnyPool, processor: impl Processor) -> Self {
        Self::with_concurrency(pool, processor, DEFAULT_CONCURRENCY)
    }

    /// Like [`new`](Self::new), processing at most `concurrency` events at once (at least 1).
    pub fn with_concurrency(pool: AnyPool, processor: impl Processor, concurrency: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                events: sql::Events { pool },
                processor: RwLock::new(Arc::new(processor)),
                policy: RwLock::new(RetryPolicy::default()),
                permits: Semaphore::new(concurrency.max(1)),
            }),
        }
    }

    /// Creates the `webhook_events` table and its index if they do not exist.
    ///
    /// # Errors
    /// A database failure.
    pub async fn ensure_schema(&self) -> Result<(), sqlx::Error> {
        self.inner.events.ensure_schema().await
    }

    /// [`ensure_schema`](Self::ensure_schema), then [`recover`](Self::recover): what to call at
    /// start-up. Returns how many unfinished events were resumed.
    ///
    /// # Errors
    /// A database failure.
    pub async fn start(&self) -> Result<usize, sqlx::Error> {
        self.ensure_schema().await?;
        self.recover().await
    }

    /// Stores a verified event and starts processing it in the background, unless an event
    /// with the same provider and id was stored before.
    ///
    /// # Errors
    /// The body is not UTF-8, or the database failed.
    pub async fn enqueue(&self, event: &WebhookEvent) -> Result<Enqueued, EnqueueError> {
        let payload = event.text().ok_or(EnqueueError::NotText)?;
        let inserted = self
            .inner
            .events
            .insert(
                &event.provider,
                &event.id,
                &event.event_type,
                payload,
                now_ms(),
            )
            .await
            .map_err(EnqueueError::Database)?;
        if inserted {
            tracing::info!(provider = %event.provider, event_id = %event.id, event_type = %event.event_type, "webhook received");
            self.spawn(event.provider.clone(), event.id.clone());
            Ok(Enqueued::New)
        } else {
            tracing::info!(provider = %event.provider, event_id = %event.id, "duplicate webhook delivery acknowledged");
            Ok(Enqueued::Duplicate)
        }
    }

    /// [`enqueue`](Self::enqueue), answered the way providers expect: `200
    /// {"received":true}`, with `"duplicate":true` for an event stored before. A webhook route
    /// can return it as it is.
    ///
    /// # Errors
    /// `400 INVALID_PAYLOAD` for a body that is not UTF-8; `500` if the event cannot be stored
    /// (the provider delivers it again later).
    pub async fn receive(&self, event: WebhookEvent) -> Result<Json<Value>, ApiError> {
        Ok(Json(match self.enqueue(&event).await? {
            Enqueued::New => json!({ "received": true }),
            Enqueued::Duplicate => json!({ "received": true, "duplicate": true }),
        }))
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
        self.inner.events.find(provider, event_id).await
    }

    /// Replaces the processor; running tasks use it from their next attempt.
    pub fn set_processor(&self, processor: Arc<dyn Processor>) {
        *self
            .inner
            .processor
            .write()
            .unwrap_or_else(PoisonError::into_inner) = processor;
    }

    /// The processor in use.
    pub fn processor(&self) -> Arc<dyn Processor> {
        self.inner
            .processor
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the retry policy; it applies from the next decision of every event.
    pub fn set_retry_policy(&self, policy: RetryPolicy) {
        *self
            .inner
            .policy
            .write()
            .unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> RetryPolicy {
        *self
            .inner
            .policy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Resumes every event with attempts left that is not processed: pending ones, failed
    /// ones (at `next_attempt_at`), and those whose attempt was interrupted (once its lease
    /// expires). Returns how many were resumed.
    ///
    /// # Errors
    /// A database failure.
    pub async fn recover(&self) -> Result<usize, sqlx::Error> {
        let policy = self.retry_policy();
        let events = &self.inner.events;
        // An interrupted last attempt will never be retried: record it as failed.
        events
            .fail_interrupted_last_attempts(policy.max_attempts(), now_ms())
            .await?;
        let unfinished = events.unfinished(policy.max_attempts()).await?;
        let resumed = unfinished.len();
        for (provider, event_id) in unfinished {
            self.spawn(provider, event_id);
        }
        if resumed > 0 {
            tracing::info!(resumed, "resuming unfinished webhook events");
        }
        Ok(resumed)
    }

    fn spawn(&self, provider: String, event_id: String) {
        let queue = self.clone();
        // Outside the request's span: the task outlives the request.
        let span = tracing::info_span!(parent: None, "webhook", provider = %provider, event_id = %event_id);
        tokio::spawn(async move { queue.run(&provider, &event_id).await }.instrument(span));
    }

    /// Drives one event to `processed` or to its last failed attempt.
    async fn run(&self, provider: &str, event_id: &str) {
        let mut database_failures = 0;
        loop {
            let step = {
                let Ok(_permit) = self.inner.permits.acquire().await else {
                    return;
                };
                self.step(provider, event_id).await
            };
            match step {
                Ok(Step::Done) => return,
                Ok(Step::RetryIn(delay)) => {
                    database_failures = 0;
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    database_failures += 1;
                    let policy = self.retry_policy();
                    if database_failures >= policy.max_attempts {
                        tracing::error!(provider, event_id, %error, "webhook event left for the next start-up: the database keeps failing");
                        return;
                    }
                    tracing::warn!(provider, event_id, %error, "webhook bookkeeping failed; trying again");
                    tokio::time::sleep(policy.delay_after(database_failures)).await;
                }
            }
        }
    }

    /// Claims the event if an attempt is due, runs it and records the outcome.
    async fn step(&self, provider: &str, event_id: &str) -> Result<Step, sqlx::Error> {
        let policy = self.retry_policy();
        let events = &self.inner.events;
        let now = now_ms();
        let claimed = events
            .claim(
                provider,
                event_id,
                policy.max_attempts(),
                now,
                now + policy.lease_ms(),
            )
            .await?;
        let Some(claimed) = claimed else {
            return self.not_due(provider, event_id, &policy).await;
        };
        let event = Event {
            provider: provider.to_owned(),
            id: event_id.to_owned(),
            event_type: claimed.event_type,
            payload: claimed.payload,
            attempt: u32::try_from(claimed.attempts).unwrap_or(u32::MAX),
        };
        let processor = self.processor();
        let result = tokio::time::timeout(policy.attempt_timeout, processor.process(&event))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the attempt timed out after {:?}",
                    policy.attempt_timeout
                ))
            });
        match result {
            Ok(outcome) => {
                events
                    .mark_processed(provider, event_id, outcome.reference.as_deref(), now_ms())
                    .await?;
                tracing::info!(
                    provider,
                    event_id,
                    attempt = event.attempt,
                    "webhook processed"
                );
                Ok(Step::Done)
            }
            Err(error) => {
                let retry = (event.attempt < policy.max_attempts)
                    .then(|| policy.delay_after(event.attempt));
                events
                    .mark_failed(
                        provider,
                        event_id,
                        &error,
                        retry.map(|delay| now_ms() + millis(delay)),
                    )
                    .await?;
                match retry {
                    Some(delay) => {
                        tracing::warn!(provider, event_id, attempt = event.attempt, %error, retry_in = ?delay, "webhook processing failed; will retry");
                        Ok(Step::RetryIn(delay))
                    }
                    None => {
                        tracing::error!(provider, event_id, attempt = event.attempt, %error, "webhook processing failed; no attempts left");
                        Ok(Step::Done)
                    }
                }
            }
        }
    }

    /// Why no attempt could be claimed: finished, or when to look again.
    async fn not_due(
        &self,
        provider: &str,
        event_id: &str,
        policy: &RetryPolicy,
    ) -> Result<Step, sqlx::Error> {
        let Some(standing) = self.inner.events.standing(provider, event_id).await? else {
            return Ok(Step::Done);
        };
        if standing.status == PROCESSED || standing.attempts >= policy.max_attempts() {
            return Ok(Step::Done);
        }
        let due = if standing.status == PROCESSING {
            standing.locked_until
        } else {
            standing.next_attempt_at
        };
        let wait = due.unwrap_or(0).saturating_sub(now_ms()).max(10);
        Ok(Step::RetryIn(Duration::from_millis(
            u64::try_from(wait).unwrap_or(10),
        )))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
