//! The one HTTP client of the app's tests, with the helpers the tests need. Requests are
//! written with reqwest's builder and go either over TCP (a [`super::Server`], or a binary built
//! from a user crate in `tests/user_crate`) or in-process through `arbor::test::TestClient`
//! ([`super::App`]), so one test body serves both and a test uses TCP only where TCP is what it
//! checks.
//!
//! The client follows no redirects and keeps no cookies, so a test sees every answer exactly as
//! the app gave it.

use std::time::Duration;

use arbor::test::{TestClient, TestRequest};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HOST};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

/// A client for one server, `base` being `http://host:port`, or for a router in-process.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    /// Builds the requests (and sends them, over TCP).
    pub http: reqwest::Client,
    /// Set for an app in-process: requests are handed to its router instead of sent.
    in_process: Option<TestClient>,
}

/// A whole answer: status, headers and body, read to the end.
pub struct Reply {
    /// `METHOD /path?query`, for failure messages.
    pub what: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub bytes: bytes::Bytes,
    /// The body as text (lossily decoded).
    pub text: String,
    /// The body as JSON, or `Value::Null` if it isn't JSON.
    pub body: Value,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::builder()
                .cookie_store(false)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            in_process: None,
        }
    }

    /// A client that runs every request through `router` in-process (no socket), as if sent to
    /// `http://app.test` from 127.0.0.1.
    pub fn in_process(router: arbor::Router) -> Self {
        Self {
            in_process: Some(TestClient::new(router)),
            ..Self::new("http://app.test")
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` on this server, to be completed and given to [`Client::send`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(&self, request: RequestBuilder) -> Reply {
        let (what, status, headers, bytes) = match &self.in_process {
            Some(app) => {
                let (what, request) = to_test_request(app, request);
                let response = request.send().await;
                let (status, headers) = (response.status(), response.headers().clone());
                (what, status, headers, response.bytes().clone())
            }
            None => {
                let (what, response) = execute(request).await;
                let (status, headers) = (response.status(), response.headers().clone());
                let bytes = response
                    .bytes()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
                (what, status, headers, bytes)
            }
        };
        let status = status.as_u16();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            what,
            status,
            headers,
            bytes,
            text,
            body,
        }
    }

    /// `method path` with no body and no credentials.
    pub async fn call(&self, method: Method, path: &str) -> Reply {
        self.send(self.request(method, path)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(with_token(self.request(Method::GET, path), token))
            .await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        self.send(with_token(self.request(method, path), token).json(&body))
            .await
    }

    /// Logs in and returns the bearer token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let reply = self
            .json(
                Method::POST,
                "/api/v1/login",
                None,
                serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    /// Registers a new user and returns (id, token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let reply = self
            .json(
                Method::POST,
                "/api/v1/register",
                None,
                serde_json::json!({ "email": email, "name": "Test User", "password": "Str0ngPassword" }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        (
            reply.body["user"]["id"].as_str().unwrap().to_owned(),
            reply.body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Sends `request` and expects the start of a `text/event-stream` answer (status 200 and
    /// the headers every event stream carries), which is then read one event at a time.
    pub async fn events(&self, request: RequestBuilder) -> EventStream {
        let (what, status, headers, body): (_, _, _, ByteStream) = match &self.in_process {
            Some(app) => {
                let (what, request) = to_test_request(app, request);
                // `EventStream::next` applies its own deadline.
                let stream = request.stream().await.timeout(Duration::from_secs(3600));
                let (status, headers) = (stream.status(), stream.headers().clone());
                let chunks = futures_util::stream::unfold(stream, |mut stream| async move {
                    let chunk = stream.next_chunk().await?;
                    Some((Ok(chunk), stream))
                });
                (what, status, headers, Box::pin(chunks))
            }
            None => {
                let (what, response) = execute(request).await;
                let (status, headers) = (response.status(), response.headers().clone());
                let chunks = response
                    .bytes_stream()
                    .map(|chunk| chunk.map_err(|e| e.to_string()));
                (what, status, headers, Box::pin(chunks))
            }
        };
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_event_stream_headers(&what, &headers);
        EventStream {
            what,
            body,
            buffer: String::new(),
        }
    }
}

/// `request` as the in-process client sends it: its method, path, headers and whole body,
/// plus the `Host` header an HTTP client adds on the wire.
fn to_test_request(app: &TestClient, request: RequestBuilder) -> (String, TestRequest) {
    let request = request.build().unwrap();
    let what = describe(&request);
    let url = request.url();
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut test = app.request(request.method().clone(), &target);
    if !request.headers().contains_key(HOST) {
        test = test.header("host", url.host_str().unwrap());
    }
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .unwrap_or_else(|_| panic!("{what}: a header that is not text: {name}"));
        test = test.header(name.as_str(), value);
    }
    if let Some(body) = request.body() {
        let body = body
            .as_bytes()
            .unwrap_or_else(|| panic!("{what}: in-process requests need a whole body"));
        test = test.body(body.to_vec());
    }
    (what, test)
}

/// Sends `request`; its description (for failure messages) and the response head.
async fn execute(request: RequestBuilder) -> (String, reqwest::Response) {
    let (http, request) = request.build_split();
    let request = request.unwrap();
    let what = describe(&request);
    let response = http
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    (what, response)
}

fn describe(request: &reqwest::Request) -> String {
    let url = request.url();
    match url.query() {
        Some(query) => format!("{} {}?{query}", request.method(), url.path()),
        None => format!("{} {}", request.method(), url.path()),
    }
}

fn with_token(request: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics with `problem` and the whole answer.
    pub fn fail(&self, problem: &str) -> ! {
        let mut headers = String::new();
        for (name, value) in &self.headers {
            headers.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        panic!(
            "{}: {problem}\n--- response ---\n{}\n{headers}\n{}\n--- end of response ---",
            self.what, self.status, self.text
        )
    }

    pub fn expect_status(&self, status: u16) {
        if self.status != status {
            self.fail(&format!("expected status {status}, got {}", self.status));
        }
    }

    /// The status and the exact body text.
    pub fn expect(&self, status: u16, text: &str) {
        self.expect_status(status);
        if self.text != text {
            self.fail(&format!("expected the body {text:?}, got {:?}", self.text));
        }
    }

    pub fn expect_header(&self, name: &str, value: &str) {
        if self.header(name) != Some(value) {
            self.fail(&format!(
                "expected `{name}: {value}`, got {:?}",
                self.header(name)
            ));
        }
    }

    /// The body, which must be JSON with a JSON content type.
    pub fn json(&self) -> &Value {
        if !self
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            self.fail("expected a JSON content type");
        }
        if let Err(e) = serde_json::from_slice::<Value>(&self.bytes) {
            self.fail(&format!("the body is not JSON: {e}"));
        }
        &self.body
    }

    /// The status and the exact JSON body.
    pub fn expect_json(&self, status: u16, expected: &Value) {
        self.expect_status(status);
        let actual = self.json();
        if actual != expected {
            self.fail(&format!("expected the JSON {expected}, got {actual}"));
        }
    }

    /// Asserts the standard error shape (`{"error": CODE, "message": ".."}` as
    /// `application/json`, with `status`) and returns the body.
    pub fn error(&self, status: u16, code: &str) -> &Value {
        self.expect_status(status);
        self.expect_header("content-type", "application/json");
        let body = self.json();
        if body["error"] != code || body["message"].as_str().is_none_or(str::is_empty) {
            self.fail(&format!(
                "expected {{\"error\": \"{code}\", \"message\": ..}}, got {body}"
            ));
        }
        body
    }

    /// The events of a complete `text/event-stream` body (status 200, event-stream headers).
    pub fn events(&self) -> Vec<SseEvent> {
        self.expect_status(200);
        assert_event_stream_headers(&self.what, &self.headers);
        parse_events(&self.text)
    }
}

/// One server-sent event whose data is JSON.
#[derive(Debug)]
pub struct SseEvent {
    pub name: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// Parses a complete `text/event-stream` body (comments and data-less blocks skipped).
pub fn parse_events(text: &str) -> Vec<SseEvent> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = SseEvent {
                name: "message".into(),
                id: None,
                data: Value::Null,
            };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.name = name.to_owned();
                } else if let Some(id) = line.strip_prefix("id: ") {
                    event.id = id.parse().ok();
                } else if let Some(chunk) = line.strip_prefix("data: ") {
                    data.push_str(chunk);
                }
            }
            if data.is_empty() {
                return None;
            }
            event.data = serde_json::from_str(&data).unwrap();
            Some(event)
        })
        .collect()
}

fn assert_event_stream_headers(what: &str, headers: &HeaderMap) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("content-type"), Some("text/event-stream"), "{what}");
    assert_eq!(header("cache-control"), Some("no-cache"), "{what}");
    assert_eq!(header("x-accel-buffering"), Some("no"), "{what}");
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, String>> + Send>>;

/// An event stream being read as it arrives; dropping it closes the connection.
pub struct EventStream {
    what: String,
    body: ByteStream,
    buffer: String,
}

impl EventStream {
    /// The next event with data, waiting at most 10 seconds for each chunk.
    pub async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_events(&block).pop() {
                    return event;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no event within 10 seconds", self.what))
                .unwrap_or_else(|| panic!("{}: the stream ended", self.what))
                .unwrap_or_else(|e| panic!("{}: {e}", self.what));
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
