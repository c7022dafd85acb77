//! [`HealthCheck`]: one dependency the readiness probe asks about, and [`Unhealthy`], its answer
//! when the dependency cannot be used.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use crate::store::{BoxFuture, StoreError, StoreErrorKind};

/// Whether a dependency (a database, Redis, another service) can be used right now.
///
/// The readiness probe runs every registered check at once, each in a task of its own and
/// bounded by the probe's timeout: a check need not time itself out, and one that panics only
/// fails itself. Keep a check cheap (`SELECT 1`, `PING`): load balancers call the probe every
/// few seconds, from every node.
///
/// Any `Fn() -> impl Future<Output = Result<(), Unhealthy>>` is a check:
///
/// ```
/// use arbor::health::{Probes, Unhealthy};
///
/// # #[derive(Clone)] struct Pool;
/// # impl Pool { async fn ping(&self) -> Result<(), std::io::Error> { Ok(()) } }
/// # let pool = Pool;
/// let probes = Probes::new().check("database", move || {
///     let pool = pool.clone();
///     async move {
///         pool.ping()
///             .await
///             .map_err(|error| Unhealthy::new("unreachable").with_source(error))
///     }
/// });
/// # let _ = probes;
/// ```
///
/// A backend can implement it on its handle instead (`arbor_redis::RedisStores` does).
pub trait HealthCheck: Send + Sync + 'static {
    /// `Ok(())` when the dependency answers, else why not.
    fn check(&self) -> BoxFuture<'_, Result<(), Unhealthy>>;
}

impl<F, Fut> HealthCheck for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Unhealthy>> + Send + 'static,
{
    fn check(&self) -> BoxFuture<'_, Result<(), Unhealthy>> {
        Box::pin(self())
    }
}

/// Why a [`HealthCheck`] failed.
///
/// The [`reason`](Self::reason) is part of the readiness probe's answer, which anyone who can
/// reach the probe reads: keep it short and free of secrets (`"unreachable"`, `"pool
/// exhausted"`). The [`source`](Self::with_source), with the host names and driver messages an
/// operator needs, is only logged, when the check starts failing.
#[derive(Debug)]
pub struct Unhealthy {
    reason: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Unhealthy {
    /// A failure whose public reason is `reason`.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            source: None,
        }
    }

    /// Attaches the underlying error: logged, never answered.
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The reason the probe answers.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Unhealthy {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A store's failure as a check's: the reason says only how it failed (its message may name
/// hosts), the error itself is the source.
impl From<StoreError> for Unhealthy {
    fn from(error: StoreError) -> Self {
        let reason = match error.kind() {
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Full => "full",
            _ => "failed",
        };
        Self::new(reason).with_source(error)
    }
}
