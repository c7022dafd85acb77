//! What the response cache stores, and how a request finds it: in the layer's own memory, or
//! in a shared [`CacheStore`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tower::Service;

use super::invalidate;
use super::layer::CacheConfig;
use super::{CacheControl, CacheItem, CacheStore, CacheTags, CachedResponse, X_CACHE};
use crate::body::{buffer_body, Buffered};
use crate::clock::Clock;
use crate::store::{OutageLog, StoreError, Stores};

/// One cached response.
#[derive(Debug)]
struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    public: bool,
    stored_at: Instant,
    expires_at: Instant,
    tags: Arc<[String]>,
}

/// The exact key of an entry: method and URI, plus the request's values of the headers the
/// response's `Vary` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryKey {
    primary: Arc<str>,
    vary: Vec<(HeaderName, Option<Bytes>)>,
}

type VaryList = Arc<[HeaderName]>;

pub(super) struct ResponseCache {
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    /// The layer's own or the app's shared store, if any; else `entries` and `vary`.
    own_shared: Option<Arc<dyn CacheStore>>,
    outage: OutageLog,
    entries: moka::sync::Cache<EntryKey, Arc<Entry>>,
    /// The `Vary` list last stored for each method + URI, to build the exact key of a lookup.
    vary: moka::sync::Cache<Arc<str>, VaryList>,
    /// Misses being answered now, by method + URI: identical requests wait for the first.
    flights: Mutex<HashMap<Arc<str>, watch::Receiver<()>>>,
}

enum Flight {
    Leader(FlightGuard),
    Follower(watch::Receiver<()>),
}

/// Ends a flight when dropped (stored, uncacheable, or cancelled): followers wake up.
struct FlightGuard {
    store: Arc<ResponseCache>,
    primary: Arc<str>,
    _done: watch::Sender<()>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.store
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.primary);
        // `_done` drops after this, which wakes every receiver.
    }
}

/// Why a response is stored, and for how long.
struct Storable {
    ttl: Duration,
    vary: VaryList,
    public: bool,
}

impl ResponseCache {
    pub(super) fn new(
        config: CacheConfig,
        clock: Arc<dyn Clock>,
        own_shared: Option<Arc<dyn CacheStore>>,
    ) -> Self {
        // Invalidation closures: dropping every variant of a URL, or every entry with a tag.
        let mut entries = moka::sync::Cache::builder()
            .max_capacity(config.max_entries)
            .support_invalidation_closures();
        let mut vary = moka::sync::Cache::builder().max_capacity(config.max_entries);
        if !config.ttl.is_zero() {
            // A backstop that frees memory; freshness itself is checked with `clock`.
            entries = entries.time_to_live(config.ttl);
            vary = vary.time_to_live(config.ttl);
        }
        Self {
            config,
            clock,
            own_shared,
            outage: OutageLog::new("response cache"),
            entries: entries.build(),
            vary: vary.build(),
            flights: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn handle<S>(
        self: Arc<Self>,
        mut inner: S,
        request: Request,
    ) -> Result<Response, S::Error>
    where
        S: Service<Request, Response = Response> + Send + 'static,
        S::Future: Send + 'static,
    {
        let method = request.method().clone();
        if method != Method::GET && method != Method::HEAD {
            return inner.call(request).await;
        }
        // Before the handler runs: a tag invalidated from now on makes what it answers stale.
        let started = SystemTime::now();
        let head = method == Method::HEAD;
        let credentials = request.headers().contains_key(header::AUTHORIZATION)
            || request.headers().contains_key(header::COOKIE);
        let primary = primary_key(&request);
        let shared = self.own_shared.clone().or_else(|| {
            Stores::from_extensions(request.extensions())
                .and_then(Stores::cache_store)
                .cloned()
        });
        let shared = shared.as_deref();

        let (found, mut seen_vary) = self.lookup(shared, &primary, request.headers()).await;
        if let Some(found) = found {
            if !credentials || found.public {
                return Ok(found.into_response(head));
            }
        }

        // Identical anonymous GETs that miss together run the handler once: the first leads,
        // the others wait for it and look again.
        let mut flight = None;
        if !credentials && !head {
            match self.begin_flight(&primary) {
                Flight::Leader(guard) => flight = Some(guard),
                Flight::Follower(mut done) => {
                    // Err means the leader finished (its sender is gone): the expected wake-up.
                    let _ = done.changed().await;
                    let (found, vary) = self.lookup(shared, &primary, request.headers()).await;
                    if let Some(found) = found {
                        return Ok(found.into_response(false));
                    }
                    seen_vary = vary;
                }
            }
        }

        let request_headers = request.headers().clone();
        let response = inner.call(request).await?;
        let mut response = if head {
            // A HEAD answer has no body to reuse; only GET fills the cache.
            response
        } else {
            let target = Target {
                shared,
                seen_vary,
                started,
            };
            self.store(target, primary, &request_headers, credentials, response)
                .await
        };
        drop(flight);
        ::metrics::counter!(crate::metrics::CACHE_LOOKUPS, "result" => "miss").increment(1);
        response
            .headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("MISS"));
        Ok(response)
    }

    fn begin_flight(self: &Arc<Self>, primary: &Arc<str>) -> Flight {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(done) = flights.get(primary) {
            return Flight::Follower(done.clone());
        }
        let (tx, rx) = watch::channel(());
        flights.insert(primary.clone(), rx);
        Flight::Leader(FlightGuard {
            store: self.clone(),
            primary: primary.clone(),
            _done: tx,
        })
    }

    /// The entry for the request, from the shared store or this layer's memory, and the vary
    /// list the shared store holds for the URL (to keep its generation when storing).
    async fn lookup(
        &self,
        shared: Option<&dyn CacheStore>,
        primary: &Arc<str>,
        request_headers: &HeaderMap,
    ) -> (Option<Found>, Option<SeenVary>) {
        let Some(store) = shared else {
            return (self.lookup_memory(primary, request_headers), None);
        };
        let item = match store.get(primary).await {
            Ok(item) => item,
            Err(error) => {
                self.outage.failed(&error);
                return (None, None);
            }
        };
        let (response, seen) = match item {
            None | Some(CacheItem::TagInvalidated(_)) => (None, None),
            Some(CacheItem::Response(response)) => (Some(response), None),
            Some(CacheItem::Vary { names, generation }) => {
                let key = variant_key(primary, generation, &names, request_headers);
                let response = match store.get(&key).await {
                    Ok(Some(CacheItem::Response(response))) => Some(response),
                    Ok(_) => None,
                    Err(error) => {
                        self.outage.failed(&error);
                        return (None, None);
                    }
                };
                (response, Some(SeenVary { names, generation }))
            }
        };
        let response = match response {
            Some(response) if !response.tags.is_empty() => {
                match invalidated_since(store, &response.tags, response.stored_at).await {
                    Ok(false) => Some(response),
                    Ok(true) => None,
                    Err(error) => {
                        self.outage.failed(&error);
                        return (None, None);
                    }
                }
            }
            response => response,
        };
        self.outage.recovered();
        let found = response.map(|response| {
            let age = SystemTime::now()
                .duration_since(response.stored_at)
                .unwrap_or_default();
            Found {
                public: response.public,
                status: response.status,
                headers: response.headers.clone(),
                body: response.body.clone(),
                age,
            }
        });
        (found, seen)
    }

    fn lookup_memory(&self, primary: &Arc<str>, request_headers: &HeaderMap) -> Option<Found> {
        let vary = self.vary.get(primary)?;
        let key = entry_key(primary, &vary, request_headers);
        let entry = self.entries.get(&key)?;
        let now = self.clock.now();
        if now >= entry.expires_at {
            self.entries.invalidate(&key);
            return None;
        }
        Some(Found {
            public: entry.public,
            status: entry.status,
            headers: entry.headers.clone(),
            body: entry.body.clone(),
            age: now.saturating_duration_since(entry.stored_at),
        })
    }

    fn storable(&self, response: &Response, credentials: bool) -> Option<Storable> {
        let status = response.status();
        if !status.is_success() || status == StatusCode::PARTIAL_CONTENT {
            return None;
        }
        let headers = response.headers();
        if headers.contains_key(header::SET_COOKIE) {
            return None;
        }
        let control = CacheControl::from_headers(headers).unwrap_or_default();
        if control.is_private() || control.is_no_store() || control.is_no_cache() {
            return None;
        }
        if credentials && !control.is_public() {
            return None;
        }
        let mut ttl = self.config.ttl;
        if let Some(secs) = control.s_maxage_secs().or(control.max_age_secs()) {
            ttl = ttl.min(Duration::from_secs(secs));
        }
        if ttl.is_zero() {
            return None;
        }
        let vary = vary_list(headers)?;
        if let Some(length) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if length > u64::try_from(self.config.max_body_bytes).unwrap_or(u64::MAX) {
                return None;
            }
        }
        Some(Storable {
            ttl,
            vary,
            public: control.is_public(),
        })
    }

    async fn store(
        &self,
        target: Target<'_>,
        primary: Arc<str>,
        request_headers: &HeaderMap,
        credentials: bool,
        response: Response,
    ) -> Response {
        let Some(storable) = self.storable(&response, credentials) else {
            return response;
        };
        let mut tags = self.config.tags.to_vec();
        if let Some(CacheTags(more)) = response.extensions().get::<CacheTags>() {
            tags.extend(more.iter().cloned());
        }
        if tags
            .iter()
            .any(|tag| invalidate::invalidated_here_since(tag, target.started))
        {
            // Invalidated while the handler ran: what it read may be what changed.
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = match buffer_body(body, self.config.max_body_bytes).await {
            Buffered::Complete(bytes) => bytes,
            Buffered::Partial { body, .. } => return Response::from_parts(parts, body),
        };
        match target.shared {
            Some(store) => {
                let response = CachedResponse {
                    status: parts.status,
                    headers: parts.headers.clone(),
                    body: bytes.clone(),
                    public: storable.public,
                    stored_at: target.started,
                    tags,
                };
                let stored = store_shared(
                    store,
                    target.seen_vary,
                    primary,
                    storable,
                    request_headers,
                    response,
                )
                .await;
                match stored {
                    Ok(()) => self.outage.recovered(),
                    Err(error) => self.outage.failed(&error),
                }
            }
            None => {
                let now = self.clock.now();
                let key = entry_key(&primary, &storable.vary, request_headers);
                self.entries.insert(
                    key,
                    Arc::new(Entry {
                        status: parts.status,
                        headers: parts.headers.clone(),
                        body: bytes.clone(),
                        public: storable.public,
                        stored_at: now,
                        expires_at: now + storable.ttl,
                        tags: tags.into(),
                    }),
                );
                self.vary.insert(primary, storable.vary);
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// Where a miss is stored, what the lookup saw there, and when the request started.
struct Target<'a> {
    shared: Option<&'a dyn CacheStore>,
    seen_vary: Option<SeenVary>,
    started: SystemTime,
}

/// The vary list a shared store held for a URL.
struct SeenVary {
    names: Arc<[HeaderName]>,
    generation: u64,
}

/// A response found in the cache, ready to be sent again.
struct Found {
    public: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    age: Duration,
}

impl Found {
    fn into_response(self, head: bool) -> Response {
        let length = self.body.len();
        let body = if head {
            Body::empty()
        } else {
            Body::from(self.body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        let headers = response.headers_mut();
        if head {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        headers.insert(header::AGE, HeaderValue::from(self.age.as_secs()));
        headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
        ::metrics::counter!(crate::metrics::CACHE_LOOKUPS, "result" => "hit").increment(1);
        response
    }
}

impl ResponseCache {
    /// Drops every variant of `primary` from this layer's own store or memory; `true` if it
    /// held any.
    pub(super) async fn invalidate_primary(&self, primary: &str) -> Result<bool, StoreError> {
        if let Some(store) = &self.own_shared {
            return store.remove(primary).await;
        }
        let held = self.vary.contains_key(primary);
        self.vary.invalidate(primary);
        let primary: Arc<str> = Arc::from(primary);
        // Every variant, or one kept under an old vary list would come back with a new one.
        if let Err(error) = self
            .entries
            .invalidate_entries_if(move |key, _| key.primary == primary)
        {
            tracing::error!(%error, "could not invalidate cached responses");
        }
        Ok(held)
    }

    /// Makes this layer's entries tagged `tag` stale (`at`: when the tag was invalidated).
    pub(super) async fn invalidate_tag(&self, tag: &str, at: SystemTime) -> Result<(), StoreError> {
        if let Some(store) = &self.own_shared {
            return mark_tag_invalidated(store.as_ref(), tag, at).await;
        }
        let tag = tag.to_owned();
        if let Err(error) = self
            .entries
            .invalidate_entries_if(move |_, entry| entry.tags.contains(&tag))
        {
            tracing::error!(%error, "could not invalidate cached responses");
        }
        Ok(())
    }
}

/// The key under which a shared store keeps when `tag` was last invalidated.
fn tag_key(tag: &str) -> String {
    format!("TAG {tag}")
}

/// Records in `store` that `tag` was invalidated `at`, for as long as the longest entry could
/// live, so that no tagged response outlives the marker.
pub(super) async fn mark_tag_invalidated(
    store: &dyn CacheStore,
    tag: &str,
    at: SystemTime,
) -> Result<(), StoreError> {
    let ttl = Duration::from_secs(super::MAX_TTL_SECS);
    store
        .put(tag_key(tag), CacheItem::TagInvalidated(at), ttl)
        .await
}

/// Whether any of `tags` was invalidated at or after `since`, by the markers in `store`.
async fn invalidated_since(
    store: &dyn CacheStore,
    tags: &[String],
    since: SystemTime,
) -> Result<bool, StoreError> {
    for tag in tags {
        if let Some(CacheItem::TagInvalidated(at)) = store.get(&tag_key(tag)).await? {
            if at >= since {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Stores a response in a shared store: under the URL's key when it does not vary, else under
/// a variant key, with the URL's vary list (keeping the generation the lookup saw, so that the
/// URL's other variants stay reachable).
async fn store_shared(
    store: &dyn CacheStore,
    seen_vary: Option<SeenVary>,
    primary: Arc<str>,
    storable: Storable,
    request_headers: &HeaderMap,
    response: CachedResponse,
) -> Result<(), StoreError> {
    let item = CacheItem::Response(Arc::new(response));
    if storable.vary.is_empty() {
        return store.put(primary.to_string(), item, storable.ttl).await;
    }
    let generation = match seen_vary {
        Some(seen) if seen.names == storable.vary => seen.generation,
        _ => rand_generation(),
    };
    let key = variant_key(&primary, generation, &storable.vary, request_headers);
    store.put(key, item, storable.ttl).await?;
    let vary = CacheItem::Vary {
        names: storable.vary,
        generation,
    };
    store.put(primary.to_string(), vary, storable.ttl).await
}

/// A generation no other instance is likely to pick: the clock's nanoseconds mixed with a
/// process-wide counter.
fn rand_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64, so that close clocks give unrelated generations.
    let mut z = nanos ^ count.rotate_left(32) ^ u64::from(std::process::id()).rotate_left(16);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of one variant in a shared store: the URL's key, the generation, and a SHA-256 of
/// the request's values of the headers named, so keys stay short whatever the headers hold.
fn variant_key(
    primary: &str,
    generation: u64,
    names: &[HeaderName],
    request_headers: &HeaderMap,
) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in entry_key_values(names, request_headers) {
        hasher.update(name.as_str().as_bytes());
        match value {
            Some(value) => {
                hasher.update([1]);
                hasher.update((value.len() as u64).to_be_bytes());
                hasher.update(&value);
            }
            None => hasher.update([0]),
        }
    }
    let digest = hasher.finalize();
    let mut key = String::with_capacity(primary.len() + 90);
    key.push_str(primary);
    let _ = write!(key, " #{generation:x} ");
    for byte in digest {
        let _ = write!(key, "{byte:02x}");
    }
    key
}

/// `GET <path?query>`: HEAD shares GET's entries. The URI is the one the client sent
/// (before any `nest` stripped a prefix).
fn primary_key(request: &Request) -> Arc<str> {
    let uri = request
        .extensions()
        .get::<OriginalUri>()
        .map_or(request.uri(), |original| &original.0);
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Arc::from(primary_key_of(target))
}

/// The key of `GET <path_and_query>`.
pub(super) fn primary_key_of(path_and_query: &str) -> String {
    format!("GET {path_and_query}")
}

/// The header names in the response's `Vary`, lowercased, sorted and deduplicated; `None` for
/// `Vary: *` or a malformed name (uncacheable).
fn vary_list(headers: &HeaderMap) -> Option<VaryList> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let value = value.to_str().ok()?;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(HeaderName::from_bytes(name.as_bytes()).ok()?);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names.into())
}

fn entry_key(primary: &Arc<str>, vary: &[HeaderName], request_headers: &HeaderMap) -> EntryKey {
    EntryKey {
        primary: primary.clone(),
        vary: entry_key_values(vary, request_headers),
    }
}

/// The request's values of the headers named, several values joined with `, `.
fn entry_key_values(
    names: &[HeaderName],
    request_headers: &HeaderMap,
) -> Vec<(HeaderName, Option<Bytes>)> {
    names
        .iter()
        .map(|name| {
            let mut values = request_headers.get_all(name).iter().peekable();
            let value = values.peek().is_some().then(|| {
                let mut joined = BytesMut::new();
                for (i, value) in values.enumerate() {
                    if i > 0 {
                        joined.extend_from_slice(b", ");
                    }
                    joined.extend_from_slice(value.as_bytes());
                }
                joined.freeze()
            });
            (name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_lists_are_normalised_and_star_is_uncacheable() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::VARY,
            HeaderValue::from_static("Accept-Language, accept"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Accept"));
        let list = vary_list(&headers).unwrap();
        let names: Vec<&str> = list.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept", "accept-language"]);
        headers.append(header::VARY, HeaderValue::from_static("*"));
        assert!(vary_list(&headers).is_none());
    }

    #[test]
    fn the_store_is_bounded_by_max_entries() {
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            max_entries: 5,
            max_body_bytes: 1024,
            tags: Arc::from([]),
        };
        let store = ResponseCache::new(config, Arc::new(crate::clock::SystemClock), None);
        let now = Instant::now();
        for i in 0..50 {
            store.entries.insert(
                entry_key(&Arc::from(format!("GET /{i}")), &[], &HeaderMap::new()),
                Arc::new(Entry {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    public: false,
                    stored_at: now,
                    expires_at: now + Duration::from_secs(60),
                    tags: Arc::from([]),
                }),
            );
        }
        store.entries.run_pending_tasks();
        assert!(
            store.entries.entry_count() <= 5,
            "{}",
            store.entries.entry_count()
        );
    }
}
