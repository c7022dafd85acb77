//! Authentication for the reference app: the framework's sessions (`arbor::sessions`, an
//! HttpOnly cookie or a bearer token; CSRF by `arbor::csrf()` in `api/v1/middleware.rs`)
//! resolved to the app's users, and role checks.

use arbor::auth::Authenticator;
use arbor::http::request::Parts;
pub use arbor::sessions::Credential;
use arbor::sessions::Session;
use arbor::{ApiError, FromRef, Next, Request, Response};

use crate::services::users::User;
use crate::AppState;

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Who.
    pub user: User,
    /// How the session was presented.
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

/// The user of the request's session (see `SessionManagerLayer` in `crate::router`), looked up
/// in the app's users: built from the state, so routes list it as
/// `require_auth_with_state::<Sessions>`.
#[derive(Debug, Clone)]
pub struct Sessions(AppState);

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        Self(state.clone())
    }
}

impl Authenticator for Sessions {
    type Principal = CurrentUser;

    async fn authenticate(&self, parts: &Parts) -> Result<Option<CurrentUser>, ApiError> {
        let Some(session) = parts.extensions.get::<Session>() else {
            tracing::error!("Session extension missing: build the router with arbor_app::router");
            return Err(ApiError::internal());
        };
        let (Some(user_id), Some(credential)) = (session.user_id(), session.credential()) else {
            return Ok(None);
        };
        Ok(self
            .0
            .users
            .find_current(&user_id)
            .await?
            .map(|user| CurrentUser { user, credential }))
    }
}

/// Scopes idempotency keys to the signed-in user (instead of the client address), so two users
/// can never collide on a key and one user's retries replay from any network. List it after
/// `require_auth_with_state::<Sessions>` and before `arbor::idempotency()`.
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

/// The answer to a login or a registration: the user, and the bearer token of the session
/// just started (the session cookie is set too).
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SignedIn {
    pub user: User,
    /// Send it as `Authorization: Bearer <token>`.
    pub token: String,
}
