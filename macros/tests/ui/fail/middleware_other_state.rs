//! A middleware fn whose extractors need another state than the router's.

use arbor::http::request::Parts;

#[derive(Clone)]
pub struct AppState;

#[derive(Clone)]
pub struct Other;

/// An extractor that only `Other` can produce.
pub struct Tenant;

impl axum::extract::FromRequestParts<Other> for Tenant {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &Other) -> Result<Self, Self::Rejection> {
        Ok(Self)
    }
}

pub type State = AppState;

pub mod route {
    use arbor::{IntoResponse, Next, Request, Response, State};

    use crate::{Other, Tenant};

    pub async fn other_state(State(_): State<Other>, request: Request, next: Next) -> Response {
        next.run(request).await
    }

    pub async fn tenant(_: Tenant, request: Request, next: Next) -> Response {
        next.run(request).await
    }

    arbor::middleware!(tenant);

    #[arbor::handler(other_state)]
    pub async fn GET() -> impl IntoResponse {
        "hello"
    }
}

fn main() {}
