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
//!
//! An authenticator that needs the app's state (a database pool, a session store) is built from
//! it: implement axum's [`FromRef`](crate::FromRef) for it and list
//! [`require_auth_with_state::<A>`](require_auth_with_state), a middleware fn that runs with the
//! router's state:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//!
//! use arbor::auth::{bearer_token, Auth, Authenticator};
//! use arbor::http::request::Parts;
//! use arbor::{ApiError, FromRef};
//!
//! #[derive(Clone)]
//! pub struct AppState {
//!     pub sessions: Arc<HashMap<String, String>>,
//! }
//!
//! /// Resolves bearer tokens in the app's session table.
//! #[derive(Clone)]
//! pub struct Sessions(Arc<HashMap<String, String>>);
//!
//! impl FromRef<AppState> for Sessions {
//!     fn from_ref(state: &AppState) -> Self {
//!         Sessions(Arc::clone(&state.sessions))
//!     }
//! }
//!
//! impl Authenticator for Sessions {
//!     type Principal = String;
//!     async fn authenticate(&self, parts: &Parts) -> Result<Option<String>, ApiError> {
//!         Ok(bearer_token(&parts.headers).and_then(|token| self.0.get(token)).cloned())
//!     }
//! }
//!
//! # pub type State = AppState; // the generated `routes` module's, around every route file
//! # pub mod route {
//! # use super::*;
//! // app/api/me/route.rs
//! #[arbor::handler(arbor::auth::require_auth_with_state::<Sessions>)]
//! pub async fn GET(Auth(user): Auth<String>) -> String {
//!     format!("hello {user}")
//! }
//! # }
//! # fn main() {}
//! ```

use std::future::Future;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
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
            match authenticate(&authenticator, required, request).await {
                Ok((request, authenticated)) => {
                    let mut response = inner.call(request).await?;
                    if authenticated {
                        mark_private(&mut response);
                    }
                    Ok(response)
                }
                Err(response) => Ok(response),
            }
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

/// [`require_auth`] as a middleware fn whose authenticator is built from the router's state
/// (`A: FromRef<AppState>`), for authenticators that need the app's database pool or session
/// store. List it with the authenticator's type:
/// `#[arbor::handler(arbor::auth::require_auth_with_state::<Sessions>)]`. The authenticator
/// is built for each request, so make `from_ref` cheap (clone an `Arc`).
pub async fn require_auth_with_state<A: Authenticator>(
    State(authenticator): State<A>,
    request: Request,
    next: Next,
) -> Response {
    run_authenticated(&authenticator, true, request, next).await
}

/// [`optional_auth`] as a middleware fn whose authenticator is built from the router's state;
/// see [`require_auth_with_state`].
pub async fn optional_auth_with_state<A: Authenticator>(
    State(authenticator): State<A>,
    request: Request,
    next: Next,
) -> Response {
    run_authenticated(&authenticator, false, request, next).await
}

/// The middleware fns' body: authenticate, run the rest, mark a signed-in answer private.
async fn run_authenticated<A: Authenticator>(
    authenticator: &A,
    required: bool,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(authenticator, required, request).await {
        Ok((request, authenticated)) => {
            let mut response = next.run(request).await;
            if authenticated {
                mark_private(&mut response);
            }
            response
        }
        Err(response) => response,
    }
}

/// The request with its principal in the extensions and whether there is one, or the answer
/// that ends it.
async fn authenticate<A: Authenticator>(
    authenticator: &A,
    required: bool,
    request: Request,
) -> Result<(Request, bool), Response> {
    let (mut parts, body) = request.into_parts();
    let authenticated = match authenticator.authenticate(&parts).await {
        Ok(Some(principal)) => {
            parts.extensions.insert(Auth(principal));
            true
        }
        Ok(None) if required => return Err(unauthorized()),
        Ok(None) => false,
        Err(error) => return Err(error.into_response()),
    };
    Ok((Request::from_parts(parts, body), authenticated))
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
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use axum::extract::FromRef;
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;
    use axum::Router;
    use http::StatusCode;

    use super::*;
    use crate::test::TestClient;

    /// The app's state: which token belongs to whom.
    #[derive(Clone)]
    struct AppState {
        tokens: Arc<Vec<(&'static str, &'static str)>>,
    }

    /// Built from the state for each request.
    #[derive(Clone)]
    struct Tokens(Arc<Vec<(&'static str, &'static str)>>);

    impl FromRef<AppState> for Tokens {
        fn from_ref(state: &AppState) -> Self {
            Tokens(Arc::clone(&state.tokens))
        }
    }

    impl Authenticator for Tokens {
        type Principal = &'static str;

        async fn authenticate(&self, parts: &Parts) -> Result<Option<&'static str>, ApiError> {
            let token = bearer_token(&parts.headers);
            Ok(self
                .0
                .iter()
                .find(|(known, _)| Some(*known) == token)
                .map(|(_, user)| *user))
        }
    }

    fn app(tokens: Vec<(&'static str, &'static str)>) -> TestClient {
        let state = AppState {
            tokens: Arc::new(tokens),
        };
        let required =
            get(|Auth(user): Auth<&'static str>| async move { format!("hello {user}") }).layer(
                from_fn_with_state(state.clone(), require_auth_with_state::<Tokens>),
            );
        let optional = get(|user: Option<Auth<&'static str>>| async move {
            user.map_or("anonymous".to_owned(), |Auth(user)| user.to_owned())
        })
        .layer(from_fn_with_state(
            state.clone(),
            optional_auth_with_state::<Tokens>,
        ));
        TestClient::new(
            Router::new()
                .route("/required", required)
                .route("/optional", optional)
                .with_state(state),
        )
    }

    #[tokio::test]
    async fn authenticators_built_from_the_state_see_its_data() {
        let client = app(vec![("t1", "ada")]);
        let response = client
            .get("/required")
            .header("authorization", "Bearer t1")
            .send()
            .await;
        assert_eq!(
            (response.status(), response.text()),
            (StatusCode::OK, "hello ada".into())
        );
        let response = client
            .get("/required")
            .header("authorization", "Bearer t2")
            .send()
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = client
            .get("/optional")
            .header("authorization", "Bearer t1")
            .send()
            .await;
        assert_eq!(response.text(), "ada");
        let response = client.get("/optional").send().await;
        assert_eq!(
            (response.status(), response.text()),
            (StatusCode::OK, "anonymous".into())
        );

        // Another state, other users: the same token means someone else, or no one.
        let client = app(vec![("t2", "grace")]);
        let response = client
            .get("/required")
            .header("authorization", "Bearer t2")
            .send()
            .await;
        assert_eq!(response.text(), "hello grace");
        let response = client
            .get("/required")
            .header("authorization", "Bearer t1")
            .send()
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

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
