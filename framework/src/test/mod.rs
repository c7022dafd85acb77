//! Testing routes in-process, without a socket (the guide's "test without a running server"):
//! whole responses, streams read event by event ([`TestStream`]), a cookie jar
//! ([`TestClient::cookie_store`]), bearer tokens and multipart bodies ([`Multipart`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use arbor::test::TestClient;
//! use axum::{routing::get, Router};
//!
//! let client = TestClient::new(Router::new().route("/api/hello", get(|| async { "hello" })));
//! let response = client.get("/api/hello").send().await;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.text(), "hello");
//! # }
//! ```

use std::net::SocketAddr;

mod call;
mod cookies;
mod multipart;
mod stream;

pub use call::{TestCall, TypedResponse};
pub use multipart::Multipart;
pub use stream::{ProgressEvent, SseEvent, TestStream, DEFAULT_STREAM_TIMEOUT};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt;

/// Sends requests straight into a router. Clones share the cookie jar.
#[derive(Debug, Clone)]
pub struct TestClient {
    router: Router,
    peer: SocketAddr,
    default_headers: HeaderMap,
    jar: Option<cookies::Jar>,
    operations: Option<&'static crate::client::Operations>,
}

impl TestClient {
    /// A client for `router`; requests appear to come from `127.0.0.1:40000`. It keeps no
    /// cookies until [`cookie_store`](Self::cookie_store) is called.
    pub fn new(router: Router) -> Self {
        Self {
            router: router.with_state(()),
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
            default_headers: HeaderMap::new(),
            jar: None,
            operations: None,
        }
    }

    /// Makes requests appear to come from `peer` (for rate limits keyed by client).
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// Keeps cookies as a browser would: `Set-Cookie` answers are stored (and removed by
    /// `Max-Age=0` or a past `Expires`), and sent back on later requests whose path they
    /// match, unless the request sets `Cookie` itself.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use arbor::test::TestClient;
    /// use axum::{http::HeaderMap, routing::{get, post}, Router};
    ///
    /// let router = Router::new()
    ///     .route("/login", post(|| async { ([("set-cookie", "session=abc; HttpOnly; Path=/")], "ok") }))
    ///     .route("/me", get(|headers: HeaderMap| async move {
    ///         headers.get("cookie").map(|c| c.to_str().unwrap().to_owned()).unwrap_or_default()
    ///     }));
    /// let client = TestClient::new(router).cookie_store();
    /// client.post("/login").send().await;
    /// assert_eq!(client.cookie("session").as_deref(), Some("abc"));
    /// assert_eq!(client.get("/me").send().await.text(), "session=abc");
    /// # }
    /// ```
    pub fn cookie_store(mut self) -> Self {
        self.jar.get_or_insert_with(cookies::Jar::default);
        self
    }

    /// The value of a cookie in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .as_ref()
            .and_then(|jar| jar.get(name))
            .map(|cookie| cookie.value().to_owned())
    }

    /// Puts a cookie in the jar (starting one if there was none), as if the server had set it.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar
            .get_or_insert_with(cookies::Jar::default)
            .set(name, value);
    }

    /// Empties the jar (a new browser session).
    pub fn clear_cookies(&self) {
        if let Some(jar) = &self.jar {
            jar.clear();
        }
    }

    /// Sends `header` on every request (a request's own value replaces it).
    ///
    /// # Panics
    /// If the name or value is not a valid header (a mistake in the test).
    pub fn with_default_header(mut self, name: &str, value: &str) -> Self {
        let (name, value) = parse_header(name, value);
        self.default_headers.insert(name, value);
        self
    }

    /// Sends `Authorization: Bearer <token>` on every request.
    pub fn with_bearer_auth(self, token: &str) -> Self {
        self.with_default_header("authorization", &format!("Bearer {token}"))
    }

    /// Starts a request with any method.
    pub fn request(&self, method: Method, uri: &str) -> TestRequest {
        TestRequest {
            client: self.clone(),
            method,
            uri: uri.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// Starts a `GET`.
    pub fn get(&self, uri: &str) -> TestRequest {
        self.request(Method::GET, uri)
    }

    /// Starts a `HEAD`.
    pub fn head(&self, uri: &str) -> TestRequest {
        self.request(Method::HEAD, uri)
    }

    /// Starts a `POST`.
    pub fn post(&self, uri: &str) -> TestRequest {
        self.request(Method::POST, uri)
    }

    /// Starts a `PUT`.
    pub fn put(&self, uri: &str) -> TestRequest {
        self.request(Method::PUT, uri)
    }

    /// Starts a `PATCH`.
    pub fn patch(&self, uri: &str) -> TestRequest {
        self.request(Method::PATCH, uri)
    }

    /// Starts a `DELETE`.
    pub fn delete(&self, uri: &str) -> TestRequest {
        self.request(Method::DELETE, uri)
    }

    /// Starts an `OPTIONS`.
    pub fn options(&self, uri: &str) -> TestRequest {
        self.request(Method::OPTIONS, uri)
    }
}

/// A request being built; [`send`](Self::send) runs it through the router.
#[derive(Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct TestRequest {
    client: TestClient,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl TestRequest {
    /// Adds a header.
    ///
    /// # Panics
    /// If the name or value is not a valid header (a mistake in the test).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let (name, value) = parse_header(name, value);
        self.headers.append(name, value);
        self
    }

    /// Sets `Authorization: Bearer <token>`.
    pub fn bearer_auth(mut self, token: &str) -> Self {
        let (name, value) = parse_header("authorization", &format!("Bearer {token}"));
        self.headers.insert(name, value);
        self
    }

    /// Sets a `multipart/form-data` body and its `Content-Type`.
    ///
    /// # Panics
    /// Never for a form built with [`Multipart`].
    pub fn multipart(mut self, form: Multipart) -> Self {
        let (name, value) = parse_header("content-type", &form.content_type());
        self.headers.insert(name, value);
        self.body = form.into_body();
        self
    }

    /// Sets an `application/x-www-form-urlencoded` body and its `Content-Type`.
    ///
    /// # Panics
    /// If `value` cannot be encoded as a form.
    pub fn form(mut self, value: &impl Serialize) -> Self {
        self.body = serde_urlencoded::to_string(value)
            .expect("test body encodes as a form")
            .into();
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    ///
    /// # Panics
    /// If `value` cannot be serialized.
    pub fn json(mut self, value: &impl Serialize) -> Self {
        self.body = serde_json::to_vec(value)
            .expect("test body serializes to JSON")
            .into();
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Runs the request through the router and collects the whole response.
    ///
    /// # Panics
    /// If the URI is invalid or the body fails to stream (both mistakes in the test).
    pub async fn send(self) -> TestResponse {
        let (status, headers, body) = self.run().await;
        let body = body
            .collect()
            .await
            .expect("response body streams")
            .to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// Runs the request through the router and hands back the response as soon as its head is
    /// ready, for its body to be read as it arrives: SSE, progress streams, long downloads.
    ///
    /// # Panics
    /// If the URI is invalid (a mistake in the test).
    pub async fn stream(self) -> TestStream {
        let (status, headers, body) = self.run().await;
        TestStream::new(status, headers, body)
    }

    async fn run(self) -> (StatusCode, HeaderMap, Body) {
        let client = self.client;
        // As an HTTP client would for a body it holds whole.
        let length = (!self.body.is_empty()).then(|| HeaderValue::from(self.body.len()));
        let mut request = http::Request::builder()
            .method(self.method)
            .uri(&self.uri)
            .body(Body::from(self.body))
            .unwrap_or_else(|e| panic!("invalid request to {}: {e}", self.uri));
        let mut headers = client.default_headers.clone();
        for name in self.headers.keys() {
            headers.remove(name);
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        if let Some(length) = length {
            headers.entry(header::CONTENT_LENGTH).or_insert(length);
        }
        if let Some(jar) = &client.jar {
            // A request's own `Cookie` header wins: the jar stays out of it.
            if !headers.contains_key(header::COOKIE) {
                if let Some(cookie) = jar.header_for(request.uri().path()) {
                    headers.insert(header::COOKIE, cookie);
                }
            }
        }
        *request.headers_mut() = headers;
        request.extensions_mut().insert(ConnectInfo(client.peer));
        let response = match client.router.oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        };
        let (parts, body) = response.into_parts();
        if let Some(jar) = &client.jar {
            jar.store(&parts.headers);
        }
        (parts.status, parts.headers, body)
    }
}

fn parse_header(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    let name =
        HeaderName::try_from(name).unwrap_or_else(|_| panic!("invalid header name {name:?}"));
    let value =
        HeaderValue::try_from(value).unwrap_or_else(|_| panic!("invalid header value {value:?}"));
    (name, value)
}

/// A collected response.
#[derive(Debug, Clone)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl TestResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON of that shape, showing the body.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not the expected JSON ({e}): {}",
                self.text()
            )
        })
    }
}
