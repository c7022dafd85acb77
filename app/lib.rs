//! Arbor's reference application: the patterns of the Route Handlers guide, served from the
//! route files under `app/api/`, on a real database.

pub mod auth;
pub mod batch;
pub mod config;
pub mod db;
pub mod graphql;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod services;
pub mod state;
pub mod topics;
pub mod validation;
pub mod webhooks;

pub use config::Config;
pub use state::{AppState, Services};

arbor::routes!();

/// The application: every route file under `app/api` inside Arbor's production stack
/// (request ids, logs, panic safety, timeouts, probes on `/livez` and `/readyz` checking the
/// database and Redis), with default settings.
pub fn app(state: AppState) -> arbor::Router {
    let stores = state.stores.clone();
    let probes = health::probes(&state);
    arbor::App::new(router(state))
        .route_patterns(routes::PATTERNS)
        .openapi(routes::openapi().clone())
        .stores(stores)
        .probes(probes)
        .into_router()
}

/// The routes with their state: handlers and middleware extract `State<AppState>`; the
/// session and cookie layers wrap them, and the webhook routes find their verifiers in the
/// request's extensions.
pub fn router(state: AppState) -> arbor::Router {
    let cookies = arbor::cookies::CookieConfig::new().secure(state.config.secure_cookies);
    let router = routes::router(state.clone())
        .layer(state.sessions.clone())
        .layer(cookies.into_layer())
        .layer(state.webhooks.verifiers.clone());
    // `/api/batch` dispatches its operations through this very router (same middleware
    // instances, so rate limits and caches are shared). The first router built for a state is
    // the one batches use.
    state.dispatcher.install(&router);
    router
}

/// The application configured from the environment: [`Config::from_env`] plus
///
/// - `ARBOR_TRUSTED_PROXIES`: comma-separated addresses or CIDR networks whose
///   `X-Forwarded-For` is believed (default: none);
/// - `ARBOR_CORS_ORIGINS`: comma-separated origins allowed cross-origin, with credentials
///   (default: no CORS);
/// - `ARBOR_METRICS`: Prometheus metrics at `/metrics` on this port (`on`, the default), on a
///   listener of their own (an address, which the caller serves: see `main.rs`), or `off`
///   ([`metrics::MetricsSetting`]);
/// - `ARBOR_COMPRESSION`: response compression, `on` (the default) or `off`;
/// - `ARBOR_OPENAPI`: the API contract at `/api/openapi.json`, `on` (the default) or `off`;
/// - `OTEL_EXPORTER_OTLP_ENDPOINT`: a server span per request ([`arbor::otel`]), exported
///   there by the layer `main` installs;
/// - `ARBOR_LIVENESS_PATH`, `ARBOR_READINESS_PATH`, `ARBOR_READINESS_TIMEOUT_MS`: the probes
///   (see [`health::probes_from_env`]).
///
/// # Errors
/// A setting that cannot work, with a message naming it.
pub fn app_from_env(state: AppState) -> Result<arbor::Router, String> {
    let stores = state.stores.clone();
    let metrics = match metrics::MetricsSetting::from_env()? {
        metrics::MetricsSetting::Off => None,
        metrics::MetricsSetting::MainPort => Some(metrics::metrics(&state)?),
        metrics::MetricsSetting::Listener(_) => Some(metrics::metrics(&state)?.path(None)),
    };
    let probes = health::probes_from_env(&state)?;
    let mut app = arbor::App::new(router(state))
        .route_patterns(routes::PATTERNS)
        .stores(stores)
        .probes(probes)
        .trace_requests(arbor::otel::endpoint_configured());
    if let Some(metrics) = metrics {
        app = app.metrics(metrics);
    }
    match std::env::var("ARBOR_OPENAPI").as_deref() {
        Err(_) | Ok("on") => app = app.openapi(routes::openapi().clone()),
        Ok("off") => {}
        Ok(other) => {
            return Err(format!(
                "ARBOR_OPENAPI: expected `on` or `off`, not `{other}`"
            ))
        }
    }
    match std::env::var("ARBOR_COMPRESSION").as_deref() {
        Err(_) | Ok("on") => {}
        Ok("off") => app = app.compression(None),
        Ok(other) => {
            return Err(format!(
                "ARBOR_COMPRESSION: expected `on` or `off`, not `{other}`"
            ))
        }
    }
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
                "if-none-match",
            ])
            .expose_headers(["etag", "x-request-id", "retry-after"])
            .allow_credentials(true);
        app = app
            .cors(cors)
            .map_err(|e| format!("ARBOR_CORS_ORIGINS: {e}"))?;
    }
    Ok(app.into_router())
}

/// How the server shuts down, from the environment:
///
/// - `ARBOR_DRAIN_DELAY_MS`: how long to keep serving new connections after SIGTERM, while the
///   readiness probe already fails, so that load balancers stop sending first (default 0; about
///   5000 under Kubernetes, see `docs/operations.md`);
/// - `ARBOR_SHUTDOWN_GRACE_MS`: how long in-flight requests then get to finish (default 20000).
///
/// # Errors
/// A value that is not a number of milliseconds, naming the variable.
pub fn serve_options_from_env() -> Result<arbor::ServeOptions, String> {
    let millis = |name: &str| -> Result<Option<std::time::Duration>, String> {
        match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .map(|ms| Some(std::time::Duration::from_millis(ms)))
                .map_err(|_| format!("{name} must be a number of milliseconds")),
        }
    };
    let mut options = arbor::ServeOptions::default();
    if let Some(delay) = millis("ARBOR_DRAIN_DELAY_MS")? {
        options = options.drain_delay(delay);
    }
    if let Some(grace) = millis("ARBOR_SHUTDOWN_GRACE_MS")? {
        options = options.shutdown_grace(grace);
    }
    Ok(options)
}
