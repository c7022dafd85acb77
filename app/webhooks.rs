//! Webhooks from Stripe and GitHub: signature verification on the raw body, exactly-once
//! acceptance by event id, and processing after the `200` on a background task with persisted,
//! bounded retries.
//!
//! - [`verify`] is the `(webhooks)` folder middleware: it picks the provider from the last URL
//!   segment, answers `404` if that provider is not enabled, reads the raw body, checks the
//!   signature ([`verify_stripe`], [`verify_github`]) and hands the route a [`VerifiedEvent`].
//!   Every refusal is the same `400 INVALID_SIGNATURE`, whatever failed; the reason is logged.
//! - [`Webhooks::accept`] stores the event under its `(provider, event_id)` primary key. A
//!   second delivery of the same id hits the key and is acknowledged as a duplicate without
//!   being processed again.
//! - A background task claims the event (an atomic `UPDATE .. RETURNING` that also takes a
//!   lease, so two processes never run the same attempt), runs the [`Processor`], and records
//!   the outcome. A failed attempt is retried after an exponential backoff
//!   ([`RetryPolicy`]); `status`, `attempts`, `last_error` and `next_attempt_at` are in the
//!   database, so events interrupted by a restart are resumed at start-up ([`Webhooks::start`]).
//!
//! Statuses: `pending` (stored, not yet attempted), `processing` (an attempt holds the lease),
//! `processed`, `failed` (the last attempt failed: retried at `next_attempt_at` while
//! `attempts < max_attempts`, given up otherwise, with `next_attempt_at` empty).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use arbor::http::{HeaderMap, Method, StatusCode};
use arbor::{ApiError, IntoResponse, Next, Request, Response};
use axum::body::Body;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::Config;
use crate::db::{is_unique_violation, now_ms, Db};
use crate::AppState;

/// How far a Stripe signature's timestamp may be from now, either way: 5 minutes.
pub const STRIPE_TOLERANCE_SECS: i64 = 300;

/// The longest event id or type accepted.
const MAX_ID_LEN: usize = 255;

/// How many events are processed at the same time, at most.
const CONCURRENCY: usize = 8;

const PENDING: &str = "pending";
const PROCESSING: &str = "processing";
const PROCESSED: &str = "processed";
const FAILED: &str = "failed";

type HmacSha256 = Hmac<Sha256>;

/// A boxed, sendable future: what [`Processor::process`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

    fn index(self) -> usize {
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

/// Why a signature was refused. Logged, never sent: the client always gets the same `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature header.
    Missing,
    /// A header that is not in the provider's format.
    Malformed,
    /// A Stripe timestamp more than [`STRIPE_TOLERANCE_SECS`] away from now.
    Expired,
    /// No signature matches the body.
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

/// Checks a `Stripe-Signature` header (`t=<unix secs>,v1=<hex>[,v1=<hex>..]`): some `v1` must
/// be the HMAC-SHA256 of `"{t}.{body}"` under `secret`, compared in constant time, and `t` must
/// be within [`STRIPE_TOLERANCE_SECS`] of `now_secs`. Other schemes (`v0`) are ignored.
///
/// # Errors
/// Why the header was refused.
pub fn verify_stripe(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
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
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    // The signed payload uses the timestamp exactly as sent.
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signatures
        .iter()
        .filter_map(|signature| hex::decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if now_secs.abs_diff(seconds) > STRIPE_TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// Checks an `X-Hub-Signature-256` header (`sha256=<hex>`): the HMAC-SHA256 of the body under
/// `secret`, compared in constant time.
///
/// # Errors
/// Why the header was refused.
pub fn verify_github(secret: &[u8], header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let signature = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let signature = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

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

/// Handles events. An `Err` (or running past [`RetryPolicy::attempt_timeout`]) fails the
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
    db: Db,
}

impl LinkUsers {
    /// A processor over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Processor for LinkUsers {
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let Some(email) = event.email() else {
                return Ok(Outcome::default());
            };
            let user_id: Option<String> =
                sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
                    .bind(email.trim().to_lowercase())
                    .fetch_optional(&self.db)
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

/// How failed attempts are retried: attempt `n` (from 1) that fails is retried after
/// `min(base_delay * 2^(n-1), max_delay)`, until `max_attempts` attempts have been made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 5.
    pub max_attempts: u32,
    /// The delay after the first failure. Default 2 s.
    pub base_delay: Duration,
    /// The longest delay. Default 5 min.
    pub max_delay: Duration,
    /// How long an attempt may run before it counts as failed. Default 30 s. An attempt holds
    /// a lease of twice this, after which another process may take the event over.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (from 1).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    fn max_attempts(&self) -> i64 {
        i64::from(self.max_attempts)
    }

    fn lease_ms(&self) -> i64 {
        millis(self.attempt_timeout.saturating_mul(2))
    }
}

/// A stored event, as `webhook_events` holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    /// `stripe` or `github`.
    pub provider: String,
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// `pending`, `processing`, `processed` or `failed`.
    pub status: String,
    /// Attempts started so far.
    pub attempts: i64,
    /// The error of the last failed attempt (kept once the event is processed).
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub received_at: i64,
    /// Unix milliseconds, once processed.
    pub processed_at: Option<i64>,
    /// When the next attempt is due (unix milliseconds); empty when none is.
    pub next_attempt_at: Option<i64>,
    /// The user the event concerns, once processed.
    pub user_id: Option<String>,
}

/// Verification and processing of webhooks: part of [`AppState`] (cheap to clone).
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
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

enum Step {
    Done,
    RetryIn(Duration),
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
                db,
                bus,
                secrets,
                policy: RwLock::new(RetryPolicy::default()),
                permits: Semaphore::new(CONCURRENCY),
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
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO webhook_events (provider, event_id, event_type, payload, status, attempts, received_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        )
        .bind(event.provider.as_str())
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(PENDING)
        .bind(now)
        .bind(now)
        .execute(&self.inner.db)
        .await;
        match inserted {
            Ok(_) => {
                tracing::info!(provider = event.provider.as_str(), event_id = %event.id, event_type = %event.event_type, "webhook received");
                self.spawn(event.provider, event.id);
                Ok(Accepted::New)
            }
            Err(error) if is_unique_violation(&error) => {
                tracing::info!(provider = event.provider.as_str(), event_id = %event.id, "duplicate webhook delivery acknowledged");
                Ok(Accepted::Duplicate)
            }
            Err(error) => Err(ApiError::internal_with(error)),
        }
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
        sqlx::query_as::<_, EventRecord>(
            "SELECT provider, event_id, event_type, status, attempts, last_error, received_at, processed_at, next_attempt_at, user_id \
             FROM webhook_events WHERE provider = $1 AND event_id = $2",
        )
        .bind(provider.as_str())
        .bind(event_id)
        .fetch_optional(&self.inner.db)
        .await
    }

    /// Resumes every event with attempts left that is not processed: pending ones, failed ones
    /// (at `next_attempt_at`), and those whose attempt was interrupted (once its lease
    /// expires). Called by [`Webhooks::start`]. Returns how many were resumed.
    ///
    /// # Errors
    /// A database failure.
    pub async fn recover(&self) -> Result<usize, sqlx::Error> {
        let policy = self.retry_policy();
        // An interrupted last attempt will never be retried: record it as failed.
        sqlx::query(
            "UPDATE webhook_events SET status = $1, locked_until = NULL, next_attempt_at = NULL, \
             last_error = COALESCE(last_error, 'interrupted') \
             WHERE status = $2 AND attempts >= $3 AND locked_until <= $4",
        )
        .bind(FAILED)
        .bind(PROCESSING)
        .bind(policy.max_attempts())
        .bind(now_ms())
        .execute(&self.inner.db)
        .await?;
        let unfinished: Vec<(String, String)> = sqlx::query_as(
            "SELECT provider, event_id FROM webhook_events \
             WHERE status IN ($1, $2, $3) AND attempts < $4 ORDER BY received_at",
        )
        .bind(PENDING)
        .bind(FAILED)
        .bind(PROCESSING)
        .bind(policy.max_attempts())
        .fetch_all(&self.inner.db)
        .await?;
        let mut resumed = 0;
        for (provider, event_id) in unfinished {
            match Provider::parse(&provider) {
                Some(provider) => {
                    self.spawn(provider, event_id);
                    resumed += 1;
                }
                None => {
                    tracing::warn!(%provider, %event_id, "stored webhook event of an unknown provider")
                }
            }
        }
        if resumed > 0 {
            tracing::info!(resumed, "resuming unfinished webhook events");
        }
        Ok(resumed)
    }

    fn spawn(&self, provider: Provider, event_id: String) {
        let webhooks = self.clone();
        // Outside the request's span: the task outlives the request.
        let span = tracing::info_span!(parent: None, "webhook", provider = provider.as_str(), event_id = %event_id);
        tokio::spawn(async move { webhooks.run(provider, &event_id).await }.instrument(span));
    }

    /// Drives one event to `processed` or to its last failed attempt.
    async fn run(&self, provider: Provider, event_id: &str) {
        let mut database_failures = 0;
        loop {
            let step = {
                let Ok(_permit) = self.inner.permits.acquire().await else {
                    return;
                };
                self.step(provider, event_id).await
            };
            match step {
                Ok(Step::Done) => return,
                Ok(Step::RetryIn(delay)) => {
                    database_failures = 0;
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    database_failures += 1;
                    let policy = self.retry_policy();
                    if database_failures >= policy.max_attempts {
                        tracing::error!(provider = provider.as_str(), event_id, error = %error, "webhook event left for the next start-up: the database keeps failing");
                        return;
                    }
                    tracing::warn!(provider = provider.as_str(), event_id, error = %error, "webhook bookkeeping failed; trying again");
                    tokio::time::sleep(policy.delay_after(database_failures)).await;
                }
            }
        }
    }

    /// Claims the event if an attempt is due, runs it and records the outcome.
    async fn step(&self, provider: Provider, event_id: &str) -> Result<Step, sqlx::Error> {
        let policy = self.retry_policy();
        let now = now_ms();
        // One statement decides who runs the attempt: a second claimer finds the lease taken.
        let claimed: Option<(String, String, i64)> = sqlx::query_as(
            "UPDATE webhook_events SET status = $1, attempts = attempts + 1, locked_until = $2, next_attempt_at = NULL \
             WHERE provider = $3 AND event_id = $4 AND attempts < $5 \
             AND ((status IN ($6, $7) AND COALESCE(next_attempt_at, 0) <= $8) OR (status = $9 AND locked_until <= $10)) \
             RETURNING event_type, payload, attempts",
        )
        .bind(PROCESSING)
        .bind(now + policy.lease_ms())
        .bind(provider.as_str())
        .bind(event_id)
        .bind(policy.max_attempts())
        .bind(PENDING)
        .bind(FAILED)
        .bind(now)
        .bind(PROCESSING)
        .bind(now)
        .fetch_optional(&self.inner.db)
        .await?;
        let Some((event_type, payload, attempts)) = claimed else {
            return self.not_due(provider, event_id, &policy).await;
        };
        let event = Event {
            provider,
            id: event_id.to_owned(),
            event_type,
            payload: serde_json::from_str(&payload).unwrap_or(Value::String(payload)),
            attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
        };
        let processor = self.processor();
        let result = tokio::time::timeout(policy.attempt_timeout, processor.process(&event))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the attempt timed out after {:?}",
                    policy.attempt_timeout
                ))
            });
        match result {
            Ok(outcome) => {
                sqlx::query(
                    "UPDATE webhook_events SET status = $1, processed_at = $2, user_id = $3, locked_until = NULL, next_attempt_at = NULL \
                     WHERE provider = $4 AND event_id = $5",
                )
                .bind(PROCESSED)
                .bind(now_ms())
                .bind(outcome.user_id.as_deref())
                .bind(provider.as_str())
                .bind(event_id)
                .execute(&self.inner.db)
                .await?;
                tracing::info!(
                    provider = provider.as_str(),
                    event_id,
                    attempt = event.attempt,
                    "webhook processed"
                );
                if let Some(user_id) = &outcome.user_id {
                    on_user_event(&self.inner.bus, user_id, &event).await;
                }
                Ok(Step::Done)
            }
            Err(error) => {
                let retry = (event.attempt < policy.max_attempts)
                    .then(|| policy.delay_after(event.attempt));
                sqlx::query(
                    "UPDATE webhook_events SET status = $1, last_error = $2, locked_until = NULL, next_attempt_at = $3 \
                     WHERE provider = $4 AND event_id = $5",
                )
                .bind(FAILED)
                .bind(&error)
                .bind(retry.map(|delay| now_ms() + millis(delay)))
                .bind(provider.as_str())
                .bind(event_id)
                .execute(&self.inner.db)
                .await?;
                match retry {
                    Some(delay) => {
                        tracing::warn!(provider = provider.as_str(), event_id, attempt = event.attempt, error = %error, retry_in = ?delay, "webhook processing failed; will retry");
                        Ok(Step::RetryIn(delay))
                    }
                    None => {
                        tracing::error!(provider = provider.as_str(), event_id, attempt = event.attempt, error = %error, "webhook processing failed; no attempts left");
                        Ok(Step::Done)
                    }
                }
            }
        }
    }

    /// Why no attempt could be claimed: finished, or when to look again.
    async fn not_due(
        &self,
        provider: Provider,
        event_id: &str,
        policy: &RetryPolicy,
    ) -> Result<Step, sqlx::Error> {
        let row: Option<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT status, attempts, next_attempt_at, locked_until FROM webhook_events WHERE provider = $1 AND event_id = $2",
        )
        .bind(provider.as_str())
        .bind(event_id)
        .fetch_optional(&self.inner.db)
        .await?;
        let Some((status, attempts, next_attempt_at, locked_until)) = row else {
            return Ok(Step::Done);
        };
        if status == PROCESSED || attempts >= policy.max_attempts() {
            return Ok(Step::Done);
        }
        let due = if status == PROCESSING {
            locked_until
        } else {
            next_attempt_at
        };
        let wait = due.unwrap_or(0).saturating_sub(now_ms()).max(10);
        Ok(Step::RetryIn(Duration::from_millis(
            u64::try_from(wait).unwrap_or(10),
        )))
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The `(webhooks)` folder middleware: `404` for a disabled provider, `400` for a missing or
/// wrong signature, and otherwise the request, with its body intact and a [`VerifiedEvent`]
/// in its extensions. The provider is the last segment of the URL. `OPTIONS` passes through;
/// every other method must be signed.
pub async fn verify(request: Request, next: Next) -> Response {
    match verified(request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn verified(request: Request) -> Result<Request, ApiError> {
    let Some(state) = request.extensions().get::<AppState>().cloned() else {
        tracing::error!("AppState extension missing: build the router with arbor_app::app");
        return Err(ApiError::internal());
    };
    let path = request.uri().path().to_owned();
    let Some(provider) = path.rsplit('/').next().and_then(Provider::parse) else {
        tracing::error!(%path, "a route under (webhooks) whose last segment is not a webhook provider");
        return Err(ApiError::internal());
    };
    if !state.webhooks.is_enabled(provider) {
        return Err(ApiError::not_found(format!("no route for {path}")));
    }
    if request.method() == Method::OPTIONS {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    // Within the route's body limit, with the same answers as Arbor's own extractors.
    let bytes = arbor::extract::read_body(Request::from_parts(parts.clone(), body), &()).await?;
    let event = state
        .webhooks
        .authenticate(provider, &parts.headers, &bytes)?;
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(event);
    Ok(request)
}
