//! `Query<T>`, and the urlencoded reading it shares with `Form<T>`, with rejections in the
//! standard shape.

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::field_errors::FieldErrors;
use crate::ApiError;

/// The query string, deserialized into `T`. A value that does not parse is
/// `400 VALIDATION_ERROR` naming the field (`?page=-1` for a `u32`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        from_urlencoded(
            parts.uri.query().unwrap_or_default().as_bytes(),
            "Invalid query parameters",
        )
        .map(Query)
    }
}

pub(super) fn from_urlencoded<T: DeserializeOwned>(
    input: &[u8],
    summary: &'static str,
) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(input));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = friendly(error.into_inner().to_string());
        let mut fields = FieldErrors::default();
        match message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            Some(field) => fields.field(field, "is required".into()),
            None if path == "." => fields.form(message),
            None => fields.field(&path, message),
        }
        fields.into_error(summary)
    })
}

/// Rewords the standard library's number-parsing messages for API clients.
fn friendly(message: String) -> String {
    match message.as_str() {
        "invalid digit found in string" => "must be a whole number (0 or more)".into(),
        "cannot parse integer from empty string" => "must not be empty".into(),
        "number too large to fit in target type" => "is too large".into(),
        "number too small to fit in target type" => "is too small".into(),
        "invalid float literal" => "must be a number".into(),
        _ => message,
    }
}
