//! [`HealthLayer`] and [`Health`]: answer the probes before a request reaches the rest of the
//! stack.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};
use tower::{Layer, Service};

use super::{HealthCheck, Probes, Unhealthy};
use crate::request_id::RequestId;
use crate::{ApiError, Shutdown};

/// The target of every probe log line, for `RUST_LOG` filters (`arbor::health=debug`).
const TARGET: &str = "arbor::health";

/// Answers the probes a [`Probes`] configures, and passes every other request on. [`crate::App`]
/// installs it right after the request id; build one with [`Probes::into_layer`] to use it
/// elsewhere.
#[derive(Clone)]
pub struct HealthLayer {
    // Shared by every service built from the layer: one in-flight run of the checks, one
    // record of which checks are failing.
    answers: Arc<Answers>,
}

impl HealthLayer {
    /// The layer for `probes`.
    pub fn new(probes: Probes) -> Self {
        let readiness = probes.readiness_path.map(|path| {
            Arc::new(Readiness {
                path,
                timeout: probes.timeout,
                checks: probes
                    .checks
                    .into_iter()
                    .map(|named| {
                        Arc::new(RegisteredCheck {
                            name: named.name,
                            check: named.check,
                            failing: AtomicBool::new(false),
                        })
                    })
                    .collect(),
                in_flight: Mutex::new(None),
            })
        });
        Self {
            answers: Arc::new(Answers {
                liveness_path: probes.liveness_path,
                readiness,
            }),
        }
    }
}

impl From<Probes> for HealthLayer {
    fn from(probes: Probes) -> Self {
        Self::new(probes)
    }
}

impl fmt::Debug for HealthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.answers.fmt("HealthLayer", f)
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health {
            inner,
            answers: Arc::clone(&self.answers),
        }
    }
}

/// See [`HealthLayer`].
#[derive(Clone)]
pub struct Health<S> {
    inner: S,
    answers: Arc<Answers>,
}

impl<S> fmt::Debug for Health<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.answers.fmt("Health", f)
    }
}

struct Answers {
    liveness_path: Option<String>,
    readiness: Option<Arc<Readiness>>,
}

enum Probe {
    Liveness,
    Readiness(Arc<Readiness>),
}

impl Probe {
    fn name(&self) -> &'static str {
        match self {
            Self::Liveness => "liveness",
            Self::Readiness(_) => "readiness",
        }
    }
}

impl Answers {
    fn fmt(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("liveness_path", &self.liveness_path)
            .field("readiness_path", &self.readiness.as_ref().map(|r| &r.path))
            .finish_non_exhaustive()
    }

    fn probe_for(&self, path: &str) -> Option<Probe> {
        if self.liveness_path.as_deref() == Some(path) {
            return Some(Probe::Liveness);
        }
        self.readiness
            .as_ref()
            .filter(|readiness| readiness.path == path)
            .map(|readiness| Probe::Readiness(Arc::clone(readiness)))
    }
}

impl<S, E> Service<Request> for Health<S>
where
    S: Service<Request, Response = Response, Error = E>,
{
    type Response = Response;
    type Error = E;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let kind = match self.answers.probe_for(request.uri().path()) {
            None => Kind::Inner {
                future: self.inner.call(request),
            },
            Some(probe) => Kind::Probe {
                future: Box::pin(answer(probe, request)),
            },
        };
        ResponseFuture { kind }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Health`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProjection]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Probe { future: BoxFuture<'static, Response> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Inner { future } => future.poll(cx),
            KindProjection::Probe { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// Answers `probe`, and logs it at `DEBUG` (the request log never sees probes).
async fn answer(probe: Probe, request: Request) -> Response {
    let started = Instant::now();
    let response = if request.method() != Method::GET && request.method() != Method::HEAD {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!(
                "{} is not allowed here; allowed: GET, HEAD",
                request.method()
            ),
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
        .into_response()
    } else {
        match &probe {
            Probe::Liveness => no_store(Json(json!({ "status": "alive" })).into_response()),
            Probe::Readiness(readiness) => {
                let shutdown = request.extensions().get::<Shutdown>();
                readiness.answer(shutdown).await.into_response()
            }
        }
    };
    tracing::debug!(
        target: TARGET,
        probe = probe.name(),
        request_id = request
            .extensions()
            .get::<RequestId>()
            .map_or("-", RequestId::as_str),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "probe"
    );
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The readiness probe: its checks, and the run of them in flight if any.
struct Readiness {
    path: String,
    timeout: Duration,
    checks: Arc<[Arc<RegisteredCheck>]>,
    in_flight: Mutex<Option<Run>>,
}

struct RegisteredCheck {
    name: Cow<'static, str>,
    check: Arc<dyn HealthCheck>,
    /// Set while the check fails, so that an outage is logged when it starts and when it
    /// ends, not at every probe.
    failing: AtomicBool,
}

/// One run of every check, shared by the readiness requests that arrive while it runs.
struct Run {
    report: Shared<BoxFuture<'static, Arc<Report>>>,
    /// Set by the run itself when it has its report: a finished run is never joined, so every
    /// request gets a report that started after (or just before) it arrived, never a stale one.
    finished: Arc<AtomicBool>,
}

impl Readiness {
    /// `shutdown` is the server's handle, from the request's extensions (absent outside
    /// [`crate::serve_with`]).
    async fn answer(&self, shutdown: Option<&Shutdown>) -> ReadinessAnswer {
        let shutting_down = || shutdown.is_some_and(Shutdown::is_triggered);
        if shutting_down() {
            return ReadinessAnswer::ShuttingDown;
        }
        if self.checks.is_empty() {
            return ReadinessAnswer::Ready(Arc::default());
        }
        let report = self.run().await;
        // The shutdown may have started while the checks ran.
        if shutting_down() {
            ReadinessAnswer::ShuttingDown
        } else if report.all_passed() {
            ReadinessAnswer::Ready(report)
        } else {
            ReadinessAnswer::NotReady(report)
        }
    }

    /// Joins the run in flight, or starts one.
    fn run(&self) -> Shared<BoxFuture<'static, Arc<Report>>> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(run) = in_flight
            .as_ref()
            .filter(|run| !run.finished.load(Ordering::Acquire))
        {
            return run.report.clone();
        }
        let finished = Arc::new(AtomicBool::new(false));
        // A task of its own: the run completes (and logs its checks' state changes) even when
        // every request waiting for it goes away.
        let task = tokio::spawn(run_checks(
            Arc::clone(&self.checks),
            self.timeout,
            Arc::clone(&finished),
        ));
        let checks = Arc::clone(&self.checks);
        let report = async move {
            // Only fails if the runtime is shutting down.
            task.await
                .unwrap_or_else(|_| Arc::new(Report::not_run(&checks)))
        }
        .boxed()
        .shared();
        *in_flight = Some(Run {
            report: report.clone(),
            finished,
        });
        report
    }
}

/// Runs every check concurrently, each in a task of its own (a panic fails that check only)
/// and within `timeout`.
async fn run_checks(
    checks: Arc<[Arc<RegisteredCheck>]>,
    timeout: Duration,
    finished: Arc<AtomicBool>,
) -> Arc<Report> {
    let tasks: Vec<_> = checks
        .iter()
        .map(|registered| {
            let registered = Arc::clone(registered);
            tokio::spawn(
                async move { tokio::time::timeout(timeout, registered.check.check()).await },
            )
        })
        .collect();
    let mut outcomes = Vec::with_capacity(checks.len());
    for (registered, task) in checks.iter().zip(tasks) {
        let result = match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(Unhealthy::new(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
            Err(error) if error.is_panic() => Err(Unhealthy::new("the check panicked")),
            Err(_) => Err(Unhealthy::new("the check was cancelled")),
        };
        registered.record(&result);
        outcomes.push(Outcome {
            name: registered.name.clone(),
            failure: result.err().map(|unhealthy| unhealthy.reason().to_owned()),
        });
    }
    finished.store(true, Ordering::Release);
    Arc::new(Report { outcomes })
}

impl RegisteredCheck {
    fn record(&self, result: &Result<(), Unhealthy>) {
        match result {
            Ok(()) => {
                // A plain load first: the common case (no outage) never writes the shared line.
                if self.failing.load(Ordering::Relaxed)
                    && self.failing.swap(false, Ordering::Relaxed)
                {
                    tracing::info!(target: TARGET, check = %self.name, "readiness check passes again");
                }
            }
            Err(unhealthy) => {
                let error = std::error::Error::source(unhealthy)
                    .map_or_else(String::new, ToString::to_string);
                if self.failing.swap(true, Ordering::Relaxed) {
                    tracing::debug!(target: TARGET, check = %self.name, reason = unhealthy.reason(), error, "readiness check still failing");
                } else {
                    tracing::warn!(
                        target: TARGET,
                        check = %self.name,
                        reason = unhealthy.reason(),
                        error,
                        "readiness check failing: this instance reports not ready until it passes"
                    );
                }
            }
        }
    }
}

/// What one run of the checks found, in registration order.
#[derive(Default)]
struct Report {
    outcomes: Vec<Outcome>,
}

struct Outcome {
    name: Cow<'static, str>,
    /// The public reason, if the check failed.
    failure: Option<String>,
}

impl Report {
    fn not_run(checks: &[Arc<RegisteredCheck>]) -> Self {
        Self {
            outcomes: checks
                .iter()
                .map(|registered| Outcome {
                    name: registered.name.clone(),
                    failure: Some("not run: the server is stopping".into()),
                })
                .collect(),
        }
    }

    fn all_passed(&self) -> bool {
        self.outcomes
            .iter()
            .all(|outcome| outcome.failure.is_none())
    }

    /// `{"database": {"status": "ok"}, "redis": {"status": "failed", "reason": ".."}}`
    fn checks(&self) -> Value {
        let checks: Map<String, Value> = self
            .outcomes
            .iter()
            .map(|outcome| {
                let status = match &outcome.failure {
                    None => json!({ "status": "ok" }),
                    Some(reason) => json!({ "status": "failed", "reason": reason }),
                };
                (outcome.name.clone().into_owned(), status)
            })
            .collect();
        Value::Object(checks)
    }
}

/// The readiness probe's answer.
enum ReadinessAnswer {
    /// `200 {"status":"ready","checks":{..}}`
    Ready(Arc<Report>),
    /// `503 NOT_READY`, naming each failed check and why in `details.checks`.
    NotReady(Arc<Report>),
    /// `503 SHUTTING_DOWN`: the server's shutdown has started.
    ShuttingDown,
}

impl IntoResponse for ReadinessAnswer {
    fn into_response(self) -> Response {
        let no_store_header = HeaderValue::from_static("no-store");
        match self {
            Self::Ready(report) => {
                // A struct rather than `json!`, whose keys come out sorted: `status` first.
                #[derive(serde::Serialize)]
                struct Ready {
                    status: &'static str,
                    checks: Value,
                }
                no_store(
                    Json(Ready {
                        status: "ready",
                        checks: report.checks(),
                    })
                    .into_response(),
                )
            }
            Self::NotReady(report) => {
                let failed: Vec<&str> = report
                    .outcomes
                    .iter()
                    .filter(|outcome| outcome.failure.is_some())
                    .map(|outcome| &*outcome.name)
                    .collect();
                // Unlogged: a probe answers this every few seconds during an outage, which the
                // checks log once when it starts.
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "NOT_READY",
                    format!("not ready: {} failed", failed.join(", ")),
                )
                .with_details(json!({ "checks": report.checks() }))
                .with_header(header::CACHE_CONTROL, no_store_header)
                .into_unlogged_response()
            }
            Self::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SHUTTING_DOWN",
                "this instance is shutting down; send requests to another one",
            )
            .with_header(header::CACHE_CONTROL, no_store_header)
            .into_unlogged_response(),
        }
    }
}
