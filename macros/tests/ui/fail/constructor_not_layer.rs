use arbor::IntoResponse;

#[derive(Clone)]
pub struct RateLimit {
    pub limit: u32,
}

pub fn rate_limit() -> RateLimit {
    RateLimit { limit: 100 }
}

impl RateLimit {
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

#[arbor::handler(rate_limit(limit = 5))]
pub async fn POST() -> impl IntoResponse {
    "ok"
}

fn main() {}
