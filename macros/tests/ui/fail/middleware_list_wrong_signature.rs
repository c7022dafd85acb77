pub type State = ();

pub mod route {
    use arbor::{Next, Response};

    pub async fn no_store(next: Next) -> Response {
        next.run(arbor::Request::default()).await
    }

    arbor::middleware!(no_store);
}

fn main() {}
