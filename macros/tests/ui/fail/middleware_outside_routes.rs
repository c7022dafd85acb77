//! A middleware fn runs with the state of the generated `routes` module that the route file is
//! a module of: outside one, there is no `State` to run with.

pub mod route {
    use arbor::{IntoResponse, Next, Request, Response};

    pub async fn no_store(request: Request, next: Next) -> Response {
        next.run(request).await
    }

    #[arbor::handler(no_store)]
    pub async fn GET() -> impl IntoResponse {
        "hello"
    }
}

fn main() {}
