//! The rate limit layer and the service it makes.

use std::any::Any;
use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::{self, Either, FutureExt, Join, Map, Ready};
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use tower::{Layer, Service};

use super::{number, Decision, KeyFn, MemoryStore, Quota, RateLimitStore};
use crate::service::take_ready;
use crate::store::{BoxFuture, FailureMode, OutageLog, StoreError, Stores};
use crate::{ApiError, ClientIp};

/// The rate limit layer and its builder; made by [`rate_limit()`](super::rate_limit()).
///
/// All routes and methods wrapped by one `RateLimitLayer` (and its clones) share its store. A
/// layer given no [`store`](Self::store) uses the app's shared store
/// ([`Stores::rate_limit`](crate::store::Stores::rate_limit)) when there is one, and otherwise
/// an in-memory store of its own: each [`rate_limit()`](super::rate_limit()) call makes a new
/// one, so two `#[arbor::handler(rate_limit(..))]` attributes never share counters.
#[derive(Clone)]
#[must_use = "a rate limit does nothing until it wraps a route"]
pub struct RateLimitLayer {
    quota: Quota,
    key: Option<KeyFn>,
    backend: Backend,
    /// Whether [`store`](Self::store) chose the backend (then the app's shared store is not used).
    own_store: bool,
    failure: Option<FailureMode>,
}

impl RateLimitLayer {
    pub(super) fn new(quota: Quota) -> Self {
        Self {
            quota,
            key: None,
            backend: Backend::Memory(MemoryStore::default()),
            own_store: false,
            failure: None,
        }
    }

    /// Requests allowed per window, and the largest burst (default 100).
    ///
    /// # Panics
    /// If `limit` is 0: refuse a route's requests with your own middleware instead.
    pub fn limit(mut self, limit: u32) -> Self {
        self.quota = Quota::new(limit, self.quota.window());
        self
    }

    /// The window in seconds (default 60).
    ///
    /// # Panics
    /// If `seconds` is 0.
    pub fn window(self, seconds: u64) -> Self {
        self.window_duration(Duration::from_secs(seconds))
    }

    /// The window as a [`Duration`], for windows that are not whole seconds.
    ///
    /// # Panics
    /// If `window` is zero.
    pub fn window_duration(mut self, window: Duration) -> Self {
        self.quota = Quota::new(self.quota.limit(), window);
        self
    }

    /// Counts requests per key returned by `key` (a user id, an API key, ...) instead of per
    /// client address and route. A request for which `key` returns `None` is counted under the
    /// default key.
    ///
    /// The key is used as is: with a store shared by several routes, include the route in it
    /// if each route should have its own allowance.
    pub fn key<F>(self, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.key_fn(Arc::new(key))
    }

    /// [`key`](Self::key) with a shared function.
    pub fn key_fn(mut self, key: KeyFn) -> Self {
        self.key = Some(key);
        self
    }

    /// Keeps state in `store` instead of the app's shared store or a new [`MemoryStore`]. Pass
    /// clones of one store to several limits to bound their memory together.
    pub fn store<S: RateLimitStore>(mut self, store: S) -> Self {
        // The in-memory store answers synchronously: keep it unboxed so that a request's
        // check needs no allocation beyond its key.
        let mut store = Some(store);
        self.backend = match (&mut store as &mut dyn Any)
            .downcast_mut::<Option<MemoryStore>>()
            .and_then(Option::take)
        {
            Some(memory) => Backend::Memory(memory),
            None => store.map_or_else(
                || Backend::Memory(MemoryStore::default()),
                |store| Backend::Custom(Arc::new(store)),
            ),
        };
        self.own_store = true;
        self
    }

    /// With `true`, a request is refused (`503 RATE_LIMIT_UNAVAILABLE`, `Retry-After`) when the
    /// store fails, instead of let through; with `false`, it is let through. Unset, the app's
    /// [`Stores::rate_limit_failure`](crate::store::Stores::rate_limit_failure) decides (let
    /// through by default). A login limit is the classic case for `true`.
    pub fn fail_closed(mut self, closed: bool) -> Self {
        self.failure = Some(if closed {
            FailureMode::Closed
        } else {
            FailureMode::Open
        });
        self
    }

    /// The configured quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("quota", &self.quota)
            .field(
                "key",
                &if self.key.is_some() {
                    "custom"
                } else {
                    "client ip + route"
                },
            )
            .field("store", &self.backend)
            .field("own_store", &self.own_store)
            .field("failure", &self.failure)
            .finish()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Arc::new(Shared {
                quota: self.quota,
                shared_store_prefix: format!(
                    "{}/{}ms ",
                    self.quota.limit(),
                    self.quota.window().as_millis()
                ),
                key: self.key.clone(),
                backend: self.backend.clone(),
                own_store: self.own_store,
                failure: self.failure,
                warned_no_ip: AtomicBool::new(false),
                outage: OutageLog::new("rate limit"),
            }),
        }
    }
}

#[derive(Clone)]
enum Backend {
    Memory(MemoryStore),
    Custom(Arc<dyn RateLimitStore>),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(store) => store.fmt(f),
            Self::Custom(_) => f.write_str("custom"),
        }
    }
}

struct Shared {
    quota: Quota,
    /// Keeps limits with different quotas on one route apart in the app's shared store; made
    /// once, not per request.
    shared_store_prefix: String,
    key: Option<KeyFn>,
    backend: Backend,
    own_store: bool,
    failure: Option<FailureMode>,
    warned_no_ip: AtomicBool,
    outage: OutageLog,
}

impl Shared {
    /// The request's bucket: the custom key, else the client address and the route.
    fn key(&self, request: Request) -> (Request, String) {
        let (request, custom) = match &self.key {
            Some(key_fn) => {
                let (parts, body) = request.into_parts();
                let key = key_fn(&parts);
                (Request::from_parts(parts, body), key)
            }
            None => (request, None),
        };
        if let Some(key) = custom {
            return (request, key);
        }
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| request.uri().path(), MatchedPath::as_str);
        let mut key = String::with_capacity(44 + route.len());
        // IPv4-mapped IPv6 peers (dual-stack sockets) count as IPv4.
        let ip = ClientIp::from_extensions(request.extensions()).map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        });
        match ip {
            // One IPv6 client usually holds a whole /64: count it as one.
            Some(IpAddr::V6(ip)) => {
                let prefix = Ipv6Addr::from(u128::from(ip) & !u128::from(u64::MAX));
                let _ = write!(key, "{prefix}/64");
            }
            Some(IpAddr::V4(ip)) => {
                // By hand: `Display` for addresses goes through the formatting machinery.
                let mut digits = itoa::Buffer::new();
                for (index, octet) in ip.octets().into_iter().enumerate() {
                    if index > 0 {
                        key.push('.');
                    }
                    key.push_str(digits.format(octet));
                }
            }
            None => {
                if !self.warned_no_ip.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        route,
                        "rate limit: the request has no client address (serve with \
                         arbor::serve, which records it); such requests share one allowance"
                    );
                }
                key.push_str("unknown");
            }
        }
        key.push(' ');
        key.push_str(route);
        (request, key)
    }

    fn reject(&self, decision: &Decision, request: &Request) -> Response {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(crate::metrics::UNMATCHED, MatchedPath::as_str);
        ::metrics::counter!(crate::metrics::RATE_LIMIT_REJECTIONS, "route" => route.to_owned())
            .increment(1);
        let retry_after = decision.retry_after_secs();
        let window = self.quota.window();
        let window_secs = if window.subsec_nanos() == 0 {
            serde_json::Value::from(window.as_secs())
        } else {
            serde_json::Value::from(window.as_secs_f64())
        };
        let message = format!(
            "too many requests: the limit is {} per {window_secs} s; retry in {retry_after} s",
            self.quota.limit()
        );
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
            .with_details(serde_json::json!({
                "limit": self.quota.limit(),
                "window_secs": window_secs,
                "retry_after_secs": retry_after,
            }))
            .with_header(header::RETRY_AFTER, number(retry_after))
            .into_response();
        decision.write_headers(response.headers_mut());
        response
    }

    /// The store's failure, answered as configured.
    fn unavailable(&self, mode: FailureMode, error: &StoreError) -> Option<Response> {
        self.outage.failed(error);
        match mode {
            FailureMode::Open => None,
            FailureMode::Closed => Some(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "RATE_LIMIT_UNAVAILABLE",
                    "the rate limit cannot be checked right now; retry shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                .into_response(),
            ),
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("quota", &self.shared.quota)
            .field("store", &self.shared.backend)
            .finish_non_exhaustive()
    }
}

type Finish<E> = fn((Result<Response, E>, Decision)) -> Result<Response, E>;

/// The future of [`RateLimit`]: a `429`, the inner service's response with the rate limit
/// headers added, or (with a store that is not in memory) the whole check boxed. Its exact type
/// is an implementation detail.
pub type ResponseFuture<F, E> = Either<
    Ready<Result<Response, E>>,
    Either<Map<Join<F, Ready<Decision>>, Finish<E>>, BoxFuture<'static, Result<Response, E>>>,
>;

fn finish<E>((response, decision): (Result<Response, E>, Decision)) -> Result<Response, E> {
    let mut response = response?;
    decision.write_headers(response.headers_mut());
    Ok(response)
}

impl<S> Service<Request> for RateLimit<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (request, mut key) = self.shared.key(request);
        let app_store = if self.shared.own_store {
            None
        } else {
            Stores::from_extensions(request.extensions()).and_then(|stores| {
                let store = stores.rate_limit_store()?;
                Some((Arc::clone(store), stores.rate_limit_failure_mode()))
            })
        };
        let (store, mode) = match (&self.shared.backend, app_store) {
            (_, Some((store, mode))) => {
                // One store serves every limit of the app: keep limits that wrap the same route
                // with different quotas apart.
                key.insert_str(0, &self.shared.shared_store_prefix);
                (store, self.shared.failure.unwrap_or(mode))
            }
            (Backend::Memory(store), None) => {
                let decision = store.check_now(&key, self.shared.quota);
                if !decision.allowed {
                    return Either::Left(future::ready(Ok(self
                        .shared
                        .reject(&decision, &request))));
                }
                let response = self.inner.call(request);
                return Either::Right(Either::Left(
                    future::join(response, future::ready(decision))
                        .map(finish::<S::Error> as Finish<S::Error>),
                ));
            }
            (Backend::Custom(store), None) => {
                (Arc::clone(store), self.shared.failure.unwrap_or_default())
            }
        };
        let shared = Arc::clone(&self.shared);
        let mut inner = take_ready(&mut self.inner);
        Either::Right(Either::Right(Box::pin(async move {
            match store.check(&key, shared.quota).await {
                Ok(decision) => {
                    shared.outage.recovered();
                    if decision.allowed {
                        finish((inner.call(request).await, decision))
                    } else {
                        Ok(shared.reject(&decision, &request))
                    }
                }
                Err(error) => match shared.unavailable(mode, &error) {
                    Some(refusal) => Ok(refusal),
                    None => inner.call(request).await,
                },
            }
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_accepts_memory_stores_unboxed_and_others_boxed() {
        let memory = super::super::rate_limit().store(MemoryStore::new(5));
        assert!(matches!(memory.backend, Backend::Memory(_)));
        let shared: Arc<dyn RateLimitStore> = Arc::new(MemoryStore::new(5));
        let custom = super::super::rate_limit().store(shared);
        assert!(matches!(custom.backend, Backend::Custom(_)));
    }
}
