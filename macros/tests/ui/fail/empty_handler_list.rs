use arbor::IntoResponse;

#[arbor::handler()]
pub async fn GET() -> impl IntoResponse {
    "users"
}

fn main() {}
