//! An event bus: publish JSON events to a topic, subscribe to a topic, resume after the last
//! event seen.
//!
//! [`Bus`] is the handle routes use; it wraps any [`EventBus`] implementation. The default,
//! [`InMemoryBus`], keeps everything in this process (one `tokio::sync::broadcast` channel per
//! topic); a Redis pub/sub implementation can be put behind the same trait without changing a
//! route.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), arbor::events::BusError> {
//! use arbor::events::{Bus, Message};
//! use futures_util::StreamExt;
//!
//! let bus = Bus::in_memory();
//! let mut events = bus.subscribe("user:42", None).await?;
//! let id = bus
//!     .publish("user:42", "post.updated", &serde_json::json!({ "postId": 7 }))
//!     .await?;
//! let Some(Message::Event(event)) = events.next().await else { panic!() };
//! assert_eq!((event.id(), event.name(), event.data()), (id, "post.updated", r#"{"postId":7}"#));
//! # Ok(()) }
//! ```
//!
//! # Guarantees of the in-memory bus
//!
//! - **Publishers never wait for subscribers.** Each topic has one bounded ring
//!   ([`BusOptions::capacity`]) shared by all its subscribers. A subscriber that falls more than
//!   `capacity` events behind skips the oldest ones and receives [`Message::Lagged`] with how
//!   many it missed; its memory does not grow.
//! - **Ids increase within a topic**, and are unique across the bus. They start from the
//!   microseconds since the Unix epoch when the bus was created, so ids handed out after a
//!   restart are greater than those before it.
//! - **Resume**: `subscribe(topic, Some(last_id))` first yields the events of the topic's replay
//!   buffer ([`BusOptions::replay`], last N events) whose id is greater than `last_id`, then live
//!   events, with no gap and no duplicate between the two.
//! - **No leaks**: dropping a [`Subscription`] unsubscribes at once. A topic without
//!   subscribers keeps its replay buffer for [`BusOptions::retention`] (so a client that
//!   reconnects can resume), and is then removed.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::ReusableBoxFuture;

use crate::store::{BoxFuture, StoreError};
use crate::ApiError;

/// One published event: a bus-assigned id, a name (the SSE `event:` field) and JSON data.
///
/// Events are shared (`Arc<Event>`) between all the subscribers of a topic; the SSE text of an
/// event is rendered once, however many clients receive it.
#[derive(Debug)]
pub struct Event {
    id: u64,
    name: Arc<str>,
    data: Arc<str>,
    frame: OnceLock<Bytes>,
}

impl Event {
    /// An event with JSON `data`. `name` must not be empty or contain a line break, and
    /// `data` must be JSON on a single line (as `serde_json::to_string` writes it).
    ///
    /// # Errors
    /// [`BusError::InvalidEvent`] otherwise.
    pub fn new(id: u64, name: &str, data: impl Into<Arc<str>>) -> Result<Self, BusError> {
        let data = data.into();
        validate_name(name)?;
        // Byte search (memchr): fast even in unoptimised builds, unlike a `char` pattern.
        if has_line_break(&data) {
            return Err(BusError::InvalidEvent(
                "event data must be single-line JSON".into(),
            ));
        }
        Ok(Self {
            id,
            name: name.into(),
            data,
            frame: OnceLock::new(),
        })
    }

    /// The id, increasing within a topic (the SSE `id:` field).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name (the SSE `event:` field), such as `post.updated`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data, as JSON text.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The data, deserialized.
    ///
    /// # Errors
    /// When the JSON doesn't match `T`.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.data)
    }

    /// `id: ..\nevent: ..\ndata: ..\n\n`, rendered on first use and then shared.
    pub(crate) fn sse_frame(&self) -> Bytes {
        self.frame
            .get_or_init(|| {
                Bytes::from(format!(
                    "id: {}\nevent: {}\ndata: {}\n\n",
                    self.id, self.name, self.data
                ))
            })
            .clone()
    }
}

fn has_line_break(text: &str) -> bool {
    text.as_bytes().contains(&b'\n') || text.as_bytes().contains(&b'\r')
}

pub(crate) fn validate_name(name: &str) -> Result<(), BusError> {
    if name.is_empty() || has_line_break(name) {
        return Err(BusError::InvalidEvent(format!(
            "event name {name:?} must be non-empty and on one line"
        )));
    }
    Ok(())
}

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum Message {
    /// The next event of the topic.
    Event(Arc<Event>),
    /// The subscriber fell behind and this many events were skipped.
    Lagged(u64),
}

/// A subscription to one topic: a stream of [`Message`]s. Dropping it unsubscribes.
#[must_use = "a subscription does nothing unless polled; dropping it unsubscribes"]
pub struct Subscription {
    topic: Arc<str>,
    inner: BoxStream<'static, Message>,
}

impl Subscription {
    /// Wraps the stream of an [`EventBus`] implementation. The stream must unsubscribe when
    /// dropped.
    pub fn new(topic: &str, inner: BoxStream<'static, Message>) -> Self {
        Self {
            topic: topic.into(),
            inner,
        }
    }

    /// The topic subscribed to.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Why the bus refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum BusError {
    /// The event's name or data can't be sent as SSE (a line break, an empty name).
    InvalidEvent(String),
    /// The event data couldn't be serialized to JSON.
    Serialize(String),
    /// The backend (Redis, ...) failed.
    Backend(StoreError),
}

impl From<StoreError> for BusError {
    fn from(error: StoreError) -> Self {
        Self::Backend(error)
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEvent(message) => write!(f, "invalid event: {message}"),
            Self::Serialize(message) => write!(f, "event data is not serializable: {message}"),
            Self::Backend(error) => write!(f, "event bus: {error}"),
        }
    }
}

impl std::error::Error for BusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Backend(error) => Some(error),
            _ => None,
        }
    }
}

/// A bus error is the server's fault: `500 INTERNAL_ERROR`, logged in full, never shown.
impl From<BusError> for ApiError {
    fn from(error: BusError) -> Self {
        ApiError::internal_with(error)
    }
}

/// A publish/subscribe backend. Implement it for Redis (or anything else) and wrap it in
/// [`Bus::new`]; routes don't change.
///
/// Futures and streams are boxed so the trait is object-safe. Implementations must:
/// never block a publisher on a slow subscriber; bound what each subscriber can buffer
/// (yielding [`Message::Lagged`] when it skips); unsubscribe when a [`Subscription`] is
/// dropped; and count live subscriptions in [`EventBus::subscriber_count`].
pub trait EventBus: Send + Sync + fmt::Debug + 'static {
    /// Publishes `data` (single-line JSON) as event `name` on `topic`; returns its id. [`Bus`]
    /// has checked the name and the data ([`Event::new`] accepts them).
    fn publish(
        &self,
        topic: &str,
        name: &str,
        data: Arc<str>,
    ) -> BoxFuture<'static, Result<u64, StoreError>>;

    /// Subscribes to `topic`. With `after`, first yields the buffered events whose id is
    /// greater (a resume after `Last-Event-ID`), then live events.
    fn subscribe(
        &self,
        topic: &str,
        after: Option<u64>,
    ) -> BoxFuture<'static, Result<Subscription, StoreError>>;

    /// Live subscriptions on all topics of this process.
    fn subscriber_count(&self) -> usize;

    /// Live subscriptions on `topic` in this process.
    fn topic_subscriber_count(&self, topic: &str) -> usize;
}

/// A cheap, cloneable handle to an [`EventBus`]: what routes take as an `Extension<Bus>`.
#[derive(Clone, Debug)]
pub struct Bus {
    inner: Arc<dyn EventBus>,
}

impl Bus {
    /// A bus backed by `backend`.
    pub fn new(backend: impl EventBus) -> Self {
        Self {
            inner: Arc::new(backend),
        }
    }

    /// An [`InMemoryBus`] with the default [`BusOptions`].
    pub fn in_memory() -> Self {
        Self::new(InMemoryBus::new(BusOptions::default()))
    }

    /// Serializes `data` to JSON and publishes it as event `name` on `topic`.
    ///
    /// # Errors
    /// When `data` isn't serializable, `name` is invalid, or the backend fails.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        name: &str,
        data: &T,
    ) -> Result<u64, BusError> {
        let data = serde_json::to_string(data).map_err(|e| BusError::Serialize(e.to_string()))?;
        validate_name(name)?;
        Ok(self.inner.publish(topic, name, data.into()).await?)
    }

    /// Subscribes to `topic`, resuming after event `after` if given.
    ///
    /// # Errors
    /// When the backend fails.
    pub async fn subscribe(
        &self,
        topic: &str,
        after: Option<u64>,
    ) -> Result<Subscription, BusError> {
        Ok(self.inner.subscribe(topic, after).await?)
    }

    /// Live subscriptions on all topics.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscriber_count()
    }

    /// Live subscriptions on `topic`.
    pub fn topic_subscriber_count(&self, topic: &str) -> usize {
        self.inner.topic_subscriber_count(topic)
    }

    /// The backend.
    pub fn backend(&self) -> &dyn EventBus {
        &*self.inner
    }
}

/// Settings of an [`InMemoryBus`].
#[derive(Debug, Clone, Copy)]
pub struct BusOptions {
    capacity: usize,
    replay: usize,
    retention: Duration,
}

impl Default for BusOptions {
    /// 1,024 events in flight per topic, 100 replayable, idle topics kept 5 minutes.
    fn default() -> Self {
        Self {
            capacity: 1024,
            replay: 100,
            retention: Duration::from_secs(300),
        }
    }
}

impl BusOptions {
    /// How many events a subscriber may be behind before it skips (the size of each topic's
    /// ring, shared by its subscribers). At least 1.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events.max(1);
        self
    }

    /// How many recent events each topic keeps for `Last-Event-ID` resume (0 disables resume).
    pub fn replay(mut self, events: usize) -> Self {
        self.replay = events;
        self
    }

    /// How long a topic without subscribers keeps its replay buffer before it is removed.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }
}

/// Counters of an [`InMemoryBus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStats {
    /// Topics held in memory (with subscribers, or idle within the retention).
    pub topics: usize,
    /// Live subscriptions.
    pub subscribers: usize,
    /// Events published since the bus was created.
    pub published: u64,
    /// Events skipped by lagging subscribers, summed over subscribers.
    pub lagged: u64,
}

/// The in-process [`EventBus`]: a `tokio::sync::broadcast` channel per topic plus a bounded
/// replay buffer. See the [module docs](self) for its guarantees.
#[derive(Debug, Clone)]
pub struct InMemoryBus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    options: BusOptions,
    state: Mutex<State>,
    next_id: AtomicU64,
    published: AtomicU64,
    lagged: AtomicU64,
}

#[derive(Debug)]
struct State {
    topics: HashMap<Arc<str>, Topic>,
    last_sweep: Instant,
}

#[derive(Debug)]
struct Topic {
    sender: broadcast::Sender<Arc<Event>>,
    replay: VecDeque<Arc<Event>>,
    /// When the last subscriber left (None while it has subscribers).
    idle_since: Option<Instant>,
}

impl Default for InMemoryBus {
    fn default() -> Self {
        Self::new(BusOptions::default())
    }
}

impl InMemoryBus {
    /// A bus with `options`.
    pub fn new(options: BusOptions) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(1);
        Self {
            shared: Arc::new(Shared {
                options,
                state: Mutex::new(State {
                    topics: HashMap::new(),
                    last_sweep: Instant::now(),
                }),
                next_id: AtomicU64::new(seed),
                published: AtomicU64::new(0),
                lagged: AtomicU64::new(0),
            }),
        }
    }

    /// Counters: topics, subscribers, published and lagged events.
    pub fn stats(&self) -> BusStats {
        let state = self.shared.lock();
        BusStats {
            topics: state.topics.len(),
            subscribers: state
                .topics
                .values()
                .map(|t| t.sender.receiver_count())
                .sum(),
            published: self.shared.published.load(Ordering::Relaxed),
            lagged: self.shared.lagged.load(Ordering::Relaxed),
        }
    }

    /// Events of `topic` that at least one subscriber has not received yet: never more than
    /// [`BusOptions::capacity`], however slow the subscribers.
    pub fn queued(&self, topic: &str) -> usize {
        self.shared
            .lock()
            .topics
            .get(topic)
            .map_or(0, |t| t.sender.len())
    }

    fn publish_now(&self, topic: &str, name: &str, data: Arc<str>) -> Result<u64, BusError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.deliver(topic, Arc::new(Event::new(id, name, data)?));
        Ok(id)
    }

    /// Hands `event`, whose id another bus assigned, to this bus's subscribers of `topic` and
    /// keeps it for replay: how a bus shared by several instances (such as Redis) fans events
    /// out in each process. Ids must increase within a topic.
    pub fn deliver(&self, topic: &str, event: Arc<Event>) {
        let shared = &self.shared;
        let mut state = shared.lock();
        shared.sweep(&mut state);
        shared.published.fetch_add(1, Ordering::Relaxed);
        let topic_state = match state.topics.get_mut(topic) {
            Some(t) => t,
            // Nobody listens and nobody could resume: keep nothing.
            None if shared.options.replay == 0 => return,
            None => state
                .topics
                .entry(topic.into())
                .or_insert_with(|| Topic::new(shared.options.capacity, Some(Instant::now()))),
        };
        if shared.options.replay > 0 {
            if topic_state.replay.len() == shared.options.replay {
                topic_state.replay.pop_front();
            }
            topic_state.replay.push_back(Arc::clone(&event));
        }
        // Fails only without receivers, which is fine: the event is in the replay buffer.
        let _ = topic_state.sender.send(event);
    }

    fn subscribe_now(&self, topic: &str, after: Option<u64>) -> Subscription {
        let shared = &self.shared;
        let mut state = shared.lock();
        shared.sweep(&mut state);
        let key: Arc<str> = topic.into();
        let topic_state = state
            .topics
            .entry(Arc::clone(&key))
            .or_insert_with(|| Topic::new(shared.options.capacity, None));
        topic_state.idle_since = None;
        // Under the lock: no event can slip between the replay snapshot and the receiver.
        let receiver = topic_state.sender.subscribe();
        let replay: VecDeque<Arc<Event>> = match after {
            Some(after) => topic_state
                .replay
                .iter()
                .filter(|e| e.id > after)
                .cloned()
                .collect(),
            None => VecDeque::new(),
        };
        drop(state);
        let stream = InMemoryStream {
            shared: Arc::clone(shared),
            topic: Arc::clone(&key),
            replay,
            receiver: Some(ReusableBoxFuture::new(recv(receiver))),
        };
        Subscription::new(&key, Box::pin(stream))
    }
}

impl Topic {
    fn new(capacity: usize, idle_since: Option<Instant>) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            replay: VecDeque::new(),
            idle_since,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent: keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes topics idle for longer than the retention; runs at most once per
    /// `retention / 4` (and at least once a minute), on publish and subscribe.
    fn sweep(&self, state: &mut State) {
        let now = Instant::now();
        let every = (self.options.retention / 4).min(Duration::from_secs(60));
        if now.duration_since(state.last_sweep) < every {
            return;
        }
        state.last_sweep = now;
        let retention = self.options.retention;
        state.topics.retain(|_, t| match t.idle_since {
            Some(since) => t.sender.receiver_count() > 0 || now.duration_since(since) < retention,
            None => true,
        });
    }

    /// A subscriber of `topic` left: mark the topic idle, or remove it if nothing in it is
    /// worth keeping.
    fn unsubscribed(&self, topic: &str) {
        let mut state = self.lock();
        let Some(t) = state.topics.get_mut(topic) else {
            return;
        };
        if t.sender.receiver_count() > 0 {
            return;
        }
        if t.replay.is_empty() || self.options.retention.is_zero() {
            state.topics.remove(topic);
        } else {
            t.idle_since = Some(Instant::now());
        }
    }
}

impl EventBus for InMemoryBus {
    fn publish(
        &self,
        topic: &str,
        name: &str,
        data: Arc<str>,
    ) -> BoxFuture<'static, Result<u64, StoreError>> {
        let result = self
            .publish_now(topic, name, data)
            .map_err(|error| StoreError::new(error.to_string()));
        Box::pin(std::future::ready(result))
    }

    fn subscribe(
        &self,
        topic: &str,
        after: Option<u64>,
    ) -> BoxFuture<'static, Result<Subscription, StoreError>> {
        let subscription = self.subscribe_now(topic, after);
        Box::pin(std::future::ready(Ok(subscription)))
    }

    fn subscriber_count(&self) -> usize {
        self.stats().subscribers
    }

    fn topic_subscriber_count(&self, topic: &str) -> usize {
        self.shared
            .lock()
            .topics
            .get(topic)
            .map_or(0, |t| t.sender.receiver_count())
    }
}

type Recv = (
    Result<Arc<Event>, broadcast::error::RecvError>,
    broadcast::Receiver<Arc<Event>>,
);

async fn recv(mut receiver: broadcast::Receiver<Arc<Event>>) -> Recv {
    let result = receiver.recv().await;
    (result, receiver)
}

/// Replay first, then the broadcast receiver. The receiver lives inside the reusable future
/// (`recv` needs `&mut`), so `Drop` takes it out before telling the bus.
struct InMemoryStream {
    shared: Arc<Shared>,
    topic: Arc<str>,
    replay: VecDeque<Arc<Event>>,
    receiver: Option<ReusableBoxFuture<'static, Recv>>,
}

impl Stream for InMemoryStream {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = &mut *self;
        // The replay snapshot holds events published before the receiver existed: they go
        // first, and the receiver only has later ones.
        if let Some(event) = this.replay.pop_front() {
            return Poll::Ready(Some(Message::Event(event)));
        }
        let Some(receiver) = this.receiver.as_mut() else {
            return Poll::Ready(None);
        };
        let (result, rx) = std::task::ready!(receiver.poll(cx));
        receiver.set(recv(rx));
        match result {
            Ok(event) => Poll::Ready(Some(Message::Event(event))),
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                this.shared.lagged.fetch_add(skipped, Ordering::Relaxed);
                Poll::Ready(Some(Message::Lagged(skipped)))
            }
            Err(broadcast::error::RecvError::Closed) => {
                this.receiver = None;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for InMemoryStream {
    fn drop(&mut self) {
        // Drop the receiver first, so the count the bus sees no longer includes it.
        self.receiver = None;
        self.shared.unsubscribed(&self.topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn next_event(sub: &mut Subscription) -> Arc<Event> {
        match sub.next().await {
            Some(Message::Event(e)) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn replays_after_an_id_then_goes_live_without_gaps() {
        let bus = InMemoryBus::new(BusOptions::default().replay(3));
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(bus.publish_now("t", "n", format!("{i}").into()).unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let mut sub = bus.subscribe_now("t", Some(ids[2]));
        let live = bus.publish_now("t", "n", "5".into()).unwrap();
        assert_eq!(next_event(&mut sub).await.id(), ids[3]);
        assert_eq!(next_event(&mut sub).await.id(), ids[4]);
        assert_eq!(next_event(&mut sub).await.id(), live);
    }

    #[tokio::test]
    async fn slow_subscribers_skip_and_are_counted() {
        let bus = InMemoryBus::new(BusOptions::default().capacity(4));
        let mut sub = bus.subscribe_now("t", None);
        for i in 0..100 {
            bus.publish_now("t", "n", format!("{i}").into()).unwrap();
        }
        assert!(bus.queued("t") <= 4);
        assert!(matches!(sub.next().await, Some(Message::Lagged(96))));
        assert_eq!(next_event(&mut sub).await.data(), "96");
        assert_eq!(bus.stats().lagged, 96);
    }

    #[tokio::test]
    async fn dropping_subscriptions_and_retention_free_topics() {
        let bus = InMemoryBus::new(BusOptions::default().retention(Duration::ZERO));
        let a = bus.subscribe_now("a", None);
        let b = bus.subscribe_now("a", None);
        assert_eq!(bus.subscriber_count(), 2);
        drop(a);
        assert_eq!(bus.topic_subscriber_count("a"), 1);
        bus.publish_now("a", "n", "1".into()).unwrap();
        drop(b);
        assert_eq!(bus.stats().subscribers, 0);
        assert_eq!(bus.stats().topics, 0);
        // With the default retention, a topic nobody listens to keeps its replay buffer...
        let bus = InMemoryBus::default();
        bus.publish_now("b", "n", "1".into()).unwrap();
        assert_eq!(bus.stats().topics, 1);
        // ...and without a replay buffer, publishing to nobody keeps nothing.
        let bus = InMemoryBus::new(BusOptions::default().replay(0));
        bus.publish_now("b", "n", "1".into()).unwrap();
        assert_eq!(bus.stats().topics, 0);
    }

    #[test]
    fn refuses_events_that_would_break_the_sse_framing() {
        assert!(Event::new(1, "a\nb", "{}").is_err());
        assert!(Event::new(1, "", "{}").is_err());
        assert!(Event::new(1, "a", "{\n}").is_err());
        let event = Event::new(7, "post.updated", r#"{"a":1}"#).unwrap();
        assert_eq!(
            event.sse_frame(),
            "id: 7\nevent: post.updated\ndata: {\"a\":1}\n\n"
        );
    }
}
