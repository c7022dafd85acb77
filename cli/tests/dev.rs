//! `cargo arbor dev` as a new user meets it: the CLI installed on the `PATH` (so that `cargo
//! arbor` finds it as cargo finds any subcommand), a project from `cargo arbor new`, served by
//! `cargo arbor dev` over real TCP while the test edits it. A client opening a new connection
//! for every request runs all along; no connection may be refused, reset or answered with
//! anything but the app's own answers.
//!
//! The project builds into `target/throwaway`, beside the root package's throwaway crates and
//! with their dependencies and features, so that Arbor compiles once for both.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod project;
use project::cargo;

/// One request on a new connection; `Err` for a connection that failed (refused, reset).
fn get(address: SocketAddr, path: &str, accept: &str) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\naccept: {accept}\r\nconnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no head in {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok(Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    })
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// `cargo arbor dev`'s own lines (`[arbor dev] …`) and everything else it prints.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Dev {
    fn start(bin: &Path, project: &Path) -> Self {
        let mut child = cargo(bin, project)
            .args(["arbor", "dev"])
            .env("PORT", "0")
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let kept = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.lock().unwrap().push(line.clone());
                let _ = sender.send(line);
            }
        });
        Self { child, lines, seen }
    }

    /// The next line of `cargo arbor dev` containing `text`.
    fn wait_for(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("[arbor dev]") && line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no `{text}` from cargo arbor dev within {within:?}; it printed:\n{}",
                    self.seen.lock().unwrap().join("\n")
                ),
            }
        }
    }
}

impl Dev {
    fn terminate(mut self) -> std::process::ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Requests `path` on a new connection each time until stopped, keeping every outcome.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Result<u16, String>>>,
}

impl Traffic {
    fn start(address: SocketAddr, path: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                outcomes.push(
                    get(address, path, "application/json")
                        .map(|reply| reply.status)
                        .map_err(|e| format!("{:?}: {e}", e.kind())),
                );
            }
            outcomes
        });
        Self { stop, thread }
    }

    fn finish(self) -> Vec<Result<u16, String>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// Polls until `path` answers as `accept` says: the change is being served.
fn until_served(address: SocketAddr, path: &str, accept: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let reply = get(address, path, "application/json").unwrap();
        if accept(&reply) {
            return reply;
        }
        assert!(Instant::now() < deadline, "never served: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cargo_arbor_dev_serves_every_change_without_refusing_a_connection() {
    let bin = project::installed_cli();
    let workspace = tempfile::tempdir().unwrap();
    let created = cargo(bin.path(), workspace.path())
        .args(["arbor", "new", "my-api"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let project: PathBuf = workspace.path().join("my-api");

    let dev = Dev::start(bin.path(), &project);
    let listening = dev.wait_for("listening on http://", Duration::from_secs(60));
    let address: SocketAddr = listening
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap()
        .parse()
        .unwrap();
    // The first build compiles Arbor when nothing in target/throwaway has yet.
    dev.wait_for("serving", Duration::from_secs(1200));
    let hello = get(address, "/api/hello", "application/json").unwrap();
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, r#"{"message":"hello"}"#)
    );
    assert_eq!(get(address, "/api/items/7", "*/*").unwrap().status, 404);

    // A route added while the server runs is served after the rebuild, and the restart refuses
    // no connection: they wait in the socket's queue for the new server.
    let traffic = Traffic::start(address, "/api/hello");
    let route = cargo(bin.path(), &project)
        .args(["arbor", "route", "items/[id]", "--methods", "GET"])
        .output()
        .unwrap();
    assert!(route.status.success(), "{route:?}");
    let item = until_served(address, "/api/items/7", |reply| reply.status != 404);
    assert_eq!(item.status, 200, "{item:?}");
    assert!(item.body.contains(r#""id":"7""#), "{item:?}");
    let edit_to_served = dev.wait_for("from the change to served", Duration::from_secs(60));
    let outcomes = traffic.finish();
    let failed: Vec<_> = outcomes.iter().filter(|o| *o != &Ok(200)).collect();
    assert!(
        outcomes.len() > 10,
        "too little traffic to tell: {outcomes:?}"
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests during the restart failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
    eprintln!(
        "{} requests during the restart, all 200; {edit_to_served}",
        outcomes.len()
    );

    // A compile error keeps the last good server, which answers with the error.
    let route_file = project.join("app/api/items/[id]/route.rs");
    let good = std::fs::read_to_string(&route_file).unwrap();
    let broken = format!("{good}\npub fn broken() -> u8 {{\n    \"not a number\"\n}}\n");
    std::fs::write(&route_file, broken).unwrap();
    let failed = dev.wait_for("build failed", Duration::from_secs(600));
    assert!(failed.contains("app/api/items/[id]/route.rs:"), "{failed}");
    // The server reads the failure from its stdin on a thread of its own: the answer changes
    // a moment after the terminal line.
    let reply = until_served(address, "/api/hello", |reply| reply.status != 200);
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(
        reply.head.contains("x-request-id:"),
        "the app answers, not a stand-in: {reply:?}"
    );
    let error: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(error["error"], "BUILD_FAILED", "{error}");
    assert_eq!(
        error["details"]["file"], "app/api/items/[id]/route.rs",
        "{error}"
    );
    let line = good.lines().count() + 3;
    assert_eq!(error["details"]["line"], line, "{error}");
    assert!(
        error["details"]["compiler"]
            .as_str()
            .unwrap()
            .contains("mismatched types"),
        "{error}"
    );
    let page = get(address, "/api/hello", "text/html").unwrap();
    assert!(page.head.contains("content-type: text/html"), "{page:?}");
    assert!(
        page.body
            .contains(&format!("app/api/items/[id]/route.rs:{line}")),
        "{page:?}"
    );

    // The fix is served.
    std::fs::write(&route_file, &good).unwrap();
    until_served(address, "/api/hello", |reply| reply.status == 200);

    // SIGTERM stops the server and `cargo arbor dev`, and the socket with them.
    let status = dev.terminate();
    assert!(status.success(), "{status:?}");
    let after = TcpStream::connect(address).unwrap_err();
    assert_eq!(after.kind(), std::io::ErrorKind::ConnectionRefused);
}
