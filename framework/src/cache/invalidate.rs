//! Invalidation from anywhere in the app: by URL (Next.js's `revalidatePath`) and by tag
//! (`revalidateTag`), in the app's shared store and in every `cache()` layer of this process.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponseParts, ResponseParts};
use http::request::Parts;

use super::response::{mark_tag_invalidated, primary_key_of, ResponseCache};
use crate::store::{StoreError, Stores};

/// Tags for the response they are part of: invalidating any of them with
/// [`Invalidator::tag`] drops the cached response. They add to the tags of the route's
/// `cache(tags = [..])`.
///
/// ```
/// use arbor::cache::CacheTags;
/// use arbor::{Json, Path};
/// use serde_json::{json, Value};
///
/// #[arbor::handler(arbor::cache::cache(ttl = 300, tags = ["posts"]))]
/// pub async fn GET(Path(id): Path<String>) -> (CacheTags, Json<Value>) {
///     (CacheTags::new([format!("post:{id}")]), Json(json!({ "id": id })))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct CacheTags(pub(super) Vec<String>);

impl CacheTags {
    /// These tags.
    pub fn new<T: Into<String>>(tags: impl IntoIterator<Item = T>) -> Self {
        Self(tags.into_iter().map(Into::into).collect())
    }

    /// The tags.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl IntoResponseParts for CacheTags {
    type Error = Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Infallible> {
        match parts.extensions_mut().get_mut::<Self>() {
            Some(existing) => existing.0.extend(self.0),
            None => {
                parts.extensions_mut().insert(self);
            }
        }
        Ok(parts)
    }
}

/// Drops cached responses by URL or by tag: in the app's shared [`CacheStore`](super::CacheStore)
/// (every instance that uses it) and in the memory of every `cache()` layer of this process.
/// As an extractor it finds the app's [`Stores`]; elsewhere (a webhook processor, a job) build
/// it with [`Invalidator::new`].
///
/// ```
/// use arbor::cache::Invalidator;
/// use arbor::{ApiError, ResultExt};
///
/// // app/api/posts/route.rs: a new post makes every list tagged `posts` stale.
/// pub async fn POST(invalidate: Invalidator) -> Result<&'static str, ApiError> {
///     // ... insert the post ...
///     invalidate.tag("posts").await.or_internal()?;
///     Ok("created")
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Invalidator {
    stores: Option<Stores>,
}

impl Invalidator {
    /// Invalidates the app's `stores` (if any) and this process's `cache()` layers.
    pub fn new(stores: Option<Stores>) -> Self {
        Self { stores }
    }

    /// Drops the cached `GET` responses of `path_and_query` (every variant): the next request
    /// runs the handler again. `true` if something was cached.
    ///
    /// # Errors
    /// When a shared store fails (the local layers are invalidated all the same).
    pub async fn path(&self, path_and_query: &str) -> Result<bool, StoreError> {
        let primary = primary_key_of(path_and_query);
        let mut dropped = false;
        for cache in local_caches() {
            dropped |= cache.invalidate_primary(&primary).await?;
        }
        if let Some(store) = self.stores.as_ref().and_then(Stores::cache_store) {
            dropped |= store.remove(&primary).await?;
        }
        Ok(dropped)
    }

    /// Makes every cached response tagged `tag` stale, including those being produced right
    /// now (a request that started before this call is not stored).
    ///
    /// # Errors
    /// When a shared store fails (the local layers are invalidated all the same).
    pub async fn tag(&self, tag: &str) -> Result<(), StoreError> {
        let now = SystemTime::now();
        registry().tags.insert(tag.to_owned(), now);
        for cache in local_caches() {
            cache.invalidate_tag(tag, now).await?;
        }
        if let Some(store) = self.stores.as_ref().and_then(Stores::cache_store) {
            mark_tag_invalidated(store.as_ref(), tag, now).await?;
        }
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Invalidator {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self::new(
            Stores::from_extensions(&parts.extensions).cloned(),
        ))
    }
}

/// The `cache()` layers of this process, and when each tag was last invalidated here.
struct Registry {
    caches: Mutex<Vec<Weak<ResponseCache>>>,
    /// Only needed for as long as a request can take: a response whose request started before
    /// the invalidation must not be stored when it finishes after it.
    tags: moka::sync::Cache<String, SystemTime>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        caches: Mutex::new(Vec::new()),
        tags: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(60 * 60))
            .build(),
    })
}

/// Makes `cache` reachable by [`Invalidator`].
pub(super) fn register(cache: &Arc<ResponseCache>) {
    let mut caches = registry()
        .caches
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    caches.retain(|cache| cache.strong_count() > 0);
    caches.push(Arc::downgrade(cache));
}

fn local_caches() -> Vec<Arc<ResponseCache>> {
    registry()
        .caches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}

/// Whether `tag` was invalidated in this process at or after `since`.
pub(super) fn invalidated_here_since(tag: &str, since: SystemTime) -> bool {
    registry().tags.get(tag).is_some_and(|at| at >= since)
}
