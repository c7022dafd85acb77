use arbor::IntoResponse;

#[arbor::handler("auth")]
pub async fn GET() -> impl IntoResponse {
    "users"
}

fn main() {}
