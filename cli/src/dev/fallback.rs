//! What answers on the socket while no server runs: during the first build, after a first build
//! that failed, after a server that exited. Every request gets one JSON error and the
//! connection is closed; nothing waits in the queue for a server that is not coming.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::build::BuildFailure;

pub(crate) enum FallbackAnswer {
    /// The first build is running.
    Starting,
    BuildFailed(BuildFailure),
    /// The server exited on its own.
    Exited,
}

impl FallbackAnswer {
    fn response(&self) -> String {
        let (status, retry, body) = match self {
            Self::Starting => (
                "503 Service Unavailable",
                "retry-after: 1\r\n",
                serde_json::json!({
                    "error": "STARTING",
                    "message": "cargo arbor dev is building the app; it is served when the build is done",
                }),
            ),
            Self::BuildFailed(failure) => (
                "500 Internal Server Error",
                "",
                serde_json::json!({
                    "error": "BUILD_FAILED",
                    "message": format!("the last build failed: {}", failure.summary()),
                    "details": {
                        "file": failure.file,
                        "line": failure.line,
                        "column": failure.column,
                        "compiler": failure.rendered,
                    },
                }),
            ),
            Self::Exited => (
                "503 Service Unavailable",
                "",
                serde_json::json!({
                    "error": "SERVER_EXITED",
                    "message": "the server exited (its output is in cargo arbor dev's terminal); a saved change restarts it",
                }),
            ),
        };
        let body = body.to_string();
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             cache-control: no-store\r\n{retry}connection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

pub(crate) struct Fallback {
    answer: Arc<Mutex<FallbackAnswer>>,
    stopping: Arc<AtomicBool>,
    address: SocketAddr,
    thread: JoinHandle<()>,
}

impl Fallback {
    pub(crate) fn start(
        listener: &TcpListener,
        address: SocketAddr,
        answer: FallbackAnswer,
    ) -> std::io::Result<Self> {
        let listener = listener.try_clone()?;
        let answer = Arc::new(Mutex::new(answer));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let answer = answer.clone();
            let stopping = stopping.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let response = answer.lock().unwrap_or_else(|e| e.into_inner()).response();
                    answer_one(stream, &response);
                }
            })
        };
        Ok(Self {
            answer,
            stopping,
            address,
            thread,
        })
    }

    pub(crate) fn set(&self, answer: FallbackAnswer) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = answer;
    }

    /// Stops accepting: the next connection is left for the next server.
    pub(crate) fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocked `accept`; this connection is the one it drops.
        if TcpStream::connect(super::reachable(self.address)).is_ok() {
            let _ = self.thread.join();
        }
    }
}

/// Reads the request head (so that the client sees its answer rather than a reset), answers,
/// closes.
fn answer_one(mut stream: TcpStream, response: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}
