//! `arbor::serve` bounds what a client can make it hold, over real TCP: request heads over
//! `ServeOptions::max_header_bytes` are answered `431`, a head that trickles in (or a keep-alive
//! connection's next head that never comes) is cut off at `ServeOptions::header_read_timeout`
//! while a slow handler is not, a body that trickles in at the route's timeout (`504`),
//! a request with both `Content-Length` and `Transfer-Encoding` is refused (or, with
//! `ServeOptions::refuse_ambiguous_lengths` off, read by its chunks), and the server keeps
//! serving.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbor::{App, Json, ServeOptions};
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(options: ServeOptions) -> SocketAddr {
    start_with(Router::new().route("/", get(|| async { "ok" })), options).await
}

/// Serves `router` on a free loopback port with `options` (signals off).
async fn start_with(router: Router, options: ServeOptions) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
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

#[tokio::test]
async fn a_head_that_trickles_in_is_cut_off() {
    let address =
        start(ServeOptions::default().header_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    // Half a head, then nothing: a slowloris client holding the connection.
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    assert_closed_at_the_timeout(&mut stream).await;
    assert_eq!(
        status_with_header_of(address, 10).await,
        "200",
        "still serving"
    );
}

#[tokio::test]
async fn a_keep_alive_connection_without_a_next_request_is_closed_at_the_header_timeout() {
    let address =
        start(ServeOptions::default().header_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    // Many requests on the connection (each one's timer registered and dropped), then none.
    for _ in 0..50 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0_u8; 256];
        let read = stream.read(&mut answer).await.unwrap();
        assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    }
    assert_closed_at_the_timeout(&mut stream).await;
}

/// The server closes `stream` once the 300 ms header timeout of these tests has passed: not
/// before (give or take the timer's precision), and within 5 s.
async fn assert_closed_at_the_timeout(stream: &mut TcpStream) {
    let waiting_since = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let waited = waiting_since.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}

#[tokio::test]
async fn a_handler_slower_than_the_header_timeout_still_answers() {
    let routes = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            "done"
        }),
    );
    let options = ServeOptions::default().header_read_timeout(Duration::from_millis(200));
    let address = start_with(routes, options).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("done"), "{answer}");
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_at_the_route_timeout() {
    let routes = Router::new().route(
        "/echo",
        post(|Json(value): Json<serde_json::Value>| async move { Json(value) }),
    );
    let router = App::new(routes)
        .timeout(Some(Duration::from_millis(300)))
        .into_router();
    let address = start_with(router, ServeOptions::default()).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"a\":")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504 "), "{answer}");
    assert!(answer.contains(r#""error":"TIMEOUT""#), "{answer}");
}

/// Two requests on one connection, the second with both lengths; everything the server sent
/// back until it closed the connection.
async fn answers_to_both_lengths(options: ServeOptions) -> String {
    let router = Router::new().route("/echo", post(|body: String| async move { body }));
    let address = start_with(router, options).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 5\r\n\r\nfirst\
              POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n\
              6\r\nsecond\r\n0\r\n\r\nPOST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 5\r\n\r\nthird",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn a_request_with_both_lengths_is_refused_and_ends_its_connection() {
    let answers = answers_to_both_lengths(ServeOptions::default()).await;
    let statuses: Vec<&str> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|answer| &answer[..3])
        .collect();
    assert_eq!(statuses, ["200", "400"], "{answers}");
    assert!(answers.contains("\r\n\r\nfirst"), "{answers}");
    assert!(answers.contains(r#""error":"BAD_REQUEST""#), "{answers}");
    // The route did not run for it, and nothing behind it was read.
    assert!(
        !answers.contains("second") && !answers.contains("third"),
        "{answers}"
    );
}

#[tokio::test]
async fn with_the_refusal_off_the_body_is_read_by_its_chunks() {
    let answers =
        answers_to_both_lengths(ServeOptions::default().refuse_ambiguous_lengths(false)).await;
    let statuses: Vec<&str> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|answer| &answer[..3])
        .collect();
    // hyper's own handling: the chunks win, and the connection still ends after the answer.
    assert_eq!(statuses, ["200", "200"], "{answers}");
    assert!(answers.ends_with("second"), "{answers}");
    assert!(!answers.contains("third"), "{answers}");
}
