//! A raw HTTP/1.1 client over `TcpStream` for the streaming tests: it writes requests by hand,
//! decodes the chunked body itself, and parses Server-Sent Events from the bytes, so the tests
//! see exactly what a browser would.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use arbor::{Router, ServeOptions, Shutdown};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A server on 127.0.0.1:0, shut down through its handle (never by a signal).
pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(router: Router) -> Self {
        Self::start_with(router, ServeOptions::default()).await
    }

    pub async fn start_with(router: Router, options: ServeOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options = options.signals(false);
        let shutdown = options.shutdown.clone();
        let task = tokio::spawn(arbor::serve_with(listener, router, options));
        Self {
            addr,
            shutdown,
            task,
        }
    }
}

/// One frame of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `: text`
    Comment(String),
    /// `id:`, `event:` and `data:` lines.
    Event {
        id: Option<String>,
        event: Option<String>,
        data: String,
    },
}

impl Frame {
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Event { event, .. } => event.as_deref(),
            Self::Comment(_) => None,
        }
    }

    pub fn id(&self) -> Option<u64> {
        match self {
            Self::Event { id, .. } => id.as_deref().map(|id| id.parse().unwrap()),
            Self::Comment(_) => None,
        }
    }

    pub fn json(&self) -> Value {
        match self {
            Self::Event { data, .. } => serde_json::from_str(data).unwrap(),
            Self::Comment(c) => panic!("expected an event, got comment {c:?}"),
        }
    }

    fn parse(text: &str) -> Self {
        if let Some(comment) = text.strip_prefix(':') {
            assert!(!text.contains('\n'), "one comment per frame: {text:?}");
            return Self::Comment(comment.trim_start().to_owned());
        }
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in text.split('\n') {
            let (field, value) = line.split_once(": ").unwrap_or((line, ""));
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                other => panic!("unexpected SSE field {other:?} in {text:?}"),
            }
        }
        Self::Event {
            id,
            event,
            data: data.join("\n"),
        }
    }
}

/// A response read off the wire.
pub struct Conn {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    raw: Vec<u8>,
    body: Vec<u8>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    chunked: bool,
    remaining: Option<usize>,
    pub ended: bool,
}

impl Conn {
    /// Connects, sends `head` (request line and headers, without the blank line) and
    /// `body`, and reads the response head.
    pub async fn open(addr: SocketAddr, head: &str, body: &[u8]) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut request = format!("{head}\r\nHost: {addr}\r\n");
        if !body.is_empty() && !head.to_ascii_lowercase().contains("transfer-encoding") {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        Self::read_head(Box::new(stream)).await
    }

    /// Reads a response head from a stream the caller writes (or has written) a request to.
    pub async fn read_head(reader: Box<dyn AsyncRead + Send + Unpin>) -> Self {
        let mut conn = Self {
            reader,
            raw: Vec::new(),
            body: Vec::new(),
            status: 0,
            headers: Vec::new(),
            chunked: false,
            remaining: None,
            ended: false,
        };
        let end = loop {
            if let Some(end) = find(&conn.raw, b"\r\n\r\n") {
                break end;
            }
            assert!(
                conn.fill().await,
                "connection closed before the response head"
            );
        };
        let head = String::from_utf8(conn.raw[..end].to_vec()).unwrap();
        conn.raw.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        conn.status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            conn.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        conn.chunked = conn
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        conn.remaining = conn.header("content-length").map(|v| v.parse().unwrap());
        conn.decode();
        conn
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads more bytes from the socket; `false` at EOF (or a reset).
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match tokio::time::timeout(PATIENCE, self.reader.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => false,
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            Err(_) => panic!("no bytes from the server within {PATIENCE:?}"),
        }
    }

    /// Moves what can be decoded from the raw bytes into the body.
    fn decode(&mut self) {
        if !self.chunked {
            let take = self
                .remaining
                .map_or(self.raw.len(), |r| r.min(self.raw.len()));
            self.body.extend(self.raw.drain(..take));
            if let Some(remaining) = self.remaining.as_mut() {
                *remaining -= take;
                self.ended = *remaining == 0;
            }
            return;
        }
        loop {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = std::str::from_utf8(&self.raw[..line_end]).unwrap();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
            if size == 0 {
                if self.raw.len() >= line_end + 4 {
                    self.raw.drain(..line_end + 4);
                    self.ended = true;
                }
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let chunk: Vec<u8> = self.raw.drain(..line_end + 2 + size + 2).collect();
            self.body
                .extend_from_slice(&chunk[line_end + 2..line_end + 2 + size]);
        }
    }

    /// The next SSE frame, or `None` when the response body ends (or the connection closes).
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = find(&self.body, b"\n\n") {
                let text = String::from_utf8(self.body[..end].to_vec()).unwrap();
                self.body.drain(..end + 2);
                return Some(Frame::parse(&text));
            }
            if self.ended || !self.fill().await {
                assert!(
                    self.body.is_empty(),
                    "stream ended mid-frame: {:?}",
                    String::from_utf8_lossy(&self.body)
                );
                self.ended = true;
                return None;
            }
            self.decode();
        }
    }

    /// The next frame that is an event (skipping heartbeats).
    pub async fn next_event(&mut self) -> Option<Frame> {
        loop {
            match self.next_frame().await? {
                Frame::Comment(_) => continue,
                event => return Some(event),
            }
        }
    }

    /// Reads the whole body (until its length, the last chunk, or EOF).
    pub async fn body(&mut self) -> Vec<u8> {
        while !self.ended {
            if !self.fill().await {
                self.ended = true;
                break;
            }
            self.decode();
        }
        std::mem::take(&mut self.body)
    }

    pub async fn json(&mut self) -> Value {
        let body = self.body().await;
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `multipart/form-data` body: `(name, filename, content type, content)` per part.
pub const BOUNDARY: &str = "----arbor-test-boundary-7MA4YWxkTrZu0gW";

/// One part: name, file name, content type, content.
pub type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, content_type, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(file_name) = file_name {
            disposition.push_str(&format!("; filename=\"{file_name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The process's resident memory, from `/proc/self/status`.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Polls `condition` every 5 ms until it holds; panics after [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
