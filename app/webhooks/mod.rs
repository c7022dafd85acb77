//! Webhooks from Stripe and GitHub: signature verification on the raw body, exactly-once
//! acceptance by event id, and processing after the `200` on a background task with persisted,
//! bounded retries.
//!
//! - [`verify`] (`http.rs`) is the `(webhooks)` folder middleware: it picks the provider from
//!   the last URL segment, answers `404` if that provider is not enabled, reads the raw body,
//!   checks the signature ([`verify_stripe`], [`verify_github`] in `signature.rs`) and hands the
//!   route a [`VerifiedEvent`]. Every refusal is the same `400 INVALID_SIGNATURE`, whatever
//!   failed; the reason is logged. [`receive`] is the one handler every provider's route file
//!   exports as its `POST`.
//! - [`Webhooks::accept`] (`delivery.rs`) stores the event under its `(provider, event_id)`
//!   primary key. A second delivery of the same id hits the key and is acknowledged as a
//!   duplicate without being processed again.
//! - A background task (`queue.rs`) claims the event (an atomic `UPDATE .. RETURNING` that also
//!   takes a lease, so two processes never run the same attempt), runs the [`Processor`]
//!   (`processor.rs`), and records the outcome. A failed attempt is retried after an
//!   exponential backoff ([`RetryPolicy`]); `status`, `attempts`, `last_error` and
//!   `next_attempt_at` are in the database, so events interrupted by a restart are resumed at
//!   start-up ([`Webhooks::start`]).
//!
//! Every query is in [`crate::services::webhook_events`], which also lists the statuses.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::db::Db;
use crate::services::webhook_events::WebhookEvents;

mod delivery;
mod http;
mod processor;
mod provider;
mod queue;
mod signature;

pub use crate::services::webhook_events::EventRecord;
pub use delivery::{Accepted, VerifiedEvent};
pub use http::{receive, verify};
pub use processor::{on_user_event, BoxFuture, Event, LinkUsers, Outcome, Processor};
pub use provider::Provider;
pub use queue::RetryPolicy;
pub use signature::{verify_github, verify_stripe, SignatureError, STRIPE_TOLERANCE_SECS};

/// Verification and processing of webhooks: part of [`AppState`](crate::AppState) (cheap to
/// clone).
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// The `webhook_events` table.
    events: WebhookEvents,
    /// Where events that concern a user are published (their `/api/v1/events` stream).
    bus: arbor::events::Bus,
    /// The secret of each enabled provider, by [`Provider::index`]; `None` when disabled.
    secrets: [Option<Vec<u8>>; 2],
    processor: RwLock<Arc<dyn Processor>>,
    policy: RwLock<RetryPolicy>,
    permits: Semaphore,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enabled: Vec<_> = Provider::ALL
            .into_iter()
            .filter(|p| self.is_enabled(*p))
            .collect();
        f.debug_struct("Webhooks")
            .field("enabled", &enabled)
            .field("policy", &self.retry_policy())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Checks the configuration and resumes the events a previous run left unfinished.
    ///
    /// Enabled providers are those listed in `ARBOR_WEBHOOKS` ([`Config::webhooks`]), or, when
    /// it is not set, those whose secret is set.
    ///
    /// # Errors
    /// An enabled provider without its secret, naming the variable; a database failure.
    pub async fn start(db: Db, config: &Config, bus: arbor::events::Bus) -> Result<Self, String> {
        let enabled = match &config.webhooks {
            Some(list) => list.clone(),
            None => Provider::ALL
                .into_iter()
                .filter(|p| p.secret(config).is_some())
                .collect(),
        };
        let mut secrets = [None, None];
        for provider in enabled {
            let Some(secret) = provider.secret(config) else {
                let var = provider.secret_var();
                return Err(format!(
                    "ARBOR_WEBHOOKS enables the {provider} webhook (/api/webhooks/{provider}) but \
                     {var} is not set: set {var} to the endpoint's signing secret, or remove \
                     `{provider}` from ARBOR_WEBHOOKS"
                ));
            };
            secrets[provider.index()] = Some(secret.as_bytes().to_vec());
        }
        let webhooks = Self {
            inner: Arc::new(Inner {
                processor: RwLock::new(Arc::new(LinkUsers::new(db.clone()))),
                events: WebhookEvents::new(db.clone()),
                db,
                bus,
                secrets,
                policy: RwLock::new(RetryPolicy::default()),
                permits: Semaphore::new(queue::CONCURRENCY),
            }),
        };
        webhooks
            .recover()
            .await
            .map_err(|e| format!("could not resume unfinished webhook events: {e}"))?;
        Ok(webhooks)
    }

    /// Whether `provider`'s route answers (otherwise it is a `404`).
    pub fn is_enabled(&self, provider: Provider) -> bool {
        self.inner.secrets[provider.index()].is_some()
    }

    /// Replaces the processor (tests use this to inject failures).
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

    /// The default processor, [`LinkUsers`], over this pool.
    pub fn default_processor(&self) -> Arc<dyn Processor> {
        Arc::new(LinkUsers::new(self.inner.db.clone()))
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

    /// The stored event, if any.
    ///
    /// # Errors
    /// A database failure.
    pub async fn find(
        &self,
        provider: Provider,
        event_id: &str,
    ) -> Result<Option<EventRecord>, sqlx::Error> {
        self.inner.events.find(provider.as_str(), event_id).await
    }
}
