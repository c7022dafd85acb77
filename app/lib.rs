//! Arbor's reference application: the patterns of the Route Handlers guide, served from the
//! route files under `app/api/`.

pub mod middleware;

arbor::routes!();

/// The application: every route file under `app/api` inside Arbor's production stack
/// (request ids, logs, panic safety, timeouts), with default settings.
pub fn app() -> arbor::Router {
    arbor::App::new(routes::router()).into_router()
}

/// The application configured from the environment:
///
/// - `ARBOR_TRUSTED_PROXIES`: comma-separated addresses or CIDR networks whose
///   `X-Forwarded-For` is believed (default: none);
/// - `ARBOR_CORS_ORIGINS`: comma-separated origins allowed cross-origin, with credentials
///   (default: no CORS).
///
/// # Errors
/// A setting that cannot work, with a message naming it.
pub fn app_from_env() -> Result<arbor::Router, String> {
    let mut app = arbor::App::new(routes::router());
    if let Ok(proxies) = std::env::var("ARBOR_TRUSTED_PROXIES") {
        let proxies =
            arbor::TrustedProxies::new(proxies.split(',').filter(|p| !p.trim().is_empty()))
                .map_err(|e| format!("ARBOR_TRUSTED_PROXIES: {e}"))?;
        app = app.trusted_proxies(proxies);
    }
    if let Ok(origins) = std::env::var("ARBOR_CORS_ORIGINS") {
        let cors = arbor::cors::Cors::new()
            .allow_origins(origins.split(',').map(str::trim).filter(|o| !o.is_empty()))
            .allow_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
            .allow_headers([
                "content-type",
                "authorization",
                "idempotency-key",
                "if-match",
            ])
            .allow_credentials(true);
        app = app
            .cors(cors)
            .map_err(|e| format!("ARBOR_CORS_ORIGINS: {e}"))?;
    }
    Ok(app.into_router())
}
