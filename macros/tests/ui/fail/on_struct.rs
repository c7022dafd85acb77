#[arbor::handler(auth)]
pub struct GET {
    pub id: u64,
}

fn main() {}
