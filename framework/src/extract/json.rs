//! `Json<T>`: request bodies with rejections in the standard shape, and JSON responses.

use axum::body::HttpBody as _;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::RequestExt;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::field_errors::FieldErrors;
use crate::ApiError;

/// A JSON request body or response.
///
/// As an extractor it requires `Content-Type: application/json` (`415` otherwise), honours the
/// route's body limit (`413`, see [`crate::body_limit`]), and answers malformed JSON with
/// `400 INVALID_JSON` saying where (line and column), and JSON of the wrong shape with
/// `400 VALIDATION_ERROR` naming the field:
///
/// ```text
/// {"error":"INVALID_JSON","message":"Malformed JSON at line 1, column 12: expected `,` or `}`"}
/// {"error":"VALIDATION_ERROR","message":"Invalid request body",
///  "details":{"fieldErrors":{"age":["invalid type: string \"x\", expected u8"]},"formErrors":[]}}
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_content_type(request.headers(), "application/json", true) {
            return Err(unsupported_media_type("application/json"));
        }
        let bytes = read_body(request, state).await?;
        from_slice(&bytes).map(Json)
    }
}

/// Parses JSON bytes with the same errors as the extractor.
///
/// # Errors
/// `400 INVALID_JSON` or `400 VALIDATION_ERROR`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Without following the path first: a body that parses pays nothing for the error's
    // field path, and one that does not is parsed again to find it.
    serde_json::from_slice(bytes).or_else(|_| from_slice_following_the_path(bytes))
}

/// [`from_slice`] with the path of each value followed, for the error that names the field.
fn from_slice_following_the_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| json_error(&error.path().to_string(), &error.into_inner()))?;
    // Trailing characters after the value are malformed JSON too.
    deserializer
        .end()
        .map_err(|error| json_error(".", &error))?;
    Ok(value)
}

fn json_error(path: &str, inner: &serde_json::Error) -> ApiError {
    let message = without_position(&inner.to_string());
    match inner.classify() {
        serde_json::error::Category::Data => {
            let mut fields = FieldErrors::default();
            match message
                .strip_prefix("missing field `")
                .and_then(|m| m.strip_suffix('`'))
            {
                Some(field) => fields.field(&join_path(path, field), "is required".into()),
                None if path == "." => fields.form(message),
                None => fields.field(path, message),
            }
            fields.into_error("Invalid request body")
        }
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!(
                "Malformed JSON at line {}, column {}: {message}",
                inner.line(),
                inner.column()
            ),
        ),
    }
}

fn join_path(parent: &str, field: &str) -> String {
    if parent == "." {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Whether the request declares `expected` (or `+json`-style suffixes when `suffix` is set),
/// compared without allocating: this runs on every request with a body.
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str, suffix: bool) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    let essence = value
        .iter()
        .position(|&byte| byte == b';')
        .map_or(value, |end| &value[..end])
        .trim_ascii();
    let (prefix, ending) = (b"application/".as_slice(), b"+json".as_slice());
    essence.eq_ignore_ascii_case(expected.as_bytes())
        || (suffix
            && essence.is_ascii()
            && essence.len() >= prefix.len() + ending.len()
            && essence[..prefix.len()].eq_ignore_ascii_case(prefix)
            && essence[essence.len() - ending.len()..].eq_ignore_ascii_case(ending))
}

pub(crate) fn unsupported_media_type(expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        format!("Expected a request body with `Content-Type: {expected}`"),
    )
}

/// Buffers a request body within the route's limit (see [`crate::body_limit`]), with the
/// answers Arbor's extractors give: `413 PAYLOAD_TOO_LARGE` over the limit, `400` when it cannot
/// be read. For middleware that needs the raw bytes (signature checks) before handing the body on.
///
/// # Errors
/// As above.
pub async fn read_body<S: Send + Sync>(request: Request, _state: &S) -> Result<Bytes, ApiError> {
    // The body is limited once, here, and read as it is: a `Content-Length` over the limit is
    // refused on the head, since waiting for a body that will be refused anyway would let a
    // client that claims much and sends little hold the request open until its timeout.
    let request = request.with_limited_body();
    if claims_more_than_the_limit(&request) {
        return Err(payload_too_large());
    }
    match request.into_body().collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        // What the limit answers when a body without a length (chunked) runs past it.
        Err(error)
            if std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>()) =>
        {
            Err(payload_too_large())
        }
        Err(_) => Err(ApiError::bad_request("The request body could not be read")),
    }
}

/// Whether the request's `Content-Length` exceeds what its limited body (see
/// [`RequestExt::with_limited_body`]) will let through: the limit caps the body's size hint.
fn claims_more_than_the_limit(request: &Request) -> bool {
    let claimed = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let allowed = request.body().size_hint().upper();
    matches!((claimed, allowed), (Some(claimed), Some(allowed)) if claimed > allowed)
}

fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "The request body is too large",
    )
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(error) => ApiError::internal_with(error).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declares(content_type: &[u8], suffix: bool) -> bool {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        has_content_type(&headers, "application/json", suffix)
    }

    #[test]
    fn the_media_type_is_compared_without_case_parameters_or_spaces_and_suffixes_when_asked() {
        for (content_type, suffix, declared) in [
            (b"application/json".as_slice(), false, true),
            (b"Application/JSON; charset=utf-8", false, true),
            (b" application/json ;charset=utf-8", false, true),
            (b"application/jsonx", false, false),
            (b"text/plain", false, false),
            (b"", false, false),
            (b"application/vnd.api+json", false, false),
            (b"application/vnd.api+json", true, true),
            (b"APPLICATION/problem+JSON; charset=utf-8", true, true),
            (b"application/+json", true, true),
            (b"text/vnd.api+json", true, false),
            (b"application/json+xml", true, false),
            (b"application/\xff+json", true, false),
            (b"+json", true, false),
        ] {
            assert_eq!(
                declares(content_type, suffix),
                declared,
                "{} (suffixes {suffix})",
                String::from_utf8_lossy(content_type)
            );
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Order {
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Item {
        quantity: u32,
    }

    /// The error code and the `fieldErrors` of the body's rejection.
    fn rejection_of(body: &str) -> (String, serde_json::Value) {
        let error = from_slice::<Order>(body.as_bytes()).unwrap_err();
        let fields = error
            .details()
            .map(|details| details["fieldErrors"].clone())
            .unwrap_or_default();
        (error.code().to_owned(), fields)
    }

    #[test]
    fn a_body_that_parses_is_read_once_and_errors_still_name_the_field() {
        let order = from_slice::<Order>(br#"{"items":[{"quantity":1},{"quantity":3}]}"#).unwrap();
        let quantities: Vec<u32> = order.items.iter().map(|item| item.quantity).collect();
        assert_eq!(quantities, [1, 3]);
        let (code, fields) = rejection_of(r#"{"items":[{"quantity":1},{"quantity":"x"}]}"#);
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(fields["items[1].quantity"].is_array(), "{fields}");
        let (code, fields) = rejection_of(r#"{"items":[{}]}"#);
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(fields["items[0].quantity"].is_array(), "{fields}");
        assert_eq!(rejection_of(r#"{"items":[]} x"#).0, "INVALID_JSON");
    }
}
