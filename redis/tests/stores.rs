#![allow(clippy::unwrap_used)]

//! The Redis stores behind real routes, with two instances of an app sharing one Redis: every
//! guarantee that holds in one process holds across both.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor::events::Message;
use arbor::http::StatusCode;
use arbor::rate_limit;
use arbor::test::TestClient;
use arbor::{App, Router};
use axum::routing::{get, post};
use futures_util::StreamExt;
use support::{instance, redis_url, unique_prefix, OwnRedis};

fn limited(stores: &arbor_redis::RedisStores) -> TestClient {
    let route = get(|| async { "in" }).layer(
        rate_limit()
            .limit(5)
            .window(60)
            .key(|_| Some("login:alice".to_owned())),
    );
    TestClient::new(
        App::new(Router::new().route("/login", route))
            .stores(stores.stores())
            .into_router(),
    )
}

#[tokio::test]
async fn a_limit_of_five_lets_exactly_five_through_across_two_instances() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("rate");
    let (a, b) = (instance(&url, &prefix).await, instance(&url, &prefix).await);
    let (a, b) = (limited(&a), limited(&b));
    let requests = (0..20).map(|i| {
        let client = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { client.get("/login").send().await }
    });
    let responses = futures_util::future::join_all(requests).await;
    let allowed = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(allowed, 5, "one allowance shared by both instances");
    let refused = responses
        .iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
}

fn orders(stores: &arbor_redis::RedisStores, runs: Arc<AtomicUsize>) -> TestClient {
    let route = post(move |body: String| {
        let runs = Arc::clone(&runs);
        async move {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            (StatusCode::CREATED, format!("order {n} for {body}"))
        }
    })
    .layer(arbor::idempotency());
    let router = Router::new().route("/orders", route);
    TestClient::new(App::new(router).stores(stores.stores()).into_router())
        .with_peer("127.0.0.1:4000".parse().unwrap())
}

#[tokio::test]
async fn one_idempotency_key_sent_to_both_instances_has_one_effect() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("idem");
    let runs = Arc::new(AtomicUsize::new(0));
    let a = orders(&instance(&url, &prefix).await, Arc::clone(&runs));
    let b = orders(&instance(&url, &prefix).await, Arc::clone(&runs));
    let send = |client: &TestClient| {
        client
            .post("/orders")
            .header("idempotency-key", "order-7")
            .body("2 books")
            .send()
    };
    let (first, second) = tokio::join!(send(&a), send(&b));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // One ran; the other was refused while it ran (409) — never a second order.
    let statuses = [first.status(), second.status()];
    assert!(statuses.contains(&StatusCode::CREATED), "{statuses:?}");
    // Retries on either instance replay the first answer, byte for byte.
    let winner = if first.status() == StatusCode::CREATED {
        &first
    } else {
        &second
    };
    for client in [&a, &b] {
        let replay = send(client).await;
        assert_eq!(replay.status(), StatusCode::CREATED);
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.bytes(), winner.bytes());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let reused = b
        .post("/orders")
        .header("idempotency-key", "order-7")
        .body("3 books")
        .send()
        .await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

fn webhooks(stores: &arbor_redis::RedisStores, runs: Arc<AtomicUsize>) -> TestClient {
    use arbor::webhooks::{verify, GitHub, WebhookEvent};
    let route = post(move |event: WebhookEvent| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            if event.event_type == "fail" {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            StatusCode::NO_CONTENT
        }
    })
    .layer(verify(GitHub::new("secret")).replay_ttl(60));
    let router = Router::new().route("/hooks/github", route);
    TestClient::new(App::new(router).stores(stores.stores()).into_router())
}

#[tokio::test]
async fn a_webhook_event_id_seen_by_one_instance_is_a_replay_on_the_other() {
    use hmac::{Hmac, Mac};
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("webhook");
    let runs = Arc::new(AtomicUsize::new(0));
    let a = webhooks(&instance(&url, &prefix).await, Arc::clone(&runs));
    let b = webhooks(&instance(&url, &prefix).await, Arc::clone(&runs));
    let body = r#"{"zen":"Keep it logically awesome."}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"secret").unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let send = |client: &TestClient, event: &str| {
        client
            .post("/hooks/github")
            .header("x-hub-signature-256", &signature)
            .header("x-github-delivery", &format!("{prefix}-{event}"))
            .header("x-github-event", event)
            .body(body)
            .send()
    };
    assert_eq!(send(&a, "push").await.status(), StatusCode::NO_CONTENT);
    let replay = send(&b, "push").await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(
        replay.json::<serde_json::Value>(),
        serde_json::json!({ "received": true, "duplicate": true })
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // A failed delivery is forgotten everywhere: the retry on the other instance runs.
    assert_eq!(
        send(&a, "fail").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        send(&b, "fail").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

fn cached(stores: &arbor_redis::RedisStores, runs: Arc<AtomicUsize>) -> TestClient {
    let route = get(move || {
        let runs = Arc::clone(&runs);
        async move {
            format!(
                "page rendered {} times",
                runs.fetch_add(1, Ordering::SeqCst) + 1
            )
        }
    })
    .layer(arbor::cache::cache().ttl(60).tags(["docs"]));
    TestClient::new(
        App::new(Router::new().route("/docs", route))
            .stores(stores.stores())
            .into_router(),
    )
}

#[tokio::test]
async fn a_response_cached_on_one_instance_is_a_hit_on_the_other_until_invalidated() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("cache");
    let runs = Arc::new(AtomicUsize::new(0));
    let (stores_a, stores_b) = (instance(&url, &prefix).await, instance(&url, &prefix).await);
    let a = cached(&stores_a, Arc::clone(&runs));
    let b = cached(&stores_b, Arc::clone(&runs));
    let filled = a.get("/docs").send().await;
    assert_eq!(filled.header("x-cache"), Some("MISS"));
    let hit = b.get("/docs").send().await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.text(), filled.text());
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    assert!(arbor::cache::invalidate(&stores_b.stores(), "/docs")
        .await
        .unwrap());
    let after = a.get("/docs").send().await;
    assert_eq!(after.header("x-cache"), Some("MISS"));
    assert_eq!(after.text(), "page rendered 2 times");

    // By tag: the marker in Redis makes the entry stale on every instance.
    assert_eq!(b.get("/docs").send().await.header("x-cache"), Some("HIT"));
    arbor::cache::Invalidator::new(Some(stores_a.stores()))
        .tag("docs")
        .await
        .unwrap();
    let retagged = b.get("/docs").send().await;
    assert_eq!(retagged.header("x-cache"), Some("MISS"));
    assert_eq!(retagged.text(), "page rendered 3 times");
    assert_eq!(a.get("/docs").send().await.header("x-cache"), Some("HIT"));
}

#[tokio::test]
async fn events_cross_instances_and_a_resume_elsewhere_gets_what_it_missed_once_in_order() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("bus");
    let a = instance(&url, &prefix).await.bus();
    let b = instance(&url, &prefix).await.bus();
    let c = instance(&url, &prefix).await.bus();

    let mut on_b = b.subscribe("user:1", None).await.unwrap();
    let first = a.publish("user:1", "post.updated", &1).await.unwrap();
    let Some(Message::Event(event)) = tokio::time::timeout(Duration::from_secs(5), on_b.next())
        .await
        .unwrap()
    else {
        panic!("B gets A's event");
    };
    assert_eq!((event.id(), event.data()), (first, "1"));

    // B's subscriber drops; three events happen; it reconnects to C with Last-Event-ID.
    drop(on_b);
    let mut missed = Vec::new();
    for n in 2..=4 {
        missed.push(a.publish("user:1", "post.updated", &n).await.unwrap());
    }
    let mut on_c = c.subscribe("user:1", Some(first)).await.unwrap();
    let live = a.publish("user:1", "post.updated", &5).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let next = tokio::time::timeout(Duration::from_secs(5), on_c.next())
            .await
            .unwrap();
        let Some(Message::Event(event)) = next else {
            panic!("{next:?}")
        };
        seen.push((event.id(), event.data().to_owned()));
    }
    let expected: Vec<(u64, String)> = missed
        .iter()
        .chain([&live])
        .zip(2..=5)
        .map(|(id, n)| (*id, n.to_string()))
        .collect();
    assert_eq!(seen, expected);
    // Nothing twice: no fifth message arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_c.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn with_redis_down_each_store_answers_by_its_policy_within_the_budget_then_recovers() {
    if redis_url().is_none() {
        return;
    }
    let mut server = OwnRedis::start();
    let stores = instance(&server.url(), "outage").await;
    let limited_client = limited(&stores);
    let orders_client = orders(&stores, Arc::new(AtomicUsize::new(0)));
    let runs = Arc::new(AtomicUsize::new(0));
    let cached_client = cached(&stores, Arc::clone(&runs));
    let bus = stores.bus();
    let mut events = bus.subscribe("user:9", None).await.unwrap();
    assert_eq!(
        limited_client.get("/login").send().await.status(),
        StatusCode::OK
    );

    server.stop();
    let started = Instant::now();
    // Rate limits fail open (the default), without headers.
    let through = limited_client.get("/login").send().await;
    assert_eq!(through.status(), StatusCode::OK);
    assert_eq!(through.header("x-ratelimit-limit"), None);
    // Idempotency refuses rather than risk a second effect.
    let refused = orders_client
        .post("/orders")
        .header("idempotency-key", "k1")
        .body("x")
        .send()
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let body: serde_json::Value = refused.json();
    assert_eq!(body["error"], "IDEMPOTENCY_UNAVAILABLE");
    // The cache is bypassed: the handler answers.
    assert_eq!(
        cached_client.get("/docs").send().await.status(),
        StatusCode::OK
    );
    assert_eq!(
        cached_client.get("/docs").send().await.text(),
        "page rendered 2 times"
    );
    // Local subscribers still get events.
    bus.publish("user:9", "ping", &"local").await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(1), events.next())
        .await
        .unwrap();
    assert!(
        matches!(next, Some(Message::Event(ref e)) if e.data() == "\"local\""),
        "{next:?}"
    );
    // Five calls to an unreachable Redis, each bounded by the 50 ms budget or failing fast.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = limited_client.get("/login").send().await;
        if response.header("x-ratelimit-limit").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rate limit store never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = orders_client
        .post("/orders")
        .header("idempotency-key", "k2")
        .body("x")
        .send()
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn as_a_readiness_check_redis_fails_while_down_and_passes_again_once_back() {
    if redis_url().is_none() {
        return;
    }
    let mut server = OwnRedis::start();
    let stores = instance(&server.url(), "ping").await;
    let ready = TestClient::new(
        App::new(Router::new())
            .probes(arbor::health::Probes::new().check("redis", stores.clone()))
            .into_router(),
    );
    stores.ping().await.unwrap();
    assert_eq!(ready.get("/readyz").send().await.status(), StatusCode::OK);

    server.stop();
    let error = stores.ping().await.unwrap_err();
    assert_eq!(error.kind(), arbor::store::StoreErrorKind::Unavailable);
    let started = Instant::now();
    let response = ready.get("/readyz").send().await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json();
    assert_eq!(
        body["details"]["checks"]["redis"],
        serde_json::json!({ "status": "failed", "reason": "unavailable" })
    );
    // Within the store's 50 ms budget (or at once, while it cools down), not the probe's 1 s.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready.get("/readyz").send().await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "readiness never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stores.ping().await.unwrap();
}
