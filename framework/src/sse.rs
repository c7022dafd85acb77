//! Server-Sent Events for long-lived subscriptions.
//!
//! [`Sse`] is an extractor (it reads `Last-Event-ID` and the server's [`Shutdown`] handle) and
//! a builder for the response:
//!
//! ```
//! use std::time::Duration;
//! use arbor::events::Bus;
//! use arbor::sse::Sse;
//! use arbor::{ApiError, Extension, Response};
//!
//! pub async fn GET(sse: Sse, Extension(bus): Extension<Bus>) -> Result<Response, ApiError> {
//!     let user_id = 42; // from the session
//!     sse.connected(&serde_json::json!({ "userId": user_id }))
//!         .heartbeat(Duration::from_secs(30))
//!         .on_close(move || tracing::info!(user_id, "event stream closed"))
//!         .subscribe(&bus, &format!("user:{user_id}"))
//!         .await
//! }
//! ```
//!
//! The stream sends, in order:
//!
//! ```text
//! event: connected            (always first; no id, so the client's Last-Event-ID is kept)
//! data: {"userId":42}
//!
//! id: 1723000000000001        (events from the bus; after a reconnect with Last-Event-ID,
//! event: post.updated          the missed ones still in the topic's replay buffer come first)
//! data: {"postId":7}
//!
//! : heartbeat                 (a comment after each idle interval; keeps proxies from
//!                              closing the connection, and finds dead clients)
//! event: lagged               (only if this client fell behind and skipped events)
//! data: {"missed":12}
//!
//! event: shutdown             (when the server shuts down; then the stream ends)
//! data: {"reason":"server shutting down"}
//! ```
//!
//! Nothing is spawned: the response body itself polls the subscription, the heartbeat timer
//! and the shutdown signal. When the client goes away, hyper drops the body, and with it the
//! subscription, the timer and the [`Sse::on_close`] hook, which runs exactly once in every
//! case (disconnect, shutdown, end of the source, or a response that was never sent).
//!
//! Backpressure: the body is polled only when the connection can take more bytes, so a client
//! that reads slowly makes its subscription fall behind (and skip, see
//! [`crate::events::Message::Lagged`]), never the server buffer more.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use http::request::Parts;
use http::{header, HeaderValue};
use serde::Serialize;
use tokio::time::{Instant, Sleep};

use crate::events::{Bus, Message};
use crate::{ApiError, Shutdown};

/// The default interval between heartbeat comments: 30 seconds.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// The headers of every event stream: `text/event-stream`, no caching, no proxy buffering.
pub(crate) fn event_stream_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx (and others that honour it) would otherwise hold events back in a buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// An SSE event for [`Sse::stream`]: `id:` (optional), `event:` (optional) and JSON `data:`.
#[derive(Debug, Clone)]
pub struct SseEvent {
    frame: Bytes,
}

impl SseEvent {
    /// Event `name` with `data` serialized as JSON.
    ///
    /// # Errors
    /// When `data` doesn't serialize or `name` is empty or has a line break.
    pub fn json<T: Serialize + ?Sized>(
        name: &str,
        data: &T,
    ) -> Result<Self, crate::events::BusError> {
        crate::events::validate_name(name)?;
        let data = serde_json::to_string(data)
            .map_err(|e| crate::events::BusError::Serialize(e.to_string()))?;
        Ok(Self {
            frame: Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        })
    }

    /// Event `name` with `data` as JSON and an `id:` (what the client sends back as
    /// `Last-Event-ID` when it reconnects).
    ///
    /// # Errors
    /// As [`SseEvent::json`].
    pub fn json_with_id<T: Serialize + ?Sized>(
        id: u64,
        name: &str,
        data: &T,
    ) -> Result<Self, crate::events::BusError> {
        let event = Self::json(name, data)?;
        let mut frame = format!("id: {id}\n").into_bytes();
        frame.extend_from_slice(&event.frame);
        Ok(Self {
            frame: frame.into(),
        })
    }

    /// A comment line (`: text`), ignored by clients. Line breaks are replaced by spaces.
    pub fn comment(text: &str) -> Self {
        let text = text.replace(['\n', '\r'], " ");
        Self {
            frame: Bytes::from(format!(": {text}\n\n")),
        }
    }

    /// The exact bytes sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.frame
    }
}

/// The SSE extractor and response builder. See the [module docs](self).
#[must_use = "build the response with `subscribe` or `stream`"]
pub struct Sse {
    last_event_id: Option<String>,
    shutdown: Shutdown,
    heartbeat: Duration,
    connected: Bytes,
    on_close: Option<Box<dyn FnOnce() + Send + 'static>>,
}

impl fmt::Debug for Sse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sse")
            .field("last_event_id", &self.last_event_id)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Sse {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let shutdown = Shutdown::from_request_parts(parts, state).await?;
        let last_event_id = parts
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        Ok(Self::new(shutdown).last_event_id(last_event_id))
    }
}

impl Sse {
    /// A builder watching `shutdown` (the extractor fills both in from the request).
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            last_event_id: None,
            shutdown,
            heartbeat: DEFAULT_HEARTBEAT,
            connected: Bytes::from_static(b"event: connected\ndata: {}\n\n"),
            on_close: None,
        }
    }

    /// Overrides the `Last-Event-ID` the client sent.
    pub fn last_event_id(mut self, id: Option<String>) -> Self {
        self.last_event_id = id;
        self
    }

    /// The `Last-Event-ID` the client sent, as a bus event id (`None` if absent or not a
    /// number).
    pub fn resume_after(&self) -> Option<u64> {
        self.last_event_id.as_deref().and_then(|v| v.parse().ok())
    }

    /// The interval between heartbeat comments while no event is sent (default 30 s).
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval.max(Duration::from_millis(1));
        self
    }

    /// The data of the initial `connected` event (default `{}`). Data that doesn't serialize
    /// is logged and replaced by `{}`.
    pub fn connected<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        match SseEvent::json("connected", data) {
            Ok(event) => self.connected = event.frame,
            Err(error) => tracing::error!(error = %error, "SSE connected data not serializable"),
        }
        self
    }

    /// Runs `hook` once when the stream ends for any reason: the client disconnected, the
    /// server shut down, the source ended, or the response was dropped before being sent.
    pub fn on_close(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_close = Some(Box::new(hook));
        self
    }

    /// Subscribes to `topic` on `bus` (resuming after `Last-Event-ID` if the client sent
    /// one) and streams its events.
    ///
    /// # Errors
    /// `500` when the bus can't subscribe (the cause is logged, not sent).
    pub async fn subscribe(self, bus: &Bus, topic: &str) -> Result<Response, ApiError> {
        let subscription = bus.subscribe(topic, self.resume_after()).await?;
        let topic = subscription.topic().to_owned();
        let frames = subscription.map(move |message| match message {
            Message::Event(event) => event.sse_frame(),
            Message::Lagged(missed) => {
                tracing::warn!(topic = %topic, missed, "SSE client too slow: skipped events");
                Bytes::from(format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n"))
            }
        });
        Ok(self.into_response_with(frames.boxed()))
    }

    /// Streams events from any source. The stream ends when `events` ends (after the
    /// `connected` event, heartbeats and shutdown handling as for [`Sse::subscribe`]).
    pub fn stream<St>(self, events: St) -> Response
    where
        St: Stream<Item = SseEvent> + Send + 'static,
    {
        self.into_response_with(events.map(|e| e.frame).boxed())
    }

    fn into_response_with(self, source: BoxStream<'static, Bytes>) -> Response {
        let body = SseBody {
            connected: Some(self.connected),
            source,
            heartbeat_every: self.heartbeat,
            heartbeat: Box::pin(tokio::time::sleep(self.heartbeat)),
            shutdown: Some(Box::pin(self.shutdown.triggered())),
            done: false,
            events_sent: ::metrics::counter!(crate::metrics::SSE_EVENTS_SENT),
            _open: OpenStream::new(),
            _on_close: CloseGuard(self.on_close),
        };
        event_stream_response(Body::from_stream(body.map(Ok::<_, Infallible>)))
    }
}

impl IntoResponse for SseEvent {
    fn into_response(self) -> Response {
        event_stream_response(Body::from(self.frame))
    }
}

/// Runs the hook when dropped.
struct CloseGuard(Option<Box<dyn FnOnce() + Send + 'static>>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            hook();
        }
    }
}

/// Counts the stream in `arbor_sse_connections` while its body lives.
struct OpenStream(::metrics::Gauge);

impl OpenStream {
    fn new() -> Self {
        let open = ::metrics::gauge!(crate::metrics::SSE_CONNECTIONS);
        open.increment(1.0);
        Self(open)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

const HEARTBEAT: &[u8] = b": heartbeat\n\n";
const SHUTDOWN: &[u8] = b"event: shutdown\ndata: {\"reason\":\"server shutting down\"}\n\n";

/// The response body: connected event, then events, heartbeats and the shutdown event.
struct SseBody {
    connected: Option<Bytes>,
    source: BoxStream<'static, Bytes>,
    heartbeat_every: Duration,
    heartbeat: Pin<Box<Sleep>>,
    shutdown: Option<BoxFuture<'static, ()>>,
    done: bool,
    events_sent: ::metrics::Counter,
    _open: OpenStream,
    _on_close: CloseGuard,
}

impl SseBody {
    fn sent(&mut self) {
        let next = Instant::now() + self.heartbeat_every;
        self.heartbeat.as_mut().reset(next);
    }
}

impl Stream for SseBody {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(connected) = this.connected.take() {
            this.sent();
            return Poll::Ready(Some(connected));
        }
        if let Some(shutdown) = this.shutdown.as_mut() {
            if shutdown.as_mut().poll(cx).is_ready() {
                this.shutdown = None;
                this.done = true;
                return Poll::Ready(Some(Bytes::from_static(SHUTDOWN)));
            }
        }
        match this.source.as_mut().poll_next(cx) {
            Poll::Ready(Some(frame)) => {
                this.sent();
                this.events_sent.increment(1);
                return Poll::Ready(Some(frame));
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if this.heartbeat.as_mut().poll(cx).is_ready() {
            this.sent();
            return Poll::Ready(Some(Bytes::from_static(HEARTBEAT)));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn the_close_hook_runs_once_even_if_the_response_is_never_sent() {
        let closed = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&closed);
        let response = Sse::new(Shutdown::new())
            .on_close(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .stream(futures_util::stream::pending());
        assert_eq!(closed.load(Ordering::SeqCst), 0);
        drop(response);
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn events_are_framed() {
        let event = SseEvent::json_with_id(3, "tick", &serde_json::json!({"n": 1})).unwrap();
        assert_eq!(event.as_bytes(), b"id: 3\nevent: tick\ndata: {\"n\":1}\n\n");
        assert_eq!(SseEvent::comment("a\nb").as_bytes(), b": a b\n\n");
        assert!(SseEvent::json("a\nb", &1).is_err());
    }
}
