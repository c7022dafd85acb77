use arbor::{IntoResponse, Next, Request, Response};

pub async fn auth(request: Request, next: Next) -> Response {
    next.run(request).await
}

#[arbor::handler(auth)]
pub fn GET() -> impl IntoResponse {
    "users"
}

fn main() {}
