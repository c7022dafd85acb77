//! Reading a streaming response as it arrives: raw chunks, SSE events, progress events.

use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long [`TestStream`] waits for the next piece before it fails the test.
pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// A response whose body is read as it arrives: from
/// [`TestRequest::stream`](super::TestRequest::stream). Each read waits at most the stream's
/// timeout ([`DEFAULT_STREAM_TIMEOUT`], or [`timeout`](Self::timeout)) and fails the test with
/// what arrived so far if nothing comes: a stream that stalls is a failing test, not a hung one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use arbor::test::{ProgressEvent, TestClient};
/// use axum::{routing::post, Router};
///
/// let route = post(|| async {
///     arbor::progress::stream(|progress| async move {
///         progress.step(50, "halfway").await;
///         Ok::<_, arbor::ApiError>(serde_json::json!({ "rows": 3 }))
///     })
/// });
/// let client = TestClient::new(Router::new().route("/report", route));
/// let mut stream = client.post("/report").stream().await;
/// assert_eq!(stream.next_progress().await, Some(ProgressEvent::Started));
/// assert!(matches!(
///     stream.next_progress().await,
///     Some(ProgressEvent::Processing { progress: 50, .. })
/// ));
/// let Some(ProgressEvent::Complete { result }) = stream.next_progress().await else { panic!() };
/// assert_eq!(result["rows"], 3);
/// assert_eq!(stream.next_progress().await, None);
/// # }
/// ```
#[derive(Debug)]
pub struct TestStream {
    status: StatusCode,
    headers: HeaderMap,
    body: Body,
    /// Received and not yet handed out.
    buffer: BytesMut,
    ended: bool,
    timeout: Duration,
}

impl TestStream {
    pub(super) fn new(status: StatusCode, headers: HeaderMap, body: Body) -> Self {
        Self {
            status,
            headers,
            body,
            buffer: BytesMut::new(),
            ended: false,
            timeout: DEFAULT_STREAM_TIMEOUT,
        }
    }

    /// Waits at most `timeout` for each piece.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The next chunk of the body as the handler sent it; `None` at the end.
    ///
    /// # Panics
    /// If nothing arrives within the timeout, or the body fails.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.buffer.is_empty() {
            return Some(self.buffer.split().freeze());
        }
        self.receive().await
    }

    /// Everything still to come, until the end of the body.
    ///
    /// # Panics
    /// As [`next_chunk`](Self::next_chunk), for each piece.
    pub async fn rest(mut self) -> Bytes {
        let mut rest = self.buffer.split();
        while let Some(chunk) = self.receive().await {
            rest.extend_from_slice(&chunk);
        }
        rest.freeze()
    }

    /// The next SSE event (`id:`, `event:`, `data:` lines up to a blank line); comments such as
    /// heartbeats are skipped. `None` when the stream ends.
    ///
    /// # Panics
    /// As [`next_chunk`](Self::next_chunk); or if the stream ends in the middle of an event.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(frame) = self.take_frame() {
                if let Some(event) = SseEvent::parse(&frame) {
                    return Some(event);
                }
                continue;
            }
            match self.receive().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None if self.buffer.iter().all(u8::is_ascii_whitespace) => return None,
                None => panic!(
                    "the stream ended in the middle of an event: {:?}",
                    String::from_utf8_lossy(&self.buffer)
                ),
            }
        }
    }

    /// Every event until the end of the stream.
    ///
    /// # Panics
    /// As [`next_event`](Self::next_event).
    pub async fn events(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event().await {
            events.push(event);
        }
        events
    }

    /// The next event of an [`arbor::progress`](crate::progress) stream, typed; `None` when
    /// the stream ends.
    ///
    /// # Panics
    /// As [`next_event`](Self::next_event); or if the event's data is not what a progress
    /// stream sends.
    pub async fn next_progress(&mut self) -> Option<ProgressEvent> {
        let event = self.next_event().await?;
        Some(ProgressEvent::from_event(&event))
    }

    /// Takes the next complete frame (up to a blank line) off the buffer.
    fn take_frame(&mut self) -> Option<String> {
        let (end, separator) = (0..self.buffer.len()).find_map(|i| {
            let rest = &self.buffer[i..];
            if rest.starts_with(b"\n\n") {
                Some((i, 2))
            } else if rest.starts_with(b"\r\n\r\n") {
                Some((i, 4))
            } else {
                None
            }
        })?;
        let frame = self.buffer.split_to(end + separator);
        Some(String::from_utf8_lossy(&frame[..end]).replace("\r\n", "\n"))
    }

    async fn receive(&mut self) -> Option<Bytes> {
        loop {
            if self.ended {
                return None;
            }
            let frame = tokio::time::timeout(self.timeout, self.body.frame())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "nothing arrived on the stream within {:?}; unread so far: {:?}",
                        self.timeout,
                        String::from_utf8_lossy(&self.buffer)
                    )
                });
            match frame {
                None => {
                    self.ended = true;
                    return None;
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Some(data);
                        }
                    }
                }
                Some(Err(error)) => panic!("the response body failed: {error}"),
            }
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`, if sent.
    pub id: Option<String>,
    /// `event:`, if sent (the event's name; browsers call an unnamed one `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

impl SseEvent {
    /// The event's name: `event:`, or `message` when unnamed.
    pub fn name(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    /// The data parsed as JSON.
    ///
    /// # Panics
    /// If the data is not JSON of that shape, showing it.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not the expected JSON ({e}): {}", self.data))
    }

    /// Parses one frame (without its blank line); `None` for a frame of comments only.
    fn parse(frame: &str) -> Option<Self> {
        let mut event = Self {
            id: None,
            event: None,
            data: String::new(),
        };
        let mut has_data = false;
        let mut any_field = false;
        for line in frame.lines() {
            if line.starts_with(':') || line.is_empty() {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any_field = true;
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
        any_field.then_some(event)
    }
}

/// An event of an [`arbor::progress`](crate::progress) stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// `started`: sent before the work begins.
    Started,
    /// `processing`: how far the work is (0–100), with a message if one was given.
    Processing {
        /// Percent done.
        progress: u8,
        /// The step's message.
        message: Option<String>,
    },
    /// `complete`: the work's result.
    Complete {
        /// What the work returned, as JSON.
        result: Value,
    },
    /// `error`: the work failed; the fields an error response would have had.
    Failed {
        /// The error code.
        error: String,
        /// The safe message.
        message: String,
        /// Details, if any.
        details: Option<Value>,
    },
    /// An event the work sent under a name of its own.
    Custom {
        /// Its name.
        name: String,
        /// Its data.
        data: Value,
    },
}

impl ProgressEvent {
    fn from_event(event: &SseEvent) -> Self {
        let data: Value = event.json();
        let text = |field: &str| data[field].as_str().map(str::to_owned);
        match event.name() {
            "started" => Self::Started,
            "processing" => Self::Processing {
                progress: data["progress"]
                    .as_u64()
                    .and_then(|p| u8::try_from(p).ok())
                    .unwrap_or_else(|| panic!("a processing event without progress: {data}")),
                message: text("message"),
            },
            "complete" => Self::Complete {
                result: data["result"].clone(),
            },
            "error" => Self::Failed {
                error: text("error").unwrap_or_default(),
                message: text("message").unwrap_or_default(),
                details: data.get("details").cloned(),
            },
            name => Self::Custom {
                name: name.to_owned(),
                data,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SseEvent;

    #[test]
    fn parses_fields_multiline_data_and_skips_comments() {
        let event = SseEvent::parse("id: 3\nevent: tick\ndata: {\"a\":\ndata: 1}").unwrap();
        assert_eq!(event.id.as_deref(), Some("3"));
        assert_eq!(event.name(), "tick");
        assert_eq!(event.data, "{\"a\":\n1}");
        assert_eq!(event.json::<serde_json::Value>()["a"], 1);
        assert!(SseEvent::parse(": heartbeat").is_none());
        let unnamed = SseEvent::parse("data:x").unwrap();
        assert_eq!((unnamed.name(), unnamed.data.as_str()), ("message", "x"));
    }
}
