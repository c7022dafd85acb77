//! Conditional requests (RFC 9110 §13): validators on responses, and the preconditions of a
//! request evaluated against them, so a read answers `304 Not Modified` when the client's copy
//! is current and a write answers `412 Precondition Failed` when it is based on an old one.
//!
//! ```
//! use arbor::conditional::{EntityTag, Preconditions, UnmetPrecondition, Validators};
//! use arbor::{ApiError, IntoResponse, Json, Response};
//!
//! # struct Post { version: i64, title: String }
//! # async fn find_post() -> Post { Post { version: 3, title: "Hello".into() } }
//! // app/api/posts/[id]/route.rs
//! pub async fn GET(preconditions: Preconditions) -> Result<Response, UnmetPrecondition> {
//!     let post = find_post().await;
//!     let validators = Validators::new().etag(EntityTag::version(post.version));
//!     // `If-None-Match: "3"` (or `W/"3"`, or `*`) → `304` with the `ETag`, no body.
//!     preconditions.evaluate(Some(&validators))?;
//!     Ok((validators, Json(post.title)).into_response())
//! }
//! ```
//!
//! # Optimistic locking
//!
//! A write names the version it read in `If-Match`. [`Preconditions::expected_version`] gives it
//! to the service (`428 PRECONDITION_REQUIRED` without the header, the "required" mode), which
//! updates only if the stored version is still that one, in one statement. When someone else
//! wrote first, answer [`version_conflict`]: the guide's `409 CONFLICT` with `currentVersion`
//! (and the current `ETag`), so the client can refetch and retry.
//!
//! ```
//! use arbor::conditional::{version_conflict, Preconditions};
//! use arbor::ApiError;
//!
//! # async fn update_if_version(expected: i64) -> Result<i64, i64> { Err(expected + 1) }
//! pub async fn PUT(preconditions: Preconditions) -> Result<String, ApiError> {
//!     let expected = preconditions.expected_version()?;
//!     match update_if_version(expected).await {
//!         Ok(new_version) => Ok(format!("now at {new_version}")),
//!         Err(current_version) => Err(version_conflict(current_version)),
//!     }
//! }
//! ```
//!
//! When the current version is at hand before the write (and the write is not racing),
//! [`Preconditions::evaluate`] on the current [`Validators`] answers the RFC's `412` instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use crate::ApiError;

mod etag;

pub use etag::{EntityTag, InvalidEntityTag, TagList};

/// What a response says about its representation, for later conditional requests: `ETag` and
/// `Last-Modified`. As a response part it sets both headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Validators {
    etag: Option<EntityTag>,
    last_modified: Option<SystemTime>,
}

impl Validators {
    /// No validators yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the entity tag.
    pub fn etag(mut self, tag: EntityTag) -> Self {
        self.etag = Some(tag);
        self
    }

    /// Sets the last modification time (HTTP dates have whole seconds: the rest is dropped).
    pub fn last_modified(mut self, time: SystemTime) -> Self {
        self.last_modified = Some(whole_seconds(time));
        self
    }

    /// The entity tag, if set.
    pub fn entity_tag(&self) -> Option<&EntityTag> {
        self.etag.as_ref()
    }

    /// The last modification time, if set.
    pub fn modified(&self) -> Option<SystemTime> {
        self.last_modified
    }

    fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(tag) = &self.etag {
            headers.insert(header::ETAG, tag.to_header_value());
        }
        if let Some(time) = self.last_modified {
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(time)) {
                headers.insert(header::LAST_MODIFIED, value);
            }
        }
    }
}

impl IntoResponseParts for Validators {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.write_headers(parts.headers_mut());
        Ok(parts)
    }
}

/// The preconditions a request carries (`If-Match`, `If-None-Match`, `If-Modified-Since`,
/// `If-Unmodified-Since`), as an extractor. A malformed `If-Match` or `If-None-Match` is
/// refused with `400 INVALID_PRECONDITION`; a malformed date is ignored, as RFC 9110 says.
#[derive(Debug, Clone)]
pub struct Preconditions {
    read: bool,
    if_match: Option<TagList>,
    if_none_match: Option<TagList>,
    if_modified_since: Option<SystemTime>,
    if_unmodified_since: Option<SystemTime>,
}

impl Preconditions {
    /// Reads the preconditions of a request with `method` and `headers`.
    ///
    /// # Errors
    /// `400 INVALID_PRECONDITION` for an `If-Match` or `If-None-Match` that is not a list of
    /// entity tags or `*`.
    pub fn from_headers(method: &Method, headers: &HeaderMap) -> Result<Self, ApiError> {
        let tags = |name: header::HeaderName| -> Result<Option<TagList>, ApiError> {
            let mut values = headers.get_all(&name).iter().peekable();
            if values.peek().is_none() {
                return Ok(None);
            }
            TagList::parse(values).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_PRECONDITION",
                    format!("{name} must be `*` or a list of entity tags such as \"3\""),
                )
            })
        };
        let date = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| httpdate::parse_http_date(value).ok())
        };
        Ok(Self {
            read: *method == Method::GET || *method == Method::HEAD,
            if_match: tags(header::IF_MATCH)?,
            if_none_match: tags(header::IF_NONE_MATCH)?,
            if_modified_since: date(header::IF_MODIFIED_SINCE),
            if_unmodified_since: date(header::IF_UNMODIFIED_SINCE),
        })
    }

    /// Evaluates the preconditions against the resource's current validators (`None`: the
    /// resource does not exist), in RFC 9110 §13.2.2's order: `If-Match` (strong comparison),
    /// else `If-Unmodified-Since`; then `If-None-Match` (weak comparison), else, for `GET` and
    /// `HEAD`, `If-Modified-Since`.
    ///
    /// # Errors
    /// [`UnmetPrecondition::NotModified`] (`304`) for a `GET`/`HEAD` whose copy is current,
    /// [`UnmetPrecondition::Failed`] (`412`) otherwise.
    pub fn evaluate(&self, current: Option<&Validators>) -> Result<(), UnmetPrecondition> {
        let etag = current.and_then(|v| v.etag.as_ref());
        let last_modified = current.and_then(|v| v.last_modified);
        if let Some(if_match) = &self.if_match {
            if !names_current(if_match, current.is_some(), etag, EntityTag::strong_eq) {
                return Err(UnmetPrecondition::Failed);
            }
        } else if let (Some(since), Some(modified)) = (self.if_unmodified_since, last_modified) {
            if modified > since {
                return Err(UnmetPrecondition::Failed);
            }
        }
        let not_modified = match &self.if_none_match {
            Some(if_none_match) => {
                names_current(if_none_match, current.is_some(), etag, EntityTag::weak_eq)
            }
            None => {
                self.read
                    && matches!((self.if_modified_since, last_modified),
                        (Some(since), Some(modified)) if modified <= since)
            }
        };
        if not_modified {
            return Err(if self.read {
                UnmetPrecondition::NotModified(current.cloned().unwrap_or_default())
            } else {
                UnmetPrecondition::Failed
            });
        }
        Ok(())
    }

    /// Whether the request carries `If-Match`.
    pub fn has_if_match(&self) -> bool {
        self.if_match.is_some()
    }

    /// The "required" mode: `428 PRECONDITION_REQUIRED` unless the request says which version
    /// it is based on (`If-Match` or `If-Unmodified-Since`), so that no client can overwrite a
    /// change it never saw by leaving the header out.
    ///
    /// # Errors
    /// `428` without either header.
    pub fn require(&self) -> Result<&Self, ApiError> {
        if self.if_match.is_some() || self.if_unmodified_since.is_some() {
            Ok(self)
        } else {
            Err(precondition_required())
        }
    }

    /// The version named by `If-Match` (one strong tag such as `"3"`, from
    /// [`EntityTag::version`]), for a service that updates only if the stored version is still
    /// that one.
    ///
    /// # Errors
    /// `428 PRECONDITION_REQUIRED` without `If-Match`; `412 PRECONDITION_FAILED` for `*`, a weak
    /// tag (never equal under strong comparison) or a tag that names no version; `400` for more
    /// than one tag.
    pub fn expected_version(&self) -> Result<i64, ApiError> {
        match &self.if_match {
            None => Err(precondition_required()),
            Some(TagList::Tags(tags)) if tags.len() == 1 => tags[0]
                .as_version()
                .filter(|_| !tags[0].is_weak())
                .ok_or_else(|| UnmetPrecondition::Failed.into_api_error()),
            Some(TagList::Tags(_)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_PRECONDITION",
                "If-Match must name the one version the update is based on",
            )),
            Some(TagList::Any) => Err(UnmetPrecondition::Failed.into_api_error()),
        }
    }
}

fn names_current(
    list: &TagList,
    exists: bool,
    etag: Option<&EntityTag>,
    compare: fn(&EntityTag, &EntityTag) -> bool,
) -> bool {
    match (list, etag) {
        (TagList::Any, _) => exists,
        (tags, Some(current)) => tags.matches(current, compare),
        (TagList::Tags(_), None) => false,
    }
}

fn precondition_required() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_REQUIRED,
        "PRECONDITION_REQUIRED",
        "This update must be conditional: send If-Match with the ETag you read",
    )
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    UNIX_EPOCH + Duration::from_secs(seconds)
}

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_headers(&parts.method, &parts.headers)
    }
}

/// A precondition that did not hold: the response that [`Preconditions::evaluate`] asks for.
#[derive(Debug, Clone)]
#[must_use]
pub enum UnmetPrecondition {
    /// `304 Not Modified`, with the current validators and no body: the client's copy is
    /// current.
    NotModified(Validators),
    /// `412 PRECONDITION_FAILED` in the standard error shape: the request is based on a
    /// representation that is no longer current.
    Failed,
}

impl UnmetPrecondition {
    /// As an [`ApiError`], for handlers that answer `Result<_, ApiError>` (`?` converts too):
    /// a `304` keeps its status and validators, and is sent without a body.
    pub fn into_api_error(self) -> ApiError {
        match self {
            Self::Failed => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PRECONDITION_FAILED",
                "The resource has changed since the version this request is based on",
            ),
            Self::NotModified(validators) => {
                let mut headers = HeaderMap::new();
                validators.write_headers(&mut headers);
                let mut error = ApiError::new(StatusCode::NOT_MODIFIED, "NOT_MODIFIED", "");
                for (name, value) in headers.iter() {
                    error = error.with_header(name.clone(), value.clone());
                }
                error
            }
        }
    }
}

impl IntoResponse for UnmetPrecondition {
    fn into_response(self) -> Response {
        match self {
            Self::NotModified(validators) => {
                (StatusCode::NOT_MODIFIED, validators, ()).into_response()
            }
            Self::Failed => self.into_api_error().into_response(),
        }
    }
}

impl From<UnmetPrecondition> for ApiError {
    fn from(unmet: UnmetPrecondition) -> Self {
        unmet.into_api_error()
    }
}

/// The guide's answer to a lost race in optimistic locking: `409 CONFLICT` with
/// `details.currentVersion` and the current `ETag`, so the client can refetch and retry.
pub fn version_conflict(current_version: i64) -> ApiError {
    ApiError::conflict("The resource was modified by someone else")
        .with_details(serde_json::json!({ "currentVersion": current_version }))
        .with_header(
            header::ETAG,
            EntityTag::version(current_version).to_header_value(),
        )
}

#[cfg(test)]
mod tests;
