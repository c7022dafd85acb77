use arbor::IntoResponse;

#[arbor::handler(rate_limit(limit = 5, 60))]
pub async fn POST() -> impl IntoResponse {
    "ok"
}

fn main() {}
