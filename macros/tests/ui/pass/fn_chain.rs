//! A handler wrapped in a chain of async middleware fns, by bare name and by path.

// Route files are compiled inside `arbor::routes!`, which allows uppercase handler names.
#![allow(non_snake_case)]

/// A route file is a module of the generated `routes` module, whose `State` its middleware fns
/// run with.
pub type State = ();

pub mod route {
    use arbor::http::{header, HeaderValue};
    use arbor::{IntoResponse, Next, Request, Response};

    pub async fn server_timing(request: Request, next: Next) -> Response {
        next.run(request).await
    }

    pub mod auth {
        use arbor::{IntoResponse, Next, Request};

        pub async fn require_user(request: Request, next: Next) -> impl IntoResponse {
            next.run(request).await
        }
    }

    pub async fn no_store(request: Request, next: Next) -> Response {
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    #[arbor::handler(server_timing, crate::route::auth::require_user, self::no_store)]
    pub async fn GET() -> impl IntoResponse {
        "hello"
    }

    #[arbor::handler(no_store)]
    pub async fn DELETE() -> impl IntoResponse {
        "gone"
    }

    fn _router() -> arbor::Router {
        arbor::Router::new().route(
            "/",
            __arbor_handler_middleware_GET(axum::routing::get(GET), &()).merge(
                __arbor_handler_middleware_DELETE(axum::routing::delete(DELETE), &()),
            ),
        )
    }
}

fn main() {}
