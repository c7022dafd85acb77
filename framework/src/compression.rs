//! Response compression, on by default in [`App`](crate::App): gzip, brotli or zstd, whichever
//! the client's `Accept-Encoding` prefers, through tower-http's `CompressionLayer`, for
//! responses of at least [`Compression::DEFAULT_MIN_SIZE`] bytes.
//!
//! Never compressed: event streams (`text/event-stream`: SSE and progress streams, which must
//! reach the client event by event, and an encoder holds bytes back until its block fills),
//! newline-delimited JSON streams, responses marked `X-Accel-Buffering: no` (Arbor's streams set
//! it to ask proxies not to hold bytes back: the same request to us), images other than SVG
//! (already compressed), gRPC, responses that already have a `Content-Encoding`, and bodies
//! smaller than the threshold (headers and CPU cost more than they save).
//!
//! ```
//! use arbor::compression::{Compression, CompressionLevel};
//! use arbor::App;
//!
//! # let routes = arbor::Router::new();
//! let app = App::new(routes)
//!     .compression(Some(Compression::new().min_size(2048).zstd(false).level(CompressionLevel::Fastest)))
//!     .into_router();
//! # let _ = app;
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{header, HeaderValue};
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

pub use tower_http::CompressionLevel;

/// What [`App::compression`](crate::App::compression) compresses, and how.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Compression {
    min_size: u16,
    gzip: bool,
    br: bool,
    zstd: bool,
    level: CompressionLevel,
}

impl Default for Compression {
    fn default() -> Self {
        Self::new()
    }
}

impl Compression {
    /// Responses smaller than this many bytes are sent as they are by default: below about a
    /// kilobyte, the saving is a few hundred bytes at most, less than a round trip is worth.
    pub const DEFAULT_MIN_SIZE: u16 = 1024;

    /// gzip, brotli and zstd at each one's default level (brotli at 4, as nginx does: its own
    /// default of 11 is far too slow to run on every response), from 1 KiB.
    pub fn new() -> Self {
        Self {
            min_size: Self::DEFAULT_MIN_SIZE,
            gzip: true,
            br: true,
            zstd: true,
            level: CompressionLevel::Default,
        }
    }

    /// Compresses bodies of at least `bytes` (a body of unknown size, such as a stream that
    /// is not an event stream, is always compressed).
    pub fn min_size(mut self, bytes: u16) -> Self {
        self.min_size = bytes;
        self
    }

    /// Offers gzip (on by default).
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// Offers brotli (on by default).
    pub fn br(mut self, on: bool) -> Self {
        self.br = on;
        self
    }

    /// Offers zstd (on by default).
    pub fn zstd(mut self, on: bool) -> Self {
        self.zstd = on;
        self
    }

    /// The compression level, for every algorithm.
    pub fn level(mut self, level: CompressionLevel) -> Self {
        self.level = level;
        self
    }

    /// The layer [`App`](crate::App) puts in its stack.
    pub(crate) fn into_layer(self) -> NegotiateLayer {
        let predicate = WorthCompressing {
            size: SizeAbove::new(self.min_size),
        };
        NegotiateLayer {
            compression: CompressionLayer::new()
                .gzip(self.gzip)
                .br(self.br)
                .zstd(self.zstd)
                .quality(self.level)
                .compress_when(predicate),
            predicate,
        }
    }
}

/// Builds [`Negotiate`].
#[derive(Debug, Clone)]
pub(crate) struct NegotiateLayer {
    compression: CompressionLayer<WorthCompressing>,
    predicate: WorthCompressing,
}

impl<S> Layer<S> for NegotiateLayer {
    type Service = Negotiate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Negotiate {
            inner,
            compression: self.compression.clone(),
            predicate: self.predicate,
        }
    }
}

/// Compression through tower-http, for the responses worth compressing only.
///
/// tower-http's service wraps every response body, compressible or not (and `App` then boxed it
/// back into [`Body`]): on a small JSON answer that was a fifth of the whole stack's cost
/// (`docs/benchmarks.md`). Here the inner service answers first; a response that would not be
/// compressed (too small, a stream, already encoded) leaves untouched, with what tower-http
/// would have added (`Vary: accept-encoding` when a client with `Accept-Encoding` would have
/// got it compressed); only the others go through tower-http, with the client's
/// `Accept-Encoding`, to be compressed as before.
#[derive(Clone)]
pub(crate) struct Negotiate<S> {
    inner: S,
    compression: CompressionLayer<WorthCompressing>,
    predicate: WorthCompressing,
}

impl<S> Service<Request> for Negotiate<S>
where
    S: Service<Request, Response = Response>,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = NegotiateFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let accept = request.headers().get(header::ACCEPT_ENCODING).cloned();
        NegotiateFuture::Answering {
            inner: self.inner.call(request),
            accept,
            compression: self.compression.clone(),
            predicate: self.predicate,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Negotiate`].
    #[project = NegotiateProjection]
    pub(crate) enum NegotiateFuture<F, E> {
        /// The inner service answering.
        Answering {
            #[pin]
            inner: F,
            accept: Option<HeaderValue>,
            compression: CompressionLayer<WorthCompressing>,
            predicate: WorthCompressing,
        },
        /// tower-http compressing the answer.
        Compressing { compressing: BoxFuture<'static, Result<Response, E>> },
    }
}

impl<F, E> Future for NegotiateFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
    E: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let compressing = match self.as_mut().project() {
            NegotiateProjection::Compressing { compressing } => {
                return compressing.as_mut().poll(cx)
            }
            NegotiateProjection::Answering {
                inner,
                accept,
                compression,
                predicate,
            } => {
                let mut response = ready!(inner.poll(cx))?;
                // As tower-http decides it.
                let worth_it = predicate.should_compress(&response)
                    && !response.headers().contains_key(header::CONTENT_ENCODING);
                if !worth_it {
                    return Poll::Ready(Ok(response));
                }
                let Some(accept) = accept.take() else {
                    // No encoding to pick, but with one it would have been compressed.
                    add_vary_accept_encoding(response.headers_mut());
                    return Poll::Ready(Ok(response));
                };
                let mut request = Request::new(Body::empty());
                request
                    .headers_mut()
                    .insert(header::ACCEPT_ENCODING, accept);
                let compressed = compression
                    .layer(Respond(Some(response), PhantomData))
                    .oneshot(request)
                    .map(|result| result.map(|response| response.map(Body::new)));
                Box::pin(compressed)
            }
        };
        self.set(NegotiateFuture::Compressing { compressing });
        self.poll(cx)
    }
}

/// A response already made, as a service: how it reaches tower-http's compression after the
/// inner service answered.
struct Respond<E>(Option<Response>, PhantomData<fn() -> E>);

impl<E> Service<Request> for Respond<E> {
    type Response = Response;
    type Error = E;
    type Future = std::future::Ready<Result<Response, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request) -> Self::Future {
        // Called once, by the `oneshot` above.
        std::future::ready(Ok(self
            .0
            .take()
            .unwrap_or_else(|| crate::ApiError::internal().into_response())))
    }
}

fn add_vary_accept_encoding(headers: &mut http::HeaderMap) {
    let varies_already = headers
        .get_all(header::VARY)
        .iter()
        .any(|value| contains_ignore_case(value.as_bytes(), b"accept-encoding"));
    if !varies_already {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// The predicate of [`Compression`]: see the module docs for what is left alone.
#[derive(Debug, Clone, Copy)]
pub struct WorthCompressing {
    size: SizeAbove,
}

impl Predicate for WorthCompressing {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        // The size first: it usually decides, from the body's exact length, without reading a
        // header.
        if !self.size.should_compress(response) {
            return false;
        }
        let unbuffered = response
            .headers()
            .get("x-accel-buffering")
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"no"));
        !unbuffered
            && !response.headers().contains_key(header::CONTENT_RANGE)
            && NotForContentType::SSE.should_compress(response)
            && NotForContentType::const_new("application/x-ndjson").should_compress(response)
            && NotForContentType::GRPC.should_compress(response)
            && NotForContentType::IMAGES.should_compress(response)
    }
}
