//! `arbor::middleware!(..)`: the list a route file or a folder's `middleware.rs` declares.

// Route files are compiled inside `arbor::routes!`, which allows uppercase handler names.
#![allow(non_snake_case)]

pub type State = ();

pub mod route {
    use arbor::{IntoResponse, Next, Request, Response};
    use tower::layer::util::Identity;

    pub async fn no_store(request: Request, next: Next) -> Response {
        next.run(request).await
    }

    pub async fn csrf_origin_check(request: Request, next: Next) -> impl IntoResponse {
        next.run(request).await
    }

    pub fn passthrough() -> Identity {
        Identity::new()
    }

    arbor::middleware!(no_store, passthrough(), crate::route::csrf_origin_check);

    pub async fn GET() -> &'static str {
        "hello"
    }

    fn _router() -> arbor::Router {
        arbor::Router::new().route("/", __arbor_middleware(axum::routing::get(GET), &()))
    }
}

fn main() {}
