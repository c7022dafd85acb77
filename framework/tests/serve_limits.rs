//! `arbor::serve` bounds what a client can make it hold: request heads over
//! `ServeOptions::max_header_bytes` are answered `431` over real TCP, and the server keeps
//! serving.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use arbor::ServeOptions;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(options: ServeOptions) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(arbor::serve_with(listener, router, options.signals(false)));
    address
}

/// Sends `GET /` with an `x-padding` header of `padding` bytes; the status line's code.
async fn status_with_header_of(address: SocketAddr, padding: usize) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nhost: test\r\nx-padding: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(padding)
    );
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
        .to_owned()
}

#[tokio::test]
async fn heads_over_the_limit_get_431_and_the_server_keeps_serving() {
    let address = start(ServeOptions::default()).await;
    assert_eq!(status_with_header_of(address, 12 * 1024).await, "200");
    assert_eq!(status_with_header_of(address, 200 * 1024).await, "431");
    assert_eq!(
        status_with_header_of(address, 17 * 1024).await,
        "431",
        "just over the default 16 KiB"
    );
    assert_eq!(status_with_header_of(address, 10).await, "200");
}

#[tokio::test]
async fn the_limit_is_a_setting() {
    let address = start(ServeOptions::default().max_header_bytes(64 * 1024)).await;
    assert_eq!(status_with_header_of(address, 40 * 1024).await, "200");
    assert_eq!(status_with_header_of(address, 80 * 1024).await, "431");
}
