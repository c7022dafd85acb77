//! Serving a router over TCP, with graceful shutdown under a deadline.
//!
//! On Ctrl-C or SIGTERM (or [`Shutdown::trigger`]) the server:
//!
//! 1. stops accepting: the listening socket is closed, new connections are refused;
//! 2. signals every request through the [`Shutdown`] handle in its extensions: open SSE streams
//!    ([`crate::sse`]) send a final `event: shutdown` and end;
//! 3. lets in-flight requests finish (idle keep-alive connections are closed at once, busy ones
//!    after their current response), for at most [`ServeOptions::shutdown_grace`];
//! 4. past the deadline, closes the connections still open, and returns.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::Router;
use http::request::Parts;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::ServiceExt;

/// How long in-flight requests get to finish after a shutdown signal, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

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
    token: CancellationToken,
}

impl Shutdown {
    /// A handle that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: the server stops accepting and SSE streams end.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the shutdown starts.
    pub fn triggered(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
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
/// let options = ServeOptions::default().shutdown_grace(Duration::from_secs(10));
/// let shutdown = options.shutdown.clone(); // trigger it from anywhere
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// arbor::serve_with(listener, router, options).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long in-flight requests get to finish once shutdown starts
    /// (default [`DEFAULT_SHUTDOWN_GRACE`], 20 s).
    pub shutdown_grace: Duration,
    /// Whether Ctrl-C and SIGTERM start the shutdown (default `true`).
    pub signals: bool,
    /// Sets `TCP_NODELAY` on accepted connections, so small writes (SSE events) leave at once
    /// (default `true`).
    pub tcp_nodelay: bool,
    /// The handle that starts the shutdown.
    pub shutdown: Shutdown,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            signals: true,
            tcp_nodelay: true,
            shutdown: Shutdown::new(),
        }
    }
}

impl ServeOptions {
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
/// Never at the moment; `io::Result` leaves room for listener errors.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    serve_with(listener, router, ServeOptions::default()).await
}

/// Serves `router` on `listener` (HTTP/1.1 and HTTP/2) until the shutdown starts, then shuts
/// down gracefully within [`ServeOptions::shutdown_grace`].
///
/// On Ctrl-C or SIGTERM (with [`ServeOptions::signals`]) or [`Shutdown::trigger`], the server:
///
/// 1. stops accepting: the listening socket is closed, new connections are refused;
/// 2. signals every request through the [`Shutdown`] handle in its extensions: open SSE streams
///    ([`crate::sse`]) send a final `event: shutdown` and end;
/// 3. lets in-flight requests finish (idle keep-alive connections are closed at once, busy ones
///    after their current response), for at most [`ServeOptions::shutdown_grace`];
/// 4. past the deadline, closes the connections still open (dropping their handlers), and
///    returns.
///
/// Each request carries `ConnectInfo<SocketAddr>` and the [`Shutdown`] handle in its
/// extensions. Request headers must arrive within 30 seconds.
///
/// # Errors
/// Never at the moment; `io::Result` leaves room for listener errors.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
) -> std::io::Result<()> {
    let shutdown = options.shutdown.clone();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let signal = shutdown_signal(options.signals);
    tokio::pin!(signal);
    let stop = shutdown.triggered();
    tokio::pin!(stop);

    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
            () = &mut signal => {
                shutdown.trigger();
                break;
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
        let request_shutdown = shutdown.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            let extensions = request.extensions_mut();
            extensions.insert(ConnectInfo(remote));
            extensions.insert(request_shutdown.clone());
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%remote, error = %error, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let grace = options.shutdown_grace;
    tracing::info!(
        open_connections = connections.len(),
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "shutting down: no longer accepting, finishing in-flight requests"
    );
    let drained = async {
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
    };
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

async fn shutdown_signal(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
