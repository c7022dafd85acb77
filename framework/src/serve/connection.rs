//! What the server knows of each open connection, and the watch that closes the connections
//! that wait too long for a request.
//!
//! hyper can time out the read of a request head itself, but it pays on every request: a boxed
//! sleep from its timer for each head, and one more turn of its connection loop after each
//! response to arm the next one (about 1,000 instructions of the 17,400 a bare route cost;
//! callgrind, `docs/benchmarks.md`). Here a connection's [`ConnectionState`] says whether a
//! request is in flight and, when none is, since when the connection has been waiting: the
//! service counts each request in, the end of its response body counts it out and stamps the
//! time from a coarse clock. A thread of the server's own ([`Connections::start_sweeping`]) calls
//! [`Connections::sweep`] sixteen times per timeout period; the sweep tells the connections that
//! have waited too long, and each connection's task checks for itself before it closes. A
//! request costs a few atomic operations.
//!
//! The same registry tells every connection when the server stops ([`Connections::close_all`]).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use slab::Slab;

use super::Shutdown;

/// How many times the clock ticks in one header-read timeout.
const TICKS_PER_TIMEOUT: u32 = 16;

/// The finest tick: a shorter timeout is measured in milliseconds.
const SHORTEST_TICK: Duration = Duration::from_millis(1);

/// The coarsest tick, so that the accept loop's timer stays in range for any timeout.
const LONGEST_TICK: Duration = Duration::from_secs(3600);

/// How long a connection that has not sent its first request yet gets to send it once the
/// server stops: a client that connected just before the listener closed has its request on the
/// way, and closing the connection under it would reset a request that was never refused.
const FIRST_REQUEST_WINDOW: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the connections of one server share.
#[derive(Debug)]
struct Server {
    /// Ticks since the server started, advanced by every sweep.
    now: AtomicU64,
    /// Ticks a connection may wait for a request; it is closed at the first sweep after that.
    limit: u64,
    shutdown: Shutdown,
}

impl Server {
    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

/// The open connections of one server.
#[derive(Debug)]
pub(crate) struct Connections {
    server: Arc<Server>,
    /// How often [`Connections::sweep`] is due.
    tick: Duration,
    open: Mutex<Slab<Arc<ConnectionState>>>,
}

impl Connections {
    /// No connection yet; requests must arrive within `header_read_timeout` of the server's
    /// starting to wait for them.
    pub(crate) fn new(header_read_timeout: Duration, shutdown: Shutdown) -> Arc<Self> {
        let tick = (header_read_timeout / TICKS_PER_TIMEOUT).clamp(SHORTEST_TICK, LONGEST_TICK);
        // A stamp says in which tick the wait began, so one tick more than the timeout holds:
        // nobody is closed early, and everybody within two ticks (an eighth) of the timeout.
        let limit = header_read_timeout.as_nanos().div_ceil(tick.as_nanos()) + 1;
        Arc::new(Self {
            server: Arc::new(Server {
                now: AtomicU64::new(0),
                limit: u64::try_from(limit).unwrap_or(u64::MAX),
                shutdown,
            }),
            tick,
            open: Mutex::new(Slab::new()),
        })
    }

    /// Sweeps every tick on a thread of its own, until the returned guard is dropped.
    ///
    /// Not a timer on the runtime: while a timer is pending, each worker that runs out of work
    /// reads the clock and looks through the timer wheel before it sleeps and after it wakes,
    /// about 200 instructions a request on a bare route whose worker sleeps between requests
    /// (callgrind, docs/benchmarks.md). The thread sleeps a tick at a time.
    pub(crate) fn start_sweeping(self: &Arc<Self>) -> std::io::Result<Sweeping> {
        let (stop, stopped) = mpsc::sync_channel::<()>(0);
        let connections = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("arbor-sweep".into())
            .spawn(move || {
                // Ends when the guard drops the sender.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(connections.tick) {
                    connections.sweep();
                }
            })?;
        Ok(Sweeping {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Registers a connection just accepted: it waits for its first request from now on.
    pub(crate) fn accept(self: &Arc<Self>) -> OpenConnection {
        let state = Arc::new(ConnectionState {
            idle_since: AtomicU64::new(self.server.now()),
            server: Arc::clone(&self.server),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            refused_head: AtomicU64::new(0),
            asked: AtomicU8::new(0),
            task: AtomicWaker::new(),
        });
        let key = self.lock().insert(Arc::clone(&state));
        OpenConnection {
            connections: Arc::clone(self),
            key,
            state,
        }
    }

    /// Advances the clock by a tick and tells the connections that have waited too long.
    pub(crate) fn sweep(&self) {
        let now = self.server.now.fetch_add(1, Ordering::Relaxed) + 1;
        for (_, state) in self.lock().iter() {
            if state.has_waited_too_long(now) {
                state.ask(EXPIRED);
            }
        }
    }

    /// Tells every open connection that the server stops.
    pub(crate) fn close_all(&self) {
        for (_, state) in self.lock().iter() {
            state.ask(CLOSE);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slab<Arc<ConnectionState>>> {
        // The slab is consistent between statements: a panic elsewhere cannot break it.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sweeping thread of [`Connections::start_sweeping`], which ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Sweeping {
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Sweeping {
    fn drop(&mut self) {
        // The thread wakes at once when the sender goes; waiting for it (at most the length of
        // a sweep) means no sweep runs once the server has returned.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A connection in its server's registry, until it is dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    connections: Arc<Connections>,
    key: usize,
    state: Arc<ConnectionState>,
}

impl OpenConnection {
    pub(crate) fn state(&self) -> &Arc<ConnectionState> {
        &self.state
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.connections.lock().try_remove(self.key);
    }
}

/// What the server asks of a connection's task (bits of [`ConnectionState::asked`]).
const CLOSE: u8 = 1;
const EXPIRED: u8 = 2;

/// One connection: its requests in flight, since when it has waited for the next one, what its
/// reading side found, and what the server asks of it.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    server: Arc<Server>,
    /// Requests handed to the service.
    started: AtomicU64,
    /// Requests whose response has ended (or that were dropped unanswered).
    finished: AtomicU64,
    /// The tick in which the connection began to wait for a request: when it was accepted, or
    /// when its last response ended.
    idle_since: AtomicU64,
    /// HTTP/2 multiplexes requests and pings on its own: no header-read timeout, as in hyper.
    http2: AtomicBool,
    /// The ordinal (from 1) of the first HTTP/1 head with an ambiguous length; 0 for none.
    refused_head: AtomicU64,
    asked: AtomicU8,
    task: AtomicWaker,
}

impl ConnectionState {
    /// Counts a request handed to the service; the guard counts it out when dropped, which
    /// [`InFlight::track`] defers to the end of the response body.
    pub(crate) fn start_request(self: &Arc<Self>, http2: bool) -> InFlight {
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        let ordinal = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        InFlight {
            state: Arc::clone(self),
            ordinal,
        }
    }

    /// Notes the ordinal of a head that gives its length twice (see [`super::framing`]).
    pub(crate) fn refuse_head(&self, ordinal: u64) {
        self.refused_head.store(ordinal, Ordering::Relaxed);
    }

    /// The server's shutdown handle, which every request carries.
    pub(crate) fn shutdown(&self) -> &Shutdown {
        &self.server.shutdown
    }

    fn finish_request(&self) {
        let finished = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        if finished == self.started.load(Ordering::Relaxed) {
            self.idle_since.store(self.server.now(), Ordering::Relaxed);
        }
    }

    fn has_started(&self) -> bool {
        self.started.load(Ordering::Relaxed) > 0
    }

    /// No request in flight, none since the stamp, and `now` more than the limit past it.
    fn has_waited_too_long(&self, now: u64) -> bool {
        !self.http2.load(Ordering::Relaxed)
            && self.started.load(Ordering::Relaxed) == self.finished.load(Ordering::Relaxed)
            && now.saturating_sub(self.idle_since.load(Ordering::Relaxed)) >= self.server.limit
    }

    fn ask(&self, what: u8) {
        self.asked.fetch_or(what, Ordering::Release);
        self.task.wake();
    }

    /// Ready with the bits asked once any is set.
    fn poll_asked(&self, cx: &mut Context<'_>) -> Poll<u8> {
        let asked = self.asked.load(Ordering::Acquire);
        if asked != 0 {
            return Poll::Ready(asked);
        }
        self.task.register(cx.waker());
        match self.asked.load(Ordering::Acquire) {
            0 => Poll::Pending,
            asked => Poll::Ready(asked),
        }
    }
}

/// A request on its way through the service and out as a response: counted out of its
/// connection when dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    state: Arc<ConnectionState>,
    ordinal: u64,
}

impl InFlight {
    /// Whether this HTTP/1 request's head gave its length twice: hyper parses a head (through
    /// `ObservedIo`, which notes it) before it calls the service for it, on the same task.
    pub(crate) fn is_refused(&self) -> bool {
        self.ordinal == self.state.refused_head.load(Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// `response`, counted out of the connection when its body ends.
    pub(crate) fn track<B>(self, response: http::Response<B>) -> http::Response<TrackedBody<B>> {
        response.map(|inner| TrackedBody {
            inner,
            _in_flight: self,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.finish_request();
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its request out of the connection when hyper drops it,
    /// once the last frame is written (or the connection ends).
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _in_flight: InFlight,
    }
}

impl<B: HttpBody> HttpBody for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `connection` until it ends. Closes it at once when it has waited too long for a
/// request; once the server stops, lets its request in flight finish (hyper's graceful
/// shutdown: an idle keep-alive connection closes at once), and gives one that has not sent
/// its first request yet [`FIRST_REQUEST_WINDOW`] for it.
pub(crate) async fn drive<C>(connection: C, open: OpenConnection) -> Result<(), BoxError>
where
    C: GracefulConnection<Error = BoxError>,
{
    let state = open.state();
    tokio::pin!(connection);
    loop {
        // The connection first: it is what wakes the task on every request.
        let asked = poll_fn(|cx| {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Err(result));
            }
            state.poll_asked(cx).map(Ok)
        })
        .await;
        match asked {
            Err(result) => return result,
            Ok(asked) if asked & CLOSE != 0 => break,
            Ok(_) => {
                // The sweep read the state on another thread: a request may have arrived since.
                if state.has_waited_too_long(state.server.now()) {
                    return Err("no request within the header-read timeout".into());
                }
                state.asked.fetch_and(!EXPIRED, Ordering::AcqRel);
            }
        }
    }
    if !state.has_started() {
        // The service is called while the connection is polled, so the count is up to date
        // each time the poll returns.
        let window = tokio::time::sleep(FIRST_REQUEST_WINDOW);
        tokio::pin!(window);
        let ended = poll_fn(|cx| {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            if state.has_started() {
                return Poll::Ready(None);
            }
            window.as_mut().poll(cx).map(|()| None)
        })
        .await;
        if let Some(result) = ended {
            return result;
        }
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections(timeout_ms: u64) -> Arc<Connections> {
        Connections::new(Duration::from_millis(timeout_ms), Shutdown::new())
    }

    /// What the server has asked of `open` after `count` more sweeps.
    fn asked_after_sweeps(connections: &Connections, open: &OpenConnection, count: u64) -> u8 {
        for _ in 0..count {
            connections.sweep();
        }
        open.state.asked.load(Ordering::Relaxed)
    }

    #[test]
    fn the_clock_ticks_sixteen_times_a_timeout_and_allows_one_more() {
        let connections = connections(1600);
        assert_eq!(connections.tick, Duration::from_millis(100));
        assert_eq!(connections.server.limit, 17);
        // Far beyond what an `Instant` holds: still a tick a timer can sleep.
        let connections = Connections::new(Duration::MAX, Shutdown::new());
        assert_eq!(connections.tick, LONGEST_TICK);
        assert!(connections.server.limit > 1 << 50);
        assert_eq!(self::connections(0).server.limit, 1);
    }

    #[test]
    fn the_sweeping_thread_expires_waiting_connections_until_it_is_stopped() {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        // A tick of a millisecond: the connection is told within about 17 ms.
        let connections = connections(16);
        let open = connections.accept();
        let references = Arc::strong_count(&connections);
        let sweeping = connections.start_sweeping().expect("a thread");
        assert_eq!(Arc::strong_count(&connections), references + 1);
        let waker = Arc::new(Unpark(std::thread::current())).into();
        let mut cx = Context::from_waker(&waker);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while open.state.poll_asked(&mut cx).is_pending() {
            assert!(std::time::Instant::now() < deadline, "never told");
            std::thread::park_timeout(deadline - std::time::Instant::now());
        }
        assert_eq!(open.state.asked.load(Ordering::Relaxed), EXPIRED);
        // Dropping the guard ends the thread, and with it the thread's reference.
        drop(sweeping);
        assert_eq!(Arc::strong_count(&connections), references);
    }

    #[test]
    fn a_connection_without_a_request_expires_after_the_limit_not_before() {
        let connections = connections(1600);
        let open = connections.accept();
        assert_eq!(asked_after_sweeps(&connections, &open, 16), 0);
        assert_eq!(asked_after_sweeps(&connections, &open, 1), EXPIRED);
    }

    #[test]
    fn a_request_in_flight_holds_the_connection_open_however_long_it_takes() {
        let connections = connections(1600);
        let open = connections.accept();
        let request = open.state.start_request(false);
        let response = request.track(http::Response::new(()));
        assert_eq!(asked_after_sweeps(&connections, &open, 100), 0);
        // The wait starts again when the response ends.
        drop(response);
        assert_eq!(asked_after_sweeps(&connections, &open, 16), 0);
        assert_eq!(asked_after_sweeps(&connections, &open, 1), EXPIRED);
    }

    #[test]
    fn http2_connections_are_left_to_hyper() {
        let connections = connections(1600);
        let open = connections.accept();
        drop(open.state.start_request(true));
        assert_eq!(asked_after_sweeps(&connections, &open, 100), 0);
    }

    #[test]
    fn a_closed_connection_leaves_the_registry_and_close_all_tells_the_others() {
        let connections = connections(1600);
        let first = connections.accept();
        let second = connections.accept();
        drop(first);
        assert_eq!(connections.lock().len(), 1);
        connections.close_all();
        assert_eq!(second.state.asked.load(Ordering::Relaxed), CLOSE);
    }

    #[test]
    fn a_service_refuses_the_request_of_that_head_only() {
        let connections = connections(1600);
        let open = connections.accept();
        open.state.refuse_head(2);
        let refused: Vec<bool> = (0..3)
            .map(|_| open.state.start_request(false).is_refused())
            .collect();
        assert_eq!(refused, [false, true, false]);
    }
}
