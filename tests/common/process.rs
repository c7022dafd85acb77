//! The reference app's binary as a real process, for the tests that need one (to signal it and
//! see it exit, to read its log lines); waited for by what it prints, not by polling.

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
        let mut app = Self::spawn(env, dir);
        app.listening().await;
        app
    }

    /// Like [`AppProcess::start`] without waiting: several instances can start at the same
    /// moment, then each is waited for with [`AppProcess::listening`].
    pub fn spawn(env: &[(&str, String)], dir: &std::path::Path) -> Self {
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
        Self {
            child: Some(child),
            base: String::new(),
            lines,
        }
    }

    /// Waits until the app says where it listens, and keeps that as [`AppProcess::base`].
    pub async fn listening(&mut self) {
        self.base = self.url_after("listening on http://").await;
    }

    /// Waits for the next line that contains `marker` (ending in `http://`) and returns the
    /// URL that starts there (a JSON log line goes on with `",...` after it).
    pub async fn url_after(&mut self, marker: &str) -> String {
        let line = self.line_containing(marker).await;
        let at = line.find(marker).unwrap() + marker.len() - "http://".len();
        line[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ".:/[]".contains(*c))
            .collect()
    }

    /// The shared HTTP client pointed at the app.
    pub fn client(&self) -> Client {
        Client::new(self.base.clone())
    }

    /// `path` on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
