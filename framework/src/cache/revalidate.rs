//! `pub const REVALIDATE` in a route file: how long its `GET` responses are cached, here and by
//! CDNs.

use super::{CacheControl, MAX_TTL_SECS};

/// What a route's `pub const REVALIDATE` says: its `GET` responses are cached that long in the
/// response cache, and answered with `Cache-Control: public, s-maxage=N` (plus
/// `stale-while-revalidate=M` when asked) unless the handler sets its own, or the request was
/// authenticated (then `private, no-cache`, see [`require_auth`](crate::auth::require_auth)).
///
/// A number of seconds is enough; the type is for `stale-while-revalidate`:
///
/// ```
/// use arbor::cache::Revalidate;
///
/// // app/api/products/route.rs
/// pub const REVALIDATE: Revalidate = Revalidate::every(60).stale_while_revalidate(300);
/// // or: pub const REVALIDATE: u64 = 60;
/// # let _ = REVALIDATE;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Revalidate {
    seconds: u64,
    stale_while_revalidate: Option<u64>,
}

impl Revalidate {
    /// Cached for `seconds` (at most ten years).
    pub const fn every(seconds: u64) -> Self {
        Self {
            seconds: if seconds > MAX_TTL_SECS {
                MAX_TTL_SECS
            } else {
                seconds
            },
            stale_while_revalidate: None,
        }
    }

    /// After `seconds`, a CDN may serve the stale response for `window` more seconds while it
    /// fetches a fresh one in the background.
    pub const fn stale_while_revalidate(mut self, window: u64) -> Self {
        self.stale_while_revalidate = Some(window);
        self
    }

    /// How long responses are cached.
    pub const fn seconds(&self) -> u64 {
        self.seconds
    }

    /// The `Cache-Control` the route answers with by default.
    pub fn cache_control(&self) -> CacheControl {
        let control = CacheControl::public().s_maxage(self.seconds);
        match self.stale_while_revalidate {
            Some(window) => control.stale_while_revalidate(window),
            None => control,
        }
    }
}

impl From<u64> for Revalidate {
    fn from(seconds: u64) -> Self {
        Self::every(seconds)
    }
}
