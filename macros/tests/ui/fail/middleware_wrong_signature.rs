pub type State = ();

pub mod route {
    use arbor::IntoResponse;

    pub async fn require_user(user_id: u32) -> String {
        format!("user {user_id}")
    }

    #[arbor::handler(require_user)]
    pub async fn GET() -> impl IntoResponse {
        "users"
    }
}

fn main() {}
