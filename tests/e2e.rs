//! End-to-end tests: the reference app served over real TCP, driven by an HTTP client.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

struct Server {
    base: String,
    _dir: tempfile::TempDir,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Every error answer has the standard shape and content type.
    fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        assert_eq!(body["error"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }
}

impl Server {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let (state, dir) = common::state(common::Backend::Sqlite).await;
        tokio::spawn(arbor::serve(listener, arbor_app::app(state)));
        Self {
            base: format!("http://{address}"),
            _dir: dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], "").await
    }

    /// Registers a user and returns `Bearer <token>`.
    async fn bearer(&self) -> String {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({ "email": email, "name": "Chain Tester", "password": "Str0ngPassword" })
            .to_string();
        let reply = self
            .send(
                Method::POST,
                "/api/v1/register",
                &[("content-type", "application/json")],
                &body,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        format!("Bearer {}", reply.json()["token"].as_str().unwrap())
    }
}

#[tokio::test]
async fn every_segment_kind_routes_and_decodes() {
    let server = Server::start().await;

    let hello = server.get("/api/hello").await;
    assert_eq!(hello.status, StatusCode::OK);
    // The app runs inside Arbor's stack: every answer carries a request id.
    assert!(hello
        .header("x-request-id")
        .is_some_and(|id| id.len() == 36));
    assert_eq!(hello.header("content-type"), Some("application/json"));
    assert_eq!(hello.json(), json!({"message": "hello"}));

    assert_eq!(
        server.get("/api/v1/items/42").await.json(),
        json!({"id": 42, "name": "item 42"})
    );

    let files = server.get("/api/v1/files/a%2Fb/c%20d/e").await;
    assert_eq!(files.json(), json!({"segments": ["a/b", "c d", "e"]}));
    assert_eq!(
        server
            .get("/api/v1/files")
            .await
            .assert_error(404, "NOT_FOUND")["error"],
        "NOT_FOUND"
    );

    assert_eq!(
        server.get("/api/v1/docs").await.json(),
        json!({"page": "index"})
    );
    assert_eq!(
        server.get("/api/v1/docs/guide/intro").await.json(),
        json!({"page": "guide/intro", "slug": ["guide", "intro"]})
    );

    let internal = server.get("/api/_internal").await;
    assert_eq!(internal.status, StatusCode::OK);
    assert_eq!(internal.json()["status"], "ok");

    // The group adds nothing to the URL; the private folder is never routed.
    assert_eq!(
        server.get("/api/v1/(auth)/session").await.status,
        StatusCode::NOT_FOUND
    );
    server.get("/api/_lib").await.assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn bad_params_are_400_in_the_standard_shape() {
    let server = Server::start().await;
    let body = server
        .get("/api/v1/items/abc")
        .await
        .assert_error(400, "INVALID_PATH_PARAMS");
    assert_eq!(body["details"]["param"], "id");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("`abc` is not a valid u64"),
        "{body}"
    );

    let body = server
        .get("/api/v1/items/%FF")
        .await
        .assert_error(400, "INVALID_PATH_PARAMS");
    assert_eq!(body["details"]["param"], "id");

    let body = server
        .get("/api/v1/items/99999999999999999999999")
        .await
        .assert_error(400, "INVALID_PATH_PARAMS");
    assert_eq!(body["details"]["param"], "id");
}

#[tokio::test]
async fn methods_405_head_and_options() {
    let server = Server::start().await;

    let patch = server.send(Method::PATCH, "/api/hello", &[], "").await;
    patch.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(patch.header("allow"), Some("GET, HEAD, POST, OPTIONS"));

    let put = server.send(Method::PUT, "/api/v1/items/1", &[], "").await;
    put.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(put.header("allow"), Some("GET, HEAD, DELETE, OPTIONS"));

    let head = server.send(Method::HEAD, "/api/hello", &[], "").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(head.header("content-length"), Some("19"));

    let options = server
        .send(Method::OPTIONS, "/api/v1/items/7", &[], "")
        .await;
    assert_eq!(options.status, StatusCode::NO_CONTENT);
    assert_eq!(options.header("allow"), Some("GET, HEAD, DELETE, OPTIONS"));
    assert!(options.body.is_empty());

    let delete = server
        .send(Method::DELETE, "/api/v1/items/7", &[], "")
        .await;
    assert_eq!(delete.json(), json!({"deleted": 7}));

    let post = server
        .send(
            Method::POST,
            "/api/hello",
            &[("content-type", "application/json")],
            r#"{"name":"Ada"}"#,
        )
        .await;
    assert_eq!(post.json(), json!({"message": "hello, Ada"}));
}

#[tokio::test]
async fn unknown_paths_are_json_404_and_trailing_slashes_redirect() {
    let server = Server::start().await;
    let body = server
        .get("/api/does/not/exist")
        .await
        .assert_error(404, "NOT_FOUND");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("/api/does/not/exist"));

    let redirect = server.get("/api/hello/?x=1").await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.header("location"), Some("/api/hello?x=1"));
}

#[tokio::test]
async fn fn_level_chain_runs_first_listed_outermost() {
    let server = Server::start().await;

    // `require_token` ends the request early; `server_timing`, listed first, still wraps it.
    let denied = server.get("/api/v1/whoami").await;
    denied.assert_error(401, "UNAUTHORIZED");
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    assert!(denied
        .header("server-timing")
        .is_some_and(|v| v.starts_with("app;dur=")));

    let wrong = server
        .send(
            Method::GET,
            "/api/v1/whoami",
            &[("authorization", "Bearer nope")],
            "",
        )
        .await;
    wrong.assert_error(401, "UNAUTHORIZED");

    let bearer = server.bearer().await;
    let allowed = server
        .send(
            Method::GET,
            "/api/v1/whoami",
            &[("authorization", &bearer)],
            "",
        )
        .await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(allowed.json()["role"], "user");
    assert!(allowed.header("server-timing").is_some());
}

#[tokio::test]
async fn folder_middleware_wraps_every_answer_of_the_group() {
    let server = Server::start().await;
    let bearer = server.bearer().await;
    let ok = server
        .send(
            Method::GET,
            "/api/v1/session",
            &[("authorization", &bearer)],
            "",
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["credential"], "bearer");
    assert_eq!(ok.header("cache-control"), Some("no-store"));

    // Folder middleware is outside the handler's own chain, so it sees the early 401 too,
    // and it also wraps the automatic OPTIONS and 405 answers.
    let denied = server.get("/api/v1/session").await;
    denied.assert_error(401, "UNAUTHORIZED");
    assert_eq!(denied.header("cache-control"), Some("no-store"));
    let options = server
        .send(Method::OPTIONS, "/api/v1/session", &[], "")
        .await;
    assert_eq!(options.status, StatusCode::NO_CONTENT);
    assert_eq!(options.header("cache-control"), Some("no-store"));
    let post = server.send(Method::POST, "/api/v1/session", &[], "").await;
    post.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(post.header("cache-control"), Some("no-store"));

    // Routes outside the group are untouched.
    assert_eq!(server.get("/api/hello").await.header("cache-control"), None);
}
