//! A folder's `middleware` fn whose extractors need another state than the router's: the
//! generated router reports it naming the folder's file (arbor-build emits this call).

#[derive(Clone)]
pub struct AppState;

#[derive(Clone)]
pub struct Other;

pub type State = AppState;

pub mod middleware_admin {
    use arbor::{Next, Request, Response, State};

    pub async fn middleware(
        State(_): State<crate::Other>,
        request: Request,
        next: Next,
    ) -> Response {
        next.run(request).await
    }
}

arbor::__private::folder_middleware!(
    State,
    fn layer_middleware_admin = middleware_admin::middleware,
    "`{Self}` in `app/api/(admin)/middleware.rs` cannot be used as folder middleware"
);

fn main() {}
