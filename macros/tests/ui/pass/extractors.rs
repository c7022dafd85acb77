//! Middleware fns may take extractors before the request, as axum's `from_fn` allows.

// Route files are compiled inside `arbor::routes!`, which allows uppercase handler names.
#![allow(non_snake_case)]

pub type State = ();

pub mod route {
    use arbor::http::{HeaderMap, Method, StatusCode, Uri};
    use arbor::{Extension, IntoResponse, Next, Request, Response};

    #[derive(Clone)]
    pub struct User {
        pub id: u64,
    }

    pub async fn require_user(headers: HeaderMap, mut request: Request, next: Next) -> Response {
        if !headers.contains_key("authorization") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        request.extensions_mut().insert(User { id: 7 });
        next.run(request).await
    }

    pub async fn audit(
        method: Method,
        uri: Uri,
        Extension(user): Extension<User>,
        request: Request,
        next: Next,
    ) -> Result<Response, StatusCode> {
        let _ = (method, uri, user.id);
        Ok(next.run(request).await)
    }

    #[arbor::handler(require_user, audit)]
    pub async fn PATCH(Extension(user): Extension<User>) -> String {
        format!("user {}", user.id)
    }

    fn _router() -> arbor::Router {
        arbor::Router::new().route(
            "/",
            __arbor_handler_middleware_PATCH(axum::routing::patch(PATCH), &()),
        )
    }
}

fn main() {}
