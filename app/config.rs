//! Settings from the environment, with defaults that let `cargo run` work with no set-up.

use std::path::PathBuf;

use crate::db::DbSettings;
use crate::services::passwords::{Passwords, DEFAULT_QUEUE_WAIT};

/// The reference app's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`. Default: `sqlite://data/arbor.db`,
    /// created on first run.
    pub database_url: String,
    /// The pools' sizes and timeouts, and the read replica ([`DbSettings`]).
    pub db: DbSettings,
    /// `REDIS_URL`: `redis://…`. When set, rate limits, idempotency keys, the response cache and
    /// the event bus are shared by every instance through Redis; unset, they live in memory.
    pub redis_url: Option<String>,
    /// `ARBOR_REDIS_PREFIX`: the prefix of every Redis key (default `arbor`), so that several
    /// apps (or test runs) can share one Redis.
    pub redis_prefix: Option<String>,
    /// `ARBOR_SECURE_COOKIES=1`: mark the session cookie `Secure` (set it when serving over TLS).
    pub secure_cookies: bool,
    /// `ARBOR_SESSION_TTL_SECS`: session lifetime from sign-in (absolute expiry). Default 7
    /// days.
    pub session_ttl_secs: i64,
    /// `ARBOR_SESSION_IDLE_SECS`: a session ends this long after its last request. Default 1
    /// day.
    pub session_idle_secs: i64,
    /// `ARBOR_PASSWORD_HASHING_CONCURRENCY`: how many password hashes (login, registration)
    /// run at once, each holding about 19 MB; past it, a request waits up to a second, then is
    /// answered `503 BUSY`. Default: one per core.
    pub passwords: Passwords,
    /// `ARBOR_ADMIN_EMAIL` and `ARBOR_ADMIN_PASSWORD`: an administrator created at start-up if
    /// no user has that email.
    pub admin: Option<(String, String)>,
    /// `ARBOR_UPLOAD_DIR`: where uploads are stored. Default `data/uploads`.
    pub upload_dir: PathBuf,
    /// `ARBOR_UPLOAD_MAX_BYTES`: the largest upload accepted. Default 200 MiB.
    pub upload_max_bytes: u64,
    /// `STRIPE_WEBHOOK_SECRET`: enables `/api/webhooks/stripe`.
    pub stripe_webhook_secret: Option<String>,
    /// `GITHUB_WEBHOOK_SECRET`: enables `/api/webhooks/github`.
    pub github_webhook_secret: Option<String>,
    /// `ARBOR_WEBHOOKS`: the webhook providers to serve (`stripe,github`, or `none`); each needs
    /// its secret. Default (`None`): those whose secret is set.
    pub webhooks: Option<Vec<crate::webhooks::Provider>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/arbor.db?mode=rwc".into(),
            db: DbSettings::default(),
            redis_url: None,
            redis_prefix: None,
            secure_cookies: false,
            session_ttl_secs: 7 * 24 * 3600,
            session_idle_secs: 24 * 3600,
            passwords: Passwords::default(),
            admin: None,
            upload_dir: PathBuf::from("data/uploads"),
            upload_max_bytes: 200 * 1024 * 1024,
            stripe_webhook_secret: None,
            github_webhook_secret: None,
            webhooks: None,
        }
    }
}

impl Config {
    /// Reads the environment over the defaults.
    ///
    /// # Errors
    /// A variable that is set but unusable, named in the message.
    pub fn from_env() -> Result<Self, String> {
        let mut config = Self::default();
        if let Some(url) = var("DATABASE_URL") {
            config.database_url = url;
        }
        config.db = DbSettings::from_env()?;
        config.redis_url = var("REDIS_URL");
        config.redis_prefix = var("ARBOR_REDIS_PREFIX");
        config.secure_cookies =
            var("ARBOR_SECURE_COOKIES").is_some_and(|v| v == "1" || v == "true");
        if let Some(ttl) = var("ARBOR_SESSION_TTL_SECS") {
            config.session_ttl_secs = ttl
                .parse()
                .ok()
                .filter(|ttl| *ttl > 0)
                .ok_or("ARBOR_SESSION_TTL_SECS must be a positive number of seconds")?;
        }
        if let Some(idle) = var("ARBOR_SESSION_IDLE_SECS") {
            config.session_idle_secs = idle
                .parse()
                .ok()
                .filter(|idle| *idle > 0)
                .ok_or("ARBOR_SESSION_IDLE_SECS must be a positive number of seconds")?;
        }
        if let Some(concurrency) = var("ARBOR_PASSWORD_HASHING_CONCURRENCY") {
            let concurrency = concurrency
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or("ARBOR_PASSWORD_HASHING_CONCURRENCY must be a positive number")?;
            config.passwords = Passwords::new(concurrency, DEFAULT_QUEUE_WAIT);
        }
        config.admin = match (var("ARBOR_ADMIN_EMAIL"), var("ARBOR_ADMIN_PASSWORD")) {
            (Some(email), Some(password)) => Some((email, password)),
            (None, None) => None,
            _ => {
                return Err(
                    "set both ARBOR_ADMIN_EMAIL and ARBOR_ADMIN_PASSWORD, or neither".into(),
                )
            }
        };
        if let Some(dir) = var("ARBOR_UPLOAD_DIR") {
            config.upload_dir = dir.into();
        }
        if let Some(max) = var("ARBOR_UPLOAD_MAX_BYTES") {
            config.upload_max_bytes = max
                .parse()
                .ok()
                .filter(|max| *max > 0)
                .ok_or("ARBOR_UPLOAD_MAX_BYTES must be a positive number of bytes")?;
        }
        config.stripe_webhook_secret = var("STRIPE_WEBHOOK_SECRET");
        config.github_webhook_secret = var("GITHUB_WEBHOOK_SECRET");
        if let Some(list) = var("ARBOR_WEBHOOKS") {
            config.webhooks = Some(
                crate::webhooks::Provider::parse_list(&list)
                    .map_err(|e| format!("ARBOR_WEBHOOKS: {e}"))?,
            );
        }
        Ok(config)
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
