//! Serves the peer on `HOST` (default 127.0.0.1) and `PORT` (default 3000).
//!
//! `ARBOR_PEER_MODE=stack` (the default) serves `app()`, the production stack, with request
//! logs on: JSON lines on stdout with `ARBOR_LOG_FORMAT=json` (the benchmark sends them to
//! `/dev/null`, so writing them is part of what it measures). `ARBOR_PEER_MODE=bare` serves
//! `bare()`, the generated router alone, without a log subscriber.

use std::io::{Error, ErrorKind};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // `_logs` lives to the end of `main`: dropping it writes the log lines still queued.
    let (router, _logs) = match std::env::var("ARBOR_PEER_MODE").as_deref() {
        Ok("bare") => (arbor_peer::bare(), None),
        Ok("stack") | Err(_) => {
            let logs = arbor::logging::init(arbor::logging::Format::from_env());
            (arbor_peer::app(), Some(logs))
        }
        Ok(other) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("ARBOR_PEER_MODE={other}: expected `stack` or `bare`"),
            ))
        }
    };
    // `HOST` and `PORT` (default 3000), as every peer.
    let listener = arbor::listener_from_env(3000).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    arbor::serve(listener, router).await
}
