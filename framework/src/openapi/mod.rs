//! The API contract, derived from the route tree: an OpenAPI 3.1 document with nothing
//! written twice.
//!
//! `arbor-build` generates `routes::openapi()` next to the router. Paths, methods, path
//! parameters, tags, summaries and `deprecated` come from the route files; parameter, body and
//! response schemas from the handlers' own types, through [`schemars`] (JSON Schema 2020-12);
//! the error answers from the extractors and middleware each route has. Serve it with
//! [`crate::App::openapi`]:
//!
//! ```
//! # mod routes {
//! #     pub fn router() -> arbor::Router { arbor::Router::new() }
//! #     pub fn openapi() -> &'static arbor::openapi::OpenApi {
//! #         static DOCUMENT: std::sync::LazyLock<arbor::openapi::OpenApi> = std::sync::LazyLock::new(||
//! #             arbor::openapi::DocumentBuilder::new("app", "1.0.0").finish());
//! #         &DOCUMENT
//! #     }
//! # }
//! let app = arbor::App::new(routes::router()).openapi(routes::openapi().clone()); // GET /api/openapi.json
//! # let _ = app;
//! ```
//!
//! What a handler's types add:
//!
//! | argument or output | in the document |
//! |---|---|
//! | `Path<T>` | the path parameters' schemas (a struct's fields by name, a tuple's items in order); catch-alls are arrays |
//! | `Query<T>` | one query parameter per field of `T`, required unless optional |
//! | `Json<T>`, `Form<T>` | the request body, `application/json` or form-encoded; `400 INVALID_JSON`/`VALIDATION_ERROR`, `413`, `415` |
//! | `Valid<E>` | what `E` adds, with `validator` rules in the schema (schemars reads `#[validate(..)]`) |
//! | `Auth<P>`, `require_auth` | `401`, and `403` for the middleware |
//! | `Preconditions` | `If-Match`/`If-None-Match`, `412`, `428` |
//! | `rate_limit(..)` | `429` with `Retry-After` and `X-RateLimit-*` |
//! | `idempotency(..)` | the `Idempotency-Key` header, `400`, `409`, `422` |
//! | output `Json<T>` | the success response's schema |
//! | output `(StatusCode, R)` | `R`, under each status the handler's body names (`StatusCode::CREATED`) |
//! | output `Result<T, E>` | `T` (and `E`'s, for a type that describes its errors) |
//!
//! Every operation also lists `500` and `504`, and every error response has the one shared
//! schema, `#/components/schemas/Error`. An argument or output type that has no description
//! (an app's own extractor, an `impl IntoResponse`) adds nothing, or a success response with an
//! undocumented body: implement [`DescribeRequest`] or [`DescribeResponse`] for it.

mod describe;
mod diff;
mod document;
mod endpoint;
pub(crate) mod reference;
mod typescript;

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::Value;

pub use describe::{DescribeRequest, DescribeResponse};
pub use diff::{breaking_changes, BreakingChange};
pub use document::DocumentBuilder;
pub use reference::DEFAULT_REFERENCE_PATH;
pub use schemars;
pub use schemars::JsonSchema;
pub use typescript::typescript_client;

/// Where [`crate::App::openapi`] serves the document, unless told otherwise.
pub const DEFAULT_PATH: &str = "/api/openapi.json";

/// An OpenAPI document, serialized once, and its reference page, rendered on first use.
#[derive(Debug, Clone)]
pub struct OpenApi {
    document: Arc<Value>,
    json: Bytes,
    path: Option<Arc<str>>,
    reference: reference::Rendered,
    reference_path: Option<Arc<str>>,
}

impl OpenApi {
    /// The document `document` (see [`DocumentBuilder::finish`]), served at
    /// [`DEFAULT_PATH`], and its reference page at [`DEFAULT_REFERENCE_PATH`].
    pub fn new(document: Value) -> Self {
        let json = serde_json::to_string_pretty(&document).unwrap_or_default();
        let document = Arc::new(document);
        Self {
            reference: reference::Rendered::new(Arc::clone(&document)),
            document,
            json: Bytes::from(json),
            path: Some(DEFAULT_PATH.into()),
            reference_path: Some(DEFAULT_REFERENCE_PATH.into()),
        }
    }

    /// The document.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The document as pretty-printed JSON, as served.
    pub fn json(&self) -> &str {
        // Written by `serde_json` from a `String`: always UTF-8.
        std::str::from_utf8(&self.json).unwrap_or_default()
    }

    /// Serves the document at `path` instead, or (`None`) not at all.
    #[must_use]
    pub fn path(mut self, path: Option<&str>) -> Self {
        self.path = path.map(Into::into);
        self
    }

    /// Where the document is served, if it is.
    pub fn served_at(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The API reference page: the document as one HTML page that loads nothing from anywhere
    /// and runs no script, so it works with no internet access.
    pub fn reference_html(&self) -> &str {
        // Written by `reference::render` as a `String`: always UTF-8.
        std::str::from_utf8(self.reference.html()).unwrap_or_default()
    }

    /// Serves the reference page at `path` instead, or (`None`) not at all.
    #[must_use]
    pub fn reference_path(mut self, path: Option<&str>) -> Self {
        self.reference_path = path.map(Into::into);
        self
    }

    /// Where the reference page is served, if it is.
    pub fn reference_served_at(&self) -> Option<&str> {
        self.reference_path.as_deref()
    }

    /// The reference page's endpoint, when it is served.
    pub(crate) fn reference_page(&self) -> Option<reference::ReferencePage> {
        Some(reference::ReferencePage {
            path: self.reference_path.clone()?,
            page: self.reference.clone(),
        })
    }
}

/// What generated code calls. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::describe::{
        arguments, nth, output, NotDescribed, ViaDescribeRequest, ViaDescribeResponse,
    };
}
