//! Progress streams for long-running work: the handler answers at once with an event stream,
//! and the work reports as it goes.
//!
//! ```
//! use arbor::{ApiError, Response};
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Report { rows: usize }
//!
//! pub async fn POST() -> Response {
//!     arbor::progress::stream(|progress| async move {
//!         progress.step(10, "fetching data").await;
//!         let rows = fetch().await?;              // `?` on any error: a safe 500 message
//!         progress.processing(50).await;
//!         Ok(Report { rows })
//!     })
//! }
//! # async fn fetch() -> Result<usize, ApiError> { Ok(3) }
//! ```
//!
//! The client receives (ids increase from 1; `started` is sent before the work begins):
//!
//! ```text
//! id: 1
//! event: started
//! data: {"status":"started","progress":0}
//!
//! id: 2
//! event: processing
//! data: {"status":"processing","progress":10,"message":"fetching data"}
//!
//! id: 3
//! event: processing
//! data: {"status":"processing","progress":50}
//!
//! id: 4
//! event: complete
//! data: {"status":"complete","progress":100,"result":{"rows":3}}
//! ```
//!
//! If the work returns an [`ApiError`], the last event is
//! `event: error` with `{"status":"error","error":CODE,"message":..}` (plus `details` if
//! any): the same safe fields the error would have as a response. An internal error's cause
//! (`ApiError::internal_with`, or `?` on an `io::Error`/`anyhow::Error`) and a panic are
//! logged in full, inside the request's span, and the client only sees
//! `"An unexpected error occurred"`.
//!
//! The work runs in its own task, so it isn't held back by a slow client beyond the event
//! buffer ([`ProgressStream::buffer`], 16 events): `processing(..).await` waits for room,
//! [`Progress::try_processing`] drops the update instead. When the client disconnects, the
//! response body is dropped and the task is aborted at its next `.await`.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use crate::sse::{event_stream_response, DEFAULT_HEARTBEAT};
use crate::ApiError;

/// Runs `work` in a task and streams its progress; see the [module docs](self).
pub fn stream<F, Fut, T>(work: F) -> Response
where
    F: FnOnce(Progress) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
    T: Serialize + Send + 'static,
{
    ProgressStream::new().run(work)
}

/// Settings of a progress stream; [`stream`] uses the defaults.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct ProgressStream {
    buffer: usize,
    heartbeat: Duration,
}

impl Default for ProgressStream {
    fn default() -> Self {
        Self {
            buffer: 16,
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }
}

impl ProgressStream {
    /// The defaults: 16 buffered events, a heartbeat comment every 30 s of silence.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events may wait for a slow client before [`Progress::processing`] waits.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// The interval of `: heartbeat` comments while the work sends nothing.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval.max(Duration::from_millis(1));
        self
    }

    /// Runs `work` in a task and streams its progress.
    pub fn run<F, Fut, T>(self, work: F) -> Response
    where
        F: FnOnce(Progress) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
        T: Serialize + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.buffer);
        let progress = Progress { tx: tx.clone() };
        // The handler runs inside the request's span: so do the work and its logs.
        let span = tracing::Span::current();
        let task = tokio::spawn(
            async move {
                let outcome = AssertUnwindSafe(async move { work(progress).await })
                    .catch_unwind()
                    .await;
                let last = match outcome {
                    Ok(Ok(value)) => match serde_json::to_value(&value) {
                        Ok(result) => Update::Complete(result),
                        Err(error) => {
                            tracing::error!(error = %error, "progress result not serializable");
                            Update::Failed(ApiError::internal())
                        }
                    },
                    Ok(Err(error)) => Update::Failed(error),
                    Err(panic) => {
                        tracing::error!(
                            panic = %crate::logging::panic_message(&*panic),
                            "progress work panicked"
                        );
                        Update::Failed(ApiError::internal())
                    }
                };
                if let Update::Failed(error) = &last {
                    // `into_response` logs the error (with its full cause) in this span; the
                    // client gets only the safe fields, as an event.
                    drop(error.clone().into_response());
                }
                let _ = tx.send(last).await;
            }
            .instrument(span),
        );
        let body = ProgressBody {
            next_id: 1,
            started: false,
            rx,
            heartbeat_every: self.heartbeat,
            heartbeat: Box::pin(tokio::time::sleep(self.heartbeat)),
            done: false,
            _task: AbortOnDrop(task),
        };
        event_stream_response(Body::from_stream(body.map(Ok::<_, Infallible>)))
    }
}

/// The work's handle on its stream. Each method returns whether the event was queued
/// (`false` once the client is gone).
#[derive(Debug, Clone)]
pub struct Progress {
    tx: mpsc::Sender<Update>,
}

#[derive(Debug)]
enum Update {
    Processing {
        percent: u8,
        message: Option<String>,
    },
    Custom {
        name: String,
        data: serde_json::Value,
    },
    Complete(serde_json::Value),
    Failed(ApiError),
}

impl Progress {
    /// Sends `processing` with a percentage (clamped to 100), waiting while the buffer is full.
    pub async fn processing(&self, percent: u8) -> bool {
        self.tx
            .send(Update::Processing {
                percent: percent.min(100),
                message: None,
            })
            .await
            .is_ok()
    }

    /// Sends `processing` with a percentage and a message (`"message": ..`, shown to the
    /// client: keep it safe).
    pub async fn step(&self, percent: u8, message: impl Into<String>) -> bool {
        self.tx
            .send(Update::Processing {
                percent: percent.min(100),
                message: Some(message.into()),
            })
            .await
            .is_ok()
    }

    /// Sends `processing` if the buffer has room, else drops it (a later update supersedes
    /// it). For synchronous callbacks, such as [`crate::upload::Upload::save`]'s.
    pub fn try_processing(&self, percent: u8) -> bool {
        self.tx
            .try_send(Update::Processing {
                percent: percent.min(100),
                message: None,
            })
            .is_ok()
    }

    /// Sends a custom event `name` with JSON `data`. The names `started`, `complete` and
    /// `error` are reserved, and a name must be one non-empty line; such events, and data that
    /// doesn't serialize, are logged and not sent.
    pub async fn send<T: Serialize + ?Sized>(&self, name: &str, data: &T) -> bool {
        if matches!(name, "started" | "complete" | "error")
            || crate::events::validate_name(name).is_err()
        {
            tracing::error!(event = name, "progress event name refused");
            return false;
        }
        let data = match serde_json::to_value(data) {
            Ok(data) => data,
            Err(error) => {
                tracing::error!(event = name, error = %error, "progress event not serializable");
                return false;
            }
        };
        self.tx
            .send(Update::Custom {
                name: name.to_owned(),
                data,
            })
            .await
            .is_ok()
    }

    /// Whether the client has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes when the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// Aborts the work when the response body is dropped (the client disconnected).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ProgressBody {
    next_id: u64,
    started: bool,
    rx: mpsc::Receiver<Update>,
    heartbeat_every: Duration,
    heartbeat: Pin<Box<Sleep>>,
    done: bool,
    _task: AbortOnDrop,
}

impl ProgressBody {
    fn frame(&mut self, name: &str, data: &serde_json::Value) -> Bytes {
        let id = self.next_id;
        self.next_id += 1;
        let next = Instant::now() + self.heartbeat_every;
        self.heartbeat.as_mut().reset(next);
        Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
    }

    fn render(&mut self, update: Update) -> Bytes {
        match update {
            Update::Processing { percent, message } => {
                let mut data = json!({ "status": "processing", "progress": percent });
                if let Some(message) = message {
                    data["message"] = message.into();
                }
                self.frame("processing", &data)
            }
            Update::Custom { name, data } => self.frame(&name, &data),
            Update::Complete(result) => {
                self.done = true;
                let data = json!({ "status": "complete", "progress": 100, "result": result });
                self.frame("complete", &data)
            }
            Update::Failed(error) => {
                self.done = true;
                let mut data = json!({
                    "status": "error",
                    "error": error.code(),
                    "message": error.message(),
                });
                if let Some(details) = error.details() {
                    data["details"] = details.clone();
                }
                self.frame("error", &data)
            }
        }
    }
}

impl Stream for ProgressBody {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.started {
            this.started = true;
            let data = json!({ "status": "started", "progress": 0 });
            return Poll::Ready(Some(this.frame("started", &data)));
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(update)) => return Poll::Ready(Some(this.render(update))),
            Poll::Ready(None) => {
                // The task ended without a last event: it was cancelled (runtime shutdown).
                return Poll::Ready(Some(this.render(Update::Failed(ApiError::internal()))));
            }
            Poll::Pending => {}
        }
        if this.heartbeat.as_mut().poll(cx).is_ready() {
            let next = Instant::now() + this.heartbeat_every;
            this.heartbeat.as_mut().reset(next);
            return Poll::Ready(Some(Bytes::from_static(b": heartbeat\n\n")));
        }
        Poll::Pending
    }
}
