//! HTTP caching: `Cache-Control` helpers and an in-memory response cache for `GET` routes.
//!
//! Three tools, usable on their own or together:
//!
//! - [`CacheControl`] builds a `Cache-Control` value (`public, s-maxage=60`,
//!   `private, no-cache`, `no-store`, ...). A handler can return it as part of its response.
//! - [`cache_control`] is middleware that gives a route a default `Cache-Control` when the handler
//!   set none.
//! - [`cache`] is middleware that keeps successful `GET` responses in memory and answers
//!   repeats without running the handler (`X-Cache: HIT`).
//!
//! ```
//! use arbor::cache::{cache, cache_control, CacheControl};
//! use arbor::Json;
//! use serde_json::{json, Value};
//!
//! // app/api/products/route.rs: CDN and in-process caching for 60 s.
//! #[arbor::handler(cache_control(CacheControl::public().s_maxage(60)), cache(ttl = 60))]
//! pub async fn GET() -> Json<Value> {
//!     Json(json!({ "products": [] }))
//! }
//! ```
//!
//! The response cache beats the guide's `withCache`: it is bounded, keeps status and headers,
//! honours `Vary`, `Cache-Control: private`/`no-store` and cookies, never caches errors or
//! other clients' credentialed responses, and runs the handler once when many identical requests
//! miss at the same time. See `docs/caching.md` for the rules.
//!
//! Entries live in each layer's own bounded memory, or in the app's shared [`CacheStore`]
//! ([`Stores::cache`](crate::store::Stores::cache), for example Redis) when it registers one:
//! then an entry filled by one instance is a hit on every other, and [`invalidate`] reaches
//! them all.
//!
//! The module is laid out by role: `control.rs` ([`CacheControl`] and its default-setting
//! layer), `layer.rs` (the [`cache()`] layer and service), `response.rs` (what is stored and
//! how it is looked up), `store.rs` ([`CacheStore`] and [`MemoryCacheStore`]).

mod control;
mod invalidate;
mod layer;
mod response;
mod revalidate;
mod store;

use http::HeaderName;

pub use control::{cache_control, CacheControl, DefaultCacheControl, DefaultCacheControlLayer};
pub use invalidate::{CacheTags, Invalidator};
pub use layer::{cache, Cache, CacheLayer};
pub use revalidate::Revalidate;
pub use store::{CacheItem, CacheStore, CachedResponse, MemoryCacheStore};

pub use crate::clock::{Clock, ManualClock, SystemClock};
use crate::store::{StoreError, Stores};

/// `X-Cache`: whether a response came from the cache (`HIT`) or from the handler (`MISS`).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The longest TTL accepted (ten years); larger values are clamped.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// Drops the cached `GET` responses of `path_and_query` (every variant) from the app's shared
/// cache store, on every instance that uses it: the next request runs the handler again. This
/// is Next.js's `revalidatePath` for one URL.
///
/// Returns `false` when nothing was cached, or when the app registered no shared cache store
/// (each layer's own memory cannot be reached from outside; register a
/// [`MemoryCacheStore`] on a single instance).
///
/// ```
/// use arbor::cache::{invalidate, MemoryCacheStore};
/// use arbor::store::Stores;
///
/// # async fn run() -> Result<(), arbor::store::StoreError> {
/// let stores = Stores::new().cache(MemoryCacheStore::default());
/// // in a handler: `arbor::Extension(stores): arbor::Extension<Stores>`
/// let dropped = invalidate(&stores, "/api/v1/docs/intro").await?;
/// # let _ = dropped; Ok(()) }
/// ```
///
/// # Errors
/// When the store fails.
pub async fn invalidate(stores: &Stores, path_and_query: &str) -> Result<bool, StoreError> {
    Invalidator::new(Some(stores.clone()))
        .path(path_and_query)
        .await
}
