//! The readiness checks: the database always, its read replica when `DATABASE_READ_URL` is
//! set, Redis when `REDIS_URL` is set. Liveness checks nothing (see `docs/operations.md`).

use std::time::Duration;

use arbor::health::{HealthCheck, Probes, Unhealthy};

use crate::db::Db;
use crate::state::AppState;

/// The probes on `/livez` and `/readyz`, with the app's checks and the default 1 s timeout.
pub fn probes(state: &AppState) -> Probes {
    with_checks(Probes::new(), state)
}

/// `probes` with the app's checks added.
pub fn with_checks(mut probes: Probes, state: &AppState) -> Probes {
    probes = probes.check("database", database(state.db.clone()));
    if state.config.db.read_url.is_some() {
        probes = probes.check("database-replica", database(state.read_db.clone()));
    }
    if let Some(redis) = &state.redis {
        probes = probes.check("redis", redis.clone());
    }
    probes
}

/// `SELECT 1` through the pool: a connection can be had and the server answers. The probe's
/// timeout bounds it, so a pool that waits for a free connection fails the check rather than
/// hanging it.
pub fn database(db: Db) -> impl HealthCheck {
    move || {
        let db = db.clone();
        async move {
            sqlx::query("SELECT 1")
                .execute(&db)
                .await
                .map(drop)
                .map_err(|error| {
                    // The reason is public, the error (host names, driver messages) only logged.
                    let reason = match &error {
                        sqlx::Error::PoolTimedOut => "no connection available",
                        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
                            "unreachable"
                        }
                        _ => "query failed",
                    };
                    Unhealthy::new(reason).with_source(error)
                })
        }
    }
}

/// The probes from the environment, over [`probes`]:
///
/// - `ARBOR_LIVENESS_PATH`, `ARBOR_READINESS_PATH`: where to answer them (default `/livez`,
///   `/readyz`); `off` turns one off;
/// - `ARBOR_READINESS_TIMEOUT_MS`: how long each check may take (default 1000).
///
/// # Errors
/// A setting that cannot work, named in the message.
pub fn probes_from_env(state: &AppState) -> Result<Probes, String> {
    let mut probes = Probes::new();
    match var("ARBOR_LIVENESS_PATH").as_deref() {
        None => {}
        Some("off") => probes = probes.without_liveness(),
        Some(path) => probes = probes.liveness_path(path),
    }
    match var("ARBOR_READINESS_PATH").as_deref() {
        None => {}
        Some("off") => probes = probes.without_readiness(),
        Some(path) => probes = probes.readiness_path(path),
    }
    if let Some(timeout) = var("ARBOR_READINESS_TIMEOUT_MS") {
        let millis = timeout
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or("ARBOR_READINESS_TIMEOUT_MS must be a positive number of milliseconds")?;
        probes = probes.timeout(Duration::from_millis(millis));
    }
    Ok(with_checks(probes, state))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}
