use arbor::IntoResponse;

#[arbor::handler(auth)]
pub async fn get() -> impl IntoResponse {
    "users"
}

fn main() {}
