//! Batch requests at `/api/batch` (guide: "Use Case 4: Batch API Operations").
//!
//! Each operation becomes a real request dispatched in-process through the app's own router,
//! the very instance that serves HTTP (installed by [`crate::router`] as a [`Dispatcher`]
//! extension). So every route's middleware (authentication, CSRF, rate limits, caching,
//! idempotency), extractors and validation apply to each operation exactly as they would over
//! HTTP, with the caller's credentials.
//!
//! Operations run **one after another, in request order**: a batch that creates something and
//! then lists it sees its own write, and per-client rate limits count operations in a
//! predictable order. Concurrency would buy little (the operations share one database pool)
//! and would make order-dependent batches racy.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arbor::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use arbor::{ApiError, ClientIp, IntoResponse, RequestId, Response, Router};
use axum::body::Body;
use axum::extract::ConnectInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tower::ServiceExt;
use validator::Validate;

/// The most operations in one batch.
pub const MAX_OPERATIONS: usize = 10;

/// The largest response body one operation may return; past it the operation's result is a
/// `500 RESPONSE_TOO_LARGE` (the operation has run).
pub const MAX_OPERATION_RESPONSE_BYTES: usize = 1024 * 1024;

/// The URL of the batch endpoint itself, which operations may not call.
pub const BATCH_PATH: &str = "/api/batch";

/// Request headers an operation may set for itself. Everything that says who the caller is
/// (`Authorization`, `Cookie`, `Origin`, `Host`) comes from the batch request and cannot be
/// overridden.
pub const OPERATION_HEADERS: &[&str] = &["accept", "idempotency-key", "if-match", "if-none-match"];

/// Headers of the batch request that every operation inherits.
const INHERITED_HEADERS: &[HeaderName] = &[
    header::AUTHORIZATION,
    header::COOKIE,
    header::ORIGIN,
    header::REFERER,
    header::HOST,
    header::USER_AGENT,
    header::ACCEPT_LANGUAGE,
];

/// Response headers copied into an operation's result.
const RESULT_HEADERS: &[HeaderName] = &[header::ETAG, header::LOCATION, header::RETRY_AFTER];

/// The router batch operations are dispatched through: set once, by [`crate::router`], to the
/// router it builds, and reached by the batch route as a request extension.
///
/// The router holds this handle and the handle holds the router, so a router built by
/// [`crate::router`] is never freed: build it once per process (tests build one per server).
#[derive(Debug, Clone, Default)]
pub struct Dispatcher(Arc<OnceLock<Router>>);

impl Dispatcher {
    /// Makes `router` the one operations go through (the first call wins).
    pub fn install(&self, router: &Router) {
        if self.0.set(router.clone()).is_err() {
            tracing::warn!("batch dispatcher already installed; keeping the first router");
        }
    }

    fn router(&self) -> Option<Router> {
        self.0.get().cloned()
    }
}

/// Marks a request dispatched by a batch, so a batch can never run inside another batch,
/// whatever spelling of the URL reached it.
#[derive(Debug, Clone, Copy)]
pub struct InBatch;

/// `POST /api/batch`.
#[derive(Debug, Deserialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 10 operations, run in this order.
    #[validate(
        length(min = 1, max = 10, message = "a batch holds 1 to 10 operations"),
        nested
    )]
    pub operations: Vec<Operation>,
}

/// One operation: a request to make in-process.
#[derive(Debug, Serialize, Deserialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS` (any case).
    #[validate(length(min = 1, max = 16))]
    pub method: String,
    /// A path under `/api/`, with its query string if any: `/api/v1/users?page=2`.
    #[validate(length(min = 1, max = 2048))]
    pub path: String,
    /// A JSON body, sent with `Content-Type: application/json`. Absent or `null`: no body.
    #[serde(default)]
    pub body: Option<Value>,
    /// Extra request headers, only those in [`OPERATION_HEADERS`].
    #[serde(default)]
    pub headers: Option<Map<String, Value>>,
}

/// The answer: one result per operation, in request order.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BatchResponse {
    /// The results.
    pub results: Vec<OperationResult>,
}

/// What one operation answered.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationResult {
    /// The HTTP status.
    pub status: u16,
    /// `ETag`, `Location` and `Retry-After` when the response had them (lower-case names).
    pub headers: Map<String, Value>,
    /// The response body: JSON when the response was JSON, else its text, else `null` (empty or
    /// binary).
    pub body: Value,
}

/// Who sent the batch: what each operation inherits from it.
#[derive(Debug, Clone)]
pub struct Caller {
    headers: HeaderMap,
    peer: Option<ConnectInfo<SocketAddr>>,
    client_ip: Option<ClientIp>,
    request_id: Option<RequestId>,
}

impl Caller {
    /// The caller of a batch request with these headers, URI and extensions.
    pub fn new(headers: &HeaderMap, uri: &Uri, extensions: &arbor::http::Extensions) -> Self {
        let mut inherited = HeaderMap::new();
        for name in INHERITED_HEADERS {
            for value in headers.get_all(name) {
                inherited.append(name.clone(), value.clone());
            }
        }
        // HTTP/2 carries the host in the URI, not a `Host` header; the CSRF check wants one.
        if !inherited.contains_key(header::HOST) {
            if let Some(host) = uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                inherited.insert(header::HOST, host);
            }
        }
        Self {
            headers: inherited,
            peer: extensions.get::<ConnectInfo<SocketAddr>>().copied(),
            client_ip: extensions.get::<ClientIp>().copied(),
            request_id: extensions.get::<RequestId>().cloned(),
        }
    }
}

/// Runs `batch` for `caller` through `dispatcher`'s router, one operation after another.
///
/// # Errors
/// `500` if the router was not installed (an app built without [`crate::router`]).
pub async fn run(
    dispatcher: &Dispatcher,
    caller: &Caller,
    batch: BatchRequest,
) -> Result<BatchResponse, ApiError> {
    let Some(router) = dispatcher.router() else {
        tracing::error!("batch dispatcher not installed: build the app with arbor_app::router");
        return Err(ApiError::internal());
    };
    let mut results = Vec::with_capacity(batch.operations.len());
    for (index, operation) in batch.operations.into_iter().enumerate() {
        let method = operation.method.clone();
        let path = operation.path.clone();
        let result = match request(caller, operation) {
            Ok(request) => {
                // Routers never fail: every error is a response.
                let response = match router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                result(response).await
            }
            Err(refused) => result(refused.into_response()).await,
        };
        tracing::debug!(
            index,
            method,
            path,
            status = result.status,
            "batch operation"
        );
        results.push(result);
    }
    Ok(BatchResponse { results })
}

/// The in-process request for `operation`, or why it may not run.
fn request(caller: &Caller, operation: Operation) -> Result<arbor::Request, ApiError> {
    let method = method(&operation.method)?;
    let uri = path(&operation.path)?;
    let mut request = arbor::Request::new(match &operation.body {
        Some(body) if !body.is_null() => {
            Body::from(serde_json::to_vec(body).map_err(ApiError::internal_with)?)
        }
        _ => Body::empty(),
    });
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.extend(caller.headers.clone());
    for (name, value) in operation.headers.iter().flatten() {
        let lower = name.to_ascii_lowercase();
        if !OPERATION_HEADERS.contains(&lower.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Header `{name}` cannot be set on a batch operation; allowed: {}",
                OPERATION_HEADERS.join(", ")
            )));
        }
        let value = value
            .as_str()
            .and_then(|v| HeaderValue::from_str(v).ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!("Header `{name}` must be a string of visible ASCII"))
            })?;
        headers.insert(
            HeaderName::from_bytes(lower.as_bytes()).map_err(ApiError::internal_with)?,
            value,
        );
    }
    if operation.body.as_ref().is_some_and(|b| !b.is_null()) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let extensions = request.extensions_mut();
    extensions.insert(InBatch);
    if let Some(peer) = caller.peer {
        extensions.insert(peer);
    }
    if let Some(ip) = caller.client_ip {
        extensions.insert(ip);
    }
    if let Some(id) = caller.request_id.clone() {
        extensions.insert(id);
    }
    Ok(request)
}

fn method(method: &str) -> Result<Method, ApiError> {
    let upper = method.to_ascii_uppercase();
    match upper.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
            Method::from_bytes(upper.as_bytes()).map_err(ApiError::internal_with)
        }
        _ => Err(ApiError::bad_request(format!(
            "Unsupported method `{method}`; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"
        ))),
    }
}

/// `path` as a URI, if it is a plain path under `/api/` other than the batch endpoint.
fn path(path: &str) -> Result<Uri, ApiError> {
    let outside = || {
        ApiError::bad_request(format!(
            "Batch operations may only call plain paths under /api/ (no scheme or host, \
             no `.`, `..` or empty segments), not `{path}`"
        ))
    };
    if !path.starts_with("/api/") || path.contains('\\') || path.contains('#') {
        return Err(outside());
    }
    let uri: Uri = path.parse().map_err(|_| outside())?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(outside());
    }
    let segments: Vec<&str> = uri.path().split('/').skip(1).collect();
    if segments
        .iter()
        .enumerate()
        .any(|(i, s)| matches!(*s, "." | "..") || (s.is_empty() && i + 1 < segments.len()))
    {
        return Err(outside());
    }
    if uri.path() == BATCH_PATH || uri.path().starts_with(&format!("{BATCH_PATH}/")) {
        return Err(nested());
    }
    Ok(uri)
}

/// `400` for a batch inside a batch.
pub fn nested() -> ApiError {
    ApiError::bad_request("Nested batch operations are not allowed")
}

/// What `response` answered, as an operation's result: its status, `ETag`/`Location`/
/// `Retry-After`, and its body as JSON, text or `null`. An event stream or a body over
/// [`MAX_OPERATION_RESPONSE_BYTES`] becomes an error result instead.
pub async fn result(response: Response) -> OperationResult {
    match read(response).await {
        Ok(result) => result,
        // An `ApiError` body is a little JSON: reading it cannot fail.
        Err(refused) => read(refused.into_response())
            .await
            .unwrap_or_else(|_| OperationResult {
                status: 500,
                headers: Map::new(),
                body: Value::Null,
            }),
    }
}

/// Reads `response`, or says why it cannot be part of a batch.
async fn read(response: Response) -> Result<OperationResult, ApiError> {
    let status = response.status();
    let mut headers = Map::new();
    for name in RESULT_HEADERS {
        if let Some(value) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.as_str().to_owned(), Value::String(value.to_owned()));
        }
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if content_type == "text/event-stream" {
        // An event stream never ends: reading it would hold the batch until its timeout.
        return Err(ApiError::bad_request(
            "Streaming responses (text/event-stream) cannot be part of a batch",
        ));
    }
    let Ok(bytes) = axum::body::to_bytes(response.into_body(), MAX_OPERATION_RESPONSE_BYTES).await
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "RESPONSE_TOO_LARGE",
            format!(
                "The operation's response is over {MAX_OPERATION_RESPONSE_BYTES} bytes, \
                 the most a batch returns"
            ),
        ));
    };
    let json = content_type == "application/json"
        || (content_type.starts_with("application/") && content_type.ends_with("+json"));
    let body = if bytes.is_empty() {
        Value::Null
    } else if let Some(value) = json
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten()
    {
        value
    } else {
        std::str::from_utf8(&bytes).map_or(Value::Null, |text| Value::String(text.to_owned()))
    };
    Ok(OperationResult {
        status: status.as_u16(),
        headers,
        body,
    })
}
