//! A delivery, from its signed bytes to a stored event: [`Webhooks::authenticate`] checks the
//! signature and reads the event's id and type, [`Webhooks::accept`] stores it once.

use arbor::http::{HeaderMap, StatusCode};
use arbor::ApiError;
use serde_json::Value;

use super::{verify_github, verify_stripe, Provider, SignatureError, Webhooks};
use crate::db::now_ms;
use crate::services::webhook_events::NewEvent;

/// The longest event id or type accepted.
const MAX_ID_LEN: usize = 255;

/// A delivery whose signature checked out, as the `(webhooks)` middleware hands it to the route
/// (`Extension<VerifiedEvent>`).
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    /// Who sent it.
    pub provider: Provider,
    /// The provider's event id (Stripe `id`, GitHub `X-GitHub-Delivery`).
    pub id: String,
    /// The event type (Stripe `type`, GitHub `X-GitHub-Event`).
    pub event_type: String,
    /// The raw body, as signed.
    pub payload: String,
}

/// What [`Webhooks::accept`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored; processing starts in the background.
    New,
    /// An event with this id was stored before: nothing to do.
    Duplicate,
}

impl Webhooks {
    /// Checks a delivery's signature and reads its id and type.
    ///
    /// # Errors
    /// `404` if the provider is disabled; `400 INVALID_SIGNATURE` (one message for every
    /// reason) if the signature is missing or wrong; `400 INVALID_PAYLOAD` if a correctly
    /// signed body is not a JSON event with an id and a type.
    pub fn authenticate(
        &self,
        provider: Provider,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedEvent, ApiError> {
        let Some(secret) = self.inner.secrets[provider.index()].as_deref() else {
            return Err(ApiError::not_found(format!(
                "no route for /api/webhooks/{provider}"
            )));
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let checked = match provider {
            Provider::Stripe => header("stripe-signature")
                .ok_or(SignatureError::Missing)
                .and_then(|h| verify_stripe(secret, h, body, now_ms() / 1000)),
            Provider::Github => header("x-hub-signature-256")
                .ok_or(SignatureError::Missing)
                .and_then(|h| verify_github(secret, h, body)),
        };
        if let Err(reason) = checked {
            tracing::warn!(provider = provider.as_str(), %reason, "webhook refused");
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_SIGNATURE",
                "Webhook signature verification failed",
            ));
        }
        let invalid = |what: &str| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PAYLOAD",
                format!("The {provider} webhook {what}"),
            )
        };
        let payload =
            String::from_utf8(body.to_vec()).map_err(|_| invalid("body is not UTF-8 JSON"))?;
        let json: Value =
            serde_json::from_str(&payload).map_err(|_| invalid("body is not JSON"))?;
        let (id, event_type) = match provider {
            Provider::Stripe => (
                json.get("id").and_then(Value::as_str),
                json.get("type").and_then(Value::as_str),
            ),
            Provider::Github => (header("x-github-delivery"), header("x-github-event")),
        };
        let valid = |s: &&str| !s.trim().is_empty() && s.len() <= MAX_ID_LEN;
        let id = id
            .filter(valid)
            .ok_or_else(|| invalid("delivery has no event id"))?;
        let event_type = event_type
            .filter(valid)
            .ok_or_else(|| invalid("delivery has no event type"))?;
        Ok(VerifiedEvent {
            provider,
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            payload,
        })
    }

    /// Stores a verified event and starts processing it in the background, unless an event
    /// with the same id was stored before.
    ///
    /// # Errors
    /// `500` if the event cannot be stored (the provider will deliver it again).
    pub async fn accept(&self, event: VerifiedEvent) -> Result<Accepted, ApiError> {
        let new = NewEvent {
            provider: event.provider.as_str(),
            event_id: &event.id,
            event_type: &event.event_type,
            payload: &event.payload,
        };
        match self.inner.events.insert(new, now_ms()).await {
            Ok(true) => {
                tracing::info!(provider = event.provider.as_str(), event_id = %event.id, event_type = %event.event_type, "webhook received");
                self.spawn(event.provider, event.id);
                Ok(Accepted::New)
            }
            Ok(false) => {
                tracing::info!(provider = event.provider.as_str(), event_id = %event.id, "duplicate webhook delivery acknowledged");
                Ok(Accepted::Duplicate)
            }
            Err(error) => Err(ApiError::internal_with(error)),
        }
    }
}
