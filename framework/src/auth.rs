//! The authentication hook: resolve a principal from a bearer token or a session cookie, hand
//! it to handlers as [`Auth<P>`], answer `401`/`403` in the standard shape.
//!
//! ```
//! use arbor::auth::{bearer_token, Auth, Authenticator};
//! use arbor::ApiError;
//! use arbor::http::request::Parts;
//!
//! #[derive(Clone)]
//! pub struct User { pub id: u64, pub admin: bool }
//!
//! #[derive(Clone)]
//! pub struct Tokens;
//!
//! impl Authenticator for Tokens {
//!     type Principal = User;
//!     async fn authenticate(&self, parts: &Parts) -> Result<Option<User>, ApiError> {
//!         // Look the token up in your session store; `None` means "not signed in".
//!         Ok((bearer_token(&parts.headers) == Some("secret")).then_some(User { id: 1, admin: false }))
//!     }
//! }
//!
//! // app/api/admin/route.rs
//! #[arbor::handler(arbor::auth::require_auth(Tokens))]
//! pub async fn GET(Auth(user): Auth<User>) -> Result<String, ApiError> {
//!     if !user.admin {
//!         return Err(ApiError::forbidden("administrators only"));
//!     }
//!     Ok(format!("hello admin {}", user.id))
//! }
//! ```

use std::future::Future;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue};
use tower::{Layer, Service};

use crate::service::take_ready;
use crate::ApiError;

/// Resolves who is making a request.
pub trait Authenticator: Clone + Send + Sync + 'static {
    /// Who: a user, an API client...
    type Principal: Clone + Send + Sync + 'static;

    /// `Ok(None)` when the request carries no (valid) credentials; `Err` for a failure such as
    /// the session store being down (answered as that error).
    fn authenticate(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Option<Self::Principal>, ApiError>> + Send;
}

/// Middleware that requires a principal: `401 UNAUTHORIZED` (with `WWW-Authenticate: Bearer`)
/// without one; with one, handlers receive it through [`Auth<P>`], and the response is
/// `Cache-Control: private, no-cache` unless the handler (or a layer inside this one) set its
/// own: what the guide asks of authenticated endpoints, so no shared cache keeps one user's data.
pub fn require_auth<A: Authenticator>(authenticator: A) -> AuthenticateLayer<A> {
    AuthenticateLayer {
        authenticator,
        required: true,
    }
}

/// Middleware that resolves a principal when there is one and lets every request through;
/// handlers take `Option<Auth<P>>`. Responses to signed-in requests default to
/// `Cache-Control: private, no-cache`, as with [`require_auth`].
pub fn optional_auth<A: Authenticator>(authenticator: A) -> AuthenticateLayer<A> {
    AuthenticateLayer {
        authenticator,
        required: false,
    }
}

/// See [`require_auth`].
#[derive(Debug, Clone)]
pub struct AuthenticateLayer<A> {
    authenticator: A,
    required: bool,
}

impl<A: Clone, S> Layer<S> for AuthenticateLayer<A> {
    type Service = Authenticate<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            authenticator: self.authenticator.clone(),
            required: self.required,
            inner,
        }
    }
}

/// See [`require_auth`].
#[derive(Debug, Clone)]
pub struct Authenticate<A, S> {
    authenticator: A,
    required: bool,
    inner: S,
}

impl<A, S> Service<Request> for Authenticate<A, S>
where
    A: Authenticator,
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let authenticator = self.authenticator.clone();
        let required = self.required;
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let authenticated = match authenticator.authenticate(&parts).await {
                Ok(Some(principal)) => {
                    parts.extensions.insert(Auth(principal));
                    true
                }
                Ok(None) if required => return Ok(unauthorized()),
                Ok(None) => false,
                Err(error) => return Ok(error.into_response()),
            };
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if authenticated {
                mark_private(&mut response);
            }
            Ok(response)
        })
    }
}

/// What a response produced for a signed-in user may be by default: kept by the browser only,
/// and revalidated before reuse, so that a shared cache (a CDN, a corporate proxy) never serves
/// one user's data to another. A handler or route that set `Cache-Control` keeps its own.
fn mark_private(response: &mut Response) {
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
}

fn unauthorized() -> Response {
    ApiError::unauthorized("Authentication required")
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
        .into_response()
}

/// The principal resolved by [`require_auth`] / [`optional_auth`]. Missing means the request is
/// not authenticated: `401`, never a 500.
#[derive(Debug, Clone)]
pub struct Auth<P>(pub P);

impl<P, S> FromRequestParts<S> for Auth<P>
where
    P: Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Auth<P>>()
            .cloned()
            .ok_or_else(unauthorized)
    }
}

impl<P, S> axum::extract::OptionalFromRequestParts<S> for Auth<P>
where
    P: Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Auth<P>>().cloned())
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_and_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; session=s3cr3t"),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
        assert_eq!(cookie(&headers, "session"), Some("s3cr3t"));
        assert_eq!(cookie(&headers, "sess"), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }
}
