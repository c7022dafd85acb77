//! One connection to Redis for every store: multiplexed, reconnecting, each call bounded by a
//! budget, and an outage logged once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor::store::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue, RedisError, Script, ScriptInvocation};

/// A handle on Redis shared by the stores (cheap to clone).
#[derive(Clone)]
pub(crate) struct Redis {
    inner: Arc<Inner>,
}

/// Without the client: its URL may hold a password.
impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.inner.prefix)
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: Client,
    manager: ConnectionManager,
    budget: Duration,
    prefix: String,
    /// Set while Redis fails: the outage is logged when it starts and when it ends.
    failing: AtomicBool,
    /// Until when (ms since `epoch`) calls fail at once instead of waiting for their budget.
    open_until_ms: AtomicU64,
    epoch: Instant,
    metrics: CallMetrics,
}

/// The handles of this connection's metrics, made once when it connects.
struct CallMetrics {
    durations: metrics::Histogram,
    unavailable: metrics::Counter,
    refused: metrics::Counter,
}

/// `arbor_redis_command_duration_seconds`: a histogram of Redis calls (a command or a
/// script), answered or not.
pub const COMMAND_DURATION: &str = "arbor_redis_command_duration_seconds";
/// `arbor_redis_errors_total`: failed Redis calls, labelled `kind`: `unavailable` (refused,
/// dropped, past the budget, or cooling down after such a failure) or `command` (Redis
/// answered with an error).
pub const ERRORS: &str = "arbor_redis_errors_total";

/// After a failure, calls fail at once for this long (one caller probes when it ends), so a
/// Redis that does not answer costs each request nothing rather than its whole budget.
const COOL_DOWN: Duration = Duration::from_millis(250);

impl Redis {
    pub(crate) fn new(
        client: Client,
        budget: Duration,
        prefix: String,
    ) -> Result<Self, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(budget.max(Duration::from_millis(100))))
            .set_response_timeout(Some(budget))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                budget,
                prefix,
                failing: AtomicBool::new(false),
                open_until_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                metrics: register_metrics(),
            }),
        })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn budget(&self) -> Duration {
        self.inner.budget
    }

    /// `prefix:kind:rest`, the name of every key the stores use.
    pub(crate) fn key(&self, kind: &str, rest: &str) -> String {
        let mut key = String::with_capacity(self.inner.prefix.len() + kind.len() + rest.len() + 2);
        key.push_str(&self.inner.prefix);
        key.push(':');
        key.push_str(kind);
        key.push(':');
        key.push_str(rest);
        key
    }

    /// Runs `cmd` within the budget.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.guarded(|mut connection| async move { cmd.query_async(&mut connection).await })
            .await
    }

    /// Runs `script` with its keys and arguments within the budget (one round trip once the
    /// server has the script cached).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.guarded(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
    }

    async fn guarded<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let inner = &self.inner;
        let now_ms = inner.epoch.elapsed().as_millis() as u64;
        let open_until = inner.open_until_ms.load(Ordering::Relaxed);
        if now_ms < open_until {
            inner.metrics.unavailable.increment(1);
            return Err(StoreError::unavailable(
                "Redis is unreachable (cooling down)",
            ));
        }
        if open_until != 0 {
            // This caller probes; the others keep failing fast until it has an answer.
            let _ = inner.open_until_ms.compare_exchange(
                open_until,
                now_ms + inner.budget.as_millis() as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        let started = Instant::now();
        let result = tokio::time::timeout(inner.budget, call(inner.manager.clone())).await;
        inner
            .metrics
            .durations
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(value)) => {
                inner.open_until_ms.store(0, Ordering::Relaxed);
                if inner.failing.load(Ordering::Relaxed)
                    && inner.failing.swap(false, Ordering::Relaxed)
                {
                    tracing::info!(target: "arbor_redis", "Redis is reachable again");
                }
                Ok(value)
            }
            Ok(Err(error)) if !unavailable(&error) => {
                inner.metrics.refused.increment(1);
                Err(StoreError::new(error))
            }
            Ok(Err(error)) => Err(self.outage(StoreError::unavailable(error))),
            Err(_) => Err(self.outage(StoreError::unavailable(format!(
                "Redis did not answer within {} ms",
                inner.budget.as_millis()
            )))),
        }
    }

    fn outage(&self, error: StoreError) -> StoreError {
        let inner = &self.inner;
        inner.metrics.unavailable.increment(1);
        let now_ms = inner.epoch.elapsed().as_millis() as u64;
        inner
            .open_until_ms
            .store(now_ms + COOL_DOWN.as_millis() as u64, Ordering::Relaxed);
        if !inner.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                target: "arbor_redis",
                %error,
                "Redis is unreachable; stores answer by their failure policies until it returns"
            );
        }
        error
    }
}

/// Describes the metrics and makes their handles, the error counters starting at 0 so that a
/// dashboard shows "no errors" rather than "no data" before the first one. The recorder must
/// be installed before the stores connect (as `arbor::metrics::Metrics::install` is in the
/// reference app's `main`).
fn register_metrics() -> CallMetrics {
    metrics::describe_histogram!(
        COMMAND_DURATION,
        metrics::Unit::Seconds,
        "Duration of Redis calls (a command or a script), answered or not"
    );
    metrics::describe_counter!(
        ERRORS,
        "Failed Redis calls, by kind (unavailable or command)"
    );
    let counter = |kind: &'static str| {
        let counter = metrics::counter!(ERRORS, "kind" => kind);
        counter.increment(0);
        counter
    };
    CallMetrics {
        durations: metrics::histogram!(COMMAND_DURATION),
        unavailable: counter("unavailable"),
        refused: counter("command"),
    }
}

/// Whether `error` means Redis cannot be reached (as opposed to a refused command).
fn unavailable(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
}

/// A script, built once per process.
pub(crate) fn script(source: &'static str) -> Script {
    Script::new(source)
}
