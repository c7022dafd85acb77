use arbor::IntoResponse;

#[arbor::handler(auth)]
pub async fn list_users() -> impl IntoResponse {
    "users"
}

fn main() {}
