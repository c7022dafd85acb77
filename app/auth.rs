//! Authentication for the reference app: server-side sessions presented as an HttpOnly cookie
//! or a bearer token, CSRF protection for cookie-authenticated mutations, and role checks.

use arbor::auth::{bearer_token, cookie, Authenticator};
use arbor::http::request::Parts;
use arbor::http::{header, HeaderValue, Method, StatusCode};
use arbor::{ApiError, IntoResponse, Next, Request, Response};

use crate::services::users::User;
use crate::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "arbor_session";

/// How the request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The session cookie.
    Cookie,
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Who.
    pub user: User,
    /// The session token (to end the session on logout).
    pub token: String,
    /// How it was presented.
    pub credential: Credential,
}

impl CurrentUser {
    /// `403 FORBIDDEN` unless the user is an administrator.
    ///
    /// # Errors
    /// `403` for non-administrators.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("Administrator role required"))
        }
    }

    /// `403 FORBIDDEN` unless the user is `owner_id` or an administrator.
    ///
    /// # Errors
    /// `403` for anyone else.
    pub fn require_self_or_admin(&self, owner_id: &str) -> Result<(), ApiError> {
        if self.user.id == owner_id || self.user.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "You can only access your own resources",
            ))
        }
    }
}

/// Resolves sessions from a bearer token (preferred) or the session cookie.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sessions;

impl Authenticator for Sessions {
    type Principal = CurrentUser;

    async fn authenticate(&self, parts: &Parts) -> Result<Option<CurrentUser>, ApiError> {
        let Some(state) = parts.extensions.get::<AppState>() else {
            tracing::error!("AppState extension missing: build the router with arbor_app::app");
            return Err(ApiError::internal());
        };
        let (token, credential) = match bearer_token(&parts.headers) {
            Some(token) => (token, Credential::Bearer),
            None => match cookie(&parts.headers, SESSION_COOKIE) {
                Some(token) => (token, Credential::Cookie),
                None => return Ok(None),
            },
        };
        Ok(state
            .sessions
            .resolve(token)
            .await?
            .map(|user| CurrentUser {
                user,
                token: token.to_owned(),
                credential,
            }))
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that ends it.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    let value = if secure {
        "arbor_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Secure"
    } else {
        "arbor_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
    };
    HeaderValue::from_static(value)
}

/// CSRF protection for cookie-authenticated mutations: a `POST`/`PUT`/`PATCH`/`DELETE` that
/// carries the session cookie (and no bearer token) must come from this site, shown by an
/// `Origin` (or, failing that, `Referer`) whose host is the request's `Host`. Bearer-token
/// requests are not subject to it: browsers never attach them on their own.
pub async fn csrf(request: Request, next: Next) -> Response {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let headers = request.headers();
    let cookie_session =
        cookie(headers, SESSION_COOKIE).is_some() && bearer_token(headers).is_none();
    if unsafe_method && cookie_session && !same_origin(headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "CSRF_FAILED",
            "Cross-site request refused: the Origin header does not match this site",
        )
        .into_response();
    }
    next.run(request).await
}

fn same_origin(headers: &arbor::http::HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    origin
        .and_then(|o| o.split_once("://").map(|(_, rest)| rest))
        .map(|rest| rest.split('/').next().unwrap_or_default())
        .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
}

/// Scopes idempotency keys to the signed-in user (instead of the client address), so two users
/// can never collide on a key and one user's retries replay from any network. List it after
/// `require_auth(Sessions)` and before `arbor::idempotency()`.
pub async fn idempotency_per_user(mut request: Request, next: Next) -> Response {
    let user = request
        .extensions()
        .get::<arbor::auth::Auth<CurrentUser>>()
        .map(|auth| auth.0.user.id.clone());
    if let Some(user) = user {
        request
            .extensions_mut()
            .insert(arbor::idempotency::Scope(format!("user:{user}")));
    }
    next.run(request).await
}
