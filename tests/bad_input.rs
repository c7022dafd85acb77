//! A corpus of bad input against the reference app over real TCP, written byte by byte where a
//! well-behaved client would refuse to send it. Each case checks the documented status, the
//! standard error shape when the app answers (hyper's own refusals of unparseable requests
//! have no body), that nothing internal leaks (no panic text, source path, SQL or type name),
//! and that the server keeps serving.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Backend, Server};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off the socket.
struct Answer {
    case: String,
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The status, the standard error shape with `code` (when `code` is given), and no leak.
    #[track_caller]
    fn expect(&self, status: u16, code: Option<&str>) {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{}: {}\n{body}", self.case, self.head);
        if let Some(code) = code {
            assert_eq!(
                self.header("content-type"),
                Some("application/json"),
                "{}: {}",
                self.case,
                self.head
            );
            let json: Value = serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {body}", self.case));
            assert_eq!(json["error"], code, "{}: {body}", self.case);
            assert!(
                json["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{}: {body}",
                self.case
            );
        }
        for internal in [
            "panicked",
            ".rs:",
            "src/",
            "sqlx",
            "SELECT ",
            "INSERT ",
            "serde_json::",
            "axum::",
            "arbor::",
            "hyper::",
            "stack backtrace",
            "thread '",
        ] {
            assert!(
                !body.contains(internal),
                "{}: the answer shows {internal:?}: {body}",
                self.case
            );
        }
    }
}

/// Sends `request` as is on a new connection and reads the answer until the server closes it
/// (every request here says `connection: close`, or is one the server closes after).
async fn send_raw(address: SocketAddr, case: &str, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may answer and close before reading everything (a body over the limit).
    let _ = stream.write_all(request).await;
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    assert!(read.is_ok(), "{case}: no answer within 10 s");
    let text = String::from_utf8_lossy(&bytes);
    let Some(end) = text.find("\r\n\r\n") else {
        panic!("{case}: no response head in {text:?}");
    };
    let head = text[..end].to_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{case}: no status in {head:?}"));
    let mut body = bytes[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        case: case.to_owned(),
        status,
        head,
        body,
    }
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = chunked.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&chunked[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        body.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
    body
}

/// `POST path` with `content_type` (if any) and `body`, as bytes.
fn post(path: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(content_type) = content_type {
        request.push_str(&format!("content-type: {content_type}\r\n"));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    request
}

fn get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n{extra_headers}\r\n")
        .into_bytes()
}

async fn still_serving(address: SocketAddr, after: &str) {
    let hello = send_raw(address, after, &get("/api/hello", "")).await;
    assert_eq!(
        hello.status, 200,
        "the server stopped serving after {after}"
    );
}

#[tokio::test]
async fn bad_bodies_get_the_documented_status_and_shape() {
    let server = Server::start(Backend::Sqlite).await;
    let address: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let json = Some("application/json");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // An unknown field's value is skipped without recursion: accepted, and no stack at risk.
    let deep_in_a_field = format!("{{\"name\": \"a\", \"extra\": {deep}}}");
    let over_the_limit = vec![b'a'; arbor::DEFAULT_BODY_LIMIT + 1];
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        ("malformed JSON", post("/api/hello", json, b"{\"name\": "), 400, Some("INVALID_JSON")),
        ("truncated JSON", post("/api/hello", json, b"{\"name\": \"ab"), 400, Some("INVALID_JSON")),
        ("JSON nested 10,000 deep, where a name is due", post("/api/hello", json, deep.as_bytes()), 400, Some("VALIDATION_ERROR")),
        ("JSON nested 10,000 deep in an unknown field", post("/api/hello", json, deep_in_a_field.as_bytes()), 200, None),
        ("a huge number", post("/api/hello", json, b"{\"name\": 1e999999}"), 400, Some("INVALID_JSON")),
        ("invalid UTF-8", post("/api/hello", json, b"{\"name\": \"\xff\xfe\"}"), 400, Some("INVALID_JSON")),
        ("a field of the wrong type", post("/api/hello", json, b"{\"name\": 42}"), 400, Some("VALIDATION_ERROR")),
        ("a validation failure", post("/api/hello", json, b"{\"name\": \"\"}"), 400, Some("VALIDATION_ERROR")),
        ("the wrong content type", post("/api/hello", Some("text/plain"), b"{\"name\": \"a\"}"), 415, Some("UNSUPPORTED_MEDIA_TYPE")),
        ("no content type", post("/api/hello", None, b"{\"name\": \"a\"}"), 415, Some("UNSUPPORTED_MEDIA_TYPE")),
        ("a body over the limit", post("/api/hello", json, &over_the_limit), 413, Some("PAYLOAD_TOO_LARGE")),
        (
            "an injection string in a field",
            post("/api/v1/register", json, br#"{"email": "' OR 1=1; DROP TABLE users; --", "name": "<script>alert(1)</script>", "password": "Str0ngPassword"}"#),
            400,
            Some("VALIDATION_ERROR"),
        ),
    ];
    for (case, request, status, code) in cases {
        send_raw(address, case, &request).await.expect(status, code);
        still_serving(address, case).await;
    }
}

#[tokio::test]
async fn lying_and_chunked_lengths_over_the_limit_are_refused() {
    let server = Server::start(Backend::Sqlite).await;
    let address: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();

    // A `Content-Length` over the limit is refused on the head alone, without its body.
    let claims_too_much = format!(
        "POST /api/hello HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"name\": \"a\"}}",
        arbor::DEFAULT_BODY_LIMIT * 4
    );
    send_raw(
        address,
        "a Content-Length over the limit",
        claims_too_much.as_bytes(),
    )
    .await
    .expect(413, Some("PAYLOAD_TOO_LARGE"));

    // Chunked, with no length to check up front: counted as it arrives.
    let chunk = vec![b' '; 64 * 1024];
    let mut chunked = b"POST /api/hello HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..(arbor::DEFAULT_BODY_LIMIT / chunk.len() + 2) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    send_raw(address, "a chunked body over the limit", &chunked)
        .await
        .expect(413, Some("PAYLOAD_TOO_LARGE"));
    still_serving(address, "bodies over the limit").await;
}

#[tokio::test]
async fn bad_urls_methods_and_headers() {
    let server = Server::start(Backend::Sqlite).await;
    let address: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();

    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "a percent-encoded slash in a number",
            get("/api/v1/items/1%2F2", ""),
            400,
            Some("INVALID_PATH_PARAMS"),
        ),
        (
            "a null byte in a number",
            get("/api/v1/items/%00", ""),
            400,
            Some("INVALID_PATH_PARAMS"),
        ),
        (
            "a number too large",
            get("/api/v1/items/99999999999999999999999", ""),
            400,
            Some("INVALID_PATH_PARAMS"),
        ),
        (
            "an unknown method",
            b"BREW /api/hello HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n".to_vec(),
            405,
            Some("METHOD_NOT_ALLOWED"),
        ),
        (
            "an unknown route",
            get("/api/v1/nothing/here", ""),
            404,
            Some("NOT_FOUND"),
        ),
        (
            "a forged session cookie",
            get("/api/v1/whoami", "cookie: arbor_session=forged\r\n"),
            401,
            Some("UNAUTHORIZED"),
        ),
        (
            "a forged bearer token",
            get("/api/v1/whoami", "authorization: Bearer forged\r\n"),
            401,
            Some("UNAUTHORIZED"),
        ),
        // hyper refuses these before the app sees them: no body to shape.
        (
            "a 200 KB header",
            get(
                "/api/hello",
                &format!("x-padding: {}\r\n", "a".repeat(200 * 1024)),
            ),
            431,
            None,
        ),
        (
            "a 100 KB URL",
            get(&format!("/api/hello?{}", "a".repeat(100 * 1024)), ""),
            431,
            None,
        ),
        (
            "a request line that does not parse",
            b"GET /api/hello HTTP/9.9 extra\r\n\r\n".to_vec(),
            400,
            None,
        ),
    ];
    for (case, request, status, code) in cases {
        let answer = send_raw(address, case, &request).await;
        answer.expect(status, code);
        if case == "an unknown method" {
            assert!(
                answer
                    .header("allow")
                    .is_some_and(|allow| allow.contains("GET")),
                "{}",
                answer.head
            );
        }
        still_serving(address, case).await;
    }

    // `..` in a catch-all is only data: the segments come back decoded, nothing is read.
    let traversal = send_raw(
        address,
        "`..` in a catch-all",
        &get("/api/v1/files/..%2F..%2Fetc%2Fpasswd/..", ""),
    )
    .await;
    traversal.expect(200, None);
    let body: Value = serde_json::from_slice(&traversal.body).unwrap();
    assert_eq!(
        body["segments"],
        serde_json::json!(["../../etc/passwd", ".."])
    );
}

#[tokio::test]
async fn a_forged_forwarded_for_does_not_escape_the_login_limit() {
    let server = Server::start(Backend::Sqlite).await;
    let address: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let login = |n: u32| {
        let body = br#"{"email": "nobody@example.com", "password": "wrong"}"#;
        let mut request = format!(
            "POST /api/v1/login HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\nx-forwarded-for: 203.0.113.{n}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    };
    // No trusted proxy is configured: every request counts against the socket's address.
    for n in 0..5 {
        send_raw(address, "a failed login", &login(n))
            .await
            .expect(401, Some("UNAUTHORIZED"));
    }
    let limited = send_raw(
        address,
        "the sixth login, from a forged address",
        &login(99),
    )
    .await;
    limited.expect(429, Some("RATE_LIMITED"));
    assert!(limited.header("retry-after").is_some(), "{}", limited.head);
}

#[tokio::test]
async fn a_request_with_both_lengths_is_refused_and_cannot_smuggle_a_second_one() {
    let server = Server::start(Backend::Sqlite).await;
    let address: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // A front proxy reading `Content-Length: 4` would see the chunked body and the smuggled
    // `DELETE` as the next request. Arbor refuses the request with both lengths (RFC 9112
    // §6.3), without running the route, and closes the connection after answering. First a
    // plain request on the same connection, to show that the refusal finds the right one.
    let smuggling = b"GET /api/hello HTTP/1.1\r\nhost: test\r\n\r\nPOST /api/hello HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\ne\r\n{\"name\": \"ab\"}\r\n0\r\n\r\nDELETE /api/v1/items/1 HTTP/1.1\r\nhost: test\r\n\r\n";
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(smuggling).await.unwrap();
    let mut bytes = Vec::new();
    // The connection ends after the refusal, with no further request served on it.
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let answers: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 2, "{text}");
    assert!(answers[0].starts_with("200 "), "{text}");
    assert!(answers[1].starts_with("400 "), "{text}");
    assert!(
        answers[1]
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{text}"
    );
    let body: Value = serde_json::from_str(answers[1].split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"], "BAD_REQUEST", "{text}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Transfer-Encoding"));
    // The route did not run (it would have said hello to `ab`), nor did the smuggled request.
    assert!(!text.contains("hello, ab"), "{text}");
    assert!(!text.contains("deleted"), "{text}");
}

/// `request` over HTTP/2 (cleartext, prior knowledge), as an [`Answer`].
async fn send_h2(client: &reqwest::Client, case: &str, request: reqwest::RequestBuilder) -> Answer {
    let response = client
        .execute(request.build().unwrap())
        .await
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "{case}");
    let head = response
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join("\r\n");
    Answer {
        case: case.to_owned(),
        status: response.status().as_u16(),
        head,
        body: response.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn over_http2_bad_input_gets_the_same_answers() {
    let server = Server::start(Backend::Sqlite).await;
    let base = &server.base;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let hello = format!("{base}/api/hello");
    let json = |body: &'static [u8]| {
        client
            .post(&hello)
            .header("content-type", "application/json")
            .body(body)
    };
    let over_the_limit = vec![b'a'; arbor::DEFAULT_BODY_LIMIT + 1];
    // The same body in DATA frames with no `content-length`: counted as it arrives.
    let streamed = futures_util::stream::iter(
        over_the_limit
            .chunks(64 * 1024)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, Option<&str>)> = vec![
        (
            "malformed JSON",
            json(b"{\"name\": "),
            400,
            Some("INVALID_JSON"),
        ),
        (
            "a validation failure",
            json(b"{\"name\": \"\"}"),
            400,
            Some("VALIDATION_ERROR"),
        ),
        (
            "the wrong content type",
            client
                .post(&hello)
                .header("content-type", "text/plain")
                .body("x"),
            415,
            Some("UNSUPPORTED_MEDIA_TYPE"),
        ),
        (
            "a body over the limit",
            client
                .post(&hello)
                .header("content-type", "application/json")
                .body(over_the_limit.clone()),
            413,
            Some("PAYLOAD_TOO_LARGE"),
        ),
        (
            "a streamed body over the limit",
            client
                .post(&hello)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(streamed)),
            413,
            Some("PAYLOAD_TOO_LARGE"),
        ),
        (
            "an unknown method",
            client.request(reqwest::Method::from_bytes(b"BREW").unwrap(), &hello),
            405,
            Some("METHOD_NOT_ALLOWED"),
        ),
        (
            "a null byte in a numeric path segment",
            client.get(format!("{base}/api/v1/items/%00")),
            400,
            Some("INVALID_PATH_PARAMS"),
        ),
        (
            "a forged session cookie",
            client
                .get(format!("{base}/api/v1/session"))
                .header("cookie", "session=forged"),
            401,
            Some("UNAUTHORIZED"),
        ),
    ];
    for (case, request, status, code) in cases {
        send_h2(&client, case, request).await.expect(status, code);
        let after = send_h2(&client, case, client.get(&hello)).await;
        assert_eq!(after.status, 200, "the server stopped serving after {case}");
    }
    let allow = send_h2(
        &client,
        "an unknown method",
        client.request(reqwest::Method::from_bytes(b"BREW").unwrap(), &hello),
    )
    .await;
    assert!(
        allow.header("allow").is_some_and(|a| a.contains("POST")),
        "{}",
        allow.head
    );

    // Headers over the limit: HTTP/2 decodes them into a list, bounded by the same setting
    // (16 KiB). Just over it, the request is answered `431` (by hyper, with no body).
    let over = client
        .get(&hello)
        .header("x-padding", "a".repeat(17 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 431);
    // Far over it (200 KB in many CONTINUATION frames), the server's HTTP/2 layer ends the
    // whole connection with `ENHANCE_YOUR_CALM`, its defence against header floods.
    let flood = client
        .get(&hello)
        .header("x-padding", "a".repeat(200 * 1024))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{flood:?}").contains("ENHANCE_YOUR_CALM"),
        "{flood:?}"
    );
    // Either way the server keeps serving, on a new connection for the latter.
    let after = send_h2(&client, "headers over the limit", client.get(&hello)).await;
    assert_eq!(after.status, 200, "the server stopped serving");
}
