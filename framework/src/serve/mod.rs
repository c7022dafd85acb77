//! Serving a router over TCP, with graceful shutdown under a deadline.
//!
//! On Ctrl-C or SIGTERM (or [`Shutdown::trigger`]) the server:
//!
//! 1. signals every request through the [`Shutdown`] handle in its extensions: the readiness
//!    probe ([`crate::health`]) answers `503`, open SSE streams ([`crate::sse`]) send a final
//!    `event: shutdown` and end;
//! 2. keeps accepting and serving for [`ServeOptions::drain_delay`] (0 by default), so that load
//!    balancers see the failed readiness and stop sending before connections are refused;
//!    HTTP/1 responses carry `Connection: close` meanwhile, moving clients off their keep-alive
//!    connections while new ones still work;
//! 3. stops accepting: the listening socket is closed, new connections are refused;
//! 4. lets in-flight requests finish (idle keep-alive connections are closed at once, busy ones
//!    after their current response, one accepted but still without a request after at most a
//!    second for it to arrive), for at most [`ServeOptions::shutdown_grace`];
//! 5. past the deadline, closes the connections still open, and returns.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Router;
use futures_util::future::Either;
use futures_util::FutureExt;
use http::request::Parts;
use http::{header, HeaderValue, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::ServiceExt;

use connection::Connections;
use framing::ObservedIo;
pub use listen::listener_from_env;

mod connection;
mod framing;
mod listen;
mod presized;

/// How long in-flight requests get to finish after a shutdown signal, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The largest request head (request line and headers) served by default: 16 KiB, as Node.js
/// allows; nginx allows 8 KiB a line. A larger one is answered `431 Request Header Fields Too
/// Large` and its connection closed.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// How long a client has to send a request head, by default (hyper's own default).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's smallest read buffer for HTTP/1, which bounds the head.
const MIN_HTTP1_HEAD_BYTES: usize = 8 * 1024;

/// A shutdown signal shared by the server and its requests.
///
/// [`serve_with`] puts a clone into every request's extensions; handlers take it as an
/// extractor (`shutdown: arbor::Shutdown`), and SSE streams watch it. Call
/// [`Shutdown::trigger`] to shut a server down without a signal (in tests, or from an admin
/// endpoint).
///
/// Outside [`serve_with`] (for example with [`crate::test::TestClient`]) the extractor gives a
/// handle that never triggers.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    // One `Arc`: every request gets a clone, and cloning a `CancellationToken` (or asking it
    // whether it is cancelled) takes its mutex.
    inner: Arc<ShutdownInner>,
}

#[derive(Debug, Default)]
struct ShutdownInner {
    token: CancellationToken,
    triggered: AtomicBool,
}

impl Shutdown {
    /// A handle that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: readiness fails, SSE streams end, and the server stops accepting
    /// (after [`ServeOptions::drain_delay`]).
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        self.inner.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Completes when the shutdown starts.
    pub fn triggered(&self) -> WaitForCancellationFutureOwned {
        self.inner.token.clone().cancelled_owned()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Shutdown {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// Settings of [`serve_with`].
///
/// ```no_run
/// # async fn run(router: arbor::Router) -> std::io::Result<()> {
/// use std::time::Duration;
/// use arbor::ServeOptions;
///
/// let options = ServeOptions::default()
///     .drain_delay(Duration::from_secs(5))
///     .shutdown_grace(Duration::from_secs(10));
/// let shutdown = options.shutdown.clone(); // trigger it from anywhere
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// arbor::serve_with(listener, router, options).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long the server keeps accepting and serving new connections once the shutdown has
    /// started, while the readiness probe already fails (default zero: stop accepting at once).
    ///
    /// Behind a load balancer that follows readiness (a Kubernetes Service), set it to a little
    /// more than the time the balancer takes to notice: the probe's period times its failure
    /// threshold, plus the endpoint propagation (about 5 s with `periodSeconds: 2`,
    /// `failureThreshold: 1`). Without it, requests the balancer still routes here in that
    /// window are refused. Zero suits a process nothing balances (development, a CLI).
    pub drain_delay: Duration,
    /// How long in-flight requests get to finish once the server stops accepting, after the
    /// drain delay (default [`DEFAULT_SHUTDOWN_GRACE`], 20 s).
    pub shutdown_grace: Duration,
    /// Whether Ctrl-C and SIGTERM start the shutdown (default `true`).
    pub signals: bool,
    /// Sets `TCP_NODELAY` on accepted connections, so small writes (SSE events) leave at once
    /// (default `true`).
    pub tcp_nodelay: bool,
    /// The largest request head, in bytes (default [`DEFAULT_MAX_HEADER_BYTES`]): the request
    /// line and headers over HTTP/1 (at least 8 KiB, hyper's smallest buffer), the decoded
    /// header list over HTTP/2. A larger one is answered `431`, so that a client cannot make
    /// every request hold hundreds of kilobytes of headers.
    pub max_header_bytes: usize,
    /// How long an HTTP/1 client has to send a request's head, counted from when the server
    /// starts waiting for it: the connection's accept, or the end of its last response
    /// (default [`DEFAULT_HEADER_READ_TIMEOUT`], 30 s). Past it the connection is closed, within
    /// an eighth of the timeout (the server checks sixteen times per period). This bounds
    /// slow-header (slowloris) clients, and also closes keep-alive connections left idle that
    /// long; a request in flight is never cut by it (a slow body is bounded by the route's
    /// timeout).
    pub header_read_timeout: Duration,
    /// Whether an HTTP/1 request that gives its body length twice, with both
    /// `Content-Length` and `Transfer-Encoding`, is answered `400` without running the route
    /// (default `true`). Such a request is how requests are smuggled past a proxy that reads
    /// the other length (RFC 9112 §6.3); either way its connection is closed after the answer,
    /// so nothing sent behind it is read. Turned off, hyper reads the body as chunked and the
    /// route runs; that saves following each connection's framing, about 1,500 instructions
    /// for a 400-byte request head (4 % of the production stack's per-request cost).
    pub refuse_ambiguous_lengths: bool,
    /// The handle that starts the shutdown.
    pub shutdown: Shutdown,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            drain_delay: Duration::ZERO,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            signals: true,
            tcp_nodelay: true,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            refuse_ambiguous_lengths: true,
            shutdown: Shutdown::new(),
        }
    }
}

impl ServeOptions {
    /// See [`ServeOptions::drain_delay`].
    #[must_use]
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// See [`ServeOptions::shutdown_grace`].
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// See [`ServeOptions::signals`].
    #[must_use]
    pub fn signals(mut self, signals: bool) -> Self {
        self.signals = signals;
        self
    }

    /// See [`ServeOptions::tcp_nodelay`].
    #[must_use]
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.tcp_nodelay = nodelay;
        self
    }

    /// See [`ServeOptions::max_header_bytes`].
    #[must_use]
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// See [`ServeOptions::header_read_timeout`].
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// See [`ServeOptions::refuse_ambiguous_lengths`].
    #[must_use]
    pub fn refuse_ambiguous_lengths(mut self, refuse: bool) -> Self {
        self.refuse_ambiguous_lengths = refuse;
        self
    }

    /// Uses `shutdown` as the handle (see [`ServeOptions::shutdown`]).
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }
}

/// Serves `router` on `listener` until Ctrl-C or SIGTERM, then lets in-flight requests finish
/// for up to 20 seconds. See [`serve_with`] for the details and the settings.
///
/// Handlers and middleware can read the peer address with
/// `axum::extract::ConnectInfo<SocketAddr>`.
///
/// ```no_run
/// # async fn run(router: arbor::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// arbor::serve(listener, router).await
/// # }
/// ```
///
/// # Errors
/// When the thread that times the wait for request heads cannot be started.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    serve_with(listener, router, ServeOptions::default()).await
}

/// Serves `router` on `listener` (HTTP/1.1 and HTTP/2) until the shutdown starts, then shuts
/// down gracefully within [`ServeOptions::shutdown_grace`].
///
/// On Ctrl-C or SIGTERM (with [`ServeOptions::signals`]) or [`Shutdown::trigger`], the server:
///
/// 1. signals every request through the [`Shutdown`] handle in its extensions: the readiness
///    probe ([`crate::health`]) answers `503 SHUTTING_DOWN`, open SSE streams ([`crate::sse`])
///    send a final `event: shutdown` and end;
/// 2. keeps accepting and serving for [`ServeOptions::drain_delay`], with `Connection: close`
///    on HTTP/1 responses so that clients leave their keep-alive connections cleanly (a second
///    signal ends the delay at once);
/// 3. stops accepting: the listening socket is closed, new connections are refused;
/// 4. lets in-flight requests finish (idle keep-alive connections are closed at once, busy ones
///    after their current response, one accepted but still without a request after at most a
///    second for it to arrive), for at most [`ServeOptions::shutdown_grace`];
/// 5. past the deadline, closes the connections still open (dropping their handlers), and
///    returns.
///
/// Each request carries `ConnectInfo<SocketAddr>` and the [`Shutdown`] handle in its
/// extensions. Request heads must arrive within [`ServeOptions::header_read_timeout`] (30 s)
/// and fit in [`ServeOptions::max_header_bytes`] (16 KiB).
///
/// # Errors
/// When the thread that times the wait for request heads cannot be started.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
) -> std::io::Result<()> {
    // Handlers become routes once, here, as `axum::serve` does: a router that still holds
    // handlers turns each one it matches into a route again on every request.
    let router: Router = router.with_state(());
    let shutdown = options.shutdown.clone();
    let mut builder = Builder::new(TokioExecutor::new());
    // No timer for hyper: `Connections` times the wait for a request head.
    builder
        .http1()
        .max_buf_size(options.max_header_bytes.max(MIN_HTTP1_HEAD_BYTES));
    builder
        .http2()
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let mut connections = JoinSet::new();
    // Installed before the first accept, so a signal can never find the default action (exit).
    let mut signals = Signals::install(options.signals);
    let drain_delay = options.drain_delay;
    let stop_accepting = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.triggered().await;
            if drain_delay.is_zero() {
                tracing::info!("shutdown started: readiness fails from now on");
            } else {
                tracing::info!(
                    drain_ms = millis(drain_delay),
                    "shutdown started: readiness fails from now on; still accepting new connections for the drain delay"
                );
                tokio::time::sleep(drain_delay).await;
            }
        }
    };
    tokio::pin!(stop_accepting);

    let open = Connections::new(options.header_read_timeout, shutdown.clone());
    let _sweeping = open.start_sweeping()?;
    // Shared, not cloned per connection: an idle connection then holds no map of its own.
    let presized = Arc::new(presized::presized_extensions());
    loop {
        let (stream, remote) = tokio::select! {
            // Once the shutdown is due, not one more accept: a connection accepted now would be
            // closed before its request is read.
            biased;
            () = &mut stop_accepting => break,
            () = signals.recv() => {
                if shutdown.is_triggered() {
                    tracing::info!("second shutdown signal: skipping the rest of the drain delay");
                    break;
                }
                shutdown.trigger();
                continue;
            }
            // Reap finished connections so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
        };
        if options.tcp_nodelay {
            let _ = stream.set_nodelay(true);
        }
        let router = router.clone();
        let registration = open.accept();
        let state = Arc::clone(registration.state());
        let stream = ObservedIo::new(stream, Arc::clone(&state), options.refuse_ambiguous_lengths);
        let presized = Arc::clone(&presized);
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            let http1 = request.version() < Version::HTTP_2;
            let in_flight = state.start_request(!http1);
            if http1 && in_flight.is_refused() {
                return Either::Left(std::future::ready(Ok(in_flight.track(ambiguous_length()))));
            }
            let extensions = request.extensions_mut();
            extensions.extend(http::Extensions::clone(&presized));
            extensions.insert(ConnectInfo(remote));
            extensions.insert(state.shutdown().clone());
            Either::Right(
                router
                    .clone()
                    .oneshot(request.map(Body::new))
                    .map(move |result| {
                        result.map(|response| {
                            let response =
                                match http1 && in_flight.state().shutdown().is_triggered() {
                                    true => close_after(response),
                                    false => response,
                                };
                            in_flight.track(response)
                        })
                    }),
            )
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        connections.spawn(async move {
            let result = connection::drive(connection, registration).await;
            if let Err(error) = result {
                tracing::trace!(%remote, error = %error, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let grace = options.shutdown_grace;
    tracing::info!(
        open_connections = connections.len(),
        grace_ms = millis(grace),
        "shutting down: no longer accepting, finishing in-flight requests"
    );
    open.close_all();
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            open_connections = connections.len(),
            "shutdown deadline reached: closing the connections still open"
        );
        connections.shutdown().await;
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Like axum: connection-level errors are the peer's business; others (`EMFILE`) are logged
/// and the loop backs off for a second.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accept error; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The answer to a request with both `Content-Length` and `Transfer-Encoding` (see
/// [`ServeOptions::refuse_ambiguous_lengths`]); hyper closes the connection after it.
fn ambiguous_length() -> Response {
    let error = crate::ApiError::bad_request(
        "a request may not carry both Content-Length and Transfer-Encoding",
    );
    close_after(error.into_response())
}

/// `Connection: close` on a response served while the server drains: the client finishes
/// reading it and opens a new connection for its next request (to another instance, once the
/// load balancer has seen the failed readiness), instead of sending it on a connection the
/// server is about to close. hyper closes the connection after writing the response.
fn close_after(mut response: Response) -> Response {
    // A protocol switch keeps its `Connection: upgrade`.
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Ctrl-C (SIGINT) and SIGTERM, listened to from the moment the server starts.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(not(unix))]
    enabled: bool,
}

impl Signals {
    /// Listens to nothing unless `enabled`; a handler that cannot be installed is logged and
    /// left out.
    fn install(enabled: bool) -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind: SignalKind, name: &str| {
                if !enabled {
                    return None;
                }
                signal(kind)
                    .inspect_err(|error| {
                        tracing::warn!(signal = name, error = %error, "cannot listen to the signal");
                    })
                    .ok()
            };
            Self {
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
                terminate: install(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            Self { enabled }
        }
    }

    /// Completes at the next signal (never, with none installed). Cancel-safe: the loop calls it
    /// afresh on every turn.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                let received = match signal {
                    Some(signal) => signal.recv().await.is_some(),
                    None => false,
                };
                // `None` from `recv` means the signal driver is gone: wait forever, not spin.
                if !received {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                () = next(&mut self.interrupt) => {}
                () = next(&mut self.terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            if !self.enabled || tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutdown signal received");
    }
}
