//! The production stack end to end over real TCP: every bad input gets its status, headers and
//! the standard JSON shape; panics and timeouts are contained; logs carry the request id and
//! never a secret.

#![allow(clippy::unwrap_used)]

mod log_capture;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log_capture::{capture, log_lines_for};

use arbor::cors::Cors;
use arbor::{ApiError, App, Json, MaxDuration, Query, Valid};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Value};
use validator::Validate;

#[derive(Deserialize, Validate)]
struct NewUser {
    #[validate(email)]
    email: String,
    #[validate(length(min = 2, max = 100))]
    name: String,
    #[validate(nested)]
    address: Option<Address>,
}

#[derive(Deserialize, Validate)]
struct Address {
    #[validate(length(min = 1))]
    city: String,
}

#[derive(Deserialize, Validate)]
struct Page {
    #[validate(range(min = 1))]
    page: u32,
    #[validate(range(min = 1, max = 100))]
    limit: Option<u32>,
}

async fn create(Valid(Json(user)): Valid<Json<NewUser>>) -> (StatusCode, Json<Value>) {
    (
        StatusCode::CREATED,
        Json(json!({ "email": user.email, "name": user.name })),
    )
}

async fn list(Valid(Query(page)): Valid<Query<Page>>) -> Json<Value> {
    Json(json!({ "page": page.page, "limit": page.limit.unwrap_or(20) }))
}

async fn panics() -> &'static str {
    panic!("database password is hunter2")
}

/// Drops a flag when the handler's future is dropped, so a test can see a timeout cancel it.
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            let _ = sender.send(());
        }
    }
}

type Signals = Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>;

fn router(dropped: Signals) -> Router {
    Router::new()
        .route("/users", post(create).get(list))
        .route("/panic", get(panics))
        .route(
            "/internal",
            get(|| async {
                Err::<(), _>(ApiError::internal_with(std::io::Error::other(
                    "db at 10.0.0.5 refused",
                )))
            }),
        )
        .route(
            "/slow",
            get(move || {
                let guard = DropSignal(dropped.lock().unwrap().take());
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }
            })
            .layer(MaxDuration(Some(Duration::from_millis(50)))),
        )
        .route(
            "/small",
            post(|Json(v): Json<Value>| async move { Json(v) }).layer(arbor::body_limit(64)),
        )
        .fallback(|| async { ApiError::not_found("no route") })
}

struct Server {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    dropped: tokio::sync::oneshot::Receiver<()>,
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.body["error"], code, "{}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        &self.body
    }
}

impl Server {
    async fn start(app: App) -> Self {
        capture(); // from the first request on
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(arbor::serve(listener, app.into_router()));
        let (_, dropped) = tokio::sync::oneshot::channel();
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            dropped,
        }
    }

    async fn default() -> Self {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let mut server = Self::start(App::new(router(Arc::new(Mutex::new(Some(sender)))))).await;
        server.dropped = receiver;
        server
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
        let response = self
            .client
            .request(
                request
                    .body(Full::new(Bytes::from(body.to_owned())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn post_json(&self, path: &str, body: &str) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await
    }
}

#[tokio::test]
async fn bodies_get_clear_answers() {
    let server = Server::default().await;

    let created = server
        .post_json("/users", r#"{"email":"ada@example.com","name":"Ada"}"#)
        .await;
    assert_eq!(created.status, StatusCode::CREATED);

    let malformed = server
        .post_json("/users", "{\"email\": \"ada@example.com\",\n \"name\": }")
        .await;
    let body = malformed.error(400, "INVALID_JSON");
    assert!(
        body["message"].as_str().unwrap().contains("line 2, column"),
        "{body}"
    );

    let trailing = server
        .post_json("/users", r#"{"email":"a@b.co","name":"Ada"} x"#)
        .await;
    trailing.error(400, "INVALID_JSON");

    let wrong_type = server
        .send(
            Method::POST,
            "/users",
            &[("content-type", "text/plain")],
            "{}",
        )
        .await;
    wrong_type.error(415, "UNSUPPORTED_MEDIA_TYPE");
    let no_type = server.send(Method::POST, "/users", &[], "{}").await;
    no_type.error(415, "UNSUPPORTED_MEDIA_TYPE");

    let too_large = server
        .post_json("/small", &format!("{{\"pad\":\"{}\"}}", "x".repeat(100)))
        .await;
    too_large.error(413, "PAYLOAD_TOO_LARGE");
    let fits = server.post_json("/small", r#"{"ok":true}"#).await;
    assert_eq!(fits.body, json!({"ok": true}));

    let method = server.send(Method::DELETE, "/users", &[], "").await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn validation_failures_name_every_field() {
    let server = Server::default().await;
    let invalid = server
        .post_json(
            "/users",
            r#"{"email":"nope","name":"A","address":{"city":""}}"#,
        )
        .await;
    let body = invalid.error(400, "VALIDATION_ERROR");
    assert_eq!(
        body["details"]["fieldErrors"]["email"],
        json!(["must be a valid email address"])
    );
    assert_eq!(
        body["details"]["fieldErrors"]["name"],
        json!(["must have a length between 2 and 100"])
    );
    assert_eq!(
        body["details"]["fieldErrors"]["address.city"],
        json!(["must have a length of at least 1"])
    );
    assert_eq!(body["details"]["formErrors"], json!([]));

    let missing = server
        .post_json("/users", r#"{"email":"ada@example.com"}"#)
        .await;
    assert_eq!(
        missing.error(400, "VALIDATION_ERROR")["details"]["fieldErrors"]["name"],
        json!(["is required"])
    );
    let mistyped = server
        .post_json("/users", r#"{"email":"ada@example.com","name":7}"#)
        .await;
    assert!(
        mistyped.error(400, "VALIDATION_ERROR")["details"]["fieldErrors"]["name"][0]
            .as_str()
            .unwrap()
            .contains("invalid type")
    );

    for query in [
        "page=-1",
        "page=0",
        "page=1&limit=0",
        "page=1&limit=1000",
        "limit=5",
    ] {
        let reply = server
            .send(Method::GET, &format!("/users?{query}"), &[], "")
            .await;
        reply.error(400, "VALIDATION_ERROR");
    }
    let ok = server
        .send(Method::GET, "/users?page=2&limit=5", &[], "")
        .await;
    assert_eq!(ok.body, json!({"page": 2, "limit": 5}));
}

#[tokio::test]
async fn panics_and_internal_errors_leak_nothing_and_the_server_keeps_serving() {
    let server = Server::default().await;
    for path in ["/panic", "/internal"] {
        let reply = server
            .send(Method::GET, path, &[("x-request-id", "leak-check-1")], "")
            .await;
        let body = reply.error(500, "INTERNAL_ERROR");
        assert_eq!(
            body,
            &json!({"error": "INTERNAL_ERROR", "message": "An unexpected error occurred"})
        );
    }
    let after = server
        .post_json("/users", r#"{"email":"ada@example.com","name":"Ada"}"#)
        .await;
    assert_eq!(after.status, StatusCode::CREATED);

    // The cause is in the log, with the request id; not in any response.
    let lines = log_lines_for("leak-check-1");
    let text: String = lines.iter().map(Value::to_string).collect();
    assert!(
        text.contains("hunter2") && text.contains("10.0.0.5"),
        "{text}"
    );
}

#[tokio::test]
async fn timeouts_answer_504_and_drop_the_handler() {
    let server = Server::default().await;
    let reply = server.send(Method::GET, "/slow", &[], "").await;
    reply.error(504, "TIMEOUT");
    // The handler's future was dropped, not left running.
    server.dropped.await.unwrap();
}

#[tokio::test]
async fn request_ids_are_kept_generated_and_logged_without_secrets() {
    let server = Server::default().await;
    let kept = server
        .send(
            Method::GET,
            "/users?page=1&password=hunter2&access_token=t0k3n",
            &[
                ("x-request-id", "trace-abc-123"),
                ("authorization", "Bearer supersecret"),
                ("user-agent", "probe/1.0"),
            ],
            "",
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("trace-abc-123"));

    let replaced = server
        .send(
            Method::GET,
            "/users?page=1",
            &[("x-request-id", "bad id\twith tab")],
            "",
        )
        .await;
    let generated = replaced.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    let lines = log_lines_for("trace-abc-123");
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages.contains(&"request") && messages.contains(&"response"),
        "{lines:?}"
    );
    let request = lines.iter().find(|l| l["message"] == "request").unwrap();
    assert_eq!(request["user_agent"], "probe/1.0");
    assert_eq!(
        request["query"],
        "page=1&password=[REDACTED]&access_token=[REDACTED]"
    );
    assert_eq!(request["span"]["method"], "GET");
    assert_eq!(request["span"]["path"], "/users");
    let response = lines.iter().find(|l| l["message"] == "response").unwrap();
    assert_eq!(response["status"], 200);
    assert!(response["duration_ms"].as_f64().is_some());
    let text: String = lines.iter().map(Value::to_string).collect();
    assert!(
        !text.contains("hunter2") && !text.contains("t0k3n") && !text.contains("supersecret"),
        "{text}"
    );
}

#[tokio::test]
async fn an_access_log_writes_one_line_per_request_with_everything_in_it() {
    capture();
    let routes: Router = Router::new().route("/hello", get(|| async { "hi" }));
    let app = App::new(routes)
        .request_log(arbor::logging::RequestLogLines::Access)
        .into_router();
    let client = arbor::test::TestClient::new(app);
    let response = client
        .get("/hello?page=2&token=s3cret")
        .header("x-request-id", "access-line-1")
        .header("user-agent", "probe/2.0")
        .send()
        .await;
    assert_eq!(response.status(), 200);

    let lines = log_lines_for("access-line-1");
    assert_eq!(lines.len(), 1, "one line, not a pair: {lines:?}");
    let line = &lines[0];
    assert_eq!(line["message"], "request");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["span"]["path"], "/hello");
    assert_eq!(line["span"]["query"], "page=2&token=[REDACTED]");
    assert_eq!(line["span"]["user_agent"], "probe/2.0");
}

#[tokio::test]
async fn a_request_whose_client_goes_away_is_logged_as_cancelled() {
    use tokio::io::AsyncWriteExt;

    let (sender, dropped) = tokio::sync::oneshot::channel();
    let sender: Signals = Arc::new(Mutex::new(Some(sender)));
    let hang = get(move || {
        let guard = DropSignal(sender.lock().unwrap().take());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }
    });
    let server = Server::start(App::new(Router::new().route("/hang", hang))).await;
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /hang HTTP/1.1\r\nhost: test\r\nx-request-id: gone-away-1\r\n\r\n")
        .await
        .unwrap();
    // Wait until the handler runs (its drop signal exists), then hang up.
    while log_lines_for("gone-away-1").is_empty() {
        tokio::task::yield_now().await;
    }
    drop(stream);
    // The log future is dropped before the handler it wraps: once the handler is gone, the
    // line is written.
    dropped.await.unwrap();
    let lines = log_lines_for("gone-away-1");
    let cancelled = lines
        .iter()
        .find(|l| l["message"] == "request cancelled")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(cancelled["duration_ms"].as_f64().is_some());
    assert!(
        lines.iter().all(|l| l["message"] != "response"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn cors_answers_preflight_for_listed_origins_only() {
    let cors = Cors::new()
        .allow_origins(["https://app.example.com"])
        .allow_methods(["GET", "POST"])
        .allow_headers(["content-type"])
        .allow_credentials(true);
    let (sender, _) = tokio::sync::oneshot::channel();
    let server = Server::start(
        App::new(router(Arc::new(Mutex::new(Some(sender)))))
            .cors(cors)
            .unwrap(),
    )
    .await;

    let preflight = server
        .send(
            Method::OPTIONS,
            "/users",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
            ],
            "",
        )
        .await;
    assert!(preflight.status.is_success());
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));

    // A plain OPTIONS (no preflight headers) still gets the route's own answer.
    let plain = server
        .send(
            Method::OPTIONS,
            "/users",
            &[("origin", "https://app.example.com")],
            "",
        )
        .await;
    // (This test router has no OPTIONS handler: the route's own 405 comes through, where a
    // CORS layer that treated every OPTIONS as a preflight would answer 200.)
    assert_eq!(plain.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(plain.header("access-control-allow-methods"), None);

    let same_site = server.send(Method::GET, "/users?page=1", &[], "").await;
    assert_eq!(same_site.header("access-control-allow-origin"), None);
    assert_eq!(
        same_site.header("vary"),
        Some("origin"),
        "caches must key on Origin"
    );

    let foreign = server
        .send(
            Method::GET,
            "/users?page=1",
            &[("origin", "https://evil.example")],
            "",
        )
        .await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    let allowed = server
        .send(
            Method::GET,
            "/users?page=1",
            &[("origin", "https://app.example.com")],
            "",
        )
        .await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn wildcard_origin_with_credentials_is_refused_before_start() {
    let error = App::new(Router::new())
        .cors(Cors::new().allow_any_origin().allow_credentials(true))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot be combined with `allow_credentials(true)`"),
        "{error}"
    );
    assert!(
        Cors::new().build().is_err(),
        "a policy with no origin is refused"
    );
    assert!(Cors::new().allow_origins(["*"]).build().is_err());
    assert!(Cors::new()
        .allow_origins(["app.example.com"])
        .build()
        .is_err());
}
