//! Webhooks over real TCP, on SQLite and (when the test command starts one) PostgreSQL:
//! Stripe and GitHub signatures on the raw body, uniform refusals, replays acknowledged but
//! processed once, background processing with retries, resumption at start-up, disabled
//! providers and the start-up error for a provider enabled without its secret.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbor_app::webhooks::{
    BoxFuture, Event, EventRecord, Outcome, Processor, Provider, RetryPolicy,
};
use arbor_app::{AppState, Config};
use common::{on_every_backend, Backend, Client, Reply, Server};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

const STRIPE_SECRET: &str = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc";
const GITHUB_SECRET: &str = "github-test-secret";

// ---------------------------------------------------------------------------------------------
// Helpers

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// `Stripe-Signature` for `body` signed at `t` with `secret`.
fn stripe_signature_with(secret: &str, t: i64, body: &str) -> String {
    let t = t.to_string();
    format!(
        "t={t},v1={}",
        hmac_hex(secret, &[t.as_bytes(), b".", body.as_bytes()])
    )
}

fn stripe_signature(body: &str) -> String {
    stripe_signature_with(STRIPE_SECRET, now_secs(), body)
}

fn github_signature_with(secret: &str, body: &str) -> String {
    format!("sha256={}", hmac_hex(secret, &[body.as_bytes()]))
}

fn github_signature(body: &str) -> String {
    github_signature_with(GITHUB_SECRET, body)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn stripe_event(id: &str, email: Option<&str>) -> String {
    json!({
        "id": id,
        "object": "event",
        "type": "checkout.session.completed",
        "data": { "object": { "object": "checkout.session", "amount_total": 2000, "customer_email": email } }
    })
    .to_string()
}

fn github_event(email: Option<&str>) -> String {
    json!({ "zen": "Design for failure.", "hook_id": 42, "sender": { "login": "octocat", "email": email } }).to_string()
}

/// Retries in milliseconds, not seconds.
fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
        attempt_timeout: Duration::from_secs(5),
    }
}

/// A server with both providers enabled and fast retries.
async fn webhook_server(backend: Backend) -> Server {
    let server = Server::start_with(backend, |config| {
        config.stripe_webhook_secret = Some(STRIPE_SECRET.into());
        config.github_webhook_secret = Some(GITHUB_SECRET.into());
    })
    .await;
    server.state.webhooks.set_retry_policy(fast_retries());
    server
}

async fn post_stripe(client: &Client, body: &str, signature: Option<&str>) -> Reply {
    let mut request = client
        .http
        .post(client.url("/api/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    client.send(request).await
}

async fn post_github(
    client: &Client,
    body: &str,
    delivery: Option<&str>,
    signature: Option<&str>,
) -> Reply {
    let mut request = client
        .http
        .post(client.url("/api/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .body(body.to_owned());
    if let Some(delivery) = delivery {
        request = request.header("x-github-delivery", delivery);
    }
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    client.send(request).await
}

/// Polls the stored event every few milliseconds until `done`, for at most 10 seconds.
async fn wait_for(
    state: &AppState,
    provider: Provider,
    id: &str,
    done: impl Fn(&EventRecord) -> bool,
) -> EventRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = state.webhooks.find(provider, id).await.unwrap();
        if let Some(record) = record.as_ref().filter(|r| done(r)) {
            return record.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {provider} event {id}; last seen: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn processed(record: &EventRecord) -> bool {
    record.status == "processed"
}

/// Asserts a refusal: `400 INVALID_SIGNATURE` in the standard shape, with nothing but `error`
/// and `message`. Returns the message.
fn assert_refused(reply: &Reply, case: &str) -> String {
    assert_eq!(reply.status, 400, "{case}: {}", reply.text);
    reply.error(400, "INVALID_SIGNATURE");
    let keys: BTreeSet<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["error", "message"]),
        "{case}: no details: {}",
        reply.text
    );
    reply.body["message"].as_str().unwrap().to_owned()
}

/// Fails the first `failures` attempts, then defers to the default processor; counts calls.
struct Flaky {
    failures: u32,
    calls: AtomicU32,
    inner: Arc<dyn Processor>,
}

impl Flaky {
    fn install(state: &AppState, failures: u32) -> Arc<Self> {
        let flaky = Arc::new(Self {
            failures,
            calls: AtomicU32::new(0),
            inner: state.webhooks.default_processor(),
        });
        state.webhooks.set_processor(flaky.clone());
        flaky
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Processor for Flaky {
    fn process<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if call <= self.failures {
                return Err(format!("simulated failure {call}"));
            }
            self.inner.process(event).await
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Valid deliveries

#[tokio::test]
async fn valid_deliveries_are_acknowledged_then_processed() {
    on_every_backend(valid_deliveries_scenario).await;
}

async fn valid_deliveries_scenario(backend: Backend) {
    let server = webhook_server(backend).await;
    let client = server.client();
    let email = format!("{}@example.com", new_id("customer-"));
    let (user_id, _) = client.register(&email).await;

    // Stripe: id and type from the body; the customer's email links the event to the user
    // (case-insensitively, as emails are stored).
    let id = new_id("evt_");
    let body = stripe_event(&id, Some(&email.to_uppercase()));
    let reply = post_stripe(&client, &body, Some(&stripe_signature(&body))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body, json!({ "received": true }));
    let record = wait_for(&server.state, Provider::Stripe, &id, processed).await;
    assert_eq!(record.event_type, "checkout.session.completed");
    assert_eq!(record.attempts, 1);
    assert_eq!(record.reference.as_deref(), Some(user_id.as_str()));
    assert!(
        record
            .processed_at
            .is_some_and(|at| at >= record.received_at),
        "{record:?}"
    );
    assert_eq!(record.last_error, None);

    // GitHub: id and type from the headers; the sender's email, when present, links the user.
    let delivery = uuid::Uuid::new_v4().to_string();
    let body = github_event(Some(&email));
    let reply = post_github(
        &client,
        &body,
        Some(&delivery),
        Some(&github_signature(&body)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({ "received": true }));
    let record = wait_for(&server.state, Provider::Github, &delivery, processed).await;
    assert_eq!((record.event_type.as_str(), record.attempts), ("ping", 1));
    assert_eq!(record.reference.as_deref(), Some(user_id.as_str()));

    // Events about nobody we know are processed all the same.
    let delivery = uuid::Uuid::new_v4().to_string();
    let body = github_event(None);
    let reply = post_github(
        &client,
        &body,
        Some(&delivery),
        Some(&github_signature(&body)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let record = wait_for(&server.state, Provider::Github, &delivery, processed).await;
    assert_eq!(record.reference, None);

    // Stripe's tolerance is 5 minutes: a delivery signed 4 minutes ago is fine.
    let id = new_id("evt_");
    let body = stripe_event(&id, None);
    let signature = stripe_signature_with(STRIPE_SECRET, now_secs() - 240, &body);
    assert_eq!(
        post_stripe(&client, &body, Some(&signature)).await.status,
        200
    );
    wait_for(&server.state, Provider::Stripe, &id, processed).await;
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[tokio::test]
async fn bad_signatures_are_refused_without_detail() {
    on_every_backend(refusals_scenario).await;
}

async fn refusals_scenario(backend: Backend) {
    let server = webhook_server(backend).await;
    let client = server.client();
    let mut messages = BTreeSet::new();

    let id = new_id("evt_");
    let body = stripe_event(&id, Some("victim@example.com"));
    let now = now_secs();
    let valid = stripe_signature(&body);
    let valid_v1 = valid.split_once(",v1=").unwrap().1.to_owned();
    let tampered = body.replace("2000", "1");
    assert_ne!(tampered, body);
    let stripe_cases: Vec<(&str, &str, Option<String>)> = vec![
        ("missing header", &body, None),
        (
            "wrong secret",
            &body,
            Some(stripe_signature_with("whsec_wrong", now, &body)),
        ),
        (
            "expired (6 minutes old)",
            &body,
            Some(stripe_signature_with(STRIPE_SECRET, now - 360, &body)),
        ),
        (
            "from the future (6 minutes ahead)",
            &body,
            Some(stripe_signature_with(STRIPE_SECRET, now + 360, &body)),
        ),
        ("tampered body", &tampered, Some(valid.clone())),
        ("garbage header", &body, Some("garbage".into())),
        ("no timestamp", &body, Some(format!("v1={valid_v1}"))),
        (
            "timestamp changed after signing",
            &body,
            Some(format!("t={},v1={valid_v1}", now - 1)),
        ),
        (
            "only a v0 signature",
            &body,
            Some(valid.replace("v1=", "v0=")),
        ),
        ("not hex", &body, Some(format!("t={now},v1=zz"))),
        ("empty header", &body, Some(String::new())),
    ];
    for (case, body, signature) in &stripe_cases {
        let reply = post_stripe(&client, body, signature.as_deref()).await;
        messages.insert(assert_refused(&reply, &format!("stripe: {case}")));
    }
    assert_eq!(
        server
            .state
            .webhooks
            .find(Provider::Stripe, &id)
            .await
            .unwrap(),
        None,
        "nothing stored"
    );

    let delivery = uuid::Uuid::new_v4().to_string();
    let body = github_event(None);
    let tampered = body.replace("failure", "success");
    let github_cases: Vec<(&str, &str, Option<String>)> = vec![
        ("missing header", &body, None),
        (
            "wrong secret",
            &body,
            Some(github_signature_with("wrong", &body)),
        ),
        ("tampered body", &tampered, Some(github_signature(&body))),
        (
            "sha1 scheme",
            &body,
            Some(github_signature(&body).replace("sha256=", "sha1=")),
        ),
        ("not hex", &body, Some("sha256=not-hex".into())),
        (
            "truncated",
            &body,
            Some(github_signature(&body)[..40].to_owned()),
        ),
    ];
    for (case, body, signature) in &github_cases {
        let reply = post_github(&client, body, Some(&delivery), signature.as_deref()).await;
        messages.insert(assert_refused(&reply, &format!("github: {case}")));
    }
    assert_eq!(
        server
            .state
            .webhooks
            .find(Provider::Github, &delivery)
            .await
            .unwrap(),
        None,
        "nothing stored"
    );

    // A method the route does not have is a 405 before any signature check: it tells the
    // caller no more than the refusal of an unsigned POST does (that the route takes POST).
    let reply = client
        .send(client.http.get(client.url("/api/webhooks/stripe")))
        .await;
    reply.error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(reply.header("allow"), Some("POST, OPTIONS"));
    assert_eq!(
        messages.len(),
        1,
        "one message whatever failed: {messages:?}"
    );

    // A correctly signed request with another method is a 405; OPTIONS is answered.
    let body = stripe_event(&new_id("evt_"), None);
    let reply = client
        .send(
            client
                .http
                .put(client.url("/api/webhooks/stripe"))
                .header("stripe-signature", stripe_signature(&body))
                .body(body),
        )
        .await;
    reply.error(405, "METHOD_NOT_ALLOWED");
    let reply = client
        .send(
            client
                .http
                .request(reqwest::Method::OPTIONS, client.url("/api/webhooks/github")),
        )
        .await;
    assert_eq!(reply.status, 204);

    // Correctly signed, but not an event: 400 INVALID_PAYLOAD (the signature was fine).
    let no_id = json!({ "type": "charge.succeeded" }).to_string();
    post_stripe(&client, &no_id, Some(&stripe_signature(&no_id)))
        .await
        .error(400, "INVALID_PAYLOAD");
    post_stripe(&client, "not json", Some(&stripe_signature("not json")))
        .await
        .error(400, "INVALID_PAYLOAD");
    let body = github_event(None);
    post_github(&client, &body, None, Some(&github_signature(&body)))
        .await
        .error(400, "INVALID_PAYLOAD");
}

// ---------------------------------------------------------------------------------------------
// Replays

#[tokio::test]
async fn replayed_event_ids_are_acknowledged_but_processed_once() {
    on_every_backend(replay_scenario).await;
}

async fn replay_scenario(backend: Backend) {
    let server = webhook_server(backend).await;
    let client = server.client();
    let counter = Flaky::install(&server.state, 0);

    // A redelivery (Stripe signs it again, with a new timestamp) right behind the first.
    let id = new_id("evt_");
    let body = stripe_event(&id, None);
    let first = post_stripe(&client, &body, Some(&stripe_signature(&body))).await;
    assert_eq!(first.body, json!({ "received": true }), "{}", first.text);
    let signature = stripe_signature_with(STRIPE_SECRET, now_secs() - 1, &body);
    let second = post_stripe(&client, &body, Some(&signature)).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.body, json!({ "received": true, "duplicate": true }));
    wait_for(&server.state, Provider::Stripe, &id, processed).await;
    // And one after it was processed.
    let third = post_stripe(&client, &body, Some(&stripe_signature(&body))).await;
    assert_eq!(third.body, json!({ "received": true, "duplicate": true }));

    // Concurrent deliveries of one event: exactly one is new.
    let id = new_id("evt_");
    let body = stripe_event(&id, None);
    let replies = futures_join(&client, &body, 8).await;
    let new = replies
        .iter()
        .filter(|r| r.body == json!({ "received": true }))
        .count();
    let duplicates = replies
        .iter()
        .filter(|r| r.body == json!({ "received": true, "duplicate": true }))
        .count();
    assert_eq!(
        (new, duplicates),
        (1, 7),
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let record = wait_for(&server.state, Provider::Stripe, &id, processed).await;
    assert_eq!(record.attempts, 1);

    // GitHub redeliveries keep their X-GitHub-Delivery id.
    let delivery = uuid::Uuid::new_v4().to_string();
    let body = github_event(None);
    let signature = github_signature(&body);
    assert_eq!(
        post_github(&client, &body, Some(&delivery), Some(&signature))
            .await
            .body,
        json!({ "received": true })
    );
    let again = post_github(&client, &body, Some(&delivery), Some(&signature)).await;
    assert_eq!(again.body, json!({ "received": true, "duplicate": true }));
    wait_for(&server.state, Provider::Github, &delivery, processed).await;

    // Three events, three processings, and nothing more comes later.
    for _ in 0..10 {
        assert_eq!(counter.calls(), 3);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn futures_join(client: &Client, body: &str, n: usize) -> Vec<Reply> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let client = client.clone();
        let body = body.to_owned();
        tasks.push(tokio::spawn(async move {
            let signature = stripe_signature(&body);
            post_stripe(&client, &body, Some(&signature)).await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        replies.push(reply);
    }
    replies
}

// ---------------------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn a_failed_attempt_is_retried_until_it_succeeds() {
    on_every_backend(retry_scenario).await;
}

async fn retry_scenario(backend: Backend) {
    let server = webhook_server(backend).await;
    let client = server.client();
    let flaky = Flaky::install(&server.state, 1);
    let email = format!("{}@example.com", new_id("retry-"));
    let (user_id, _) = client.register(&email).await;

    let id = new_id("evt_");
    let body = stripe_event(&id, Some(&email));
    let reply = post_stripe(&client, &body, Some(&stripe_signature(&body))).await;
    assert_eq!(
        reply.body,
        json!({ "received": true }),
        "the 200 does not wait for processing"
    );

    let record = wait_for(&server.state, Provider::Stripe, &id, processed).await;
    assert_eq!(record.attempts, 2);
    assert_eq!(
        record.last_error.as_deref(),
        Some("simulated failure 1"),
        "the failure is kept for the record"
    );
    assert_eq!(record.reference.as_deref(), Some(user_id.as_str()));
    assert_eq!(record.next_attempt_at, None);
    assert_eq!(flaky.calls(), 2);
}

#[tokio::test]
async fn retries_are_bounded() {
    on_every_backend(exhausted_scenario).await;
}

async fn exhausted_scenario(backend: Backend) {
    let server = webhook_server(backend).await;
    let client = server.client();
    let flaky = Flaky::install(&server.state, u32::MAX);

    let delivery = uuid::Uuid::new_v4().to_string();
    let body = github_event(None);
    assert_eq!(
        post_github(
            &client,
            &body,
            Some(&delivery),
            Some(&github_signature(&body))
        )
        .await
        .status,
        200
    );
    let record = wait_for(&server.state, Provider::Github, &delivery, |r| {
        r.status == "failed" && r.attempts == 3
    })
    .await;
    assert_eq!(record.last_error.as_deref(), Some("simulated failure 3"));
    assert_eq!(record.next_attempt_at, None, "no attempt left to schedule");
    for _ in 0..10 {
        assert_eq!(flaky.calls(), 3, "max_attempts is 3");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        server
            .state
            .webhooks
            .find(Provider::Github, &delivery)
            .await
            .unwrap()
            .unwrap()
            .status,
        "failed"
    );

    // Backoff doubles up to its cap.
    let policy = RetryPolicy {
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    let delays: Vec<u64> = (1..=5)
        .map(|attempt| policy.delay_after(attempt).as_secs())
        .collect();
    assert_eq!(delays, [2, 4, 8, 10, 10]);
}

// ---------------------------------------------------------------------------------------------
// Start-up recovery

#[tokio::test]
async fn unfinished_events_are_resumed_at_start_up() {
    on_every_backend(recovery_scenario).await;
}

async fn recovery_scenario(backend: Backend) {
    let server = webhook_server(backend).await;
    let client = server.client();
    let email = format!("{}@example.com", new_id("resumed-"));
    let (user_id, _) = client.register(&email).await;

    // The first attempt fails and the retry is an hour away when the process "stops".
    Flaky::install(&server.state, u32::MAX);
    server.state.webhooks.set_retry_policy(RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_secs(3600),
        max_delay: Duration::from_secs(3600),
        attempt_timeout: Duration::from_secs(5),
    });
    let failed_once = new_id("evt_");
    let body = stripe_event(&failed_once, Some(&email));
    assert_eq!(
        post_stripe(&client, &body, Some(&stripe_signature(&body)))
            .await
            .status,
        200
    );
    let record = wait_for(&server.state, Provider::Stripe, &failed_once, |r| {
        r.status == "failed"
    })
    .await;
    assert_eq!(record.attempts, 1);
    assert!(
        record
            .next_attempt_at
            .is_some_and(|at| at > arbor_app::db::now_ms() + 3_000_000),
        "{record:?}"
    );
    // ... and the hour passes.
    sqlx::query("UPDATE webhook_events SET next_attempt_at = $1 WHERE event_id = $2")
        .bind(arbor_app::db::now_ms() - 1)
        .bind(&failed_once)
        .execute(&server.state.db)
        .await
        .unwrap();

    // What else a stopped process can leave behind.
    let insert = |id: &'static str,
                  status: &'static str,
                  attempts: i64,
                  locked_until: Option<i64>| {
        let db = server.state.db.clone();
        async move {
            sqlx::query(
                "INSERT INTO webhook_events (provider, event_id, event_type, payload, status, attempts, received_at, locked_until) \
                 VALUES ('github', $1, 'ping', '{}', $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(status)
            .bind(attempts)
            .bind(arbor_app::db::now_ms())
            .bind(locked_until)
            .execute(&db)
            .await
            .unwrap();
        }
    };
    insert("never-attempted", "pending", 0, None).await;
    insert("interrupted", "processing", 2, Some(1)).await;
    insert("interrupted-last-attempt", "processing", 5, Some(1)).await;
    insert("given-up", "failed", 5, None).await;

    // A restart: a new AppState on the same database, with the default processor and policy.
    let restarted = AppState::new((*server.state.config).clone()).await.unwrap();
    let record = wait_for(&restarted, Provider::Stripe, &failed_once, processed).await;
    assert_eq!(record.attempts, 2);
    assert_eq!(record.reference.as_deref(), Some(user_id.as_str()));
    let record = wait_for(&restarted, Provider::Github, "never-attempted", processed).await;
    assert_eq!(record.attempts, 1);
    let record = wait_for(&restarted, Provider::Github, "interrupted", processed).await;
    assert_eq!(record.attempts, 3);
    let record = restarted
        .webhooks
        .find(Provider::Github, "interrupted-last-attempt")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status.as_str(), record.last_error.as_deref()),
        ("failed", Some("interrupted"))
    );
    let record = restarted
        .webhooks
        .find(Provider::Github, "given-up")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("failed", 5));
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[tokio::test]
async fn disabled_providers_answer_404() {
    // No secrets: neither provider is served.
    let server = Server::start(Backend::Sqlite).await;
    let client = server.client();
    let body = stripe_event(&new_id("evt_"), None);
    let reply = post_stripe(&client, &body, Some(&stripe_signature(&body))).await;
    let error = reply.error(404, "NOT_FOUND");
    assert_eq!(error["message"], "no route for /api/webhooks/stripe");
    let body = github_event(None);
    post_github(&client, &body, Some("d-1"), Some(&github_signature(&body)))
        .await
        .error(404, "NOT_FOUND");
    // The same answer as a URL no route matches.
    let unknown = client.get("/api/webhooks/gitlab", None).await;
    assert_eq!(
        unknown.error(404, "NOT_FOUND")["message"],
        "no route for /api/webhooks/gitlab"
    );
    client
        .send(
            client
                .http
                .request(reqwest::Method::OPTIONS, client.url("/api/webhooks/stripe")),
        )
        .await
        .error(404, "NOT_FOUND");

    // Only the provider whose secret is set.
    let server = Server::start_with(Backend::Sqlite, |config| {
        config.stripe_webhook_secret = Some(STRIPE_SECRET.into())
    })
    .await;
    let client = server.client();
    let body = stripe_event(&new_id("evt_"), None);
    assert_eq!(
        post_stripe(&client, &body, Some(&stripe_signature(&body)))
            .await
            .status,
        200
    );
    let body = github_event(None);
    post_github(&client, &body, Some("d-2"), Some(&github_signature(&body)))
        .await
        .error(404, "NOT_FOUND");

    // ARBOR_WEBHOOKS lists what is served, even when more secrets are set.
    let server = Server::start_with(Backend::Sqlite, |config| {
        config.stripe_webhook_secret = Some(STRIPE_SECRET.into());
        config.github_webhook_secret = Some(GITHUB_SECRET.into());
        config.webhooks = Some(vec![Provider::Github]);
    })
    .await;
    let client = server.client();
    let body = stripe_event(&new_id("evt_"), None);
    post_stripe(&client, &body, Some(&stripe_signature(&body)))
        .await
        .error(404, "NOT_FOUND");
    let body = github_event(None);
    assert_eq!(
        post_github(&client, &body, Some("d-3"), Some(&github_signature(&body)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_provider_enabled_without_its_secret_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
        stripe_webhook_secret: Some(STRIPE_SECRET.into()),
        webhooks: Some(vec![Provider::Stripe, Provider::Github]),
        ..Config::default()
    };
    let error = AppState::new(config).await.unwrap_err();
    assert!(
        error.contains("GITHUB_WEBHOOK_SECRET") && error.contains("ARBOR_WEBHOOKS"),
        "{error}"
    );
    assert!(!error.contains("STRIPE_WEBHOOK_SECRET"), "{error}");

    // The binary refuses to start, naming the variable.
    let (code, stderr) = run_app(&[("ARBOR_WEBHOOKS", "stripe")], dir.path());
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("STRIPE_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );
    let (code, stderr) = run_app(
        &[
            ("ARBOR_WEBHOOKS", "stripe,gitlab"),
            ("STRIPE_WEBHOOK_SECRET", "s"),
        ],
        dir.path(),
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("ARBOR_WEBHOOKS: unknown webhook provider `gitlab`"),
        "{stderr}"
    );

    assert_eq!(
        Provider::parse_list("github, Stripe,github"),
        Ok(vec![Provider::Github, Provider::Stripe])
    );
    assert_eq!(Provider::parse_list("none"), Ok(vec![]));
}

/// Runs the app binary with `vars` (and no webhook secrets of the caller's), on a database in
/// `dir`; expects it to exit on its own within 30 seconds. Returns its exit code and stderr.
fn run_app(vars: &[(&str, &str)], dir: &std::path::Path) -> (Option<i32>, String) {
    use std::io::Read;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_arbor-app"));
    command
        .env_remove("STRIPE_WEBHOOK_SECRET")
        .env_remove("GITHUB_WEBHOOK_SECRET")
        .env_remove("ARBOR_WEBHOOKS")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/binary.db?mode=rwc", dir.display()),
        )
        .env("PORT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the app started instead of refusing to");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

// The verifiers on their own (GitHub's published example, Stripe's scheme, rotation, tolerance)
// are tested where they now live: framework/src/webhooks/tests.rs.
