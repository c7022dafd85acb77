//! CORS with explicit origins, methods, headers and credentials, on tower-http's `CorsLayer`.
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
use std::sync::Arc;
use std::task::{Context, Poll};
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
        layer = layer.expose_headers(header_names(&self.expose)?);
        if let Some(seconds) = self.max_age {
            layer = layer.max_age(Duration::from_secs(seconds));
        }
        let credentialed = self
            .credentials
            .then(|| Arc::new(CredentialedOrigins(self.origins.clone())));
        Ok(CorsPolicyLayer {
            cors: Arc::new(layer),
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
    credentialed: Option<Arc<CredentialedOrigins>>,
}

impl<S> Layer<S> for CorsPolicyLayer {
    type Service = CorsPolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsPolicy {
            cors: Arc::clone(&self.cors),
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
        Either<S::Future, futures_util::future::Map<S::Future, VaryOrigin<B, S::Error>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        use futures_util::FutureExt;
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if request.method() == Method::OPTIONS && !preflight {
            Either::Right(Either::Left(self.inner.call(request)))
        } else if !request.headers().contains_key(header::ORIGIN) {
            // Not a cross-origin request: nothing to allow, but caches must still know that the
            // answer depends on `Origin`.
            let vary: VaryOrigin<B, S::Error> = vary_origin;
            Either::Right(Either::Right(self.inner.call(request).map(vary)))
        } else {
            if let Some(origins) = &self.credentialed {
                request.extensions_mut().insert(Arc::clone(origins));
            }
            let ready = take_ready(&mut self.inner);
            Either::Left(CorsLayer::clone(&self.cors).layer(ready).call(request))
        }
    }
}

type VaryOrigin<B, E> = fn(Result<http::Response<B>, E>) -> Result<http::Response<B>, E>;

fn vary_origin<B, E>(result: Result<http::Response<B>, E>) -> Result<http::Response<B>, E> {
    result.map(|mut response| {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        response
    })
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
