//! The timer behind hyper's header-read timeout, at a few hundred instructions a request.
//!
//! hyper arms the header-read timeout for every request head: it asks its timer for a new sleep
//! when it starts reading a head, polls it while the head has not arrived (on a keep-alive
//! connection, always: the client has not sent its next request yet) and drops it once the head
//! is read. With hyper-util's `TokioTimer` that is a tokio `Sleep` registered in the runtime's
//! timer wheel and removed from it again, request after request: about 1,800 instructions, a
//! tenth of what the whole generated router costs per request on `arbor::serve` (callgrind,
//! `docs/benchmarks.md`). The deadline is 30 seconds away and almost never reached.
//!
//! So the deadlines live in a few mutex-guarded slabs (a registration is an insert, a drop a
//! removal), and one thread sleeps until the earliest of them and wakes the tasks whose deadline
//! has passed. The thread is told of a new deadline only when it is earlier than the one it
//! sleeps until, which with one timeout for every head happens once per timeout period at most.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use slab::Slab;

/// Separate locks, so that the workers of a multi-threaded runtime rarely wait on each other.
const SHARDS: usize = 8;

/// "No deadline": the thread sleeps until told of one.
const NONE: u64 = u64::MAX;

/// hyper's [`Timer`] for `arbor::serve`: sleeps registered in the process's [`Deadlines`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadTimer {
    deadlines: &'static Deadlines,
}

impl HeadTimer {
    pub(crate) fn new() -> Self {
        static DEADLINES: OnceLock<&'static Deadlines> = OnceLock::new();
        Self {
            deadlines: DEADLINES.get_or_init(Deadlines::start),
        }
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        // A duration too long for an `Instant` is as good as forever.
        let deadline = Instant::now()
            .checked_add(duration)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        self.sleep_until(deadline)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HeadSleep {
            deadline,
            slot: None,
            deadlines: self.deadlines,
        })
    }
}

/// A sleep of [`HeadTimer`]: registered on its first pending poll, unregistered when it ends or
/// is dropped.
struct HeadSleep {
    deadline: Instant,
    slot: Option<Slot>,
    deadlines: &'static Deadlines,
}

impl Sleep for HeadSleep {}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            this.unregister();
            return Poll::Ready(());
        }
        match this.slot {
            Some(slot) => this.deadlines.update(slot, cx.waker()),
            None => this.slot = Some(this.deadlines.register(this.deadline, cx.waker())),
        }
        Poll::Pending
    }
}

impl HeadSleep {
    fn unregister(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.deadlines.remove(slot);
        }
    }
}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Where a registered sleep sits.
#[derive(Debug, Clone, Copy)]
struct Slot {
    shard: usize,
    key: usize,
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    /// Taken when the thread wakes it: an entry is woken once, and removed by its sleep.
    waker: Option<Waker>,
}

/// The registered deadlines and the thread that wakes them.
#[derive(Debug)]
pub(crate) struct Deadlines {
    shards: [Mutex<Slab<Entry>>; SHARDS],
    /// What every deadline is measured from, in nanoseconds.
    origin: Instant,
    /// The deadline the thread sleeps until ([`NONE`] while it scans or has none): a
    /// registration with an earlier one tells the thread.
    next_wake: AtomicU64,
    /// Held by the thread except while it scans or waits; a registration takes it to tell.
    thread: Mutex<()>,
    told: Condvar,
}

impl Deadlines {
    /// A new set of deadlines with its thread, for the life of the process.
    pub(crate) fn start() -> &'static Self {
        let deadlines: &'static Self = Box::leak(Box::new(Self {
            shards: std::array::from_fn(|_| Mutex::new(Slab::new())),
            origin: Instant::now(),
            next_wake: AtomicU64::new(NONE),
            thread: Mutex::new(()),
            told: Condvar::new(),
        }));
        // Without the thread no header timeout would fire: failing to start one is a broken
        // process, as failing to start a runtime's worker is.
        #[allow(clippy::expect_used)]
        std::thread::Builder::new()
            .name("arbor-head-timer".into())
            .spawn(move || deadlines.run())
            .expect("spawning the header-timeout thread");
        deadlines
    }

    fn register(&self, deadline: Instant, waker: &Waker) -> Slot {
        let shard = this_threads_shard();
        let key = lock(&self.shards[shard]).insert(Entry {
            deadline,
            waker: Some(waker.clone()),
        });
        // After the insert: if the thread scanned this shard before it, it reads `next_wake`
        // after this point and sees `NONE` or a deadline it took from here.
        let nanos = self.nanos(deadline);
        if nanos < self.next_wake.load(Ordering::SeqCst) {
            let _thread = lock(&self.thread);
            self.next_wake.fetch_min(nanos, Ordering::SeqCst);
            self.told.notify_one();
        }
        Slot { shard, key }
    }

    fn update(&self, slot: Slot, waker: &Waker) {
        if let Some(entry) = lock(&self.shards[slot.shard]).get_mut(slot.key) {
            match &mut entry.waker {
                Some(known) if known.will_wake(waker) => {}
                stale => *stale = Some(waker.clone()),
            }
        }
    }

    fn remove(&self, slot: Slot) {
        lock(&self.shards[slot.shard]).try_remove(slot.key);
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(NONE - 1)
            .min(NONE - 1)
    }

    /// The thread: wakes what is due, then sleeps until the next deadline or until told of an
    /// earlier one.
    fn run(&self) {
        let mut thread = lock(&self.thread);
        loop {
            // From here until the scan is done, every registration tells.
            self.next_wake.store(NONE, Ordering::SeqCst);
            drop(thread);
            let earliest = self.wake_due(Instant::now());
            thread = lock(&self.thread);
            let next = self
                .next_wake
                .load(Ordering::SeqCst)
                .min(earliest.map_or(NONE, |at| self.nanos(at)));
            self.next_wake.store(next, Ordering::SeqCst);
            thread = if next == NONE {
                self.told
                    .wait(thread)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            } else {
                let at = self.origin + Duration::from_nanos(next);
                let timeout = at.saturating_duration_since(Instant::now());
                self.told
                    .wait_timeout(thread, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            };
        }
    }

    /// Wakes every entry due at `now`; returns the earliest deadline still ahead.
    fn wake_due(&self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut due = Vec::new();
        for shard in &self.shards {
            let mut entries = lock(shard);
            for (_, entry) in entries.iter_mut() {
                if entry.deadline <= now {
                    due.extend(entry.waker.take());
                } else if entry.waker.is_some() {
                    earliest = Some(earliest.map_or(entry.deadline, |e| e.min(entry.deadline)));
                }
            }
        }
        // Outside the locks: a woken task may run on another thread at once and unregister.
        for waker in due {
            waker.wake();
        }
        earliest
    }

    #[cfg(test)]
    fn registered(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

/// The shard of the calling thread, fixed per thread.
fn this_threads_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// Nothing under these locks can panic halfway through a change; a poisoned lock's data is
/// whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer() -> (HeadTimer, &'static Deadlines) {
        let deadlines = Deadlines::start();
        (HeadTimer { deadlines }, deadlines)
    }

    #[tokio::test]
    async fn a_sleep_ends_at_its_deadline_not_before() {
        let (timer, deadlines) = timer();
        let started = Instant::now();
        timer.sleep(Duration::from_millis(150)).await;
        let slept = started.elapsed();
        assert!(slept >= Duration::from_millis(150), "{slept:?}");
        assert!(slept < Duration::from_secs(2), "{slept:?}");
        assert_eq!(deadlines.registered(), 0);
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_the_thread_from_a_later_one() {
        let (timer, _) = timer();
        // The thread sleeps until the far deadline first...
        let mut far = timer.sleep(Duration::from_secs(60));
        assert!(futures_util::poll!(far.as_mut()).is_pending());
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...and a near one registered meanwhile still ends on time.
        let started = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(5),
            timer.sleep(Duration::from_millis(100)),
        )
        .await
        .expect("the near deadline is kept");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn many_sleeps_end_in_deadline_order() {
        let (timer, deadlines) = timer();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for millis in [250_u64, 50, 200, 100, 150] {
            let sleep = timer.sleep(Duration::from_millis(millis));
            let order = std::sync::Arc::clone(&order);
            tasks.spawn(async move {
                sleep.await;
                lock(&order).push(millis);
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(*lock(&order), [50, 100, 150, 200, 250]);
        assert_eq!(deadlines.registered(), 0);
    }

    #[tokio::test]
    async fn a_dropped_sleep_leaves_nothing_registered() {
        let (timer, deadlines) = timer();
        let mut sleeps: Vec<_> = (0..100)
            .map(|_| timer.sleep(Duration::from_secs(30)))
            .collect();
        for sleep in &mut sleeps {
            assert!(futures_util::poll!(sleep.as_mut()).is_pending());
        }
        assert_eq!(deadlines.registered(), 100);
        drop(sleeps);
        assert_eq!(deadlines.registered(), 0);
    }

    #[test]
    fn a_duration_past_what_an_instant_holds_is_forever() {
        let (timer, _) = timer();
        let mut sleep = timer.sleep(Duration::MAX);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
    }
}
