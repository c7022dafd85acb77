//! `Form<T>`: an urlencoded body with rejections in the standard shape.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::json::{has_content_type, read_body, unsupported_media_type};
use super::query::from_urlencoded;
use crate::ApiError;

/// An `application/x-www-form-urlencoded` body deserialized into `T` (`415` for another
/// content type, `400 VALIDATION_ERROR` naming the field).
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(
            request.headers(),
            "application/x-www-form-urlencoded",
            false,
        ) {
            return Err(unsupported_media_type("application/x-www-form-urlencoded"));
        }
        let body = read_body(request, state).await?;
        from_urlencoded(&body, "Invalid form data").map(Form)
    }
}
