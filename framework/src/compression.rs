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

use axum::body::Body;
use axum::response::Response;
use http::header;
use tower::layer::util::{Identity, Stack};
use tower::util::MapResponseLayer;
use tower::ServiceBuilder;
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

    /// The layer [`App`](crate::App) puts in its stack: tower-http's compression, with bodies
    /// boxed back into [`Body`] so the layers outside it keep one response type.
    pub(crate) fn into_layer(self) -> ServiceBuilder<CompressionStack> {
        let box_body: fn(CompressedResponse) -> Response = |response| response.map(Body::new);
        ServiceBuilder::new().map_response(box_body).layer(
            CompressionLayer::new()
                .gzip(self.gzip)
                .br(self.br)
                .zstd(self.zstd)
                .quality(self.level)
                .compress_when(WorthCompressing {
                    size: SizeAbove::new(self.min_size),
                }),
        )
    }
}

type CompressedResponse = Response<tower_http::compression::CompressionBody<Body>>;

/// What [`Compression::into_layer`] builds: compression inside, the body boxed back outside.
pub(crate) type CompressionStack = Stack<
    CompressionLayer<WorthCompressing>,
    Stack<MapResponseLayer<fn(CompressedResponse) -> Response>, Identity>,
>;

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
            && self.size.should_compress(response)
    }
}
