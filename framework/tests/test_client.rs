//! `arbor::test::TestClient`'s own promises: streams fail the test when they stall instead of
//! hanging it, chunks arrive as the handler sends them, default headers yield to a request's.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use arbor::test::TestClient;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;

fn router() -> Router {
    Router::new()
        .route(
            "/stalls",
            get(|| async {
                // One chunk, then nothing, ever.
                let chunks =
                    stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"data: 1\n\n"))])
                        .chain(stream::pending());
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/who",
            get(|headers: HeaderMap| async move {
                headers
                    .get("authorization")
                    .map(|v| v.to_str().expect("ascii header").to_owned())
                    .unwrap_or_default()
            }),
        )
}

use futures_util::StreamExt as _;

#[tokio::test]
#[should_panic(expected = "nothing arrived on the stream within 50ms")]
async fn a_stalled_stream_fails_the_test_after_its_timeout() {
    let client = TestClient::new(router());
    let mut stream = client
        .get("/stalls")
        .stream()
        .await
        .timeout(Duration::from_millis(50));
    let first = stream.next_event().await.unwrap();
    assert_eq!(first.data, "1");
    stream.next_event().await;
}

#[tokio::test]
async fn default_headers_are_sent_and_a_requests_own_value_wins() {
    let client = TestClient::new(router()).with_bearer_auth("alice");
    assert_eq!(client.get("/who").send().await.text(), "Bearer alice");
    let bob = client.get("/who").bearer_auth("bob").send().await;
    assert_eq!(bob.text(), "Bearer bob");
}
