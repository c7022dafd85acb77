//! `X-Request-ID`: keep a well-formed incoming id or make a UUID, and echo it on the response.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use tower::{Layer, Service};

/// The header that carries the id both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, as an extractor or from the extensions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts 1 to 128 characters of `A-Z a-z 0-9 - _ . :`, which is what common proxies and
    /// tracing systems send; anything else is replaced, so an id can never inject into logs.
    fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let well_formed = (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        well_formed.then(|| Self(Arc::from(value.to_str().unwrap_or_default())))
    }

    fn generate() -> Self {
        Self(Arc::from(uuid::Uuid::new_v4().hyphenated().to_string()))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}

/// Assigns request ids (installed by [`crate::App`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// See [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S> Service<Request> for RequestIdService<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(RequestId::parse)
            .unwrap_or_else(RequestId::generate);
        let header = HeaderValue::from_str(id.as_str()).ok();
        if let Some(header) = &header {
            request
                .headers_mut()
                .insert(REQUEST_ID.clone(), header.clone());
        }
        request.extensions_mut().insert(id);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            if let Some(header) = header {
                response.headers_mut().insert(REQUEST_ID.clone(), header);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_well_formed_ids_and_replaces_the_rest() {
        let keep = HeaderValue::from_static("req-42.abc:DEF_1");
        assert_eq!(
            RequestId::parse(&keep).unwrap().as_str(),
            "req-42.abc:DEF_1"
        );
        for bad in [
            "",
            "has space",
            "new\u{7f}line",
            "quote\"d",
            &"x".repeat(129),
        ] {
            let value =
                HeaderValue::from_bytes(bad.as_bytes()).unwrap_or(HeaderValue::from_static(""));
            assert!(RequestId::parse(&value).is_none(), "{bad:?}");
        }
        let generated = RequestId::generate();
        assert!(uuid::Uuid::parse_str(generated.as_str()).is_ok());
    }
}
