//! Arbor's reference application: the patterns of the Route Handlers guide, served from the
//! route files under `app/api/`.

pub mod middleware;

arbor::routes!();

/// The application's router: every route file under `app/api`, ready to serve.
pub fn app() -> arbor::Router {
    routes::router()
}
