//! Reading a body into memory up to a cap, without losing it when it does not fit: what the
//! response cache and idempotency keys store.

use std::future::Future;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use http_body_util::{BodyExt, BodyStream, StreamBody};

/// A body read up to a cap.
pub(crate) enum Buffered {
    /// The whole body, within the cap.
    Complete(Bytes),
    /// Not bufferable; `body` replays what was read and then the rest, so nothing is lost.
    Partial {
        body: Body,
        /// The body failed while being read (the replay ends with that error).
        #[cfg_attr(not(feature = "idempotency"), allow(dead_code))]
        failed: bool,
    },
}

/// What one `frame()` call yields: `Option<Result<http_body::Frame<Bytes>, axum::Error>>`
/// (`http_body` is not a direct dependency).
type ReadFrame = <http_body_util::combinators::Frame<'static, Body> as Future>::Output;

/// Reads `body` whole if it fits in `cap` bytes and has no trailers.
pub(crate) async fn buffer_body(mut body: Body, cap: usize) -> Buffered {
    if axum::body::HttpBody::size_hint(&body).lower() > u64::try_from(cap).unwrap_or(u64::MAX) {
        return Buffered::Partial {
            body,
            failed: false,
        };
    }
    let mut read: Vec<ReadFrame> = Vec::new();
    let mut total = 0usize;
    loop {
        let next = body.frame().await;
        match &next {
            None => break,
            Some(Ok(frame)) => {
                let overflow = match frame.data_ref() {
                    Some(data) => {
                        total = total.saturating_add(data.len());
                        total > cap
                    }
                    // Trailers: not something an entry keeps.
                    None => true,
                };
                read.push(next);
                if overflow {
                    return Buffered::Partial {
                        body: replay(read, Some(body)),
                        failed: false,
                    };
                }
            }
            Some(Err(_)) => {
                read.push(next);
                return Buffered::Partial {
                    body: replay(read, None),
                    failed: true,
                };
            }
        }
    }
    let mut bytes = BytesMut::with_capacity(total);
    for frame in read.into_iter().flatten().flatten() {
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Buffered::Complete(bytes.freeze())
}

/// A body that yields the frames in `read` and then what is left of `rest`.
fn replay(read: Vec<ReadFrame>, rest: Option<Body>) -> Body {
    let head = stream::iter(read.into_iter().flatten());
    match rest {
        Some(rest) => Body::new(StreamBody::new(head.chain(BodyStream::new(rest)))),
        None => Body::new(StreamBody::new(head)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffering_keeps_every_byte_of_a_large_body() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..10u8).map(|i| Ok(Bytes::from(vec![i; 100]))).collect();
        let body = Body::from_stream(stream::iter(chunks));
        let Buffered::Partial { body, failed } = buffer_body(body, 250).await else {
            panic!("a 1000-byte body does not fit in 250");
        };
        assert!(!failed);
        let bytes = body.collect().await.unwrap().to_bytes();
        let expected: Vec<u8> = (0..10u8).flat_map(|i| vec![i; 100]).collect();
        assert_eq!(bytes.as_ref(), expected.as_slice());

        let Buffered::Complete(small) = buffer_body(Body::from("hello"), 5).await else {
            panic!("fits exactly");
        };
        assert_eq!(small, "hello");
    }
}
