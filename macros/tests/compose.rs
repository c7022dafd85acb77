//! Run-time behaviour of the expansions: routers built from `__arbor_handler_middleware_<M>` and
//! `__arbor_middleware` run the listed middleware first-listed-outermost, can answer early, and
//! can hand typed data to the handler.
//!
//! Middleware fns run with the router's state: `stateful` stands for an app whose state is
//! `Config`, at the fn, file and folder levels.
//!
//! Every request carries its own [`Log`] as an extension, so tests share no state.

// Handlers are `pub` and uppercase, in modules standing for route files; `arbor::routes!`
// allows the same lints for the files it compiles.
#![allow(clippy::unwrap_used, non_snake_case, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arbor::http::{Method, StatusCode};
use arbor::{Next, Request, Response};
use axum::body::Body;
use axum::routing::{get, MethodRouter};
use axum::Router;
use tower::{Layer, Service, ServiceExt};

/// The state of the router these modules stand in for: a middleware fn's wrapper names it as
/// `super::State`, as a route file's does the generated `routes` module's.
pub type State = ();

/// What ran, in order.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn log_of(request: &Request) -> Log {
    request
        .extensions()
        .get::<Log>()
        .cloned()
        .expect("the test request carries a Log")
}

/// Records `<name>:before`, runs the rest of the chain, then records `<name>:after`.
async fn around(name: &str, request: Request, next: Next) -> Response {
    let log = log_of(&request);
    log.push(format!("{name}:before"));
    let response = next.run(request).await;
    log.push(format!("{name}:after"));
    response
}

pub async fn outer(request: Request, next: Next) -> Response {
    around("outer", request, next).await
}

pub async fn inner(request: Request, next: Next) -> Response {
    around("inner", request, next).await
}

/// A tower layer, configured through a setter (`record(label = "..")`), that records like
/// [`around`].
#[derive(Clone)]
pub struct Record {
    label: &'static str,
}

pub fn record() -> Record {
    Record { label: "record" }
}

impl Record {
    pub fn label(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }
}

impl<S> Layer<S> for Record {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Recorded {
            inner,
            label: self.label,
        }
    }
}

#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    label: &'static str,
}

impl<S> Service<Request> for Recorded<S>
where
    S: Service<Request>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let log = log_of(&request);
        let label = self.label;
        log.push(format!("{label}:before"));
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            log.push(format!("{label}:after"));
            response
        })
    }
}

async fn send(router: Router, method: Method) -> (StatusCode, String, Vec<String>) {
    let log = Log::default();
    let request = arbor::http::Request::builder()
        .method(method)
        .uri("/")
        .extension(log.clone())
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        String::from_utf8(body.to_vec()).unwrap(),
        log.entries(),
    )
}

fn route(method_router: MethodRouter) -> Router {
    Router::new().route("/", method_router)
}

mod chain {
    use arbor::Extension;

    use super::{inner, outer, Log};

    #[arbor::handler(outer, inner)]
    pub async fn GET(Extension(log): Extension<Log>) -> &'static str {
        log.push("handler");
        "ok"
    }
}

#[tokio::test]
async fn handler_middleware_runs_first_listed_outermost() {
    let router = route(chain::__arbor_handler_middleware_GET(get(chain::GET), &()));
    let (status, body, log) = send(router, Method::GET).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(
        log,
        [
            "outer:before",
            "inner:before",
            "handler",
            "inner:after",
            "outer:after"
        ]
    );
}

mod mixed {
    use arbor::Extension;

    use super::{inner, outer, record, Log};

    #[arbor::handler(outer, record(label = "layer"), inner)]
    pub async fn GET(Extension(log): Extension<Log>) -> &'static str {
        log.push("handler");
        "ok"
    }
}

#[tokio::test]
async fn constructor_layers_take_their_place_and_their_setters() {
    let router = route(mixed::__arbor_handler_middleware_GET(get(mixed::GET), &()));
    let (status, _, log) = send(router, Method::GET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        log,
        [
            "outer:before",
            "layer:before",
            "inner:before",
            "handler",
            "inner:after",
            "layer:after",
            "outer:after"
        ]
    );
}

mod early {
    use arbor::http::StatusCode;
    use arbor::{Extension, IntoResponse, Next, Request, Response};

    use super::{inner, log_of, Log};

    /// Answers `401` without calling `next`.
    pub async fn deny(request: Request, _next: Next) -> Response {
        log_of(&request).push("deny");
        (StatusCode::UNAUTHORIZED, "sign in first").into_response()
    }

    #[arbor::handler(deny, inner)]
    pub async fn GET(Extension(log): Extension<Log>) -> &'static str {
        log.push("handler");
        "secret"
    }
}

#[tokio::test]
async fn middleware_that_answers_early_skips_the_rest() {
    let router = route(early::__arbor_handler_middleware_GET(get(early::GET), &()));
    let (status, body, log) = send(router, Method::GET).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, "sign in first");
    assert_eq!(log, ["deny"], "neither `inner` nor the handler may run");
}

mod typed {
    use arbor::{Extension, Next, Request, Response};

    #[derive(Clone, Debug)]
    pub struct User {
        pub id: u64,
        pub name: &'static str,
    }

    pub async fn authenticate(mut request: Request, next: Next) -> Response {
        request.extensions_mut().insert(User {
            id: 42,
            name: "ada",
        });
        next.run(request).await
    }

    #[arbor::handler(authenticate)]
    pub async fn GET(Extension(user): Extension<User>) -> String {
        format!("user {} is {}", user.id, user.name)
    }
}

#[tokio::test]
async fn middleware_hands_typed_data_to_the_handler() {
    let router = route(typed::__arbor_handler_middleware_GET(get(typed::GET), &()));
    let (status, body, _) = send(router, Method::GET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "user 42 is ada");
}

mod list {
    use arbor::{Extension, Next, Request, Response};

    use super::{around, record, Log};

    pub async fn a(request: Request, next: Next) -> Response {
        around("a", request, next).await
    }

    pub async fn b(request: Request, next: Next) -> Response {
        around("b", request, next).await
    }

    arbor::middleware!(a, record(label = "c"), self::b);

    pub async fn GET(Extension(log): Extension<Log>) -> &'static str {
        log.push("handler");
        "ok"
    }
}

#[tokio::test]
async fn middleware_list_runs_first_listed_outermost() {
    let router = route(list::__arbor_middleware(get(list::GET), &()));
    let (status, _, log) = send(router, Method::GET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        log,
        ["a:before", "c:before", "b:before", "handler", "b:after", "c:after", "a:after"]
    );
}

#[tokio::test]
async fn middleware_list_wraps_handler_middleware() {
    let router = route(list::__arbor_middleware(
        chain::__arbor_handler_middleware_GET(get(chain::GET), &()),
        &(),
    ));
    let (_, _, log) = send(router, Method::GET).await;
    assert_eq!(
        log,
        [
            "a:before",
            "c:before",
            "b:before",
            "outer:before",
            "inner:before",
            "handler",
            "inner:after",
            "outer:after",
            "b:after",
            "c:after",
            "a:after"
        ]
    );
}

#[tokio::test]
async fn no_middleware_sees_methods_the_route_does_not_answer() {
    // `#[handler]` and `middleware!` both use `route_layer`: the 405 is the route's fallback,
    // answered before any middleware (an auth check would turn it into a 401).
    let router = route(list::__arbor_middleware(
        chain::__arbor_handler_middleware_GET(get(chain::GET), &()),
        &(),
    ));
    let (status, _, log) = send(router.clone(), Method::POST).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(log.is_empty(), "{log:?}");
    // A method the route has goes through the list, then the handler's own.
    let (status, _, log) = send(router, Method::GET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log.first().map(String::as_str), Some("a:before"));
}

/// An app whose router state is `Config`: `stateful` stands for its generated `routes` module,
/// with a folder `middleware.rs` and a route file as children. Their middleware fns take
/// `State<Config>` and `Tenant`, an extractor that needs that state, at every level.
pub mod stateful {
    pub type State = app::Config;

    pub mod app {
        use arbor::http::{HeaderMap, StatusCode};
        use arbor::{IntoResponse, Next, Request, Response, State};
        use axum::extract::FromRequestParts;
        use axum::http::request::Parts;

        #[derive(Clone)]
        pub struct Config {
            pub api_key: &'static str,
            pub tenant_prefix: &'static str,
            pub folder: &'static str,
        }

        /// `x-tenant`, prefixed with the state's `tenant_prefix`.
        pub struct Tenant(pub String);

        impl FromRequestParts<Config> for Tenant {
            type Rejection = StatusCode;

            async fn from_request_parts(
                parts: &mut Parts,
                config: &Config,
            ) -> Result<Self, StatusCode> {
                let tenant = parts
                    .headers
                    .get("x-tenant")
                    .ok_or(StatusCode::BAD_REQUEST)?;
                let tenant = tenant.to_str().map_err(|_| StatusCode::BAD_REQUEST)?;
                Ok(Self(format!("{}{tenant}", config.tenant_prefix)))
            }
        }

        /// File level: the key must be the state's.
        pub async fn require_key(
            State(config): State<Config>,
            headers: HeaderMap,
            request: Request,
            next: Next,
        ) -> Response {
            if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(config.api_key) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            next.run(request).await
        }

        /// Fn level: hands the tenant, resolved with the state, to the handler.
        pub async fn tag_tenant(
            Tenant(tenant): Tenant,
            mut request: Request,
            next: Next,
        ) -> Response {
            request.extensions_mut().insert(tenant);
            next.run(request).await
        }
    }

    /// A folder's `middleware.rs`: marks every answer with the state's `folder`.
    pub mod folder {
        use arbor::{Next, Request, Response, State};

        use super::app::Config;

        pub async fn middleware(
            State(config): State<Config>,
            request: Request,
            next: Next,
        ) -> Response {
            let mut response = next.run(request).await;
            response
                .headers_mut()
                .insert("x-folder", config.folder.parse().unwrap());
            response
        }
    }

    arbor::__private::folder_middleware!(
        State,
        fn layer_folder = folder::middleware,
        "`{Self}` in `stateful/middleware.rs` cannot be used as folder middleware"
    );

    pub mod route {
        use arbor::{Extension, State};

        use super::app::{require_key, tag_tenant, Config};

        arbor::middleware!(require_key);

        #[arbor::handler(tag_tenant)]
        pub async fn GET(
            State(config): State<Config>,
            Extension(tenant): Extension<String>,
        ) -> String {
            format!("{tenant} via {}", config.api_key)
        }
    }
}

/// As the generated router builds a route: fn, then file, then folder, each given the state.
fn stateful_router(config: stateful::app::Config) -> Router {
    use stateful::{layer_folder, route};
    let methods = route::__arbor_handler_middleware_GET(get(route::GET), &config);
    // As the generated router does: the automatic OPTIONS and the 405, then the file's and
    // the folder's middleware.
    let methods = arbor::__private::finish_route(methods, "GET, HEAD, OPTIONS", true);
    let methods = route::__arbor_middleware(methods, &config);
    let methods = layer_folder(methods, &config);
    Router::new().route("/", methods).with_state(config)
}

async fn send_with(
    router: Router,
    method: Method,
    headers: &[(&str, &str)],
) -> (StatusCode, String, Option<String>) {
    let mut request = arbor::http::Request::builder().method(method).uri("/");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let folder = response
        .headers()
        .get("x-folder")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap(), folder)
}

#[tokio::test]
async fn middleware_fns_at_every_level_run_with_the_routers_state() {
    let config = |api_key, tenant_prefix, folder| stateful::app::Config {
        api_key,
        tenant_prefix,
        folder,
    };
    let headers = [("x-api-key", "k1"), ("x-tenant", "acme")];

    let (status, body, folder) = send_with(
        stateful_router(config("k1", "t-", "one")),
        Method::GET,
        &headers,
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "t-acme via k1"));
    assert_eq!(folder.as_deref(), Some("one"));

    // Another state, another answer: the key is refused by the file's middleware, inside the
    // folder's, which still marks the answer with this state's value.
    let (status, _, folder) = send_with(
        stateful_router(config("k2", "t-", "two")),
        Method::GET,
        &headers,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(folder.as_deref(), Some("two"));

    let (status, body, _) = send_with(
        stateful_router(config("k1", "org/", "one")),
        Method::GET,
        &headers,
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "org/acme via k1"));

    // The state-dependent extractor's rejection ends the request in the fn's middleware.
    let (status, _, _) = send_with(
        stateful_router(config("k1", "t-", "one")),
        Method::GET,
        &[("x-api-key", "k1")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // File and folder middleware cover the route's automatic OPTIONS, with the state too;
    // a method the route does not have is a 405 that no middleware sees.
    let (status, _, folder) = send_with(
        stateful_router(config("k1", "t-", "one")),
        Method::OPTIONS,
        &headers,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(folder.as_deref(), Some("one"));
    let (status, _, folder) = send_with(
        stateful_router(config("k1", "t-", "one")),
        Method::DELETE,
        &headers,
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(folder, None);
}
