//! What happens to an event once it is stored: the [`Processor`] (by default [`LinkUsers`]) and
//! the hook for events that concern one of our users.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::Provider;
use crate::db::Db;
use crate::services::users::Users;

/// A boxed, sendable future: what [`Processor::process`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An event as the [`Processor`] sees it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Who sent it.
    pub provider: Provider,
    /// The provider's event id.
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// The parsed body.
    pub payload: Value,
    /// This attempt's number, from 1.
    pub attempt: u32,
}

impl Event {
    /// The email address the event is about, if it names one: Stripe `data.object.email` or
    /// `data.object.customer_email`, GitHub `sender.email` or `pusher.email`.
    pub fn email(&self) -> Option<&str> {
        let pointers: &[&str] = match self.provider {
            Provider::Stripe => &["/data/object/email", "/data/object/customer_email"],
            Provider::Github => &["/sender/email", "/pusher/email"],
        };
        pointers
            .iter()
            .find_map(|pointer| self.payload.pointer(pointer).and_then(Value::as_str))
            .filter(|email| !email.trim().is_empty())
    }
}

/// What a successful attempt found out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The id of the user the event concerns, if it concerns one: stored in
    /// `webhook_events.user_id` and passed to [`on_user_event`].
    pub user_id: Option<String>,
}

/// Handles events. An `Err` (or running past [`RetryPolicy::attempt_timeout`](super::RetryPolicy::attempt_timeout)) fails the
/// attempt, which is retried with backoff; the message becomes `last_error`.
///
/// Processing is at-least-once: a process that stops between the work and recording it runs
/// the event again after a restart, so implementations should be idempotent.
pub trait Processor: Send + Sync + 'static {
    /// Processes one attempt of `event`.
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>>;
}

/// The default [`Processor`]: finds the user the event's email belongs to, if any.
#[derive(Debug, Clone)]
pub struct LinkUsers {
    users: Users,
}

impl LinkUsers {
    /// A processor over `db`.
    pub fn new(db: Db) -> Self {
        Self {
            users: Users::new(db.clone(), db),
        }
    }
}

impl Processor for LinkUsers {
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let Some(email) = event.email() else {
                return Ok(Outcome::default());
            };
            let user_id = self
                .users
                .id_by_email(email)
                .await
                .map_err(|e| format!("could not look up the user: {e}"))?;
            Ok(Outcome { user_id })
        })
    }
}

/// The hook for events that concern one of our users, called once the event is recorded as
/// processed (at least once per event).
///
/// The user event stream is wired up by a later issue: publish the event here, e.g.
/// `bus.publish(&crate::topics::user_topic(user_id), "webhook", &json!({ "provider": ..,
/// "eventId": .., "type": .. }))`.
pub async fn on_user_event(bus: &arbor::events::Bus, user_id: &str, event: &Event) {
    tracing::info!(
        user_id,
        provider = event.provider.as_str(),
        event_id = %event.id,
        event_type = %event.event_type,
        "webhook event concerns a user"
    );
    let data = serde_json::json!({
        "provider": event.provider.as_str(),
        "eventId": event.id,
        "type": event.event_type,
    });
    if let Err(error) = bus
        .publish(&crate::topics::user_topic(user_id), "webhook", &data)
        .await
    {
        // The event is processed and stored; a live notification is best effort.
        tracing::warn!(%error, user_id, "could not publish the webhook event to the user's stream");
    }
}
