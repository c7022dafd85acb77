//! Per-route rate limiting with GCRA, pluggable storage and the standard `429`.
//!
//! ```
//! use arbor::rate_limit;
//!
//! // app/api/(auth)/login/route.rs: 5 attempts per minute, per client address.
//! #[arbor::handler(rate_limit(limit = 5, window = 60))]
//! pub async fn POST() -> &'static str {
//!     "welcome"
//! }
//! ```
//!
//! [`rate_limit()`] returns a [`RateLimitLayer`], a tower layer and its builder. Every response of a
//! limited route carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`;
//! a request over the limit is answered `429 RATE_LIMITED` with `Retry-After`, without running
//! the handler.
//!
//! The algorithm is GCRA (the generic cell rate algorithm): each key holds one timestamp, the
//! *theoretical arrival time* (TAT). A quota of `limit` per `window` admits one request every
//! `window / limit` on average and a burst of up to `limit` after a quiet period. Unlike a fixed
//! window, there is no boundary at which a client can send `2 × limit` requests in a moment.
//!
//! State lives in a [`RateLimitStore`]. A layer given no store of its own uses the app's shared
//! store ([`Stores`](crate::store::Stores), for example Redis, so that a limit holds across
//! instances), and otherwise its own [`MemoryStore`]: one timestamp per key in a bounded table
//! that forgets idle keys. See `docs/rate-limiting.md`.
//!
//! The module is laid out by role: `layer.rs` (the layer and its service), `gcra.rs` (the
//! algorithm: [`Quota`] and [`Decision`]), `store.rs` ([`RateLimitStore`] and [`MemoryStore`]).

mod gcra;
mod layer;
mod store;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, HeaderValue};

pub use gcra::{Decision, Quota};
pub use layer::{RateLimit, RateLimitLayer, ResponseFuture};
pub use store::{MemoryStore, RateLimitStore};

pub use crate::clock::{Clock, ManualClock, SystemClock};
/// The boxed future [`RateLimitStore::check`] returns.
pub use crate::store::{BoxFuture, StoreError};

/// Requests allowed per window when [`RateLimitLayer::limit`] is not called.
pub const DEFAULT_LIMIT: u32 = 100;
/// The window when [`RateLimitLayer::window`] is not called: 60 seconds.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Keys a [`MemoryStore`] holds at most when built with [`MemoryStore::default`].
pub const DEFAULT_MAX_CAPACITY: u64 = 10_000;

/// `X-RateLimit-Limit`: the requests allowed per window.
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: the requests the client may still send right now.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: seconds until the client's whole allowance is available again.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A rate limit of 100 requests per 60 seconds per client and route, in memory: configure it
/// with the [`RateLimitLayer`] setters.
///
/// ```
/// use std::time::Duration;
///
/// use arbor::rate_limit;
/// use arbor::rate_limit::MemoryStore;
///
/// let login = rate_limit().limit(5).window(60);
/// let search = rate_limit()
///     .limit(20)
///     .window_duration(Duration::from_millis(1500))
///     .key(|parts| {
///         parts
///             .headers
///             .get("x-api-key")
///             .and_then(|v| v.to_str().ok())
///             .map(|key| format!("api-key:{key}"))
///     })
///     .store(MemoryStore::new(100_000));
/// # let _ = (login, search);
/// ```
pub fn rate_limit() -> RateLimitLayer {
    RateLimitLayer::new(Quota::new(DEFAULT_LIMIT, DEFAULT_WINDOW))
}

/// A custom key function: the bucket a request counts against.
pub type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// A header value for `n`; small numbers come from a table, without allocating.
pub(crate) fn number(n: u64) -> HeaderValue {
    const SMALL: u64 = 1024;
    // Static strings, so a clone copies a pointer: a value made with `HeaderValue::from(u64)`
    // is a heap buffer, and cloning one allocates or bumps a shared count.
    static TABLE: OnceLock<Box<[HeaderValue]>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let digits: &'static str = (0..SMALL).map(|i| i.to_string()).collect::<String>().leak();
        let mut start = 0;
        (0..SMALL)
            .map(|i| {
                let end = start + i.checked_ilog10().unwrap_or(0) as usize + 1;
                let value = HeaderValue::from_static(&digits[start..end]);
                start = end;
                value
            })
            .collect()
    });
    usize::try_from(n)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(n))
}
