//! The event bus on Redis: a stream per topic for replay, one pub/sub channel for live fan-out,
//! and each process's own in-memory bus delivering to its subscribers.
//!
//! Publishing runs one script: `XADD` to the topic's stream (trimmed to the replay window),
//! then `PUBLISH` of the event on the channel every instance listens to. Each instance's
//! listener (a dedicated pub/sub connection) hands the events of topics that have subscribers
//! here to its [`InMemoryBus`]. A subscriber that resumes with `Last-Event-ID` first reads what
//! it missed from the stream (`XRANGE`), then live events newer than that, so it gets each event
//! once, in order, whichever instance it reconnects to.
//!
//! When Redis is unreachable, events are still delivered to this instance's subscribers (and
//! kept in its in-memory replay buffer), but not to other instances; resuming falls back to
//! the local buffer. When Redis returns, the listener reconnects and first catches every
//! subscribed topic up from its stream.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbor::events::{BusOptions, Event, EventBus, InMemoryBus, Message, Subscription};
use arbor::store::{BoxFuture, StoreError};
use futures_util::stream::{self, StreamExt};
use redis::{Script, Value};

use crate::connection::{script, Redis};

/// How much each topic keeps for resuming: at most `max_events`, none older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Events kept per topic (approximately: Redis trims in whole nodes, so a few more may stay).
    pub max_events: usize,
    /// The age past which events are dropped, and after which an idle topic's stream expires.
    pub max_age: Duration,
}

impl Default for ReplayWindow {
    /// 10,000 events, 5 minutes.
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_age: Duration::from_secs(300),
        }
    }
}

/// Appends the event to the topic's stream, trims the stream to the window, and announces the
/// event to every instance.
const PUBLISH: &str = r"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'n', ARGV[3], 'd', ARGV[4])
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[6])
redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', oldest))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[1], id .. '\n' .. ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. ARGV[2])
return id
";

fn publish_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| script(PUBLISH))
}

/// An [`EventBus`] shared by every instance through Redis. See the [module docs](self).
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    redis: Redis,
    local: InMemoryBus,
    window: ReplayWindow,
    channel: String,
    /// The newest event id delivered here, per topic with subscribers: live events at or
    /// below it are duplicates, and after a reconnect the topic is caught up from it.
    delivered: Mutex<HashMap<String, u64>>,
    listener: OnceLock<tokio::task::JoinHandle<()>>,
}

impl Drop for BusInner {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.get() {
            listener.abort();
        }
    }
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("window", &self.inner.window)
            .field("local", &self.inner.local.stats())
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Starts the listener on the current tokio runtime.
    pub(crate) fn start(redis: Redis, window: ReplayWindow, local: BusOptions) -> Self {
        let channel = redis.key("events", "fanout");
        let inner = Arc::new(BusInner {
            redis,
            local: InMemoryBus::new(local),
            window,
            channel,
            delivered: Mutex::new(HashMap::new()),
            listener: OnceLock::new(),
        });
        let listener = tokio::spawn(listen(Arc::downgrade(&inner)));
        let _ = inner.listener.set(listener);
        Self { inner }
    }
}

impl BusInner {
    fn stream_key(&self, topic: &str) -> String {
        self.redis.key("events", topic)
    }

    fn delivered(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands an event to this instance's subscribers, unless they have it already.
    fn deliver(&self, topic: &str, event: Event) {
        {
            let mut delivered = self.delivered();
            let Some(last) = delivered.get_mut(topic) else {
                return; // nobody here listens to this topic
            };
            if event.id() <= *last {
                return;
            }
            *last = event.id();
        }
        self.local.deliver(topic, Arc::new(event));
    }

    /// The id of the newest event in `topic`'s stream (0 for an empty stream).
    async fn newest_id(&self, topic: &str) -> Result<u64, StoreError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(self.stream_key(topic))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let entries: Value = self.redis.query(&cmd).await?;
        Ok(parse_entries(entries)?.last().map_or(0, Event::id))
    }

    /// Reads the events of `topic` after `after` from its stream, oldest first.
    async fn read_after(&self, topic: &str, after: u64) -> Result<Vec<Event>, StoreError> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(self.stream_key(topic))
            .arg(format!("({}", stream_id(after)))
            .arg("+")
            .arg("COUNT")
            .arg(self.window.max_events);
        let entries: Value = self.redis.query(&cmd).await?;
        parse_entries(entries)
    }

    /// Forgets topics nobody here subscribes to any more.
    fn prune(&self) {
        let local = &self.local;
        self.delivered()
            .retain(|topic, _| local.topic_subscriber_count(topic) > 0);
    }
}

/// The pub/sub listener: connects, catches subscribed topics up, then delivers until the
/// connection drops, and starts again.
async fn listen(bus: Weak<BusInner>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(inner) = bus.upgrade() else { return };
        let client = inner.redis.client().clone();
        let channel = inner.channel.clone();
        let budget = inner.redis.budget().max(Duration::from_millis(500));
        drop(inner);
        let connected = tokio::time::timeout(budget, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(mut pubsub)) = connected {
            backoff = Duration::from_millis(50);
            let Some(inner) = bus.upgrade() else { return };
            catch_up(&inner).await;
            drop(inner);
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Some(inner) = bus.upgrade() else { return };
                match parse_announcement(message.get_payload_bytes()) {
                    Some((topic, event)) => inner.deliver(&topic, event),
                    None => {
                        tracing::warn!(target: "arbor_redis", "ignored a malformed event announcement")
                    }
                }
            }
            tracing::warn!(target: "arbor_redis", "the event listener lost Redis; reconnecting");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// After (re)connecting: every topic with subscribers here gets what was published while the
/// listener was away.
async fn catch_up(inner: &BusInner) {
    inner.prune();
    let topics: Vec<(String, u64)> = inner
        .delivered()
        .iter()
        .map(|(topic, last)| (topic.clone(), *last))
        .collect();
    for (topic, last) in topics {
        if last == 0 {
            // Nothing delivered yet and no resume point: there is nothing to catch up from.
            continue;
        }
        match inner.read_after(&topic, last).await {
            Ok(events) => {
                for event in events {
                    inner.deliver(&topic, event);
                }
            }
            Err(error) => {
                tracing::warn!(target: "arbor_redis", %error, topic, "could not catch a topic up");
            }
        }
    }
}

impl EventBus for RedisBus {
    fn publish(
        &self,
        topic: &str,
        name: &str,
        data: Arc<str>,
    ) -> BoxFuture<'static, Result<u64, StoreError>> {
        let inner = Arc::clone(&self.inner);
        let topic = topic.to_owned();
        let name = name.to_owned();
        Box::pin(async move {
            let mut invocation = publish_script().key(inner.stream_key(&topic));
            invocation
                .arg(&inner.channel)
                .arg(&topic)
                .arg(&name)
                .arg(&*data)
                .arg(inner.window.max_events)
                .arg(u64::try_from(inner.window.max_age.as_millis()).unwrap_or(u64::MAX));
            match inner.redis.invoke::<String>(&invocation).await {
                // The listener delivers it here too, in the order every instance sees.
                Ok(id) => parse_stream_id(&id).ok_or_else(|| {
                    StoreError::new(format!("Redis returned an unexpected stream id {id:?}"))
                }),
                Err(error) => {
                    // Keep this instance's subscribers served; other instances miss it.
                    let id = fallback_id(inner.delivered().get(&topic).copied());
                    let event =
                        Event::new(id, &name, data).map_err(|e| StoreError::new(e.to_string()))?;
                    tracing::debug!(target: "arbor_redis", %error, topic, "event delivered locally only");
                    inner.deliver(&topic, event);
                    Ok(id)
                }
            }
        })
    }

    fn subscribe(
        &self,
        topic: &str,
        after: Option<u64>,
    ) -> BoxFuture<'static, Result<Subscription, StoreError>> {
        let inner = Arc::clone(&self.inner);
        let topic = topic.to_owned();
        Box::pin(async move {
            // Live first, so that nothing published while the replay is read is missed; the
            // duplicates that overlap are skipped by id.
            let live = inner.local.subscribe(&topic, None).await?;
            // Without a resume point, the stream's newest event is one: the listener catches
            // the topic up from it when it (re)connects, so an event published before this
            // instance's listener is subscribed (just after start, or while it reconnects) is
            // not missed.
            let resume = match after {
                Some(after) => after,
                None => match inner.newest_id(&topic).await {
                    Ok(0) => BEFORE_ANY_EVENT,
                    Ok(newest) => newest,
                    // Redis is unreachable, and so is the listener: no resume point.
                    Err(_) => 0,
                },
            };
            inner.delivered().entry(topic.clone()).or_insert(resume);
            let Some(after) = after else {
                return Ok(live);
            };
            let replayed = match inner.read_after(&topic, after).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::debug!(target: "arbor_redis", %error, topic, "resuming from this instance's buffer");
                    drop(live);
                    return inner.local.subscribe(&topic, Some(after)).await;
                }
            };
            let newest = replayed.last().map_or(after, Event::id);
            let replay = stream::iter(
                replayed
                    .into_iter()
                    .map(|event| Message::Event(Arc::new(event))),
            );
            let live = live.filter(move |message| {
                let fresh = match message {
                    Message::Event(event) => event.id() > newest,
                    Message::Lagged(_) => true,
                };
                std::future::ready(fresh)
            });
            Ok(Subscription::new(&topic, Box::pin(replay.chain(live))))
        })
    }

    fn subscriber_count(&self) -> usize {
        self.inner.local.subscriber_count()
    }

    fn topic_subscriber_count(&self, topic: &str) -> usize {
        self.inner.local.topic_subscriber_count(topic)
    }
}

/// Stream ids (`<ms>-<seq>`) as the bus's `u64` ids: `ms << 20 | seq`, so that they order the
/// same way and fit SSE's `id:` field.
/// A resume point before every event of a stream that was empty: event ids are stream ids
/// (milliseconds since 1970 in the high bits), so every real one is larger.
const BEFORE_ANY_EVENT: u64 = 1;

fn parse_stream_id(id: &str) -> Option<u64> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq) = (ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?);
    (seq < (1 << 20) && ms < (1 << 44)).then_some((ms << 20) | seq)
}

fn stream_id(id: u64) -> String {
    format!("{}-{}", id >> 20, id & ((1 << 20) - 1))
}

/// The id of an event published while Redis is unreachable: after the newest delivered, and
/// at the end of the current millisecond so that Redis ids issued later are larger.
fn fallback_id(last: Option<u64>) -> u64 {
    now_id((1 << 20) - 1).max(last.map_or(0, |last| last + 1))
}

fn now_id(seq: u64) -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(0));
    (ms << 20) | seq
}

/// `id\nname\ndata\ntopic`, as the publish script announces an event.
fn parse_announcement(payload: &[u8]) -> Option<(String, Event)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(4, '\n');
    let (id, name, data, topic) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let event = Event::new(parse_stream_id(id)?, name, data).ok()?;
    Some((topic.to_owned(), event))
}

/// `XRANGE`'s answer: `[[id, [field, value, ...]], ...]` with fields `n` (name) and `d` (data).
fn parse_entries(entries: Value) -> Result<Vec<Event>, StoreError> {
    let corrupt = || StoreError::new("an event stream entry is not in Arbor's format");
    let Value::Array(entries) = entries else {
        return Err(corrupt());
    };
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    let mut events = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(entry) = entry else {
            return Err(corrupt());
        };
        let [id, Value::Array(fields)] = entry.as_slice() else {
            return Err(corrupt());
        };
        let id = text(id)
            .and_then(|id| parse_stream_id(&id))
            .ok_or_else(corrupt)?;
        let (mut name, mut data) = (None, None);
        for pair in fields.chunks(2) {
            if let [field, value] = pair {
                match text(field).as_deref() {
                    Some("n") => name = text(value),
                    Some("d") => data = text(value),
                    _ => {}
                }
            }
        }
        let (Some(name), Some(data)) = (name, data) else {
            return Err(corrupt());
        };
        events.push(Event::new(id, &name, data).map_err(|_| corrupt())?);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_map_to_ordered_u64s_and_back() {
        let a = parse_stream_id("1700000000000-0").unwrap();
        let b = parse_stream_id("1700000000000-1").unwrap();
        let c = parse_stream_id("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(stream_id(b), "1700000000000-1");
        assert_eq!(parse_stream_id("nonsense"), None);
        assert_eq!(parse_stream_id("1-1048576"), None);
    }

    #[test]
    fn announcements_parse_with_any_topic() {
        let (topic, event) =
            parse_announcement(b"1700000000000-3\npost.updated\n{\"postId\":7}\nuser:42").unwrap();
        assert_eq!(topic, "user:42");
        assert_eq!(event.name(), "post.updated");
        assert_eq!(event.data(), r#"{"postId":7}"#);
        assert_eq!(stream_id(event.id()), "1700000000000-3");
        assert!(parse_announcement(b"1-0\nonly-two").is_none());
    }

    #[test]
    fn fallback_ids_come_after_the_newest_delivered() {
        let later = now_id(0) + (10 << 20);
        assert_eq!(fallback_id(Some(later)), later + 1);
        assert!(fallback_id(None) >= now_id(0));
    }
}
