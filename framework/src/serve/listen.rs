//! Where a server listens: a socket handed over by its parent, or one bound from `HOST`/`PORT`.

use std::io::{Error, ErrorKind};

use tokio::net::TcpListener;

/// The listening socket of a server: the one its parent process handed over, if any, else a new
/// one bound to `HOST` (default `127.0.0.1`) and `PORT` (default `default_port`).
///
/// A socket is handed over the way systemd's socket activation does it (`LISTEN_FDS=1`, the
/// socket as file descriptor 3), which is what `cargo arbor dev`, `systemfd` and systemd `.socket`
/// units do. The parent keeps the socket open while the server restarts, so connections made in
/// between wait in the socket's queue for the next server instead of being refused.
///
/// ```no_run
/// # async fn run(router: arbor::Router) -> std::io::Result<()> {
/// let listener = arbor::listener_from_env(3000).await?;
/// println!("listening on http://{}", listener.local_addr()?);
/// arbor::serve(listener, router).await
/// # }
/// ```
///
/// # Errors
/// `InvalidInput` when `PORT` is not a port number or file descriptor 3 is not a TCP listener;
/// the bind's own error (address in use, permission denied) otherwise.
pub async fn listener_from_env(default_port: u16) -> std::io::Result<TcpListener> {
    // Reads (and clears, so that children of this server do not take it too) `LISTEN_FDS`.
    let mut handed_over = listenfd::ListenFd::from_env();
    if handed_over.len() > 0 {
        let listener = handed_over.take_tcp_listener(0)?.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "LISTEN_FDS: no TCP listener at fd 3",
            )
        })?;
        listener.set_nonblocking(true)?;
        return TcpListener::from_std(listener);
    }
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("PORT={port}: not a port number"),
            )
        })?,
        Err(_) => default_port,
    };
    TcpListener::bind((host.as_str(), port)).await
}
