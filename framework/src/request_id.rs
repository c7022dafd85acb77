//! `X-Request-ID`: keep a well-formed incoming id or make a UUID, and echo it on the response.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use tower::{Layer, Service};

/// The header that carries the id both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, as an extractor or from the extensions.
// Kept as the header value itself: the request, the response and the extensions then share
// one buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII gets in (see `parse` and `generate`), so this never falls back.
        self.0.to_str().unwrap_or_default()
    }

    /// Accepts 1 to 128 characters of `A-Z a-z 0-9 - _ . :`, which is what common proxies and
    /// tracing systems send; anything else is replaced, so an id can never inject into logs.
    fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let well_formed = (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        well_formed.then(|| Self(value.clone()))
    }

    fn generate() -> Self {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        // The id is shared by the request, its extensions and the response: a buffer with its
        // own reference count is one allocation, where a copied `Vec` takes a second on its
        // first clone.
        let shared = bytes::Bytes::from_owner(text);
        Self(HeaderValue::from_maybe_shared(shared).unwrap_or(HeaderValue::from_static("-")))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
pub struct SetRequestIdLayer;

impl<S> Layer<S> for SetRequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId { inner }
    }
}

/// See [`SetRequestIdLayer`].
#[derive(Debug, Clone)]
pub struct SetRequestId<S> {
    inner: S,
}

impl<S, E> Service<Request> for SetRequestId<S>
where
    S: Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let incoming = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(RequestId::parse);
        let id = incoming.unwrap_or_else(|| {
            let id = RequestId::generate();
            // Replaces a malformed incoming id too, for whatever reads the headers downstream.
            request
                .headers_mut()
                .insert(REQUEST_ID.clone(), id.0.clone());
            id
        });
        let header = id.0.clone();
        request.extensions_mut().insert(id);
        ResponseFuture {
            inner: self.inner.call(request),
            header: Some(header),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`SetRequestId`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        header: Option<HeaderValue>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(header) = this.header.take() {
            response.headers_mut().insert(REQUEST_ID.clone(), header);
        }
        Poll::Ready(Ok(response))
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
