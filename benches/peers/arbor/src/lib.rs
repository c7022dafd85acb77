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
///
/// For finding where the stack's time goes, `ARBOR_PEER_WITHOUT` takes out parts of it (a
/// comma-separated list of `compression`, `timeout`, `openapi`); the benchmark sets none.
pub fn app() -> arbor::Router {
    let without = std::env::var("ARBOR_PEER_WITHOUT").unwrap_or_default();
    let without = |part: &str| without.split(',').any(|p| p.trim() == part);
    let mut app = arbor::App::new(routes::router()).route_patterns(routes::PATTERNS);
    if !without("openapi") {
        app = app.openapi(routes::openapi().clone());
    }
    if without("compression") {
        app = app.compression(None);
    }
    if without("timeout") {
        app = app.timeout(None);
    }
    app.into_router()
}
