//! [`Stripe`]: `Stripe-Signature: t=<unix secs>,v1=<hex>[,v1=<hex>..]`.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::{
    any_matches, header, json_str, within_tolerance, EventIdentity, SignatureError,
    WebhookVerifier, DEFAULT_TOLERANCE,
};

/// Stripe's signature scheme: some `v1` in `Stripe-Signature` must be the hex HMAC-SHA256 of
/// `"{t}.{raw body}"` under an endpoint secret (`whsec_..`, used as given), and `t` must be
/// within the tolerance of now (5 minutes by default). Other schemes (`v0`) are ignored. The
/// event id and type are the body's `id` and `type`.
///
/// While a secret is rolled, Stripe signs with both and sends one `v1` per secret; give the
/// verifier both with [`secret`](Self::secret) and either matches.
///
/// ```
/// use std::time::Duration;
/// use arbor::webhooks::Stripe;
///
/// let stripe = Stripe::new("whsec_new")
///     .secret("whsec_old") // until the old secret expires
///     .tolerance(Duration::from_secs(600));
/// # let _ = stripe;
/// ```
#[derive(Clone)]
pub struct Stripe {
    secrets: Vec<Vec<u8>>,
    tolerance: Duration,
}

impl Stripe {
    /// Verifies with the endpoint's signing secret. An empty secret never matches.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            secrets: vec![secret.as_ref().to_vec()],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Accepts signatures made with `secret` as well (a secret being rolled).
    #[must_use]
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(secret.as_ref().to_vec());
        self
    }

    /// How far `t` may be from now, either way (default 5 minutes).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl WebhookVerifier for Stripe {
    fn name(&self) -> &str {
        "stripe"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let header = header(headers, "stripe-signature")?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            match item.trim().split_once('=') {
                Some(("t", value)) => timestamp = Some(value),
                Some(("v1", value)) => signatures.push(value),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        let seconds: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
        if signatures.is_empty() {
            return Err(SignatureError::Malformed);
        }
        let signatures: Vec<Vec<u8>> = signatures
            .into_iter()
            .filter_map(|signature| hex::decode(signature).ok())
            .collect();
        // The signed payload uses the timestamp exactly as sent.
        let parts: [&[u8]; 3] = [timestamp.as_bytes(), b".", body];
        if !any_matches(&self.secrets, &parts, signatures.iter().map(Vec::as_slice)) {
            return Err(SignatureError::Mismatch);
        }
        within_tolerance(seconds, now, self.tolerance)
    }

    fn identify(&self, _headers: &HeaderMap, body: &[u8]) -> Result<EventIdentity, &'static str> {
        let id = json_str(body, "id")?.ok_or("delivery has no event id")?;
        let event_type = json_str(body, "type")?.ok_or("delivery has no event type")?;
        Ok(EventIdentity { id, event_type })
    }
}
