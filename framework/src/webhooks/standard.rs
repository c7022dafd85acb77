//! [`StandardWebhooks`]: the Standard Webhooks specification (<https://www.standardwebhooks.com/>).

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::HeaderMap;

use super::{
    any_matches, header, within_tolerance, EventIdentity, SignatureError, WebhookVerifier,
    DEFAULT_TOLERANCE,
};

/// The Standard Webhooks scheme, used by Svix, Resend, Clerk, Supabase and others:
///
/// - `webhook-id`: the message id (the event id, the same on every redelivery);
/// - `webhook-timestamp`: Unix seconds, within the tolerance of now (5 minutes by default);
/// - `webhook-signature`: space-separated `v1,<base64>` entries, any of which may match the
///   HMAC-SHA256 of `"{id}.{timestamp}.{raw body}"` under the secret. Other versions (`v1a`,
///   asymmetric) are ignored.
///
/// Svix's `svix-id`, `svix-timestamp` and `svix-signature` are read when the `webhook-` ones
/// are absent. The event type is the body's `type` when the body is a JSON object with one,
/// else empty.
///
/// The secret is base64, usually shown with a `whsec_` prefix; give it as shown.
///
/// ```
/// use arbor::webhooks::StandardWebhooks;
///
/// let resend = StandardWebhooks::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?.named("resend");
/// # Ok::<(), arbor::webhooks::InvalidSecret>(())
/// ```
#[derive(Clone)]
pub struct StandardWebhooks {
    name: String,
    secrets: Vec<Vec<u8>>,
    tolerance: Duration,
}

/// A Standard Webhooks secret that is not base64 (after an optional `whsec_` prefix), or is
/// empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSecret;

impl fmt::Display for InvalidSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Standard Webhooks secret is `whsec_` followed by base64")
    }
}

impl std::error::Error for InvalidSecret {}

fn decode_secret(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    match BASE64.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(InvalidSecret),
    }
}

impl StandardWebhooks {
    /// Verifies with `secret` (`whsec_<base64>`, or the base64 alone), under the name
    /// `standard` until [`named`](Self::named).
    ///
    /// # Errors
    /// [`InvalidSecret`] if the secret is empty or not base64.
    pub fn new(secret: &str) -> Result<Self, InvalidSecret> {
        Ok(Self {
            name: "standard".to_owned(),
            secrets: vec![decode_secret(secret)?],
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// Accepts signatures made with `secret` as well (a secret being rolled).
    ///
    /// # Errors
    /// [`InvalidSecret`] if the secret is empty or not base64.
    pub fn secret(mut self, secret: &str) -> Result<Self, InvalidSecret> {
        self.secrets.push(decode_secret(secret)?);
        Ok(self)
    }

    /// The provider's name ([`WebhookVerifier::name`]), such as `resend` or `clerk`.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How far `webhook-timestamp` may be from now, either way (default 5 minutes).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("name", &self.name)
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

/// `webhook-<field>`, else `svix-<field>`.
fn standard_header<'h>(headers: &'h HeaderMap, field: &str) -> Result<&'h str, SignatureError> {
    match header(headers, &format!("webhook-{field}")) {
        Err(SignatureError::Missing) => header(headers, &format!("svix-{field}")),
        found => found,
    }
}

impl WebhookVerifier for StandardWebhooks {
    fn name(&self) -> &str {
        &self.name
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let id = standard_header(headers, "id")?;
        let timestamp = standard_header(headers, "timestamp")?;
        let signature = standard_header(headers, "signature")?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::Malformed)?;
        let signatures: Vec<Vec<u8>> = signature
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .collect();
        if signatures.is_empty() {
            return Err(SignatureError::Malformed);
        }
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        if !any_matches(&self.secrets, &parts, signatures.iter().map(Vec::as_slice)) {
            return Err(SignatureError::Mismatch);
        }
        within_tolerance(seconds, now, self.tolerance)
    }

    fn identify(&self, headers: &HeaderMap, body: &[u8]) -> Result<EventIdentity, &'static str> {
        let id = standard_header(headers, "id").map_err(|_| "delivery has no event id")?;
        let event_type = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| value.get("type")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(EventIdentity {
            id: id.to_owned(),
            event_type,
        })
    }
}
