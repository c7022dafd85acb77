//! Liveness and readiness probes, answered before routing.
//!
//! - **Liveness** (`GET /livez`): the process answers HTTP. It checks no dependency on purpose:
//!   an orchestrator restarts an instance whose liveness fails, and restarting every instance
//!   because the database is down cures nothing and makes the outage worse.
//! - **Readiness** (`GET /readyz`): this instance should get traffic. It runs the registered
//!   [`HealthCheck`]s (database, Redis, ...) concurrently, each within a short timeout, and
//!   answers `200` when all pass, `503 NOT_READY` naming each failed check otherwise. As soon as
//!   the server's shutdown starts (SIGTERM, [`Shutdown::trigger`](crate::Shutdown::trigger)) it
//!   answers `503 SHUTTING_DOWN`, so load balancers stop sending requests while the in-flight
//!   ones drain (see [`ServeOptions::drain_delay`](crate::ServeOptions::drain_delay)).
//!
//! [`App`](crate::App) installs the probes by default, with no checks: liveness, and a readiness
//! that only follows the shutdown. Register checks with [`App::probes`](crate::App::probes):
//!
//! ```
//! use std::time::Duration;
//! use arbor::health::{Probes, Unhealthy};
//!
//! let probes = Probes::new()
//!     .timeout(Duration::from_millis(500))
//!     .check("database", || async { Ok::<(), Unhealthy>(()) }); // your `SELECT 1`
//! let app = arbor::App::new(arbor::Router::new()).probes(probes).into_router();
//! # let _ = app;
//! ```
//!
//! The probes sit right after the request id in the app's stack: a probe never reaches the
//! routes, so no route middleware (rate limits, auth, caches) sees it, and it is logged at
//! `DEBUG` (target `arbor::health`) instead of the `INFO` request log, so probes every few
//! seconds do not flood the logs. A check that starts failing is logged once at `WARN` with its
//! error, and once at `INFO` when it passes again.
//!
//! Readiness requests that arrive while the checks are running share that run: a burst of
//! probes (or someone hammering an unauthenticated `/readyz`) costs each dependency one check at
//! a time.
//!
//! Answers (all with `Cache-Control: no-store`):
//!
//! ```text
//! GET /livez    200 {"status":"alive"}
//! GET /readyz   200 {"status":"ready","checks":{"database":{"status":"ok"}}}
//!               503 {"error":"NOT_READY","message":"not ready: database failed",
//!                    "details":{"checks":{"database":{"status":"failed","reason":"unreachable"}}}}
//!               503 {"error":"SHUTTING_DOWN","message":"this instance is shutting down; ..."}
//! ```
//!
//! The module is laid out by role: `mod.rs` ([`Probes`], the configuration), `check.rs`
//! ([`HealthCheck`], [`Unhealthy`]) and `layer.rs` ([`HealthLayer`] → [`Health`], which answers
//! the probes).

mod check;
mod layer;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use check::{HealthCheck, Unhealthy};
pub use layer::{Health, HealthLayer, ResponseFuture};

/// The liveness probe's path unless [`Probes::liveness_path`] says otherwise.
pub const DEFAULT_LIVENESS_PATH: &str = "/livez";
/// The readiness probe's path unless [`Probes::readiness_path`] says otherwise.
pub const DEFAULT_READINESS_PATH: &str = "/readyz";
/// How long each readiness check may take unless [`Probes::timeout`] says otherwise: short, so
/// that a dependency that hangs fails the probe instead of hanging it. Give the orchestrator's
/// own probe timeout more than this (`timeoutSeconds: 2` in `docs/operations.md`).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The probes' configuration: paths, timeout, checks.
///
/// [`Probes::new`] (also the [`App`](crate::App) default) answers liveness on `/livez` and
/// readiness on `/readyz`, with no checks and a 1 s timeout per check. Requests to any other
/// path, and every request when both probes are off ([`Probes::disabled`]), pass through.
///
/// Outside `App`, turn it into a [`HealthLayer`] and put that around a router (outermost, so
/// route middleware never sees probes):
///
/// ```
/// use arbor::health::Probes;
///
/// let routes: arbor::Router = arbor::Router::new();
/// let service = tower::Layer::layer(&Probes::new().into_layer(), routes);
/// # let _ = service;
/// ```
#[derive(Clone)]
#[must_use]
pub struct Probes {
    liveness_path: Option<String>,
    readiness_path: Option<String>,
    timeout: Duration,
    checks: Vec<NamedCheck>,
}

#[derive(Clone)]
struct NamedCheck {
    name: Cow<'static, str>,
    check: Arc<dyn HealthCheck>,
}

impl Default for Probes {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Probes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probes")
            .field("liveness_path", &self.liveness_path)
            .field("readiness_path", &self.readiness_path)
            .field("timeout", &self.timeout)
            .field(
                "checks",
                &self.checks.iter().map(|c| &*c.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Probes {
    /// Liveness on `/livez`, readiness on `/readyz`, no checks, 1 s per check.
    pub fn new() -> Self {
        Self {
            liveness_path: Some(DEFAULT_LIVENESS_PATH.to_owned()),
            readiness_path: Some(DEFAULT_READINESS_PATH.to_owned()),
            timeout: DEFAULT_CHECK_TIMEOUT,
            checks: Vec::new(),
        }
    }

    /// No probes at all: their paths reach the routes like any other.
    pub fn disabled() -> Self {
        Self::new().without_liveness().without_readiness()
    }

    /// Answers liveness on `path` (a leading `/` is added if missing).
    pub fn liveness_path(mut self, path: impl Into<String>) -> Self {
        self.liveness_path = Some(absolute(path.into()));
        self
    }

    /// Answers readiness on `path` (a leading `/` is added if missing).
    pub fn readiness_path(mut self, path: impl Into<String>) -> Self {
        self.readiness_path = Some(absolute(path.into()));
        self
    }

    /// No liveness probe.
    pub fn without_liveness(mut self) -> Self {
        self.liveness_path = None;
        self
    }

    /// No readiness probe.
    pub fn without_readiness(mut self) -> Self {
        self.readiness_path = None;
        self
    }

    /// How long each check may take before it counts as failed (default 1 s). The checks run
    /// concurrently, so this is also about how long readiness takes to answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a readiness check; its `name` keys it in the probe's answer and logs. A check with
    /// the name of an earlier one replaces it.
    pub fn check(mut self, name: impl Into<Cow<'static, str>>, check: impl HealthCheck) -> Self {
        let name = name.into();
        self.checks.retain(|existing| existing.name != name);
        self.checks.push(NamedCheck {
            name,
            check: Arc::new(check),
        });
        self
    }

    /// The layer that answers these probes.
    pub fn into_layer(self) -> HealthLayer {
        HealthLayer::new(self)
    }

    /// Whether any probe is answered.
    pub(crate) fn is_enabled(&self) -> bool {
        self.liveness_path.is_some() || self.readiness_path.is_some()
    }
}

fn absolute(path: String) -> String {
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}
