//! A redis-server of a test's own, which the test may stop and restart. Shared by the Redis
//! crate's tests and the app's multi-instance test (included by path: both are test crates).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

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

    /// A server of the test's own, or `None` (with a note: the test is skipped) when there is
    /// no `redis-server` to start, unless `ARBOR_REQUIRE_REDIS=1` (the test command) makes that a
    /// failure.
    pub fn start_if_installed() -> Option<Self> {
        let installed = Command::new(binary())
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if installed {
            return Some(Self::start());
        }
        if std::env::var("ARBOR_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
            panic!("ARBOR_REQUIRE_REDIS=1 but there is no redis-server to start");
        }
        eprintln!("note: no redis-server installed; test skipped");
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port) and waits until it says it accepts
    /// connections.
    pub fn restart(&mut self) {
        let mut child = Command::new(binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it, or run the test command)");
        let mut log = BufReader::new(child.stdout.take().unwrap()).lines();
        self.child = Some(child);
        loop {
            match log.next() {
                Some(Ok(line)) if line.contains("Ready to accept connections") => break,
                Some(Ok(_)) => {}
                _ => panic!("redis-server on port {} did not start", self.port),
            }
        }
        // Keep reading its log so that the server never blocks on a full pipe.
        std::thread::spawn(move || log.for_each(drop));
    }

    /// Kills the server and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `ARBOR_TEST_REDIS_SERVER` (set by the test command), else `redis-server` on the PATH.
fn binary() -> String {
    std::env::var("ARBOR_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
