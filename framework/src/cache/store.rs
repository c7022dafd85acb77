//! Where a shared response cache lives: the [`CacheStore`] trait, what it keeps
//! ([`CacheItem`]), a byte encoding for remote stores, and [`MemoryCacheStore`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use moka::sync::Cache;
use moka::Expiry;

use crate::store::{BoxFuture, StoreError};

/// A response as a cache keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers the handler set.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Whether the response was marked `public`: only then is it served to requests carrying
    /// credentials.
    pub public: bool,
    /// When the request that produced it started, by the wall clock: every instance reports
    /// the same `Age`, and a tag invalidated after this moment makes the response stale.
    pub stored_at: SystemTime,
    /// Its tags ([`CacheTags`](super::CacheTags) and the layer's own): invalidating one of
    /// them ([`Invalidator::tag`](super::Invalidator::tag)) makes the response stale.
    pub tags: Vec<String>,
}

/// What one cache key holds.
///
/// A URL whose responses carry no `Vary` keeps its response under its own key. A URL whose
/// responses vary keeps, under its key, the request headers they vary on and a generation;
/// each variant lives under a key derived from those. Invalidating the URL's key makes every
/// variant unreachable at once, and a new generation keeps old variants from coming back.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheItem {
    /// A response.
    Response(Arc<CachedResponse>),
    /// The request headers the URL's responses vary on (lowercase, sorted), and a generation.
    Vary {
        /// The header names.
        names: Arc<[HeaderName]>,
        /// Changes when the URL is stored afresh after an invalidation.
        generation: u64,
    },
    /// When a tag was last invalidated: responses with the tag produced by requests that
    /// started before this moment are stale.
    TagInvalidated(SystemTime),
}

/// A shared response cache: what [`cache()`](super::cache()) layers use when the app registers
/// one ([`Stores::cache`](crate::store::Stores::cache)), so that an entry filled by one instance
/// is a hit on every other, and an invalidation reaches them all.
///
/// Keys are built by the layer (method and URL, or a variant key derived from them). A store
/// that keeps bytes (Redis, memcached) can use [`CacheItem::encode`] and [`CacheItem::decode`].
/// When a call fails the layer bypasses the cache (the handler answers) and logs the outage
/// once.
pub trait CacheStore: Send + Sync + 'static {
    /// The live item under `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<CacheItem>, StoreError>>;

    /// Stores `item` under `key` for `ttl`, replacing what was there.
    fn put(
        &self,
        key: String,
        item: CacheItem,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Removes `key`; `true` if it was there.
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
}

impl<T: CacheStore + ?Sized> CacheStore for Arc<T> {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<CacheItem>, StoreError>> {
        (**self).get(key)
    }

    fn put(
        &self,
        key: String,
        item: CacheItem,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).put(key, item, ttl)
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).remove(key)
    }
}

const RESPONSE_TAG: u8 = 1;
const VARY_TAG: u8 = 2;
/// A response with tags: as [`RESPONSE_TAG`], with the tags between the headers and the body
/// (a separate kind, so that untagged entries keep the format older instances read), and its
/// time in microseconds, as the tag markers': an entry made within the millisecond after an
/// invalidation must not compare as made before it.
const TAGGED_RESPONSE_TAG: u8 = 3;
/// A tag's invalidation time, in microseconds.
const TAG_INVALIDATED_TAG: u8 = 4;

impl CacheItem {
    /// The item as bytes: a kind, then a response (status, `public`, stored-at time,
    /// headers, tags if any, body), a vary list (generation, names) or a tag's invalidation
    /// time. Times are Unix milliseconds, microseconds for tagged responses and tag markers;
    /// lengths are big-endian prefixes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Self::Response(response) => {
                let tagged = !response.tags.is_empty();
                out.put_u8(if tagged {
                    TAGGED_RESPONSE_TAG
                } else {
                    RESPONSE_TAG
                });
                out.put_u16(response.status.as_u16());
                out.put_u8(u8::from(response.public));
                out.put_u64(if tagged {
                    micros(response.stored_at)
                } else {
                    millis(response.stored_at)
                });
                out.put_u32(u32::try_from(response.headers.len()).unwrap_or(u32::MAX));
                for (name, value) in &response.headers {
                    put_chunk(&mut out, name.as_str().as_bytes());
                    put_chunk(&mut out, value.as_bytes());
                }
                if tagged {
                    out.put_u32(u32::try_from(response.tags.len()).unwrap_or(u32::MAX));
                    for tag in &response.tags {
                        put_chunk(&mut out, tag.as_bytes());
                    }
                }
                out.put_slice(&response.body);
            }
            Self::Vary { names, generation } => {
                out.put_u8(VARY_TAG);
                out.put_u64(*generation);
                out.put_u32(u32::try_from(names.len()).unwrap_or(u32::MAX));
                for name in names.iter() {
                    put_chunk(&mut out, name.as_str().as_bytes());
                }
            }
            Self::TagInvalidated(at) => {
                out.put_u8(TAG_INVALIDATED_TAG);
                out.put_u64(micros(*at));
            }
        }
        out.freeze()
    }

    /// Reads what [`encode`](Self::encode) wrote.
    ///
    /// # Errors
    /// If the bytes are not an encoded item (truncated, another format, an invalid header).
    pub fn decode(mut bytes: Bytes) -> Result<Self, StoreError> {
        let corrupt = || StoreError::new("a cache entry is not in Arbor's format");
        let need = |bytes: &Bytes, n: usize| {
            if bytes.remaining() < n {
                Err(corrupt())
            } else {
                Ok(())
            }
        };
        need(&bytes, 1)?;
        match bytes.get_u8() {
            kind @ (RESPONSE_TAG | TAGGED_RESPONSE_TAG) => {
                need(&bytes, 2 + 1 + 8 + 4)?;
                let status = StatusCode::from_u16(bytes.get_u16()).map_err(|_| corrupt())?;
                let public = bytes.get_u8() == 1;
                let stored_at = UNIX_EPOCH
                    + if kind == TAGGED_RESPONSE_TAG {
                        Duration::from_micros(bytes.get_u64())
                    } else {
                        Duration::from_millis(bytes.get_u64())
                    };
                let count = bytes.get_u32() as usize;
                let mut headers = HeaderMap::with_capacity(count.min(64));
                for _ in 0..count {
                    let name = take_chunk(&mut bytes).ok_or_else(corrupt)?;
                    let value = take_chunk(&mut bytes).ok_or_else(corrupt)?;
                    headers.append(
                        HeaderName::from_bytes(&name).map_err(|_| corrupt())?,
                        HeaderValue::from_maybe_shared(value).map_err(|_| corrupt())?,
                    );
                }
                let mut tags = Vec::new();
                if kind == TAGGED_RESPONSE_TAG {
                    need(&bytes, 4)?;
                    let count = bytes.get_u32() as usize;
                    tags.reserve(count.min(64));
                    for _ in 0..count {
                        let tag = take_chunk(&mut bytes).ok_or_else(corrupt)?;
                        tags.push(String::from_utf8(tag.to_vec()).map_err(|_| corrupt())?);
                    }
                }
                Ok(Self::Response(Arc::new(CachedResponse {
                    status,
                    headers,
                    body: bytes,
                    public,
                    stored_at,
                    tags,
                })))
            }
            TAG_INVALIDATED_TAG => {
                need(&bytes, 8)?;
                Ok(Self::TagInvalidated(
                    UNIX_EPOCH + Duration::from_micros(bytes.get_u64()),
                ))
            }
            VARY_TAG => {
                need(&bytes, 8 + 4)?;
                let generation = bytes.get_u64();
                let count = bytes.get_u32() as usize;
                let mut names = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    let name = take_chunk(&mut bytes).ok_or_else(corrupt)?;
                    names.push(HeaderName::from_bytes(&name).map_err(|_| corrupt())?);
                }
                Ok(Self::Vary {
                    names: names.into(),
                    generation,
                })
            }
            _ => Err(corrupt()),
        }
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

fn micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
    })
}

fn put_chunk(out: &mut BytesMut, chunk: &[u8]) {
    out.put_u32(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
    out.put_slice(chunk);
}

fn take_chunk(bytes: &mut Bytes) -> Option<Bytes> {
    if bytes.remaining() < 4 {
        return None;
    }
    let len = bytes.get_u32() as usize;
    (bytes.remaining() >= len).then(|| bytes.split_to(len))
}

/// A [`CacheStore`] in this process's memory, bounded, with a TTL per item.
///
/// Register it with [`Stores::cache`](crate::store::Stores::cache) on a single instance to give
/// every `cache()` layer one bounded store that the app can invalidate by URL
/// ([`invalidate`](super::invalidate)). Clones share the same items.
#[derive(Clone)]
pub struct MemoryCacheStore {
    items: Cache<String, (CacheItem, Duration)>,
}

struct ItemTtl;

impl Expiry<String, (CacheItem, Duration)> for ItemTtl {
    fn expire_after_create(
        &self,
        _: &String,
        (_, ttl): &(CacheItem, Duration),
        _: Instant,
    ) -> Option<Duration> {
        Some(*ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        (_, ttl): &(CacheItem, Duration),
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(*ttl)
    }
}

impl MemoryCacheStore {
    /// A store of at most `max_items` items (responses and vary lists).
    pub fn new(max_items: u64) -> Self {
        Self {
            items: Cache::builder()
                .max_capacity(max_items)
                .expire_after(ItemTtl)
                .build(),
        }
    }
}

impl Default for MemoryCacheStore {
    /// 10,000 items.
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl fmt::Debug for MemoryCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCacheStore")
            .field("items", &self.items.entry_count())
            .finish()
    }
}

impl CacheStore for MemoryCacheStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<CacheItem>, StoreError>> {
        let item = self.items.get(key).map(|(item, _)| item);
        Box::pin(std::future::ready(Ok(item)))
    }

    fn put(
        &self,
        key: String,
        item: CacheItem,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.items.insert(key, (item, ttl));
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let removed = self.items.remove(key).is_some();
        Box::pin(std::future::ready(Ok(removed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_through_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("set-thing", HeaderValue::from_static("a"));
        headers.append("set-thing", HeaderValue::from_static("b"));
        let response = CacheItem::Response(Arc::new(CachedResponse {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"ok\":true}"),
            public: true,
            stored_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            tags: Vec::new(),
        }));
        assert_eq!(CacheItem::decode(response.encode()).unwrap(), response);
        let CacheItem::Response(untagged) = &response else {
            unreachable!()
        };
        // Tagged responses and tag markers keep microseconds: an entry made in the
        // millisecond after an invalidation still compares as made after it.
        let tagged = CacheItem::Response(Arc::new(CachedResponse {
            tags: vec!["posts".into(), "post:7".into()],
            stored_at: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_457),
            ..CachedResponse::clone(untagged)
        }));
        // Untagged responses keep the format older instances read; tagged ones say so.
        assert_eq!(response.encode()[0], RESPONSE_TAG);
        assert_eq!(tagged.encode()[0], TAGGED_RESPONSE_TAG);
        assert_eq!(CacheItem::decode(tagged.encode()).unwrap(), tagged);
        let invalidated =
            CacheItem::TagInvalidated(UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456));
        assert_eq!(
            CacheItem::decode(invalidated.encode()).unwrap(),
            invalidated
        );
        let vary = CacheItem::Vary {
            names: vec![
                HeaderName::from_static("accept-language"),
                HeaderName::from_static("origin"),
            ]
            .into(),
            generation: 42,
        };
        assert_eq!(CacheItem::decode(vary.encode()).unwrap(), vary);
    }

    #[test]
    fn truncated_or_foreign_bytes_are_errors_not_panics() {
        let vary = CacheItem::Vary {
            names: vec![HeaderName::from_static("origin")].into(),
            generation: 1,
        };
        let tagged = CacheItem::Response(Arc::new(CachedResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            public: false,
            stored_at: UNIX_EPOCH,
            tags: vec!["posts".into()],
        }));
        let invalidated = CacheItem::TagInvalidated(UNIX_EPOCH);
        for encoded in [vary.encode(), tagged.encode(), invalidated.encode()] {
            for cut in 0..encoded.len() {
                assert!(
                    CacheItem::decode(encoded.slice(..cut)).is_err(),
                    "cut at {cut}"
                );
            }
        }
        assert!(CacheItem::decode(Bytes::from_static(b"\x09garbage")).is_err());
    }

    #[tokio::test]
    async fn memory_store_puts_gets_and_removes() {
        let store = MemoryCacheStore::new(10);
        let item = CacheItem::Vary {
            names: Vec::new().into(),
            generation: 7,
        };
        store
            .put("k".into(), item.clone(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.get("k").await.unwrap(), Some(item));
        assert!(store.remove("k").await.unwrap());
        assert!(!store.remove("k").await.unwrap());
        assert_eq!(store.get("k").await.unwrap(), None);
    }
}
