//! Real processes for the tests that need them: the reference app's binary (to signal it and see
//! it exit), and a redis-server of the test's own (to stop and restart it). Both are waited for
//! by what they print, not by polling.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::http::Client;

/// How long a test waits for any one thing a process should print.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Settings that would change the app's behaviour if the test's own environment had them.
const APP_SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "ARBOR_REDIS_PREFIX",
    "ARBOR_LOG_FORMAT",
    "ARBOR_TRUSTED_PROXIES",
    "ARBOR_CORS_ORIGINS",
    "ARBOR_LIVENESS_PATH",
    "ARBOR_READINESS_PATH",
    "ARBOR_READINESS_TIMEOUT_MS",
    "ARBOR_DRAIN_DELAY_MS",
    "ARBOR_SHUTDOWN_GRACE_MS",
    "ARBOR_METRICS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
];

/// The reference app as a process, listening on an ephemeral port; killed when dropped.
pub struct AppProcess {
    child: Option<Child>,
    pub base: String,
    /// Every line it prints, as it prints them.
    lines: mpsc::UnboundedReceiver<String>,
}

impl AppProcess {
    /// Starts `arbor-app` with `env` (over a clean slate of the app's settings; `PORT=0`,
    /// uploads in `dir`) and waits until it listens.
    pub async fn start(env: &[(&str, String)], dir: &std::path::Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arbor-app"));
        for name in APP_SETTINGS {
            command.env_remove(name);
        }
        command
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("ARBOR_UPLOAD_DIR", dir.join("uploads"))
            .env("RUST_LOG", "warn,arbor::serve=info,arbor_app=info")
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::unbounded_channel();
        // Reads to the end, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                    continue;
                }
            }
        });
        let mut app = Self {
            child: Some(child),
            base: String::new(),
            lines,
        };
        let line = app.line_containing("listening on http://").await;
        let at = line.find("http://").unwrap();
        // The address ends where the log line goes on (a JSON line has `",...` after it).
        app.base = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ".:/[]".contains(*c))
            .collect();
        app
    }

    /// The shared HTTP client pointed at the app.
    pub fn client(&self) -> Client {
        Client::new(self.base.clone())
    }

    /// `host:port`.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// Waits for the next line that contains `text`.
    pub async fn line_containing(&mut self, text: &str) -> String {
        let wait = async {
            loop {
                match self.lines.recv().await {
                    Some(line) if line.contains(text) => return line,
                    Some(_) => {}
                    None => panic!("the app's output ended before a line with {text:?}"),
                }
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("the app printed no line with {text:?}"))
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}: {status}");
    }

    /// Waits for the process to exit.
    pub async fn exit_status(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let wait = tokio::task::spawn_blocking(move || child.wait().unwrap());
        tokio::time::timeout(PATIENCE, wait)
            .await
            .expect("the app did not exit")
            .unwrap()
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A redis-server of the test's own on a free loopback port, which it may stop and restart on
/// the same port; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    binary: String,
    child: Option<Child>,
}

impl RedisServer {
    /// `ARBOR_TEST_REDIS_SERVER`, else `redis-server` if it is on the PATH; `None` (the test is
    /// skipped) unless `ARBOR_REQUIRE_REDIS=1`.
    pub fn binary() -> Option<String> {
        let binary = std::env::var("ARBOR_TEST_REDIS_SERVER")
            .ok()
            .filter(|b| !b.is_empty())
            .or_else(|| {
                Command::new("redis-server")
                    .arg("--version")
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
                    .then(|| "redis-server".to_owned())
            });
        if binary.is_none() && std::env::var("ARBOR_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
            panic!("ARBOR_REQUIRE_REDIS=1 but no redis-server (ARBOR_TEST_REDIS_SERVER)");
        }
        binary
    }

    pub async fn start(binary: String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            binary,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port) and waits until it says it is ready.
    pub async fn restart(&mut self) {
        let mut child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        let (ready, is_ready) = oneshot::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                } else if ready.is_some() {
                    seen.push(line);
                }
            }
            if let Some(ready) = ready {
                let _ = ready.send(Err(seen.join("\n")));
            }
        });
        match tokio::time::timeout(PATIENCE, is_ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(output))) => panic!("redis-server exited before it was ready:\n{output}"),
            _ => panic!("redis-server did not say it was ready"),
        }
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
