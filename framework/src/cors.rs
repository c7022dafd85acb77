//! CORS with explicit origins, methods, headers and credentials: preflights answered by
//! tower-http's `CorsLayer`, other requests given the same headers, worked out once.
//!
//! ```
//! use arbor::cors::Cors;
//!
//! let cors = Cors::new()
//!     .allow_origins(["https://app.example.com"])
//!     .allow_methods(["GET", "POST"])
//!     .allow_headers(["content-type", "authorization"])
//!     .allow_credentials(true)
//!     .max_age(600);
//! assert!(cors.build().is_ok());
//!
//! // `*` with credentials is refused before the server starts:
//! let error = Cors::new().allow_any_origin().allow_credentials(true).build().unwrap_err();
//! assert!(error.to_string().contains("credentials"));
//! ```
//!
//! The origins of a policy with credentials are trusted by [`crate::csrf()`] too: a
//! cross-origin request the policy admits with cookies would otherwise be refused as
//! cross-site, so a front end on another host needs its origin listed once, here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::routing::Route;
use futures_util::future::Either;
use http::{header, HeaderName, HeaderValue, Method};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::service::take_ready;

/// A CORS policy. Use it app-wide with [`crate::App::cors`], or per folder / route in a
/// middleware list: `arbor::middleware!(crate::api_cors())`.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Cors {
    origins: Vec<String>,
    any_origin: bool,
    methods: Vec<String>,
    headers: Vec<String>,
    expose: Vec<String>,
    credentials: bool,
    max_age: Option<u64>,
}

/// A CORS policy that cannot work, found before the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsError(String);

impl fmt::Display for CorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid CORS policy: {}", self.0)
    }
}

impl std::error::Error for CorsError {}

/// A new policy: no origin allowed until you list some.
pub fn cors() -> Cors {
    Cors::new()
}

impl Cors {
    /// Allows nothing; add origins, methods and headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exact origins such as `https://app.example.com`.
    pub fn allow_origins<I: IntoIterator<Item = T>, T: Into<String>>(mut self, origins: I) -> Self {
        self.origins.extend(origins.into_iter().map(Into::into));
        self
    }

    /// Any origin (`*`); refused together with credentials.
    pub fn allow_any_origin(mut self) -> Self {
        self.any_origin = true;
        self
    }

    /// Methods allowed in preflight (default: `GET, HEAD, POST`).
    pub fn allow_methods<I: IntoIterator<Item = T>, T: Into<String>>(mut self, methods: I) -> Self {
        self.methods.extend(methods.into_iter().map(Into::into));
        self
    }

    /// Request headers allowed in preflight.
    pub fn allow_headers<I: IntoIterator<Item = T>, T: Into<String>>(mut self, headers: I) -> Self {
        self.headers.extend(headers.into_iter().map(Into::into));
        self
    }

    /// Response headers the browser may read.
    pub fn expose_headers<I: IntoIterator<Item = T>, T: Into<String>>(
        mut self,
        headers: I,
    ) -> Self {
        self.expose.extend(headers.into_iter().map(Into::into));
        self
    }

    /// Whether cookies and `Authorization` may be sent cross-origin.
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// How long (seconds) browsers may cache a preflight answer.
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// Checks the policy and builds the layer.
    ///
    /// # Errors
    /// `*` with credentials (browsers reject it), an origin or header that is not valid, or a
    /// policy that allows no origin at all.
    pub fn build(&self) -> Result<CorsPolicyLayer, CorsError> {
        if self.credentials {
            for (list, what) in [
                (&self.headers, "allow_headers"),
                (&self.methods, "allow_methods"),
                (&self.expose, "expose_headers"),
            ] {
                if list.iter().any(|v| v == "*") {
                    return Err(CorsError(format!(
                        "`*` in `{what}` cannot be combined with `allow_credentials(true)`: browsers refuse it; list the values instead"
                    )));
                }
            }
        }
        if self.any_origin && self.credentials {
            return Err(CorsError(
                "`allow_any_origin()` (`*`) cannot be combined with `allow_credentials(true)`: browsers refuse it; list the origins instead".into(),
            ));
        }
        if !self.any_origin && self.origins.is_empty() {
            return Err(CorsError(
                "no origin is allowed: call `allow_origins([..])`".into(),
            ));
        }
        let mut layer = CorsLayer::new().allow_credentials(self.credentials);
        let mut allowed = Vec::new();
        layer = if self.any_origin {
            layer.allow_origin(AllowOrigin::any())
        } else {
            let origins = self
                .origins
                .iter()
                .map(|o| {
                    if o == "*" {
                        return Err(CorsError(
                            "`*` is not an origin: use `allow_any_origin()`".into(),
                        ));
                    }
                    if o.ends_with('/') || !(o.starts_with("https://") || o.starts_with("http://"))
                    {
                        return Err(CorsError(format!(
                            "`{o}` is not an origin such as `https://app.example.com`"
                        )));
                    }
                    HeaderValue::from_str(o)
                        .map_err(|_| CorsError(format!("`{o}` is not a valid origin")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            allowed.clone_from(&origins);
            layer.allow_origin(origins)
        };
        let methods = if self.methods.is_empty() {
            vec![Method::GET, Method::HEAD, Method::POST]
        } else {
            self.methods
                .iter()
                .map(|m| {
                    m.to_ascii_uppercase()
                        .parse::<Method>()
                        .map_err(|_| CorsError(format!("`{m}` is not a method")))
                })
                .collect::<Result<_, _>>()?
        };
        layer = layer.allow_methods(methods);
        layer = layer.allow_headers(header_names(&self.headers)?);
        let expose = header_names(&self.expose)?;
        let simple = SimpleAnswer {
            origins: (!self.any_origin).then(|| allowed.clone()),
            credentials: self.credentials,
            expose: comma_separated(&expose),
        };
        layer = layer.expose_headers(expose);
        if let Some(seconds) = self.max_age {
            layer = layer.max_age(Duration::from_secs(seconds));
        }
        let credentialed = self
            .credentials
            .then(|| Arc::new(CredentialedOrigins(self.origins.clone())));
        Ok(CorsPolicyLayer {
            cors: Arc::new(layer),
            simple: Arc::new(simple),
            credentialed,
        })
    }
}

/// A checked CORS policy, ready to wrap routes.
///
/// Only real preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered by the
/// policy; any other `OPTIONS` reaches the route, so its `204` with `Allow` (or an exported
/// `OPTIONS` handler) still answers.
#[derive(Debug, Clone)]
pub struct CorsPolicyLayer {
    cors: Arc<CorsLayer>,
    simple: Arc<SimpleAnswer>,
    credentialed: Option<Arc<CredentialedOrigins>>,
}

impl<S> Layer<S> for CorsPolicyLayer {
    type Service = CorsPolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsPolicy {
            cors: Arc::clone(&self.cors),
            simple: Arc::clone(&self.simple),
            credentialed: self.credentialed.clone(),
            inner,
        }
    }
}

/// The origins a CORS policy with credentials admits, as listed, in the extensions of every
/// cross-origin request it sees: [`crate::csrf()`] trusts them (compared case-insensitively,
/// default ports aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialedOrigins(pub Vec<String>);

/// See [`CorsPolicyLayer`].
// The policy sits behind an `Arc`: routers clone their services for every request, and a
// `CorsLayer` clone copies its header lists.
#[derive(Debug, Clone)]
pub struct CorsPolicy<S> {
    cors: Arc<CorsLayer>,
    simple: Arc<SimpleAnswer>,
    credentialed: Option<Arc<CredentialedOrigins>>,
    inner: S,
}

impl<S, B> Service<Request> for CorsPolicy<S>
where
    S: Service<Request, Response = http::Response<B>> + Clone,
    B: Default,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Either<
        tower_http::cors::ResponseFuture<S::Future>,
        Either<S::Future, AddHeaders<S::Future>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if request.method() == Method::OPTIONS && !preflight {
            return Either::Right(Either::Left(self.inner.call(request)));
        }
        let headers = match request.headers().get(header::ORIGIN) {
            // Not a cross-origin request: nothing to allow, but caches must still know that the
            // answer depends on `Origin`.
            None => AnswerHeaders::vary_origin(),
            // A preflight: tower-http answers it.
            Some(_) if preflight => {
                self.admit_credentialed(&mut request);
                let ready = take_ready(&mut self.inner);
                return Either::Left(CorsLayer::clone(&self.cors).layer(ready).call(request));
            }
            Some(origin) => {
                let headers = self.simple.headers_for(origin);
                self.admit_credentialed(&mut request);
                headers
            }
        };
        Either::Right(Either::Right(AddHeaders {
            inner: self.inner.call(request),
            headers: Some(headers),
        }))
    }
}

impl<S> CorsPolicy<S> {
    /// Tells [`crate::csrf()`] which origins this policy admits with credentials.
    fn admit_credentialed(&self, request: &mut Request) {
        if let Some(origins) = &self.credentialed {
            request.extensions_mut().insert(Arc::clone(origins));
        }
    }
}

/// What a policy adds to the answer of a request that is not a preflight, worked out when the
/// policy is built.
///
/// These are the headers tower-http's `Cors` adds (`tests::simple_answers_match_tower_http`
/// compares them), without building its service for every cross-origin request: that took a
/// clone of the whole layer, its lists included, and cost more than the rest of a small
/// request's middleware together (`docs/benchmarks.md`, the cost of each middleware).
#[derive(Debug)]
struct SimpleAnswer {
    /// The origins allowed, or `None` for any (`*`).
    origins: Option<Vec<HeaderValue>>,
    credentials: bool,
    expose: Option<HeaderValue>,
}

impl SimpleAnswer {
    fn headers_for(&self, origin: &HeaderValue) -> AnswerHeaders {
        let allow_origin = match &self.origins {
            None => Some(HeaderValue::from_static("*")),
            Some(origins) => origins.contains(origin).then(|| origin.clone()),
        };
        AnswerHeaders {
            allow_origin,
            credentials: self.credentials,
            // The preflight's request headers, as tower-http's default `Vary`.
            vary: HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
            expose: self.expose.clone(),
        }
    }
}

/// The headers [`AddHeaders`] sets on the inner service's response.
#[derive(Debug)]
struct AnswerHeaders {
    allow_origin: Option<HeaderValue>,
    credentials: bool,
    vary: HeaderValue,
    expose: Option<HeaderValue>,
}

impl AnswerHeaders {
    fn vary_origin() -> Self {
        Self {
            allow_origin: None,
            credentials: false,
            vary: HeaderValue::from_static("origin"),
            expose: None,
        }
    }

    fn apply(self, headers: &mut http::HeaderMap) {
        // Appended: `Vary` may list what the route's answer depends on already.
        headers.append(header::VARY, self.vary);
        if let Some(origin) = self.allow_origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = self.expose {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`CorsPolicy`] request that is not a preflight: the inner service's
    /// response with the policy's headers.
    pub struct AddHeaders<F> {
        #[pin]
        inner: F,
        headers: Option<AnswerHeaders>,
    }
}

impl<F, B, E> Future for AddHeaders<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(headers) = this.headers.take() {
            headers.apply(response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}

/// `names` as one header value, separated by commas as tower-http separates them; `None` for
/// none.
fn comma_separated(names: &[HeaderName]) -> Option<HeaderValue> {
    if names.is_empty() {
        return None;
    }
    let joined: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
    HeaderValue::from_str(&joined.join(",")).ok()
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>, CorsError> {
    names
        .iter()
        .map(|n| {
            HeaderName::try_from(n.as_str())
                .map_err(|_| CorsError(format!("`{n}` is not a header name")))
        })
        .collect()
}

/// In a middleware list the policy is checked when the router is built, at start-up: an
/// invalid policy stops the server from starting with the message of [`CorsError`].
impl Layer<Route> for Cors {
    type Service = CorsPolicy<Route>;

    fn layer(&self, inner: Route) -> Self::Service {
        match self.build() {
            Ok(layer) => layer.layer(inner),
            Err(error) => panic!("{error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    /// A route that already says what its answer varies on.
    fn route() -> impl Service<
        Request,
        Response = http::Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<http::Response<Body>, Infallible>>,
    > + Clone {
        tower::service_fn(|_request: Request| async {
            let mut response = http::Response::new(Body::empty());
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            Ok::<_, Infallible>(response)
        })
    }

    fn request(method: &Method, origin: &str) -> Request {
        let mut request = Request::new(Body::empty());
        *request.method_mut() = method.clone();
        request
            .headers_mut()
            .insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        request
    }

    /// Every header as `name: value`, sorted, values of one name in order.
    fn headers(response: &http::Response<Body>) -> Vec<String> {
        let mut lines: Vec<String> = response
            .headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect();
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn simple_answers_match_tower_http() {
        let policies = [
            Cors::new().allow_origins(["https://app.example.com"]),
            Cors::new()
                .allow_origins(["https://app.example.com", "http://localhost:5173"])
                .allow_credentials(true)
                .expose_headers(["x-request-id", "etag"]),
            Cors::new().allow_any_origin().expose_headers(["x-total"]),
            Cors::new()
                .allow_origins(["https://app.example.com"])
                .allow_methods(["GET", "PUT"])
                .allow_headers(["content-type"])
                .max_age(600),
        ];
        let origins = [
            "https://app.example.com",
            "http://localhost:5173",
            "https://evil.example",
            "null",
        ];
        for policy in &policies {
            let layer = policy.build().unwrap();
            for method in [Method::GET, Method::POST, Method::DELETE] {
                for origin in origins {
                    let ours = layer
                        .layer(route())
                        .oneshot(request(&method, origin))
                        .await
                        .unwrap();
                    let theirs = CorsLayer::clone(&layer.cors)
                        .layer(route())
                        .oneshot(request(&method, origin))
                        .await
                        .unwrap();
                    assert_eq!(
                        headers(&ours),
                        headers(&theirs),
                        "{policy:?}, {method} from {origin}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_same_origin_answer_varies_on_origin_only() {
        let layer = Cors::new()
            .allow_origins(["https://app.example.com"])
            .allow_credentials(true)
            .build()
            .unwrap();
        let response = layer
            .layer(route())
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(
            headers(&response),
            ["vary: accept-encoding", "vary: origin"]
        );
    }
}
