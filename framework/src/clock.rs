//! Time for the middleware that keeps state (cache, idempotency, rate limits): one trait, the
//! real monotonic clock, and a manual clock so that tests never sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A time source, injectable so that expiry and refill can be tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// The current wall-clock time, for what is compared with timestamps made elsewhere (a
    /// webhook signature's). [`SystemTime::now`] unless the clock says otherwise;
    /// [`ManualClock`] moves it with its instant.
    fn system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The real clock, [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to, for tests. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use arbor::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(clock.now() - start, Duration::from_secs(61));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    system_start: SystemTime,
    offset_nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            system_start: SystemTime::now(),
            offset_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the time to `to` after the instant the clock was created.
    pub fn set(&self, to: Duration) {
        let nanos = u64::try_from(to.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Moves the clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(nanos))
            });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.offset()
    }

    fn system_time(&self) -> SystemTime {
        self.system_start + self.offset()
    }
}

impl ManualClock {
    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn system_time(&self) -> SystemTime {
        (**self).system_time()
    }
}
