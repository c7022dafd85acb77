//! Typed calls to an app's routes, checked by the compiler against the handlers themselves:
//! from tests through [`TestClient::call`](crate::test::TestClient::call), and from another
//! service over HTTP through [`HttpClient`].
//!
//! A call names the handler fn, and passes its path parameters and body:
//!
//! ```ignore
//! let client = TestClient::new(router).with_operations(&routes::OPERATIONS);
//! let user = client
//!     .call(routes::route_v1_users_id::GET, routes::route_v1_users_id::Params { id }, ())
//!     .send()
//!     .await
//!     .value();
//! ```
//!
//! The parameters' type is the `T` of the handler's `Path<T>` (`()` when it has none), the
//! body's the `T` of its `Json<T>` or `Form<T>` (`()` when it reads none), the query's (set
//! with `.query(..)`) the `T` of its `Query<T>`, and the answer's the `T` of the `Json<T>` it
//! returns: a call with another type does not compile. The handler's method and URL pattern
//! come from the generated `routes::OPERATIONS`, found by the handler's type.
//!
//! An extractor of an app's own implements [`ClientArgument`] to say what a client sends for
//! it; most send nothing (`type Part = Nothing;`): the client holds its cookies and tokens.
//! The guide is `docs/openapi.md` ("Rust clients").

use std::any::TypeId;

use bytes::Bytes;
use http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;
use serde_json::Value;

#[cfg(feature = "client")]
mod http_client;
mod response;
mod shape;

#[cfg(feature = "client")]
pub use http_client::{
    Answer, ClientError, HttpCall, HttpClient, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT,
};
pub use response::{ClientResponse, DecodeError, ErrorBody};
/// The type-level fold behind [`ClientArguments`]: public because its bounds name them.
#[doc(hidden)]
pub use shape::{Absent, AddPart, BodySlot, EmptyShape, FoldArguments, Present, Shape, Slot};
pub use shape::{
    BodyOf, ClientArgument, ClientArguments, EncodeError, FormBody, JsonBody, Nothing, ParamsOf,
    PathParameters, QueryOf, QueryString, RawBody, RequestShape, ShapeOf,
};

pub use crate::signature::Signature;

/// One handler under one URL pattern: an entry of the generated `routes::OPERATIONS`.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    method: &'static str,
    pattern: &'static str,
    handler: fn() -> TypeId,
}

impl Operation {
    /// The `handler` fn (its type's id) answering `method` at `pattern` (axum's syntax).
    pub const fn new(method: &'static str, pattern: &'static str, handler: fn() -> TypeId) -> Self {
        Self {
            method,
            pattern,
            handler,
        }
    }

    /// The method.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The URL pattern, in axum's syntax (`/api/users/{id}`).
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }
}

/// The generated table of an app's operations.
#[derive(Debug, Clone, Copy)]
pub struct Operations(&'static [Operation]);

impl Operations {
    /// A table of `operations`.
    pub const fn new(operations: &'static [Operation]) -> Self {
        Self(operations)
    }

    /// Every operation.
    pub fn iter(&self) -> impl Iterator<Item = &'static Operation> {
        self.0.iter()
    }

    /// The operations `handler` answers (two for an optional catch-all: with and without it).
    pub fn of<H: 'static>(&self, _handler: &H) -> impl Iterator<Item = &'static Operation> {
        let id = TypeId::of::<H>();
        self.0
            .iter()
            .filter(move |operation| (operation.handler)() == id)
    }
}

/// The type id of a handler fn item: what generated code stores in an [`Operation`].
#[doc(hidden)]
pub fn type_id_of<H: 'static>(_handler: &H) -> TypeId {
    TypeId::of::<H>()
}

/// Why a call could not be made into a request.
#[derive(Debug)]
pub enum CallError {
    /// The handler is not in the operations table (another app's, or not exported).
    UnknownHandler(&'static str),
    /// No pattern of the handler takes these parameters.
    Params(String),
    /// The body or the query could not be encoded.
    Encode(EncodeError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownHandler(name) => write!(
                f,
                "`{name}` is not in the operations table: is it a handler of these routes (`routes::OPERATIONS`)?"
            ),
            Self::Params(message) => f.write_str(message),
            Self::Encode(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for CallError {}

/// A call turned into the parts of a request.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
}

impl Prepared {
    /// Finds `handler`'s operation for `params` and encodes the request.
    pub(crate) fn new<H: 'static, S: RequestShape>(
        operations: &Operations,
        handler: &H,
        params: &S::Params,
        body: &S::Body,
    ) -> Result<Self, CallError> {
        let name = std::any::type_name::<H>();
        let params = serde_json::to_value(params)
            .map_err(|e| CallError::Encode(EncodeError(e.to_string())))?;
        let mut candidates = operations.of(handler).peekable();
        if candidates.peek().is_none() {
            return Err(CallError::UnknownHandler(name));
        }
        let mut mismatch = String::new();
        let (method, path) = candidates
            .find_map(|operation| match fill_pattern(operation.pattern, &params) {
                Ok(path) => Some((operation.method, path)),
                Err(why) => {
                    mismatch = format!(
                        "parameters {params} do not fit `{}`: {why}",
                        operation.pattern
                    );
                    None
                }
            })
            .ok_or(CallError::Params(mismatch))?;
        let (content_type, body) = S::encode_body(body).map_err(CallError::Encode)?;
        Ok(Self {
            method: Method::from_bytes(method.as_bytes()).expect("generated methods are valid"),
            path,
            query: None,
            content_type,
            body,
        })
    }

    /// Sets the query string.
    pub(crate) fn set_query(&mut self, query: &impl Serialize) -> Result<(), CallError> {
        let text = serde_urlencoded::to_string(query)
            .map_err(|e| CallError::Encode(EncodeError(e.to_string())))?;
        self.query = (!text.is_empty()).then_some(text);
        Ok(())
    }

    /// The path and query, for a request's URI.
    pub(crate) fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// What a path segment leaves unescaped: RFC 3986's `pchar` less the sub-delimiters a router
/// or a proxy might read.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `pattern` with its `{name}` and `{*name}` parameters filled from `params`: an object by
/// name, an array in order, a single value for a single parameter. Every parameter must be
/// given and every given one used, so that of an optional catch-all's two patterns exactly
/// one fits.
fn fill_pattern(pattern: &str, params: &Value) -> Result<String, String> {
    let names: Vec<(&str, bool)> = pattern
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| match name.strip_prefix('*') {
            Some(name) => (name, true),
            None => (name, false),
        })
        .collect();
    let values: Vec<&Value> = match params {
        Value::Null => Vec::new(),
        Value::Object(fields) => {
            let given = fields.iter().filter(|(_, value)| !value.is_null());
            for (field, _) in given {
                if !names.iter().any(|(name, _)| name == field) {
                    return Err(format!("the pattern has no parameter `{field}`"));
                }
            }
            names
                .iter()
                .map(|(name, _)| match fields.get(*name) {
                    Some(value) if !value.is_null() => Ok(value),
                    _ => Err(format!("`{name}` is not given")),
                })
                .collect::<Result<_, _>>()?
        }
        Value::Array(items) => items.iter().collect(),
        value => vec![value],
    };
    if values.len() != names.len() {
        return Err(format!(
            "{} parameter(s) given for {}",
            values.len(),
            names.len()
        ));
    }
    let mut values = values.into_iter().zip(&names);
    let mut path = String::with_capacity(pattern.len());
    for segment in pattern.split('/').skip(1) {
        path.push('/');
        if !segment.starts_with('{') {
            path.push_str(segment);
            continue;
        }
        let (value, (name, catch_all)) = values.next().expect("as many values as names");
        match (value, catch_all) {
            (Value::Array(parts), true) => {
                if parts.is_empty() {
                    return Err(format!("the catch-all `{name}` is empty"));
                }
                for (index, part) in parts.iter().enumerate() {
                    if index > 0 {
                        path.push('/');
                    }
                    push_segment(&mut path, name, part)?;
                }
            }
            (value, _) => push_segment(&mut path, name, value)?,
        }
    }
    Ok(path)
}

fn push_segment(path: &mut String, name: &str, value: &Value) -> Result<(), String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => return Err(format!("`{name}` is not a scalar: {other}")),
    };
    if text.is_empty() {
        return Err(format!("`{name}` is empty"));
    }
    path.extend(utf8_percent_encode(&text, SEGMENT));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fill_pattern;

    #[test]
    fn parameters_fill_patterns_by_name_in_order_or_alone() {
        assert_eq!(
            fill_pattern("/api/users/{id}", &json!({ "id": 7 })).unwrap(),
            "/api/users/7"
        );
        assert_eq!(
            fill_pattern("/api/users/{id}", &json!(7)).unwrap(),
            "/api/users/7"
        );
        assert_eq!(
            fill_pattern("/api/orgs/{org}/users/{id}", &json!(["a b", "x/y"])).unwrap(),
            "/api/orgs/a%20b/users/x%2Fy"
        );
        assert_eq!(
            fill_pattern("/api/docs/{*slug}", &json!({ "slug": ["a", "é"] })).unwrap(),
            "/api/docs/a/%C3%A9"
        );
        assert_eq!(
            fill_pattern("/api/hello", &json!(null)).unwrap(),
            "/api/hello"
        );
    }

    #[test]
    fn of_an_optional_catch_all_exactly_one_pattern_fits() {
        let absent = json!({ "slug": null });
        let present = json!({ "slug": ["a"] });
        assert!(fill_pattern("/api/docs", &absent).is_ok());
        assert!(fill_pattern("/api/docs/{*slug}", &absent).is_err());
        assert!(fill_pattern("/api/docs", &present).is_err());
        assert!(fill_pattern("/api/docs/{*slug}", &present).is_ok());
    }

    #[test]
    fn missing_empty_and_unknown_parameters_are_refused() {
        assert!(fill_pattern("/api/users/{id}", &json!({})).is_err());
        assert!(fill_pattern("/api/users/{id}", &json!({ "id": "" })).is_err());
        assert!(fill_pattern("/api/users/{id}", &json!({ "id": 1, "x": 2 })).is_err());
        assert!(fill_pattern("/api/users/{id}", &json!({ "id": [1] })).is_err());
        assert!(fill_pattern("/api/docs/{*slug}", &json!({ "slug": [] })).is_err());
    }
}
