//! [`GitHub`]: `X-Hub-Signature-256: sha256=<hex>`.

use std::fmt;
use std::time::SystemTime;

use http::HeaderMap;

use super::{any_matches, header, EventIdentity, SignatureError, WebhookVerifier};

/// GitHub's signature scheme: `X-Hub-Signature-256` is `sha256=` and the hex HMAC-SHA256 of the
/// raw body under the webhook's secret. There is no timestamp, so a replayed delivery is only
/// caught by its id (see [`replay_ttl`](super::VerifyWebhookLayer::replay_ttl)). The event id
/// is `X-GitHub-Delivery` (kept on redelivery), the type `X-GitHub-Event`.
///
/// ```
/// use arbor::webhooks::GitHub;
///
/// let github = GitHub::new("new secret").secret("old secret"); // while rolling the secret
/// # let _ = github;
/// ```
#[derive(Clone)]
pub struct GitHub {
    secrets: Vec<Vec<u8>>,
}

impl GitHub {
    /// Verifies with the webhook's secret. An empty secret never matches.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            secrets: vec![secret.as_ref().to_vec()],
        }
    }

    /// Accepts signatures made with `secret` as well (a secret being rolled).
    #[must_use]
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push(secret.as_ref().to_vec());
        self
    }
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl WebhookVerifier for GitHub {
    fn name(&self) -> &str {
        "github"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: SystemTime,
    ) -> Result<(), SignatureError> {
        let signature = header(headers, "x-hub-signature-256")?
            .trim()
            .strip_prefix("sha256=")
            .ok_or(SignatureError::Malformed)?;
        let signature = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
        if any_matches(
            &self.secrets,
            &[body],
            std::iter::once(signature.as_slice()),
        ) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    fn identify(&self, headers: &HeaderMap, _body: &[u8]) -> Result<EventIdentity, &'static str> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let id = text("x-github-delivery").ok_or("delivery has no event id")?;
        let event_type = text("x-github-event").ok_or("delivery has no event type")?;
        Ok(EventIdentity { id, event_type })
    }
}
