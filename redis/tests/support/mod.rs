//! A real Redis for the tests: the test command's server (`ARBOR_TEST_REDIS_URL`), or one a
//! test starts and stops itself (`ARBOR_TEST_REDIS_SERVER`, else `redis-server` on the PATH).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arbor_redis::{RedisOptions, RedisStores};

/// The shared server's URL; `None` (the test is skipped) unless `ARBOR_REQUIRE_REDIS=1`.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("ARBOR_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("ARBOR_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
        panic!("ARBOR_REQUIRE_REDIS=1 but ARBOR_TEST_REDIS_URL is not set");
    }
    if url.is_none() {
        eprintln!("note: ARBOR_TEST_REDIS_URL not set; Redis test skipped");
    }
    url
}

/// Stores on the shared server under a prefix of their own, so tests never see each other's
/// keys. Two calls with the same prefix are two instances of one app.
pub async fn instance(url: &str, prefix: &str) -> RedisStores {
    RedisStores::connect_with(url, RedisOptions::default().prefix(prefix))
        .await
        .unwrap()
}

/// A prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test:{test}:{nanos}")
}

/// A redis-server of the test's own, on a free loopback port, that it may stop and restart.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port) and waits until it accepts connections.
    pub fn restart(&mut self) {
        let binary =
            std::env::var("ARBOR_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it, or run the test command)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
