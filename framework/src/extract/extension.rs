//! `Extension<T>`: typed data a middleware handed to the handler.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::ApiError;

/// A value a middleware inserted into the request (`request.extensions_mut().insert(user)`),
/// such as the authenticated user.
///
/// ```
/// use arbor::{Extension, Next, Request, Response};
///
/// #[derive(Clone)]
/// pub struct User { pub id: u64 }
///
/// pub async fn require_user(mut request: Request, next: Next) -> Response {
///     request.extensions_mut().insert(User { id: 1 });
///     next.run(request).await
/// }
///
/// # pub type State = (); // the generated `routes` module's, around every route file
/// # pub mod route {
/// # use super::*;
/// #[arbor::handler(require_user)]
/// pub async fn GET(Extension(user): Extension<User>) -> String {
///     format!("user {}", user.id)
/// }
/// # }
/// # fn main() {}
/// ```
///
/// Unlike axum's, a missing value is logged and answered as `500 INTERNAL_ERROR` in the standard
/// shape: it means a route is missing the middleware that provides it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extension<T>(pub T);

/// The middleware that provides an [`Extension`] did not run.
#[derive(Debug)]
pub struct MissingExtension(&'static str);

impl IntoResponse for MissingExtension {
    fn into_response(self) -> Response {
        tracing::error!(
            r#type = self.0,
            "handler asked for an Extension that no middleware provided; is the route missing a middleware?"
        );
        ApiError::internal().into_response()
    }
}

impl<T, S> FromRequestParts<S> for Extension<T>
where
    T: Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = MissingExtension;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<T>()
            .cloned()
            .map(Extension)
            .ok_or(MissingExtension(std::any::type_name::<T>()))
    }
}
