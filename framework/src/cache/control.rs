//! `Cache-Control` values, and the layer that gives a route a default one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponseParts, Response, ResponseParts};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use tower::{Layer, Service};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visibility {
    Public,
    Private,
}

/// A `Cache-Control` header value.
///
/// ```
/// use arbor::cache::CacheControl;
///
/// assert_eq!(CacheControl::public().s_maxage(60).to_string(), "public, s-maxage=60");
/// assert_eq!(CacheControl::private_no_cache().to_string(), "private, no-cache");
/// assert_eq!(CacheControl::no_store().to_string(), "no-store");
/// ```
///
/// The guide's advice: `private, no-cache` for authenticated endpoints, `public, s-maxage=60`
/// for public data. A handler can return one as part of its response, which overrides a
/// route's [`cache_control`] default:
///
/// ```
/// use arbor::cache::CacheControl;
/// use arbor::Json;
/// use serde_json::{json, Value};
///
/// pub async fn GET() -> (CacheControl, Json<Value>) {
///     (CacheControl::public().max_age(30), Json(json!({ "ok": true })))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct CacheControl {
    visibility: Option<Visibility>,
    no_cache: bool,
    no_store: bool,
    must_revalidate: bool,
    immutable: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_while_revalidate: Option<u64>,
    stale_if_error: Option<u64>,
}

impl CacheControl {
    /// No directives; add them with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// `public`: any cache, shared ones (CDNs, proxies) included, may store the response.
    pub fn public() -> Self {
        Self {
            visibility: Some(Visibility::Public),
            ..Self::default()
        }
    }

    /// `private`: only the client's own cache may store the response.
    pub fn private() -> Self {
        Self {
            visibility: Some(Visibility::Private),
            ..Self::default()
        }
    }

    /// `private, no-cache`: for authenticated endpoints; the browser revalidates every time
    /// and no shared cache stores it.
    pub fn private_no_cache() -> Self {
        Self {
            visibility: Some(Visibility::Private),
            no_cache: true,
            ..Self::default()
        }
    }

    /// `no-cache`: caches must revalidate before each reuse.
    pub fn no_cache() -> Self {
        Self {
            no_cache: true,
            ..Self::default()
        }
    }

    /// `no-store`: no cache may keep any part of the response (secrets, tokens).
    pub fn no_store() -> Self {
        Self {
            no_store: true,
            ..Self::default()
        }
    }

    /// `max-age=<secs>`: fresh for that long in any cache.
    pub fn max_age(mut self, secs: u64) -> Self {
        self.max_age = Some(secs);
        self
    }

    /// `s-maxage=<secs>`: fresh for that long in shared caches (overrides `max-age` there).
    pub fn s_maxage(mut self, secs: u64) -> Self {
        self.s_maxage = Some(secs);
        self
    }

    /// `stale-while-revalidate=<secs>`.
    pub fn stale_while_revalidate(mut self, secs: u64) -> Self {
        self.stale_while_revalidate = Some(secs);
        self
    }

    /// `stale-if-error=<secs>`.
    pub fn stale_if_error(mut self, secs: u64) -> Self {
        self.stale_if_error = Some(secs);
        self
    }

    /// `must-revalidate`.
    pub fn must_revalidate(mut self) -> Self {
        self.must_revalidate = true;
        self
    }

    /// `immutable`.
    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// Whether `public` is set.
    pub fn is_public(&self) -> bool {
        self.visibility == Some(Visibility::Public)
    }

    /// Whether `private` is set (in any form, `private="set-cookie"` included).
    pub fn is_private(&self) -> bool {
        self.visibility == Some(Visibility::Private)
    }

    /// Whether `no-store` is set.
    pub fn is_no_store(&self) -> bool {
        self.no_store
    }

    /// Whether `no-cache` is set (in any form).
    pub fn is_no_cache(&self) -> bool {
        self.no_cache
    }

    /// The `max-age`, if set.
    pub fn max_age_secs(&self) -> Option<u64> {
        self.max_age
    }

    /// The `s-maxage`, if set.
    pub fn s_maxage_secs(&self) -> Option<u64> {
        self.s_maxage
    }

    /// Reads the `Cache-Control` headers of a message (all lines combined), or `None` when it
    /// has none. Directives this type does not model are ignored; malformed numbers count as
    /// `0` (that is, stale), as RFC 9111 recommends.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(header::CACHE_CONTROL).iter().peekable();
        values.peek()?;
        let mut parsed = Self::default();
        for value in values {
            let Ok(value) = value.to_str() else {
                continue;
            };
            parsed.merge(value);
        }
        Some(parsed)
    }

    /// Parses one header value (lenient, like [`from_headers`](Self::from_headers)).
    pub fn parse(value: &str) -> Self {
        let mut parsed = Self::default();
        parsed.merge(value);
        parsed
    }

    fn merge(&mut self, value: &str) {
        for directive in split_directives(value) {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let seconds = || argument.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
            match name.to_ascii_lowercase().as_str() {
                "public" if self.visibility.is_none() => {
                    self.visibility = Some(Visibility::Public);
                }
                // `private` wins over `public` whatever the order.
                "private" => self.visibility = Some(Visibility::Private),
                "no-cache" => self.no_cache = true,
                "no-store" => self.no_store = true,
                "must-revalidate" => self.must_revalidate = true,
                "immutable" => self.immutable = true,
                "max-age" => self.max_age = Some(seconds()),
                "s-maxage" => self.s_maxage = Some(seconds()),
                "stale-while-revalidate" => self.stale_while_revalidate = Some(seconds()),
                "stale-if-error" => self.stale_if_error = Some(seconds()),
                _ => {}
            }
        }
    }

    /// Whether this value lets a cache store the response for later reuse (a value that only
    /// restricts caching returns `false`).
    fn permits_storing(&self) -> bool {
        !self.no_store
            && !self.no_cache
            && (self.is_public()
                || self.max_age.is_some_and(|s| s > 0)
                || self.s_maxage.is_some_and(|s| s > 0))
    }

    /// The header value.
    pub fn to_header_value(&self) -> HeaderValue {
        // Only ASCII letters, digits, `-`, `=`, `,` and spaces: always a valid value.
        HeaderValue::try_from(self.to_string()).unwrap_or(HeaderValue::from_static("no-store"))
    }
}

/// Splits on commas outside quoted strings (`private="set-cookie, x-token"` is one directive).
fn split_directives(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

impl fmt::Display for CacheControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        match self.visibility {
            Some(Visibility::Public) => parts.push("public".into()),
            Some(Visibility::Private) => parts.push("private".into()),
            None => {}
        }
        if self.no_cache {
            parts.push("no-cache".into());
        }
        if self.no_store {
            parts.push("no-store".into());
        }
        if let Some(s) = self.max_age {
            parts.push(format!("max-age={s}"));
        }
        if let Some(s) = self.s_maxage {
            parts.push(format!("s-maxage={s}"));
        }
        if let Some(s) = self.stale_while_revalidate {
            parts.push(format!("stale-while-revalidate={s}"));
        }
        if let Some(s) = self.stale_if_error {
            parts.push(format!("stale-if-error={s}"));
        }
        if self.must_revalidate {
            parts.push("must-revalidate".into());
        }
        if self.immutable {
            parts.push("immutable".into());
        }
        f.write_str(&parts.join(", "))
    }
}

impl From<CacheControl> for HeaderValue {
    fn from(value: CacheControl) -> Self {
        value.to_header_value()
    }
}

impl From<&CacheControl> for HeaderValue {
    fn from(value: &CacheControl) -> Self {
        value.to_header_value()
    }
}

impl IntoResponseParts for CacheControl {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, self.to_header_value());
        Ok(res)
    }
}

// ---------------------------------------------------------------------------------------------
// cache_control(..) middleware
// ---------------------------------------------------------------------------------------------

/// Middleware that sets `Cache-Control` on responses whose handler did not set one.
///
/// ```
/// use arbor::cache::{cache_control, CacheControl};
///
/// #[arbor::handler(cache_control(CacheControl::private_no_cache()))]
/// pub async fn GET() -> &'static str {
///     "your account"
/// }
/// ```
///
/// A default that lets caches store the response (`public`, `max-age`/`s-maxage` above 0) is
/// applied to successful (`2xx`) and `304` responses only, so that a CDN never keeps an error
/// for a minute. A restrictive default (`no-store`, `no-cache`, `private` without an age) is
/// applied to every response.
pub fn cache_control(value: CacheControl) -> DefaultCacheControlLayer {
    DefaultCacheControlLayer {
        storable: value.permits_storing(),
        value: value.to_header_value(),
    }
}

/// The layer made by [`cache_control`].
#[derive(Debug, Clone)]
pub struct DefaultCacheControlLayer {
    value: HeaderValue,
    storable: bool,
}

impl<S> Layer<S> for DefaultCacheControlLayer {
    type Service = DefaultCacheControl<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DefaultCacheControl {
            inner,
            value: self.value.clone(),
            storable: self.storable,
        }
    }
}

/// The service made by [`DefaultCacheControlLayer`].
#[derive(Debug, Clone)]
pub struct DefaultCacheControl<S> {
    inner: S,
    value: HeaderValue,
    storable: bool,
}

impl<S> Service<Request> for DefaultCacheControl<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let future = self.inner.call(request);
        let value = self.value.clone();
        let storable = self.storable;
        Box::pin(async move {
            let mut response = future.await?;
            let status = response.status();
            let applies = !storable || status.is_success() || status == StatusCode::NOT_MODIFIED;
            if applies && !response.headers().contains_key(header::CACHE_CONTROL) {
                response.headers_mut().insert(header::CACHE_CONTROL, value);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_cache_control() {
        let parsed = CacheControl::parse("Public, S-MaxAge=60, max-age=\"10\", x-unknown");
        assert!(parsed.is_public());
        assert_eq!(parsed.s_maxage_secs(), Some(60));
        assert_eq!(parsed.max_age_secs(), Some(10));
        assert_eq!(parsed.to_string(), "public, max-age=10, s-maxage=60");

        let private = CacheControl::parse("public, private=\"set-cookie, x-a\", no-cache");
        assert!(private.is_private());
        assert!(private.is_no_cache());
        assert_eq!(CacheControl::parse("max-age=abc").max_age_secs(), Some(0));
        assert_eq!(
            CacheControl::public()
                .max_age(5)
                .stale_while_revalidate(30)
                .must_revalidate()
                .immutable()
                .to_string(),
            "public, max-age=5, stale-while-revalidate=30, must-revalidate, immutable"
        );
        assert!(CacheControl::public().s_maxage(1).permits_storing());
        assert!(!CacheControl::private_no_cache().permits_storing());
        assert!(!CacheControl::public()
            .s_maxage(0)
            .no_store_flag()
            .permits_storing());
    }

    impl CacheControl {
        fn no_store_flag(mut self) -> Self {
            self.no_store = true;
            self
        }
    }
}
