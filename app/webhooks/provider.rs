//! The providers, and which of them are served.

use std::fmt;

use crate::config::Config;

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
    pub(super) fn secret(self, config: &Config) -> Option<&str> {
        let secret = match self {
            Provider::Stripe => config.stripe_webhook_secret.as_deref(),
            Provider::Github => config.github_webhook_secret.as_deref(),
        };
        secret.filter(|s| !s.is_empty())
    }

    pub(super) fn index(self) -> usize {
        match self {
            Provider::Stripe => 0,
            Provider::Github => 1,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
