//! Response compression over TCP: what is compressed, with which algorithm, what is left alone,
//! and that event streams still reach the client one event at a time.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arbor::compression::Compression;
use arbor::{App, Json, Router};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// A JSON list of about 30 KB, like a page of posts.
fn list() -> Value {
    let items: Vec<Value> = (0..200)
        .map(|i| json!({ "id": i, "title": format!("Post number {i}"), "body": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "version": 1 }))
        .collect();
    json!({ "items": items })
}

fn router(release: Arc<Notify>) -> Router {
    Router::new()
        .route("/list", get(|| async { Json(list()) }))
        .route("/small", get(|| async { Json(json!({ "ok": true })) }))
        .route(
            "/progress",
            post(move || {
                let release = release.clone();
                async move {
                    arbor::progress::stream(|progress| async move {
                        progress.step(10, "first").await;
                        // The second event only comes once the client has seen the first: a
                        // stream held back by an encoder would never get here.
                        release.notified().await;
                        progress.processing(50).await;
                        Ok::<_, arbor::ApiError>(json!({ "done": true }))
                    })
                }
            }),
        )
}

struct Server {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    release: Arc<Notify>,
}

impl Server {
    async fn start(compression: Option<Compression>) -> Self {
        let release = Arc::new(Notify::new());
        let app = App::new(router(release.clone())).compression(compression);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(arbor::serve(listener, app.into_router()));
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            release,
        }
    }

    async fn get(
        &self,
        path: &str,
        accept_encoding: Option<&str>,
    ) -> (http::response::Parts, Vec<u8>) {
        self.request("GET", path, accept_encoding).await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        accept_encoding: Option<&str>,
    ) -> (http::response::Parts, Vec<u8>) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(value) = accept_encoding {
            request = request.header(header::ACCEPT_ENCODING, value);
        }
        let response = self
            .client
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        (parts, body.collect().await.unwrap().to_bytes().to_vec())
    }
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(bytes).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

#[tokio::test]
async fn large_json_is_compressed_with_the_clients_preferred_algorithm() {
    let server = Server::start(Some(Compression::new())).await;
    let plain = serde_json::to_vec(&list()).unwrap();
    for (accept, expected) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip;q=0.5, br;q=1.0", "br"),
        ("gzip, zstd;q=0.1", "gzip"),
    ] {
        let (parts, body) = server.get("/list", Some(accept)).await;
        assert_eq!(parts.status, 200);
        assert_eq!(
            parts.headers[header::CONTENT_ENCODING],
            expected,
            "{accept}"
        );
        assert!(parts.headers[header::VARY]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding"));
        assert!(
            body.len() * 5 < plain.len(),
            "{expected}: {} bytes for {} plain",
            body.len(),
            plain.len()
        );
        assert_eq!(decode(expected, &body), plain, "{accept}");
    }
}

#[tokio::test]
async fn small_bodies_clients_without_accept_encoding_and_switched_off_apps_get_plain_bytes() {
    let server = Server::start(Some(Compression::new())).await;
    let (parts, body) = server.get("/small", Some("gzip, br, zstd")).await;
    assert!(parts.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "ok": true })
    );
    let (parts, body) = server.get("/list", None).await;
    assert!(parts.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), list());
    // `identity` only, or an algorithm Arbor does not offer.
    for accept in ["identity", "deflate"] {
        let (parts, _) = server.get("/list", Some(accept)).await;
        assert!(
            parts.headers.get(header::CONTENT_ENCODING).is_none(),
            "{accept}"
        );
    }

    let off = Server::start(None).await;
    let (parts, body) = off.get("/list", Some("gzip, br, zstd")).await;
    assert!(parts.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), list());

    let lower = Server::start(Some(Compression::new().min_size(8).br(false).zstd(false))).await;
    let (parts, _) = lower.get("/small", Some("gzip, br, zstd")).await;
    assert_eq!(parts.headers[header::CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn progress_streams_are_not_compressed_and_arrive_event_by_event() {
    let server = Server::start(Some(Compression::new())).await;
    let request = Request::builder()
        .method("POST")
        .uri(format!("{}/progress", server.base))
        .header(header::ACCEPT_ENCODING, "gzip, br, zstd")
        .body(Empty::new())
        .unwrap();
    let response = server.client.request(request).await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
    let mut body = response.into_body();
    let mut seen = String::new();
    // The `first` step must arrive while the handler still waits: within seconds, not never.
    while !seen.contains("\"first\"") {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("the first event was held back")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    server.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let rest = String::from_utf8(rest.to_vec()).unwrap();
    assert!(rest.contains("event: complete"), "{rest}");
}

/// The `Vary` values of a response, in order.
fn vary(parts: &http::response::Parts) -> Vec<String> {
    parts
        .headers
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn answers_not_worth_compressing_skip_tower_http_and_vary_as_it_would_say() {
    let server = Server::start(Some(Compression::new())).await;
    // `identity` goes through tower-http's compression (which picks no algorithm); no header
    // at all skips it. Both must tell caches the same.
    for path in ["/list", "/small"] {
        let (through, _) = server.get(path, Some("identity")).await;
        let (around, _) = server.get(path, None).await;
        assert_eq!(vary(&around), vary(&through), "{path}");
        assert!(around.headers.get(header::CONTENT_ENCODING).is_none());
    }
    let (large, _) = server.get("/list", None).await;
    assert!(
        vary(&large).iter().any(|v| v.contains("accept-encoding")),
        "{:?}",
        large.headers
    );
    // Too small to be worth it: left alone whatever the client accepts, as tower-http leaves
    // it (no `Content-Encoding`, no `Vary`).
    for accept in [None, Some("gzip, br, zstd")] {
        let (small, body) = server.get("/small", accept).await;
        assert!(small.headers.get(header::CONTENT_ENCODING).is_none());
        assert!(
            !vary(&small).iter().any(|v| v.contains("accept-encoding")),
            "{accept:?}: {:?}",
            small.headers
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({ "ok": true })
        );
    }
}
