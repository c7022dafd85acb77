//! SSE delivery latency across instances: processes of the reference app (release build) on one
//! SQLite database, two of them (A, B) on one Redis, and the time from updating a post until
//! its `post.updated` event reaches a subscriber; the baseline is a third process (M) with the
//! embedded in-memory event bus.
//!
//! ```text
//! cargo bench --bench sse_across_instances           # 300 updates per scenario
//! BENCH_UPDATES=1000 cargo bench --bench sse_across_instances
//! ```
//!
//! Needs `redis-server` (the test command installs it; `apt-get install redis-server`). The
//! benchmark starts its own on a free loopback port. The app processes run on CPU 1 when
//! `taskset` is there; the client is not pinned.
//!
//! Each sample runs from sending the `PATCH` until the event is read, so it includes the update
//! itself (a database write). Updates alternate between M and A, one at a time (latency, not
//! throughput); the difference between the two, per pair, is what Redis adds: the `XADD`, the
//! `PUBLISH` and the listener's delivery. With Redis, A's own subscribers are served by the same
//! listener as B's, so A and B should be alike. Then 200 subscribers on M and 200 on B, each
//! update timed until the last of them has the event.

#![allow(clippy::unwrap_used)]

#[path = "../redis/tests/support/own_redis.rs"]
mod own_redis;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use own_redis::OwnRedis;

/// One app process; killed on drop.
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

fn start(
    database_url: &str,
    redis_url: Option<&str>,
    dir: &std::path::Path,
    name: &str,
) -> Instance {
    let app = env!("CARGO_BIN_EXE_arbor-app");
    let pinned = Command::new("taskset").arg("-V").output().is_ok();
    let mut command = if pinned {
        let mut command = Command::new("taskset");
        command.args(["-c", "1", app]);
        command
    } else {
        Command::new(app)
    };
    if let Some(redis_url) = redis_url {
        command.env("REDIS_URL", redis_url);
    }
    let mut child = command
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("DATABASE_URL", database_url)
        .env("ARBOR_UPLOAD_DIR", dir.join(format!("uploads-{name}")))
        .env("RUST_LOG", "warn,arbor_app=info")
        .env_remove("ARBOR_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the app exited before listening")
            .unwrap();
        if let Some(at) = line.find("listening on http://") {
            break line[at + "listening on ".len()..].trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Instance { child, base }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open `GET /api/v1/events` stream.
struct Subscriber {
    body: ByteStream,
    buffer: String,
}

impl Subscriber {
    async fn open(http: &reqwest::Client, instance: &Instance, token: &str) -> Self {
        let response = http
            .get(format!("{}/api/v1/events", instance.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut subscriber = Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        };
        assert_eq!(subscriber.next_event().await, "connected");
        subscriber
    }

    /// The next event's name (heartbeats and comments skipped).
    async fn next_event(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event: ")) {
                    return name.to_owned();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("no event within 10 s")
                .expect("the stream ended")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Waits for `post.updated`.
    async fn updated(&mut self) {
        while self.next_event().await != "post.updated" {}
    }
}

/// Median and 99th percentile of `samples`, in milliseconds.
fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let updates: usize = std::env::var("BENCH_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let redis = OwnRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    // One after the other: the first creates the schema.
    let m = start(&database_url, None, dir.path(), "m");
    let a = start(&database_url, Some(&redis.url()), dir.path(), "a");
    let b = start(&database_url, Some(&redis.url()), dir.path(), "b");
    let http = reqwest::Client::new();

    let registered: Value = http
        .post(format!("{}/api/v1/register", a.base))
        .json(
            &json!({ "email": "bench@example.com", "name": "Bench", "password": "Str0ngPassw0rd" }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["token"].as_str().unwrap().to_owned();
    let post: Value = http
        .post(format!("{}/api/v1/posts", a.base))
        .bearer_auth(&token)
        .json(&json!({ "title": "t", "body": "b" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let post_path = format!("/api/v1/posts/{}", post["id"].as_str().unwrap());
    let mut version = post["version"].as_i64().unwrap();
    let mut update = async |through: &Instance| {
        let response = http
            .patch(format!("{}{post_path}", through.base))
            .bearer_auth(&token)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({ "title": format!("v{}", version + 1) }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        version += 1;
    };

    // Scenario 1: alternately, an update through M seen on M, and one through A seen on A
    // and on B.
    let mut on_m = Subscriber::open(&http, &m, &token).await;
    let mut on_a = Subscriber::open(&http, &a, &token).await;
    let mut on_b = Subscriber::open(&http, &b, &token).await;
    let (mut memory, mut same, mut across, mut added) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in 0..updates + 20 {
        let sent = Instant::now();
        let ((), at_m) = tokio::join!(update(&m), async {
            on_m.updated().await;
            sent.elapsed()
        });
        let sent = Instant::now();
        let ((), at_a, at_b) = tokio::join!(
            update(&a),
            async {
                on_a.updated().await;
                sent.elapsed()
            },
            async {
                on_b.updated().await;
                sent.elapsed()
            }
        );
        if n >= 20 {
            // The first updates warm the connections and caches up.
            memory.push(at_m);
            same.push(at_a);
            across.push(at_b);
            added.push((at_b.as_secs_f64() - at_m.as_secs_f64()) * 1000.0);
        }
    }
    drop((on_m, on_a, on_b));

    // Scenario 2: 200 subscribers on M and 200 on B, an update timed until the last of them
    // has the event, alternately through M and through A.
    let (mut many_on_m, mut many_on_b) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        many_on_m.push(Subscriber::open(&http, &m, &token).await);
        many_on_b.push(Subscriber::open(&http, &b, &token).await);
    }
    let (mut to_all_memory, mut to_all_across) = (Vec::new(), Vec::new());
    for n in 0..updates / 3 + 5 {
        for (through, subscribers, samples) in [
            (&m, &mut many_on_m, &mut to_all_memory),
            (&a, &mut many_on_b, &mut to_all_across),
        ] {
            let sent = Instant::now();
            let all =
                futures_util::future::join_all(subscribers.iter_mut().map(Subscriber::updated));
            let ((), _) = tokio::join!(update(through), all);
            if n >= 5 {
                samples.push(sent.elapsed());
            }
        }
    }

    let rows = [
        (
            "in-memory bus: update through M → subscriber on M",
            &mut memory,
        ),
        ("Redis bus: update through A → subscriber on A", &mut same),
        ("Redis bus: update through A → subscriber on B", &mut across),
        (
            "in-memory bus: update through M → all of 200 subscribers on M",
            &mut to_all_memory,
        ),
        (
            "Redis bus: update through A → all of 200 subscribers on B",
            &mut to_all_across,
        ),
    ];
    println!("| path | updates | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (path, samples) in rows {
        let count = samples.len();
        let (p50, p99) = summary(samples);
        println!("| {path} | {count} | {p50:.2} | {p99:.2} |");
    }
    added.sort_by(f64::total_cmp);
    println!(
        "\nAdded by Redis (B − M, median of the per-pair differences): {:.2} ms",
        added[added.len() / 2]
    );
}
