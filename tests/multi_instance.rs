//! Three instances of the reference app, as real processes started at the same moment, on one
//! PostgreSQL database and one Redis: every guarantee holds across them.
//!
//! Needs the test command's PostgreSQL (`ARBOR_TEST_POSTGRES_URL`) and a `redis-server` to start
//! (the test owns it, to stop and restart it); skipped without them unless
//! `ARBOR_REQUIRE_POSTGRES=1` / `ARBOR_REQUIRE_REDIS=1`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use common::process::AppProcess as Instance;
use common::{OwnRedis, ADMIN_EMAIL, ADMIN_PASSWORD};

/// How long an answer may take while Redis is down. Each Redis call has a 50 ms budget and a
/// refused connection fails at once, so this only catches a request that hangs on the outage
/// (a TCP or connection-manager timeout is seconds), with room for a debug build on 2 cores.
const OUTAGE_ANSWER_BOUND: Duration = Duration::from_secs(1);

/// Starts `count` instances at once and waits for each to report its address.
async fn start(
    count: usize,
    database_url: &str,
    redis_url: &str,
    prefix: &str,
    dir: &std::path::Path,
) -> Vec<Instance> {
    let mut instances: Vec<Instance> = (0..count)
        .map(|n| {
            Instance::spawn(
                &[
                    ("DATABASE_URL", database_url.to_owned()),
                    ("REDIS_URL", redis_url.to_owned()),
                    ("ARBOR_REDIS_PREFIX", prefix.to_owned()),
                    ("ARBOR_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
                    ("ARBOR_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
                ],
                &dir.join(format!("instance-{n}")),
            )
        })
        .collect();
    for instance in &mut instances {
        instance.listening().await;
    }
    instances
}

async fn fresh_database() -> Option<String> {
    common::postgres_url()?;
    Some(common::fresh_postgres_database().await)
}

async fn login(
    http: &Client,
    instance: &Instance,
    email: &str,
    password: &str,
) -> reqwest::Response {
    http.post(instance.url("/api/v1/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn token(http: &Client, instance: &Instance) -> String {
    let response = login(http, instance, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /api/v1/events` on `instance` as `token`, resuming after `last` if given: the shared
/// client checks the event-stream answer and reads it one event at a time.
async fn events_on(
    http: &Client,
    instance: &Instance,
    token: &str,
    last: Option<u64>,
) -> common::http::EventStream {
    let mut request = http.get(instance.url("/api/v1/events")).bearer_auth(token);
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    common::Client::new(instance.base.clone())
        .events(request)
        .await
}

#[tokio::test]
async fn three_instances_share_limits_keys_events_caches_and_sessions() {
    let (Some(database_url), Some(mut redis)) =
        (fresh_database().await, OwnRedis::start_if_installed())
    else {
        eprintln!("note: PostgreSQL or Redis not configured; multi-instance test skipped");
        return;
    };
    let redis_url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("multi:{}", uuid::Uuid::new_v4().simple());
    // Started together against an empty database: migrations and the administrator's creation
    // must not make any of them fail.
    let instances = start(3, &database_url, &redis_url, &prefix, dir.path()).await;
    let [a, b, c] = [&instances[0], &instances[1], &instances[2]];
    let http = Client::new();

    // 1. The login limit (5 per minute per client) holds across the three instances: the
    //    administrator's login on A takes one, so 4 of the next 12 attempts get through.
    let admin = token(&http, a).await;
    let mut statuses = Vec::new();
    for n in 0..12 {
        let response = login(
            &http,
            &instances[n % 3],
            "nobody@example.com",
            "wrong-password",
        )
        .await;
        statuses.push(response.status());
    }
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(refused, 12 - 4, "{statuses:?}");

    // 5. A session created on A works on B and C (sessions live in the shared database).
    for instance in [b, c] {
        let whoami = http
            .get(instance.url("/api/v1/whoami"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(whoami.status(), StatusCode::OK);
    }

    // 2. One idempotency key sent to every instance at once: one post, identical replays.
    let create = |instance: &Instance| {
        http.post(instance.url("/api/v1/posts"))
            .bearer_auth(&admin)
            .header("idempotency-key", "post-once")
            .json(&json!({ "title": "exactly once", "body": "b" }))
            .send()
    };
    let (ra, rb, rc) = tokio::join!(create(a), create(b), create(c));
    let statuses = [
        ra.unwrap().status(),
        rb.unwrap().status(),
        rc.unwrap().status(),
    ];
    assert!(statuses.contains(&StatusCode::CREATED), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let mut replays = Vec::new();
    for instance in [a, b, c] {
        let replay = create(instance).await.unwrap();
        assert_eq!(replay.status(), StatusCode::CREATED);
        replays.push(replay.bytes().await.unwrap());
    }
    assert!(replays.windows(2).all(|w| w[0] == w[1]));
    let posts: Value = http
        .get(c.url("/api/v1/posts?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let same: Vec<&Value> = posts
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["title"] == "exactly once")
        .collect();
    assert_eq!(same.len(), 1, "{posts}");
    let post_id = same[0]["id"].as_str().unwrap().to_owned();

    // 3. A post updated through A reaches a subscriber on B; a subscriber that drops and
    //    reconnects to C with Last-Event-ID gets what it missed, in order, once.
    let update = |version: i64, title: &str| {
        update_request(&http, a, &admin, &post_id, version, title).send()
    };
    let mut on_b = events_on(&http, b, &admin, None).await;
    assert_eq!(on_b.next().await.name, "connected");
    assert_eq!(update(1, "v2").await.unwrap().status(), StatusCode::OK);
    let seen = on_b.next().await;
    assert_eq!(
        (seen.name.as_str(), &seen.data["version"]),
        ("post.updated", &json!(2))
    );
    let last_seen = seen.id.unwrap();
    drop(on_b);
    for (version, title) in [(2, "v3"), (3, "v4")] {
        assert_eq!(
            update(version, title).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let mut on_c = events_on(&http, c, &admin, Some(last_seen)).await;
    assert_eq!(on_c.next().await.name, "connected");
    let (first, second) = (on_c.next().await, on_c.next().await);
    assert_eq!(
        [&first.data["version"], &second.data["version"]],
        [&json!(3), &json!(4)],
        "{first:?} {second:?}"
    );
    assert!(first.id.unwrap() > last_seen && second.id.unwrap() > first.id.unwrap());
    drop(on_c);

    // 4. A cached page filled on A is a hit on B; invalidated on B, it is a miss on A.
    let page = |instance: &Instance| http.get(instance.url("/api/v1/docs/guide/intro")).send();
    let x_cache = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(x_cache(&page(a).await.unwrap()).as_deref(), Some("MISS"));
    assert_eq!(x_cache(&page(b).await.unwrap()).as_deref(), Some("HIT"));
    let invalidated = http
        .request(Method::DELETE, b.url("/api/v1/docs/guide/intro"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(invalidated.status(), StatusCode::NO_CONTENT);
    assert_eq!(x_cache(&page(a).await.unwrap()).as_deref(), Some("MISS"));
    // By tag: every page, cached through any instance, dropped by one call on C.
    let index = |instance: &Instance| http.get(instance.url("/api/v1/docs")).send();
    assert_eq!(x_cache(&index(b).await.unwrap()).as_deref(), Some("MISS"));
    assert_eq!(x_cache(&index(a).await.unwrap()).as_deref(), Some("HIT"));
    assert_eq!(x_cache(&page(b).await.unwrap()).as_deref(), Some("HIT"));
    let everything = http
        .request(Method::DELETE, c.url("/api/v1/docs"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(everything.status(), StatusCode::NO_CONTENT);
    assert_eq!(x_cache(&index(a).await.unwrap()).as_deref(), Some("MISS"));
    assert_eq!(x_cache(&page(b).await.unwrap()).as_deref(), Some("MISS"));
    assert_eq!(x_cache(&page(a).await.unwrap()).as_deref(), Some("HIT"));

    // 6. Redis stopped: each store does what docs/deployment.md declares, every answer comes
    //    within the budget, and nothing is done half-way.
    redis.stop();
    let timed = |request: reqwest::RequestBuilder| async move {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let elapsed = started.elapsed();
        assert!(
            elapsed < OUTAGE_ANSWER_BOUND,
            "{} took {elapsed:?} with Redis down",
            response.url()
        );
        response
    };
    let expect_error = |response: reqwest::Response, status: StatusCode, code: &'static str| async move {
        assert_eq!(response.status(), status);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(response.json::<Value>().await.unwrap()["error"], code);
    };
    // The login limit fails closed; the registration limit (the default) fails open.
    let login_refused = timed(
        http.post(a.url("/api/v1/login"))
            .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })),
    )
    .await;
    expect_error(
        login_refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "RATE_LIMIT_UNAVAILABLE",
    )
    .await;
    let registered = timed(http.post(b.url("/api/v1/register")).json(&json!({
        "email": "outage@example.com", "name": "Outage", "password": "Str0ngPassw0rd"
    })))
    .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    // Idempotency cannot promise one effect: it refuses, and creates nothing.
    let create_keyed = |instance: &Instance, key: &str| {
        http.post(instance.url("/api/v1/posts"))
            .bearer_auth(&admin)
            .header("idempotency-key", key)
            .json(&json!({ "title": "across the outage", "body": "b" }))
    };
    expect_error(
        timed(create_keyed(b, "across-the-outage")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "IDEMPOTENCY_UNAVAILABLE",
    )
    .await;
    // The cache is bypassed: the page is served by its handler, every time.
    for _ in 0..2 {
        let served = timed(http.get(c.url("/api/v1/docs/guide/intro"))).await;
        assert_eq!(served.status(), StatusCode::OK);
        assert_eq!(x_cache(&served).as_deref(), Some("MISS"));
    }
    // The event bus keeps delivering on the instance that publishes.
    let mut on_a = events_on(&http, a, &admin, None).await;
    assert_eq!(on_a.next().await.name, "connected");
    assert_eq!(
        timed(update_request(&http, a, &admin, &post_id, 4, "v5"))
            .await
            .status(),
        StatusCode::OK
    );
    let local = on_a.next().await;
    assert_eq!(
        (local.name.as_str(), &local.data["version"]),
        ("post.updated", &json!(5))
    );
    drop(on_a);

    // Redis restarted (empty): every instance picks it up with no restart. Until an instance
    // has its connection back, it keeps answering 503 (and creating nothing).
    redis.restart();
    let created = once_redis_is_back(|| create_keyed(b, "across-the-outage")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = created.bytes().await.unwrap();
    let replayed = once_redis_is_back(|| create_keyed(c, "across-the-outage")).await;
    assert_eq!(replayed.status(), StatusCode::CREATED);
    assert_eq!(replayed.bytes().await.unwrap(), created);
    let logged_in = once_redis_is_back(|| {
        http.post(a.url("/api/v1/login"))
            .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
    })
    .await;
    assert_eq!(logged_in.status(), StatusCode::OK);
    // Cross-instance delivery resumes: an update through A reaches a subscriber on B (live, or
    // through B's listener catching up when it reconnects).
    let mut on_b = events_on(&http, b, &admin, None).await;
    assert_eq!(on_b.next().await.name, "connected");
    assert_eq!(
        update_request(&http, a, &admin, &post_id, 5, "v6")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let across = on_b.next().await;
    assert_eq!(
        (across.name.as_str(), &across.data["version"]),
        ("post.updated", &json!(6))
    );
    // And the cache is shared again.
    assert_eq!(x_cache(&page(a).await.unwrap()).as_deref(), Some("MISS"));
    assert_eq!(x_cache(&page(b).await.unwrap()).as_deref(), Some("HIT"));
}

/// The answer to the request `make` builds, sent until it is not a `503` (the instance has its
/// Redis connection back), for at most 10 seconds.
async fn once_redis_is_back(make: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = make().send().await.unwrap();
        if response.status() != StatusCode::SERVICE_UNAVAILABLE {
            return response;
        }
        assert!(Instant::now() < deadline, "Redis not picked up within 10 s");
        // The answer's Retry-After is a second; a test may ask sooner.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `PATCH /api/v1/posts/{id}` through `instance`, expecting `version`.
fn update_request(
    http: &Client,
    instance: &Instance,
    token: &str,
    post_id: &str,
    version: i64,
    title: &str,
) -> reqwest::RequestBuilder {
    http.patch(instance.url(&format!("/api/v1/posts/{post_id}")))
        .bearer_auth(token)
        .header("if-match", format!("\"{version}\""))
        .json(&json!({ "title": title }))
}
