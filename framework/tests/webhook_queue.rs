//! `arbor::webhooks::queue` on SQLite, and on PostgreSQL when `ARBOR_TEST_POSTGRES_URL` names
//! a server: events stored once, processed in the background, retried with backoff up to a
//! bound, resumed at start-up, and never run twice at once by two queues on one database.

#![cfg(feature = "sqlx")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbor::webhooks::queue::{
    processor_fn, Enqueued, Event, EventRecord, Outcome, Processor, RetryPolicy, WebhookQueue,
    FAILED, PROCESSED,
};
use arbor::webhooks::{BoxFuture, WebhookEvent};
use serde_json::json;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `scenario` on SQLite, and on PostgreSQL when a server is configured.
async fn on_every_backend<F, Fut>(scenario: F)
where
    F: Fn(AnyPool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    scenario(pool(Backend::Sqlite, &dir).await).await;
    if postgres_url().is_some() {
        scenario(pool(Backend::Postgres, &dir).await).await;
    } else {
        eprintln!("note: ARBOR_TEST_POSTGRES_URL not set; PostgreSQL half of this test skipped");
    }
}

fn postgres_url() -> Option<String> {
    let url = std::env::var("ARBOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("ARBOR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("ARBOR_REQUIRE_POSTGRES=1 but ARBOR_TEST_POSTGRES_URL is not set");
    }
    url
}

/// A new, empty database.
async fn pool(backend: Backend, dir: &tempfile::TempDir) -> AnyPool {
    sqlx::any::install_default_drivers();
    let name = format!("webhooks_{}", uuid::Uuid::new_v4().simple());
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}/{name}.db?mode=rwc", dir.path().display()),
        Backend::Postgres => {
            let server = postgres_url().unwrap();
            let admin = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&server)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let (base, _) = server.rsplit_once('/').unwrap();
            format!("{base}/{name}")
        }
    };
    AnyPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .unwrap()
}

fn event(provider: &str, id: &str, body: &str) -> WebhookEvent {
    WebhookEvent {
        provider: provider.to_owned(),
        id: id.to_owned(),
        event_type: "invoice.paid".to_owned(),
        body: body.to_owned().into(),
    }
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
        attempt_timeout: Duration::from_secs(5),
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Polls the stored event every few milliseconds until `done`, for at most 10 seconds.
async fn wait_for(
    queue: &WebhookQueue,
    provider: &str,
    id: &str,
    done: impl Fn(&EventRecord) -> bool,
) -> EventRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = queue.find(provider, id).await.unwrap();
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
    record.status == PROCESSED
}

/// Fails the first `failures` attempts, then succeeds with the payload's `ref` as reference;
/// counts calls.
#[derive(Default)]
struct Flaky {
    failures: u32,
    calls: AtomicU32,
}

impl Flaky {
    fn failing(failures: u32) -> Arc<Self> {
        Arc::new(Self {
            failures,
            calls: AtomicU32::new(0),
        })
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
            let payload: serde_json::Value = event.json().map_err(|e| e.to_string())?;
            Ok(Outcome {
                reference: payload["ref"].as_str().map(str::to_owned),
            })
        })
    }
}

fn queue_with(pool: AnyPool, processor: &Arc<Flaky>, max_attempts: u32) -> WebhookQueue {
    let queue = WebhookQueue::new(pool, processor.clone());
    queue.set_retry_policy(fast_retries(max_attempts));
    queue
}

#[tokio::test]
async fn events_are_stored_once_and_processed_in_the_background() {
    on_every_backend(|pool| async move {
        let flaky = Flaky::failing(0);
        let queue = queue_with(pool, &flaky, 3);
        assert_eq!(queue.start().await.unwrap(), 0);
        queue.ensure_schema().await.unwrap(); // a second time is harmless

        let body = json!({ "ref": "user-7" }).to_string();
        let first = queue
            .enqueue(&event("stripe", "evt_1", &body))
            .await
            .unwrap();
        assert_eq!(first, Enqueued::New);
        let record = wait_for(&queue, "stripe", "evt_1", processed).await;
        assert_eq!(record.attempts, 1);
        assert_eq!(record.reference.as_deref(), Some("user-7"));
        assert_eq!(record.event_type, "invoice.paid");
        assert!(record
            .processed_at
            .is_some_and(|at| at >= record.received_at));

        // The same id again, even from `receive`: acknowledged, not processed again.
        let reply = queue
            .receive(event("stripe", "evt_1", &body))
            .await
            .unwrap();
        assert_eq!(reply.0, json!({ "received": true, "duplicate": true }));
        // The same id from another provider is another event.
        let reply = queue
            .receive(event("github", "evt_1", &body))
            .await
            .unwrap();
        assert_eq!(reply.0, json!({ "received": true }));
        wait_for(&queue, "github", "evt_1", processed).await;
        assert_eq!(flaky.calls(), 2);

        // Copies arriving at once: exactly one is new.
        let copies = (0..8).map(|_| {
            let queue = queue.clone();
            let body = body.clone();
            tokio::spawn(async move { queue.enqueue(&event("stripe", "evt_burst", &body)).await })
        });
        let mut new = 0;
        for copy in copies {
            if copy.await.unwrap().unwrap() == Enqueued::New {
                new += 1;
            }
        }
        assert_eq!(new, 1);
        wait_for(&queue, "stripe", "evt_burst", processed).await;
        assert_eq!(flaky.calls(), 3);

        // A body that is not text cannot be stored: a client error, not a 500.
        let mut binary = event("stripe", "evt_binary", "");
        binary.body = vec![0xff, 0xfe].into();
        let error = queue.receive(binary).await.unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        assert_eq!(queue.find("stripe", "evt_binary").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn failed_attempts_are_retried_with_backoff_up_to_a_bound() {
    on_every_backend(|pool| async move {
        let flaky = Flaky::failing(1);
        let queue = queue_with(pool.clone(), &flaky, 3);
        queue.start().await.unwrap();
        let body = json!({ "ref": "order-1" }).to_string();
        queue
            .enqueue(&event("stripe", "evt_retry", &body))
            .await
            .unwrap();
        let record = wait_for(&queue, "stripe", "evt_retry", processed).await;
        assert_eq!(record.attempts, 2);
        assert_eq!(record.last_error.as_deref(), Some("simulated failure 1"));
        assert_eq!(record.next_attempt_at, None);
        assert_eq!(flaky.calls(), 2);

        // Always failing: three attempts, then given up.
        let hopeless = Flaky::failing(u32::MAX);
        queue.set_processor(hopeless.clone());
        queue
            .enqueue(&event("github", "d-hopeless", "{}"))
            .await
            .unwrap();
        let record = wait_for(&queue, "github", "d-hopeless", |r| {
            r.status == FAILED && r.attempts == 3
        })
        .await;
        assert_eq!(record.last_error.as_deref(), Some("simulated failure 3"));
        assert_eq!(record.next_attempt_at, None, "no attempt left to schedule");
        for _ in 0..10 {
            assert_eq!(hopeless.calls(), 3, "max_attempts is 3");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // An attempt that runs past its timeout fails like any other.
        let queue = WebhookQueue::new(
            pool,
            processor_fn(|_| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Outcome::default())
            }),
        );
        queue.set_retry_policy(RetryPolicy {
            attempt_timeout: Duration::from_millis(20),
            ..fast_retries(1)
        });
        queue
            .enqueue(&event("github", "d-slow", "{}"))
            .await
            .unwrap();
        let record = wait_for(&queue, "github", "d-slow", |r| r.status == FAILED).await;
        assert!(
            record
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("timed out")),
            "{record:?}"
        );
    })
    .await;

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

#[tokio::test]
async fn unfinished_events_are_resumed_at_start_up() {
    on_every_backend(|pool| async move {
        WebhookQueue::new(pool.clone(), Flaky::failing(0))
            .ensure_schema()
            .await
            .unwrap();
        // What a stopped process can leave behind.
        let insert = |id: &'static str,
                      status: &'static str,
                      attempts: i64,
                      locked_until: Option<i64>,
                      next_attempt_at: Option<i64>| {
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO webhook_events (provider, event_id, event_type, payload, status, attempts, received_at, locked_until, next_attempt_at) \
                     VALUES ('github', $1, 'ping', '{\"ref\":\"r\"}', $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(status)
                .bind(attempts)
                .bind(now_ms())
                .bind(locked_until)
                .bind(next_attempt_at)
                .execute(&pool)
                .await
                .unwrap();
            }
        };
        insert("never-attempted", "pending", 0, None, None).await;
        insert("failed-due", "failed", 1, None, Some(now_ms() - 1)).await;
        insert("interrupted", "processing", 2, Some(1), None).await;
        insert("interrupted-last-attempt", "processing", 5, Some(1), None).await;
        insert("given-up", "failed", 5, None, None).await;
        insert("done", "processed", 1, None, None).await;

        // The restart: a new queue on the same database.
        let flaky = Flaky::failing(0);
        let queue = WebhookQueue::new(pool, flaky.clone());
        assert_eq!(queue.start().await.unwrap(), 3);
        for (id, attempts) in [("never-attempted", 1), ("failed-due", 2), ("interrupted", 3)] {
            let record = wait_for(&queue, "github", id, processed).await;
            assert_eq!(record.attempts, attempts, "{id}");
            assert_eq!(record.reference.as_deref(), Some("r"), "{id}");
        }
        let record = queue
            .find("github", "interrupted-last-attempt")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (record.status.as_str(), record.last_error.as_deref()),
            (FAILED, Some("interrupted"))
        );
        let record = queue.find("github", "given-up").await.unwrap().unwrap();
        assert_eq!((record.status.as_str(), record.attempts), (FAILED, 5));
        assert_eq!(flaky.calls(), 3);
    })
    .await;
}

#[tokio::test]
async fn two_queues_on_one_database_never_run_the_same_attempt() {
    on_every_backend(|pool| async move {
        // Processors wait at a gate until both "processes" have listed the pending events, so
        // that both really compete for every one of them.
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let gated = || {
            let calls = Arc::new(AtomicU32::new(0));
            let (counted, gate) = (calls.clone(), gate.clone());
            let processor = processor_fn(move |_| {
                let (calls, gate) = (counted.clone(), gate.clone());
                async move {
                    // Closed means open: every waiter goes through.
                    let _ = gate.acquire().await;
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(Outcome::default())
                }
            });
            (calls, processor)
        };
        let (calls_a, processor_a) = gated();
        let (calls_b, processor_b) = gated();
        let a = WebhookQueue::new(pool.clone(), processor_a);
        let b = WebhookQueue::new(pool.clone(), processor_b);
        a.ensure_schema().await.unwrap();
        for n in 0..10 {
            sqlx::query(
                "INSERT INTO webhook_events (provider, event_id, event_type, payload, status, attempts, received_at) \
                 VALUES ('stripe', $1, 'ping', '{}', 'pending', 0, $2)",
            )
            .bind(format!("evt_{n}"))
            .bind(now_ms())
            .execute(&pool)
            .await
            .unwrap();
        }
        let (resumed_a, resumed_b) = tokio::join!(a.recover(), b.recover());
        assert_eq!((resumed_a.unwrap(), resumed_b.unwrap()), (10, 10));
        gate.close();
        for n in 0..10 {
            let record = wait_for(&a, "stripe", &format!("evt_{n}"), processed).await;
            assert_eq!(record.attempts, 1);
        }
        assert_eq!(
            calls_a.load(Ordering::SeqCst) + calls_b.load(Ordering::SeqCst),
            10,
            "each event ran once in all"
        );
    })
    .await;
}
