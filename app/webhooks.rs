//! Webhooks from Stripe and GitHub, on `arbor::webhooks`: the framework verifies signatures
//! (each provider's folder middleware is `verify_registered("<provider>")`), stores each event
//! once and processes it in the background with retries that survive a restart
//! ([`WebhookQueue`]). What is the app's own: which providers are served and with which
//! secrets ([`Provider`], `ARBOR_WEBHOOKS`), and what an event does ([`LinkUsers`]: link it to
//! the user it is about, and tell that user's event stream).

use std::fmt;
use std::sync::Arc;

use arbor::webhooks::queue::WebhookQueue;
use arbor::webhooks::{GitHub, Stripe, Verifiers, WebhookEvent};
use arbor::{ApiError, Json, State};
use serde_json::Value;

use crate::config::Config;
use crate::db::Db;
use crate::services::passwords::Passwords;
use crate::services::users::Users;
use crate::AppState;

pub use arbor::webhooks::queue::{Event, EventRecord, Outcome, Processor, RetryPolicy};
pub use arbor::webhooks::BoxFuture;

/// `POST /api/webhooks/{provider}`: a delivery its folder middleware verified. Answers at
/// once; the event is processed in the background, and a redelivery of the same event id is
/// acknowledged without being processed again. Each provider's route file is
/// `pub use crate::webhooks::receive as POST;`.
///
/// # Errors
/// `500` if the event cannot be stored.
pub async fn receive(
    State(state): State<AppState>,
    event: WebhookEvent,
) -> Result<Json<Value>, ApiError> {
    state.webhooks.queue.receive(event).await
}

/// A webhook provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// `POST /api/webhooks/stripe`, `Stripe-Signature: t=..,v1=..`.
    Stripe,
    /// `POST /api/webhooks/github`, `X-Hub-Signature-256: sha256=..`.
    Github,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 2] = [Provider::Stripe, Provider::Github];

    /// The name used in URLs, `ARBOR_WEBHOOKS` and the `provider` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Github => "github",
        }
    }

    /// The environment variable that holds the signing secret.
    pub fn secret_var(self) -> &'static str {
        match self {
            Provider::Stripe => "STRIPE_WEBHOOK_SECRET",
            Provider::Github => "GITHUB_WEBHOOK_SECRET",
        }
    }

    /// The provider called `name` (`stripe`, `github`; case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// Parses `ARBOR_WEBHOOKS`: comma-separated provider names, or `none`.
    ///
    /// # Errors
    /// An unknown name, with the known ones.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        if list.trim().eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        let mut providers = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let provider = Self::parse(name).ok_or_else(|| {
                format!("unknown webhook provider `{name}` (known: stripe, github; or `none`)")
            })?;
            if !providers.contains(&provider) {
                providers.push(provider);
            }
        }
        Ok(providers)
    }

    /// The configured secret; an empty one counts as missing (anyone could sign with it).
    fn secret(self, config: &Config) -> Option<&str> {
        let secret = match self {
            Provider::Stripe => config.stripe_webhook_secret.as_deref(),
            Provider::Github => config.github_webhook_secret.as_deref(),
        };
        secret.filter(|s| !s.is_empty())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The app's webhooks: part of [`AppState`] (cheap to clone).
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// The verifier of each served provider, by name; [`crate::router`] layers them in.
    pub verifiers: Verifiers,
    /// Stored events and their processing.
    pub queue: WebhookQueue,
    db: Db,
    bus: arbor::events::Bus,
}

impl Webhooks {
    /// Checks the configuration and resumes the events a previous run left unfinished.
    ///
    /// Served providers are those listed in `ARBOR_WEBHOOKS` ([`Config::webhooks`]), or, when
    /// it is not set, those whose secret is set.
    ///
    /// # Errors
    /// A served provider without its secret, naming the variable; a database failure.
    pub async fn start(db: Db, config: &Config, bus: arbor::events::Bus) -> Result<Self, String> {
        let served = match &config.webhooks {
            Some(list) => list.clone(),
            None => Provider::ALL
                .into_iter()
                .filter(|p| p.secret(config).is_some())
                .collect(),
        };
        let mut verifiers = Verifiers::new();
        for provider in served {
            let Some(secret) = provider.secret(config) else {
                let var = provider.secret_var();
                return Err(format!(
                    "ARBOR_WEBHOOKS enables the {provider} webhook (/api/webhooks/{provider}) but \
                     {var} is not set: set {var} to the endpoint's signing secret, or remove \
                     `{provider}` from ARBOR_WEBHOOKS"
                ));
            };
            verifiers = match provider {
                Provider::Stripe => verifiers.register(Stripe::new(secret)),
                Provider::Github => verifiers.register(GitHub::new(secret)),
            };
        }
        let processor = NotifyUsers::new(LinkUsers::new(db.clone()), bus.clone());
        let webhooks = Self {
            verifiers,
            queue: WebhookQueue::new(db.clone(), processor),
            db,
            bus,
        };
        webhooks
            .queue
            .start()
            .await
            .map_err(|e| format!("could not resume unfinished webhook events: {e}"))?;
        Ok(webhooks)
    }

    /// Replaces the processor (tests use this to inject failures). Whatever it is, a
    /// successful event whose outcome names a user is published to that user's stream.
    pub fn set_processor(&self, processor: Arc<dyn Processor>) {
        self.queue
            .set_processor(Arc::new(NotifyUsers::new(processor, self.bus.clone())));
    }

    /// The default processor, [`LinkUsers`], over this pool.
    pub fn default_processor(&self) -> Arc<dyn Processor> {
        Arc::new(LinkUsers::new(self.db.clone()))
    }

    /// Replaces the retry policy; it applies from the next decision of every event.
    pub fn set_retry_policy(&self, policy: RetryPolicy) {
        self.queue.set_retry_policy(policy);
    }

    /// The stored event, if any; its `reference` is the user the event concerns.
    ///
    /// # Errors
    /// A database failure.
    pub async fn find(
        &self,
        provider: Provider,
        event_id: &str,
    ) -> Result<Option<EventRecord>, sqlx::Error> {
        self.queue.find(provider.as_str(), event_id).await
    }
}

/// The email address an event is about, if it names one: Stripe `data.object.email` or
/// `data.object.customer_email`, GitHub `sender.email` or `pusher.email`.
pub fn email_of(event: &Event) -> Option<String> {
    let pointers: &[&str] = match Provider::parse(&event.provider) {
        Some(Provider::Stripe) => &["/data/object/email", "/data/object/customer_email"],
        Some(Provider::Github) => &["/sender/email", "/pusher/email"],
        None => &[],
    };
    let payload: Value = event.json().unwrap_or(Value::Null);
    pointers
        .iter()
        .find_map(|pointer| payload.pointer(pointer).and_then(Value::as_str))
        .filter(|email| !email.trim().is_empty())
        .map(str::to_owned)
}

/// The default [`Processor`]: finds the user the event's email belongs to, if any, and
/// records their id as the event's `reference`.
#[derive(Debug, Clone)]
pub struct LinkUsers {
    users: Users,
}

impl LinkUsers {
    /// A processor over `db`.
    pub fn new(db: Db) -> Self {
        Self {
            users: Users::new(db.clone(), db, Passwords::default()),
        }
    }
}

impl Processor for LinkUsers {
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let Some(email) = email_of(event) else {
                return Ok(Outcome::default());
            };
            let user_id = self
                .users
                .id_by_email(&email)
                .await
                .map_err(|e| format!("could not look up the user: {e}"))?;
            Ok(Outcome { reference: user_id })
        })
    }
}

/// Runs a processor, then publishes a successful event that names a user to that user's
/// stream (`/api/v1/events`, as `webhook`).
struct NotifyUsers<P> {
    inner: P,
    bus: arbor::events::Bus,
}

impl<P: Processor> NotifyUsers<P> {
    fn new(inner: P, bus: arbor::events::Bus) -> Self {
        Self { inner, bus }
    }
}

impl<P: Processor> Processor for NotifyUsers<P> {
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let outcome = self.inner.process(event).await?;
            if let Some(user_id) = &outcome.reference {
                tracing::info!(user_id, provider = %event.provider, event_id = %event.id, event_type = %event.event_type, "webhook event concerns a user");
                let data = crate::topics::WebhookNotice {
                    provider: event.provider.clone(),
                    event_id: event.id.clone(),
                    event_type: event.event_type.clone(),
                };
                let topic = crate::topics::user_topic(user_id);
                if let Err(error) = self.bus.publish(&topic, "webhook", &data).await {
                    // The event is processed; a live notification is best effort.
                    tracing::warn!(%error, user_id, "could not publish the webhook event to the user's stream");
                }
            }
            Ok(outcome)
        })
    }
}
