//! The reference app's Prometheus metrics: the framework's, plus the database pool and the
//! build, served where `ARBOR_METRICS` says.

use std::net::SocketAddr;

use arbor::metrics::Metrics;

use crate::AppState;

/// `arbor_db_pool_connections`: the database pool's connections, labelled `state` (`idle` or
/// `in_use`), read at each scrape.
pub const DB_POOL_CONNECTIONS: &str = "arbor_db_pool_connections";
/// `arbor_db_pool_max_connections`: the pool's ceiling.
pub const DB_POOL_MAX: &str = "arbor_db_pool_max_connections";

/// Where the metrics are served, from `ARBOR_METRICS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSetting {
    /// `/metrics` on the main port (unset, or `on`): one port to scrape, behind whatever
    /// guards the API.
    MainPort,
    /// An address (`0.0.0.0:9100`): a listener of their own, which the load balancer need
    /// not expose; the main port serves no `/metrics`.
    Listener(SocketAddr),
    /// `off`: nothing recorded, nothing served.
    Off,
}

impl MetricsSetting {
    /// Reads `ARBOR_METRICS`.
    ///
    /// # Errors
    /// A value that is neither `on`, `off` nor an address.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("ARBOR_METRICS").ok().as_deref().map(str::trim) {
            None | Some("" | "on") => Ok(Self::MainPort),
            Some("off") => Ok(Self::Off),
            Some(address) => address.parse().map(Self::Listener).map_err(|_| {
                format!("ARBOR_METRICS: `{address}` is not `on`, `off` or an address such as 0.0.0.0:9100")
            }),
        }
    }
}

/// The process's Prometheus recorder, with the database pool read at each scrape and the
/// build's version (and `ARBOR_GIT_REVISION`, when the build had it) as `arbor_build_info`.
///
/// # Errors
/// When another `metrics` recorder was installed first.
pub fn metrics(state: &AppState) -> Result<Metrics, String> {
    let pool = state.db.clone();
    let max = f64::from(pool.options().get_max_connections());
    let metrics = Metrics::install()
        .map_err(|e| e.to_string())?
        .build_info(env!("CARGO_PKG_VERSION"), option_env!("ARBOR_GIT_REVISION"))
        .on_scrape(move || {
            let (size, idle) = (pool.size(), pool.num_idle());
            let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
            metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
            metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(size - idle));
            metrics::gauge!(DB_POOL_MAX).set(max);
        });
    Ok(metrics)
}
