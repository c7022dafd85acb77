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
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::future::{Either, Map};
use futures_util::FutureExt;
use http::header;
use tower::{Layer, Service};
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
            compression: self.compression.layer(inner),
            predicate: self.predicate,
        }
    }
}

/// tower-http's compression for a request with `Accept-Encoding`, with the body boxed back into
/// [`Body`] so the layers outside keep one response type; a request without one goes straight
/// to the inner service.
///
/// Without `Accept-Encoding` nothing can be compressed, but tower-http's service still wraps
/// every response body (and the box back into `Body` allocates): over half of the whole
/// stack's cost on a small JSON answer (`docs/benchmarks.md`). Such a response gets only what
/// tower-http would give it, `Vary: accept-encoding` when it is worth compressing.
#[derive(Clone)]
pub(crate) struct Negotiate<S> {
    compression: Compressed<S>,
    predicate: WorthCompressing,
}

type Compressed<S> = tower_http::compression::Compression<S, WorthCompressing>;

type CompressedResponse = Response<tower_http::compression::CompressionBody<Body>>;

/// Boxes a compressed body back into [`Body`].
type BoxBody<E> = fn(Result<CompressedResponse, E>) -> Result<Response, E>;

impl<S> Service<Request> for Negotiate<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<
        Map<<Compressed<S> as Service<Request>>::Future, BoxBody<S::Error>>,
        VaryFuture<S::Future>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.compression.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let box_body: BoxBody<S::Error> =
                |result| result.map(|response| response.map(Body::new));
            return Either::Left(self.compression.call(request).map(box_body));
        }
        Either::Right(VaryFuture {
            inner: self.compression.get_mut().call(request),
            predicate: self.predicate,
        })
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Negotiate`] for a request without `Accept-Encoding`.
    pub(crate) struct VaryFuture<F> {
        #[pin]
        inner: F,
        predicate: WorthCompressing,
    }
}

impl<F, E> Future for VaryFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        // As tower-http decides it: the answer depends on `Accept-Encoding` if, with one, it
        // would have been compressed.
        let would_compress = this.predicate.should_compress(&response)
            && !response.headers().contains_key(header::CONTENT_ENCODING);
        let varies_already = || {
            response
                .headers()
                .get_all(header::VARY)
                .iter()
                .any(|value| contains_ignore_case(value.as_bytes(), b"accept-encoding"))
        };
        if would_compress && !varies_already() {
            response.headers_mut().append(
                header::VARY,
                header::HeaderValue::from_static("accept-encoding"),
            );
        }
        Poll::Ready(Ok(response))
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
