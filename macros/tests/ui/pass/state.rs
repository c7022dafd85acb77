//! Middleware fns at the fn and file levels take `State<..>` of the router's state, and any
//! extractor that needs that state, as axum's `from_fn_with_state` allows.

// Route files are compiled inside `arbor::routes!`, which allows uppercase handler names.
#![allow(non_snake_case)]

use arbor::http::request::Parts;
use arbor::http::StatusCode;
use arbor::{Next, Request, Response};

#[derive(Clone)]
pub struct AppState {
    pub api_key: String,
}

/// Resolved with the state: only the router's state can produce it.
pub struct Tenant(pub String);

impl axum::extract::FromRequestParts<AppState> for Tenant {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StatusCode> {
        let _ = (&parts.headers, &state.api_key);
        Ok(Self("acme".into()))
    }
}

/// The generated `routes` module's state type, which the route file's middleware runs with.
pub type State = AppState;

pub mod route {
    use arbor::{IntoResponse, Next, Request, Response, State};

    use crate::{AppState, Tenant};

    pub async fn require_key(
        State(state): State<AppState>,
        request: Request,
        next: Next,
    ) -> Response {
        let _ = state.api_key;
        next.run(request).await
    }

    pub async fn tenant(Tenant(tenant): Tenant, request: Request, next: Next) -> impl IntoResponse {
        let _ = tenant;
        next.run(request).await
    }

    arbor::middleware!(require_key, crate::stateless);

    #[arbor::handler(tenant, tower::layer::util::Identity::new(), require_key)]
    pub async fn GET(State(state): State<AppState>) -> String {
        state.api_key
    }

    pub fn _router(state: AppState) -> arbor::Router {
        let methods = __arbor_handler_middleware_GET(axum::routing::get(GET), &state);
        arbor::Router::new()
            .route("/", __arbor_middleware(methods, &state))
            .with_state(state)
    }
}

/// A middleware fn with no extractor runs under any state.
pub async fn stateless(request: Request, next: Next) -> Response {
    next.run(request).await
}

fn main() {}
