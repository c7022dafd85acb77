//! Incoming webhooks: signatures checked on the raw body, replays caught by event id, and (with
//! the `sqlx` feature) durable processing with retries that survive a restart.
//!
//! ```
//! use arbor::webhooks::{verify, GitHub, WebhookEvent};
//! use arbor::Json;
//! use serde_json::{json, Value};
//!
//! // app/api/webhooks/github/route.rs
//! #[arbor::handler(verify(GitHub::new("It's a Secret to Everybody")))]
//! pub async fn POST(event: WebhookEvent) -> Json<Value> {
//!     // Only a delivery signed with the secret gets here, with its id and type read.
//!     Json(json!({ "received": event.id, "type": event.event_type }))
//! }
//! ```
//!
//! A [`WebhookVerifier`] knows how one provider signs: [`Stripe`] (`Stripe-Signature:
//! t=..,v1=..`), [`GitHub`] (`X-Hub-Signature-256: sha256=..`) and [`StandardWebhooks`]
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,..`, as sent by Svix, Resend,
//! Clerk and others). Each takes several secrets while one is rolled, compares MACs in
//! constant time and, where the provider signs a timestamp, refuses one outside its tolerance
//! (5 minutes by default).
//!
//! [`verify`] is the layer for a route, a file or a folder: it reads the raw body (within the
//! route's body limit), checks it, and hands the handler a [`WebhookEvent`] with the body
//! intact. Every signature failure gets the same answer, `400 INVALID_SIGNATURE`, whatever
//! failed; the reason is logged. With [`replay_ttl`](VerifyWebhookLayer::replay_ttl), an event
//! id seen before is acknowledged without running the handler again ([`ReplayStore`]).
//!
//! | Answer | When |
//! |---|---|
//! | the handler's | a valid delivery |
//! | `400 INVALID_SIGNATURE` | any signature problem: missing, malformed, wrong secret, body changed, stale timestamp |
//! | `400 INVALID_PAYLOAD` | a correctly signed delivery without an event id (or, for Stripe and GitHub, type) |
//! | `200 {"received":true,"duplicate":true}` | an event id seen within the replay TTL |
//! | `404 NOT_FOUND` | [`verify_registered`] with a name no [`Verifiers`] entry has: the provider is off |
//! | `413 PAYLOAD_TOO_LARGE` | a body over the route's limit |
//!
//! Secrets usually come from configuration at start-up, after route attributes are written:
//! register the verifiers on the router with [`Verifiers`], and name them in the route with
//! [`verify_registered`].
//!
//! `queue` (feature `sqlx`) stores each event once and processes it after the `200`, on a
//! background task: attempts are claimed with a lease, failures retried with exponential
//! backoff, and what a stopped process left unfinished is resumed at start-up.
//!
//! The module is laid out by role: `stripe.rs`, `github.rs`, `standard.rs` (the verifiers),
//! `layer.rs` (the layer, [`Verifiers`] and [`WebhookEvent`]), `replay.rs` ([`ReplayStore`]),
//! `queue/` (durable processing).

mod github;
mod layer;
#[cfg(feature = "sqlx")]
pub mod queue;
mod replay;
mod standard;
mod stripe;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

pub use github::GitHub;
pub use layer::{
    verify, verify_registered, Verifiers, VerifyWebhook, VerifyWebhookLayer, WebhookEvent,
};
pub use replay::{MemoryReplayStore, ReplayStore};
pub use standard::{InvalidSecret, StandardWebhooks};
pub use stripe::Stripe;

pub use crate::clock::{Clock, ManualClock, SystemClock};
/// The future type of [`ReplayStore`] methods.
pub use crate::store::{BoxFuture, StoreError};

/// The longest event id or type accepted.
pub const MAX_ID_LEN: usize = 255;

/// How far a signed timestamp may be from now, either way, unless a verifier is told
/// otherwise: 5 minutes, as Stripe and the Standard Webhooks libraries use.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// How a provider signs its deliveries, and where it puts an event's id and type.
///
/// Implement it for a provider Arbor does not know; [`verify`] then works the same.
pub trait WebhookVerifier: Send + Sync + 'static {
    /// The provider's name (`stripe`, `github`, ...): in logs, in replay keys, in
    /// [`WebhookEvent::provider`], and what [`verify_registered`] looks up.
    fn name(&self) -> &str;

    /// Checks that `body`, exactly as received, was signed with one of the secrets, at a time
    /// close enough to `now`.
    ///
    /// # Errors
    /// Why the delivery was refused. Logged, never sent.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError>;

    /// The event's id and type, read from a delivery whose signature checked out.
    ///
    /// # Errors
    /// What the delivery lacks, as a sentence after "The {name} webhook ..".
    fn identify(&self, headers: &HeaderMap, body: &[u8]) -> Result<EventIdentity, &'static str>;
}

/// An event's id and type, as [`WebhookVerifier::identify`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentity {
    /// The provider's event id: unique per event, the same on every redelivery.
    pub id: String,
    /// The event type (`checkout.session.completed`, `push`); empty if the provider has none.
    pub event_type: String,
}

/// Why a signature was refused. Logged, never sent: the client always gets the same `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// No signature header.
    Missing,
    /// A header that is not in the provider's format.
    Malformed,
    /// A signed timestamp outside the verifier's tolerance.
    Expired,
    /// No signature matches the body under any of the secrets.
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "signature header missing",
            SignatureError::Malformed => "signature header malformed",
            SignatureError::Expired => "signature timestamp outside the tolerance",
            SignatureError::Mismatch => "signature does not match the body",
        })
    }
}

impl std::error::Error for SignatureError {}

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 state over `parts` under `key`, for comparing with `verify_slice` (constant
/// time). `None` for an empty key: anyone could sign with it, so it never matches.
fn mac(key: &[u8], parts: &[&[u8]]) -> Option<HmacSha256> {
    if key.is_empty() {
        return None;
    }
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac)
}

/// Whether some `signature` is the MAC of `parts` under some key, each compared in constant
/// time. Every pair is tried, so the time taken does not say which one matched.
fn any_matches<'a>(
    keys: &[Vec<u8>],
    parts: &[&[u8]],
    signatures: impl Iterator<Item = &'a [u8]> + Clone,
) -> bool {
    let mut matched = false;
    for key in keys {
        let Some(mac) = mac(key, parts) else {
            continue;
        };
        for signature in signatures.clone() {
            matched |= mac.clone().verify_slice(signature).is_ok();
        }
    }
    matched
}

/// A header's value as text, if present.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, SignatureError> {
    let value = headers.get(name).ok_or(SignatureError::Missing)?;
    value.to_str().map_err(|_| SignatureError::Malformed)
}

/// Checks a signed Unix timestamp against `now`, `tolerance` either way.
fn within_tolerance(
    timestamp: i64,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// A JSON body's top-level string field, if the body is a JSON object with one.
fn json_str(body: &[u8], field: &str) -> Result<Option<String>, &'static str> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| "body is not JSON")?;
    Ok(value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned))
}
