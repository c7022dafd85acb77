//! Background processing: each accepted event gets a task that claims its attempts (a lease in
//! the database, so two processes never run the same attempt), runs the [`Processor`], records
//! the outcome and retries failures after an exponential backoff ([`RetryPolicy`]). Everything
//! is in the database, so [`Webhooks::recover`] resumes what a stopped process left unfinished.
//!
//! [`Processor`]: super::Processor

use std::time::Duration;

use serde_json::Value;
use tracing::Instrument;

use super::{on_user_event, Event, Provider, Webhooks};
use crate::db::now_ms;
use crate::services::webhook_events::{PROCESSED, PROCESSING};

/// How many events are processed at the same time, at most.
pub(super) const CONCURRENCY: usize = 8;

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

enum Step {
    Done,
    RetryIn(Duration),
}

impl Webhooks {
    /// Resumes every event with attempts left that is not processed: pending ones, failed ones
    /// (at `next_attempt_at`), and those whose attempt was interrupted (once its lease
    /// expires). Called by [`Webhooks::start`]. Returns how many were resumed.
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
        let mut resumed = 0;
        for (provider, event_id) in unfinished {
            match Provider::parse(&provider) {
                Some(provider) => {
                    self.spawn(provider, event_id);
                    resumed += 1;
                }
                None => {
                    tracing::warn!(%provider, %event_id, "stored webhook event of an unknown provider")
                }
            }
        }
        if resumed > 0 {
            tracing::info!(resumed, "resuming unfinished webhook events");
        }
        Ok(resumed)
    }

    pub(super) fn spawn(&self, provider: Provider, event_id: String) {
        let webhooks = self.clone();
        // Outside the request's span: the task outlives the request.
        let span = tracing::info_span!(parent: None, "webhook", provider = provider.as_str(), event_id = %event_id);
        tokio::spawn(async move { webhooks.run(provider, &event_id).await }.instrument(span));
    }

    /// Drives one event to `processed` or to its last failed attempt.
    async fn run(&self, provider: Provider, event_id: &str) {
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
                        tracing::error!(provider = provider.as_str(), event_id, error = %error, "webhook event left for the next start-up: the database keeps failing");
                        return;
                    }
                    tracing::warn!(provider = provider.as_str(), event_id, error = %error, "webhook bookkeeping failed; trying again");
                    tokio::time::sleep(policy.delay_after(database_failures)).await;
                }
            }
        }
    }

    /// Claims the event if an attempt is due, runs it and records the outcome.
    async fn step(&self, provider: Provider, event_id: &str) -> Result<Step, sqlx::Error> {
        let policy = self.retry_policy();
        let events = &self.inner.events;
        let now = now_ms();
        let claimed = events
            .claim(
                provider.as_str(),
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
            provider,
            id: event_id.to_owned(),
            event_type: claimed.event_type,
            payload: serde_json::from_str(&claimed.payload)
                .unwrap_or(Value::String(claimed.payload)),
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
                    .mark_processed(
                        provider.as_str(),
                        event_id,
                        outcome.user_id.as_deref(),
                        now_ms(),
                    )
                    .await?;
                tracing::info!(
                    provider = provider.as_str(),
                    event_id,
                    attempt = event.attempt,
                    "webhook processed"
                );
                if let Some(user_id) = &outcome.user_id {
                    on_user_event(&self.inner.bus, user_id, &event).await;
                }
                Ok(Step::Done)
            }
            Err(error) => {
                let retry = (event.attempt < policy.max_attempts)
                    .then(|| policy.delay_after(event.attempt));
                events
                    .mark_failed(
                        provider.as_str(),
                        event_id,
                        &error,
                        retry.map(|delay| now_ms() + millis(delay)),
                    )
                    .await?;
                match retry {
                    Some(delay) => {
                        tracing::warn!(provider = provider.as_str(), event_id, attempt = event.attempt, error = %error, retry_in = ?delay, "webhook processing failed; will retry");
                        Ok(Step::RetryIn(delay))
                    }
                    None => {
                        tracing::error!(provider = provider.as_str(), event_id, attempt = event.attempt, error = %error, "webhook processing failed; no attempts left");
                        Ok(Step::Done)
                    }
                }
            }
        }
    }

    /// Why no attempt could be claimed: finished, or when to look again.
    async fn not_due(
        &self,
        provider: Provider,
        event_id: &str,
        policy: &RetryPolicy,
    ) -> Result<Step, sqlx::Error> {
        let standing = self
            .inner
            .events
            .standing(provider.as_str(), event_id)
            .await?;
        let Some(standing) = standing else {
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

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
