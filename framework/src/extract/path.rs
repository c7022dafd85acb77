//! `Path<T>`: route params from the folder names, decoded per segment, typed by serde.

use std::fmt;

use axum::extract::{FromRequestParts, MatchedPath, OriginalUri};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use super::params::{self, Params};
use crate::ApiError;

/// The params of the route's dynamic folders, deserialized into `T`.
///
/// - `[id]` is one segment, deserialized into any scalar (`String`, `u64`, `Uuid`, an enum).
/// - `[...path]` is the list of segments, each percent-decoded on its own: `/files/a%2Fb/c`
///   gives `["a/b", "c"]`.
/// - `[[...slug]]` is absent when nothing matched (use `Option<Vec<String>>`), which is not the
///   same as an empty list.
///
/// ```
/// use arbor::Path;
/// use serde::Deserialize;
///
/// // app/api/orgs/[org]/files/[...path]/route.rs
/// #[derive(Deserialize)]
/// pub struct Params {
///     org: String,
///     path: Vec<String>,
/// }
///
/// pub async fn GET(Path(params): Path<Params>) -> String {
///     format!("{} has {}", params.org, params.path.join("/"))
/// }
/// ```
///
/// A value that fails to decode or to parse answers `400 INVALID_PATH_PARAMS`, naming the param.
/// `arbor-build` also checks at build time that a struct's fields match the folders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = PathRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Without a catch-all every param is one segment, which axum's router has already
        // decoded exactly as Arbor would: deserialize those. The raw path is read again only for
        // a catch-all, or to name what failed in the answer.
        if !matched_pattern(parts)?.contains("{*") {
            if let Ok(axum::extract::Path(value)) =
                axum::extract::Path::<T>::from_request_parts(parts, state).await
            {
                return Ok(Path(value));
            }
        }
        let pattern = matched_pattern(parts)?;
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path(), |original| original.path());
        let params = params::capture(pattern, path)?;
        T::deserialize(Params::new(&params))
            .map(Path)
            .map_err(PathRejection::Invalid)
    }
}

/// The route's pattern, as the router matched it.
fn matched_pattern(parts: &Parts) -> Result<&str, PathRejection> {
    parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .ok_or(PathRejection::NotRouted)
}

impl<T> std::ops::Deref for Path<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Why `Path<T>` could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum PathRejection {
    /// A segment's percent-encoding is not valid UTF-8.
    Decode {
        /// The param.
        param: String,
    },
    /// The value does not parse into the requested type.
    Invalid(params::Error),
    /// `Path` was used outside a routed handler (a bug in the app, answered as a 500).
    NotRouted,
}

impl From<params::DecodeError> for PathRejection {
    fn from(error: params::DecodeError) -> Self {
        Self::Decode { param: error.param }
    }
}

impl fmt::Display for PathRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode { param } => write!(
                f,
                "path parameter `{param}` is not valid percent-encoded UTF-8"
            ),
            Self::Invalid(error) => error.fmt(f),
            Self::NotRouted => f.write_str("`Path` extractor used outside a matched route"),
        }
    }
}

impl std::error::Error for PathRejection {}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match &rejection {
            PathRejection::Decode { param } => invalid(rejection.to_string(), Some(param)),
            PathRejection::Invalid(error) => invalid(error.to_string(), error.param()),
            PathRejection::NotRouted => {
                ApiError::internal_with(std::io::Error::other(rejection.to_string()))
            }
        }
    }
}

impl IntoResponse for PathRejection {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

fn invalid(message: String, param: Option<&str>) -> ApiError {
    let error = ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PATH_PARAMS", message);
    match param {
        Some(param) => error.with_details(serde_json::json!({ "param": param })),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use serde::Deserialize;

    use super::Path;
    use crate::test::TestClient;

    #[derive(Deserialize)]
    struct Item {
        org: String,
        id: u64,
    }

    fn client() -> TestClient {
        let routes = crate::Router::new()
            .route("/one/{id}", get(|Path(id): Path<String>| async move { id }))
            .route(
                "/orgs/{org}/items/{id}",
                get(|Path(item): Path<Item>| async move { format!("{} {}", item.org, item.id) }),
            )
            .route(
                "/pair/{a}/{b}",
                get(|Path((a, b)): Path<(String, u8)>| async move { format!("{a} {b}") }),
            )
            .route(
                "/files/{*path}",
                get(|Path(path): Path<Vec<String>>| async move { path.join("|") }),
            );
        TestClient::new(routes)
    }

    /// Without a catch-all the values come from axum's decoded params; they must be what
    /// Arbor's own reading of the raw path gives.
    #[tokio::test]
    async fn single_segments_decode_as_the_raw_path_reads() {
        let client = client();
        for (segment, value) in [
            ("abc", "abc"),
            ("a%2Fb", "a/b"),
            ("%E2%82%AC", "€"),
            ("a+b", "a+b"),
            ("a%20b", "a b"),
            ("%25", "%"),
            ("%3F%23", "?#"),
        ] {
            let response = client.get(&format!("/one/{segment}")).send().await;
            assert_eq!(response.status(), 200, "{segment}");
            assert_eq!(response.text(), value, "{segment}");
            let path = format!("/one/{segment}");
            let expected = super::super::params::capture("/one/{id}", &path).expect("decodes");
            assert_eq!(
                expected[0].1,
                super::super::params::ParamValue::One(value.into()),
                "{segment}"
            );
        }
        let response = client.get("/orgs/acme%20inc/items/42").send().await;
        assert_eq!(response.text(), "acme inc 42");
        let response = client.get("/pair/x/7").send().await;
        assert_eq!(response.text(), "x 7");
    }

    #[tokio::test]
    async fn failures_name_the_param_as_before() {
        let client = client();
        for (uri, param, message) in [
            ("/one/%FF", "id", "not valid percent-encoded UTF-8"),
            ("/orgs/acme/items/abc", "id", "`abc` is not a valid u64"),
            ("/pair/x/300", "b", "300"),
        ] {
            let response = client.get(uri).send().await;
            assert_eq!(response.status(), 400, "{uri}");
            let body: serde_json::Value = response.json();
            assert_eq!(body["error"], "INVALID_PATH_PARAMS", "{uri}: {body}");
            assert_eq!(body["details"]["param"], param, "{uri}: {body}");
            assert!(
                body["message"].as_str().unwrap().contains(message),
                "{uri}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn a_catch_all_is_decoded_segment_by_segment() {
        let response = client().get("/files/a%2Fb/c").send().await;
        assert_eq!(response.text(), "a/b|c");
    }
}
