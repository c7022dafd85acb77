//! Arbor's entry in the peer benchmark (`benches/peers`): the endpoints every peer serves, as
//! route files under `app/api`, in a crate made as the README's quickstart and `cargo arbor new`
//! make one.

arbor::routes!();

/// The routes alone, as `routes::router()` builds them: each route's own middleware (the rate
/// limit of `/api/stack`) and nothing app-wide.
pub fn bare() -> arbor::Router {
    routes::router()
}

/// The routes inside Arbor's production stack, exactly as `cargo arbor new` writes `app()`:
/// request ids, request logs, panic safety, timeouts, the body limit, `/livez` and `/readyz`,
/// and the API contract at `/api/openapi.json`.
pub fn app() -> arbor::Router {
    arbor::App::new(routes::router())
        .route_patterns(routes::PATTERNS)
        .openapi(routes::openapi().clone())
        .into_router()
}
