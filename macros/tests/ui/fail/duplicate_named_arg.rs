use arbor::IntoResponse;

#[arbor::handler(rate_limit(limit = 5, limit = 6))]
pub async fn POST() -> impl IntoResponse {
    "ok"
}

fn main() {}
