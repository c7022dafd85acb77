//! GCRA, the generic cell rate algorithm: one timestamp per key, no window boundary.

use std::time::Duration;

use http::header::Entry;
use http::HeaderMap;

use super::{number, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET};

/// A limit of `limit` requests per `window`, with bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    window: Duration,
}

impl Quota {
    /// `limit` requests per `window`.
    ///
    /// # Panics
    /// If `limit` is 0 or `window` is zero.
    pub fn new(limit: u32, window: Duration) -> Self {
        assert!(
            limit > 0,
            "a rate limit must allow at least 1 request per window"
        );
        assert!(
            !window.is_zero(),
            "a rate limit window must be longer than zero"
        );
        Self { limit, window }
    }

    /// Requests per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The time one request uses up: `window / limit` (at least 1 ns).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    pub(super) fn interval_nanos(&self) -> u64 {
        (nanos(self.window) / u64::from(self.limit)).max(1)
    }

    /// One GCRA step: the decision for a request at `now`, given the key's stored theoretical
    /// arrival time (`None` for a key never seen), and the arrival time to store if the request
    /// is allowed (a denied request changes nothing).
    ///
    /// `tat` and `now` are durations since any origin the store chooses, the same for both.
    /// Stores that keep state elsewhere (Redis, a database) apply this atomically per key.
    pub fn evaluate(&self, tat: Option<Duration>, now: Duration) -> (Decision, Option<Duration>) {
        let (decision, tat) = self.evaluate_nanos(tat.map_or(0, nanos), nanos(now));
        (decision, tat.map(Duration::from_nanos))
    }

    pub(super) fn evaluate_nanos(&self, tat: u64, now: u64) -> (Decision, Option<u64>) {
        let interval = self.interval_nanos();
        // The burst tolerance: `limit` intervals, i.e. the window rounded down to them.
        let capacity = interval.saturating_mul(u64::from(self.limit));
        let new_tat = tat.max(now).saturating_add(interval);
        let ahead = new_tat - now;
        if ahead <= capacity {
            let remaining = (capacity - ahead) / interval;
            let decision = Decision {
                allowed: true,
                limit: self.limit,
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                reset_after: Duration::from_nanos(ahead),
                retry_after: Duration::ZERO,
            };
            (decision, Some(new_tat))
        } else {
            // Denied, so `tat > now`: the next request fits once `tat + interval - now` is
            // down to `capacity`.
            let decision = Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_after: Duration::from_nanos(tat.saturating_sub(now)),
                retry_after: Duration::from_nanos(ahead - capacity),
            };
            (decision, None)
        }
    }
}

/// The outcome of checking one request against a [`Quota`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The quota's limit.
    pub limit: u32,
    /// Requests the key may still send right now, after this one.
    pub remaining: u32,
    /// Time until the key's whole allowance (`limit` requests) is available again.
    pub reset_after: Duration,
    /// For a denied request, the time until the next request is allowed; zero otherwise.
    pub retry_after: Duration,
}

impl Decision {
    /// [`reset_after`](Self::reset_after) in whole seconds, rounded up: `X-RateLimit-Reset`.
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }

    /// [`retry_after`](Self::retry_after) in whole seconds, rounded up and at least 1 for a
    /// denied request: `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        if self.allowed {
            0
        } else {
            ceil_secs(self.retry_after).max(1)
        }
    }

    /// Sets `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`, unless the
    /// headers already describe a limit with fewer requests remaining (an inner limit), so that
    /// nested limits report the one closest to refusing.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.reserve(3);
        // One lookup of `X-RateLimit-Remaining` both finds an inner limit and, in the common
        // case of none, inserts this one's.
        match headers.entry(X_RATELIMIT_REMAINING) {
            Entry::Vacant(slot) => {
                slot.insert(number(u64::from(self.remaining)));
            }
            Entry::Occupied(mut inner) => {
                let tighter = inner
                    .get()
                    .to_str()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|existing| existing < u64::from(self.remaining));
                if tighter {
                    return;
                }
                // Replaces every value the header had.
                inner.insert(number(u64::from(self.remaining)));
            }
        }
        headers.insert(X_RATELIMIT_LIMIT, number(u64::from(self.limit)));
        headers.insert(X_RATELIMIT_RESET, number(self.reset_after_secs()));
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
