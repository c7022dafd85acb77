//! `Valid<E>`: run `validator` rules after extraction, with Zod-`flatten()`-style errors.

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use super::field_errors::FieldErrors;
use super::{Form, Json, Path, Query};
use crate::ApiError;

/// Extracts `E` (`Json<T>`, `Query<T>`, `Form<T>` or `Path<T>`) and checks `T`'s
/// [`validator`] rules. Failure is `400 VALIDATION_ERROR`:
///
/// ```text
/// {"error":"VALIDATION_ERROR","message":"Invalid request body","details":{
///   "fieldErrors":{"email":["must be a valid email address"],"address.city":["is required"]},
///   "formErrors":["passwords do not match"]}}
/// ```
///
/// ```
/// use arbor::{Json, Valid};
/// use serde::Deserialize;
/// use validator::Validate;
///
/// #[derive(Deserialize, Validate)]
/// pub struct NewUser {
///     #[validate(email)]
///     email: String,
///     #[validate(length(min = 2, max = 100))]
///     name: String,
/// }
///
/// pub async fn POST(Valid(Json(user)): Valid<Json<NewUser>>) -> String {
///     user.name
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Valid<E>(pub E);

impl<T, S> FromRequest<S> for Valid<Json<T>>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        check(&value, "Invalid request body")?;
        Ok(Valid(Json(value)))
    }
}

impl<T, S> FromRequest<S> for Valid<Form<T>>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Form(value) = Form::<T>::from_request(request, state).await?;
        check(&value, "Invalid form data")?;
        Ok(Valid(Form(value)))
    }
}

impl<T, S> FromRequestParts<S> for Valid<Query<T>>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        check(&value, "Invalid query parameters")?;
        Ok(Valid(Query(value)))
    }
}

impl<T, S> FromRequestParts<S> for Valid<Path<T>>
where
    T: DeserializeOwned + Validate + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        check(&value, "Invalid path parameters")?;
        Ok(Valid(Path(value)))
    }
}

fn check(value: &impl Validate, summary: &'static str) -> Result<(), ApiError> {
    value.validate().map_err(|errors| {
        let mut fields = FieldErrors::default();
        fields.collect(&errors, "");
        fields.into_error(summary)
    })
}

impl FieldErrors {
    fn collect(&mut self, errors: &ValidationErrors, prefix: &str) {
        for (field, kind) in errors.errors() {
            let path = match (prefix.is_empty(), field.as_ref()) {
                // A nested struct's own (schema-level) error belongs to that struct's field.
                (false, "__all__") => Some(prefix.to_owned()),
                (true, "__all__") => None,
                (true, field) => Some(field.to_owned()),
                (false, field) => Some(format!("{prefix}.{field}")),
            };
            match kind {
                ValidationErrorsKind::Field(list) => {
                    for error in list {
                        let message = describe(error);
                        match &path {
                            Some(path) => self.field(path, message),
                            None => self.form(message),
                        }
                    }
                }
                ValidationErrorsKind::Struct(nested) => {
                    self.collect(nested, path.as_deref().unwrap_or(prefix))
                }
                ValidationErrorsKind::List(items) => {
                    let base = path.as_deref().unwrap_or(prefix);
                    for (index, nested) in items {
                        self.collect(nested, &format!("{base}.{index}"));
                    }
                }
            }
        }
    }
}

/// A readable message for a validator rule, unless the rule carries its own.
fn describe(error: &validator::ValidationError) -> String {
    if let Some(message) = &error.message {
        return message.to_string();
    }
    let param = |name: &str| {
        error
            .params
            .get(name)
            .map(|v| v.to_string().trim_matches('"').to_owned())
    };
    match error.code.as_ref() {
        "email" => "must be a valid email address".into(),
        "url" => "must be a valid URL".into(),
        "required" => "is required".into(),
        "regex" => "has an invalid format".into(),
        // validator puts the other field's *value* in `other`: never echo it (it is often a
        // password).
        "must_match" => "must match the field it confirms".into(),
        "length" => match (param("min"), param("max"), param("equal")) {
            (_, _, Some(equal)) => format!("must have a length of exactly {equal}"),
            (Some(min), Some(max), _) => format!("must have a length between {min} and {max}"),
            (Some(min), None, _) => format!("must have a length of at least {min}"),
            (None, Some(max), _) => format!("must have a length of at most {max}"),
            _ => "has an invalid length".into(),
        },
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            _ => "is out of range".into(),
        },
        code => format!("is invalid ({code})"),
    }
}
