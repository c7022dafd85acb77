//! Three instances of the reference app, as real processes started at the same moment, on one
//! PostgreSQL database and one Redis: every guarantee holds across them.
//!
//! Needs the test command's servers (`ARBOR_TEST_POSTGRES_URL`, `ARBOR_TEST_REDIS_URL`); skipped
//! without them unless `ARBOR_REQUIRE_POSTGRES=1` / `ARBOR_REQUIRE_REDIS=1`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "Admin-Passw0rd";

/// One running instance: its process and base URL.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Starts `count` instances at once and waits for each to report its address.
fn start(
    count: usize,
    database_url: &str,
    redis_url: &str,
    prefix: &str,
    dir: &std::path::Path,
) -> Vec<Instance> {
    let children: Vec<Child> = (0..count)
        .map(|n| {
            Command::new(env!("CARGO_BIN_EXE_arbor-app"))
                .env("HOST", "127.0.0.1")
                .env("PORT", "0")
                .env("DATABASE_URL", database_url)
                .env("REDIS_URL", redis_url)
                .env("ARBOR_REDIS_PREFIX", prefix)
                .env("ARBOR_ADMIN_EMAIL", ADMIN_EMAIL)
                .env("ARBOR_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("ARBOR_UPLOAD_DIR", dir.join(format!("uploads-{n}")))
                .env("RUST_LOG", "info")
                .env_remove("ARBOR_LOG_FORMAT")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|mut child| {
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let base = loop {
                let Some(line) = lines.next() else {
                    let status = child.wait().unwrap();
                    panic!("an instance exited before listening: {status}");
                };
                let line = line.unwrap();
                if let Some(at) = line.find("listening on http://") {
                    break line[at + "listening on ".len()..].trim().to_owned();
                }
            };
            // Keep draining its log so that the process never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            Instance { child, base }
        })
        .collect()
}

async fn fresh_database() -> Option<String> {
    common::postgres_url()?;
    Some(common::fresh_postgres_database().await)
}

fn redis_url() -> Option<String> {
    let url = std::env::var("ARBOR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("ARBOR_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
        panic!("ARBOR_REQUIRE_REDIS=1 but ARBOR_TEST_REDIS_URL is not set");
    }
    url
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
    let (Some(database_url), Some(redis_url)) = (fresh_database().await, redis_url()) else {
        eprintln!("note: PostgreSQL or Redis not configured; multi-instance test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("multi:{}", uuid::Uuid::new_v4().simple());
    // Started together against an empty database: migrations and the administrator's creation
    // must not make any of them fail.
    let instances = start(3, &database_url, &redis_url, &prefix, dir.path());
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
        http.patch(a.url(&format!("/api/v1/posts/{post_id}")))
            .bearer_auth(&admin)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({ "title": title }))
            .send()
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
}
