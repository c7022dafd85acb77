//! `cargo arbor dev`: build, serve, and on every saved change rebuild and restart, on one
//! listening socket that outlives the servers.
//!
//! The socket is bound here and handed to each server as file descriptor 3 (`LISTEN_FDS=1`, as
//! systemd and `systemfd` do; `arbor::listener_from_env` takes it). A restart stops the old
//! server gracefully before the new one starts, and connections made in between wait in the
//! socket's queue instead of being refused. A failed build leaves the last good server running:
//! it is told the failure on its standard input and answers with it (`arbor::App` under
//! `ARBOR_DEV`), until a fix builds. While no server runs at all (the first build, a crash),
//! [`fallback`] answers in its place.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

mod build;
mod fallback;
mod server;
mod watch;

use build::{BuildFailure, Outcome};
use fallback::{Fallback, FallbackAnswer};
use server::Server;

/// `cargo arbor dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The binary to serve, when the package has several.
    #[arg(long)]
    bin: Option<String>,
    /// Build with the release profile.
    #[arg(long)]
    release: bool,
    /// How long a change waits for more changes before the rebuild starts, in milliseconds:
    /// an editor's "save all" or a `git checkout` is one rebuild.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    debounce: u64,
    /// How long a server gets to finish its requests when it is replaced, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    grace: u64,
    /// Arguments for the server, after `--`.
    #[arg(last = true)]
    server_args: Vec<String>,
}

/// What the loop waits for.
#[derive(Debug)]
pub(crate) enum Event {
    /// Files under the crate changed.
    Changed(Vec<PathBuf>),
    /// The server of this generation exited on its own (or was stopped).
    ServerExited(u64),
    /// Ctrl-C, SIGTERM or SIGHUP.
    Stop,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, String> {
    let root = crate::crate_root()?;
    let listener = bind_from_env()?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("the listening socket has no address: {e}"))?;
    say(&format!(
        "listening on http://{address}, across restarts (Ctrl-C stops)"
    ));

    let (events, received) = mpsc::channel();
    let on_signal = events.clone();
    ctrlc::set_handler(move || {
        build::cancel();
        let _ = on_signal.send(Event::Stop);
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let _watcher = watch::start(&root, events.clone())?;

    let mut session = Session {
        root,
        args,
        listener,
        address,
        events,
        server: None,
        fallback: None,
        generation: 0,
    };
    session.answer_meanwhile(FallbackAnswer::Starting)?;
    let mut changed_at = Instant::now();
    loop {
        say("building");
        let build = build::run(&session.root, args)?;
        if build::cancelled() {
            break;
        }
        // A change saved during the build makes it stale: build again before serving it.
        match next_change(&received, Duration::ZERO) {
            Wait::Changed(paths) => {
                say(&format!("{} changed during the build", describe(&paths)));
                continue;
            }
            Wait::Stop => break,
            Wait::Quiet => {}
        }
        match build.outcome {
            Outcome::Built(executable) => {
                let restart = Instant::now();
                session.replace_server(&executable)?;
                say(&format!(
                    "built in {:.2} s, serving {:.0} ms later; {:.2} s from the change to served",
                    build.took.as_secs_f64(),
                    restart.elapsed().as_secs_f64() * 1e3,
                    changed_at.elapsed().as_secs_f64()
                ));
            }
            Outcome::Failed(failure) => session.report_failure(failure)?,
        }
        match wait_for_change(&received, &mut session, args)? {
            Some(at) => changed_at = at,
            None => break,
        }
    }
    session.stop();
    say("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The servers, the socket they share, and what answers while none runs.
struct Session<'a> {
    root: PathBuf,
    args: &'a Args,
    listener: TcpListener,
    address: SocketAddr,
    events: mpsc::Sender<Event>,
    server: Option<Server>,
    fallback: Option<Fallback>,
    generation: u64,
}

impl Session<'_> {
    fn replace_server(&mut self, executable: &Path) -> Result<(), String> {
        self.stop();
        self.generation += 1;
        let server = Server::start(
            executable,
            &self.args.server_args,
            &self.root,
            &self.listener,
            self.generation,
            self.events.clone(),
        )
        .map_err(|e| format!("cannot start {}: {e}", executable.display()))?;
        if !server.wait_until_answering(self.address) {
            say("the server exited before it answered a request; waiting for a change");
            self.answer_meanwhile(FallbackAnswer::Exited)?;
            return Ok(());
        }
        self.server = Some(server);
        Ok(())
    }

    fn report_failure(&mut self, failure: BuildFailure) -> Result<(), String> {
        // A server that died during the build cannot answer with the failure.
        if self.server.as_ref().is_some_and(Server::has_exited) {
            self.server = None;
        }
        let summary = failure.summary();
        // Told before the line is printed: whoever reads the line finds the failure sent.
        let consequence = match &mut self.server {
            Some(server) => {
                server.report(Some(&failure));
                "the last good build keeps serving, answering with this error until a fix builds"
            }
            None => {
                self.answer_meanwhile(FallbackAnswer::BuildFailed(failure))?;
                "answering with this error until a fix builds"
            }
        };
        say(&format!("build failed: {summary}; {consequence}"));
        Ok(())
    }

    /// Answers in place of a server until the next one starts.
    fn answer_meanwhile(&mut self, answer: FallbackAnswer) -> Result<(), String> {
        match &self.fallback {
            Some(fallback) => fallback.set(answer),
            None => {
                self.fallback = Some(
                    Fallback::start(&self.listener, self.address, answer)
                        .map_err(|e| format!("cannot answer on the socket: {e}"))?,
                );
            }
        }
        Ok(())
    }

    /// Stops whatever accepts on the socket, so that the next server is the only one.
    fn stop(&mut self) {
        if let Some(fallback) = self.fallback.take() {
            fallback.stop();
        }
        if let Some(server) = self.server.take() {
            server.stop(Duration::from_secs(self.args.grace));
        }
    }
}

enum Wait {
    Changed(Vec<PathBuf>),
    Quiet,
    Stop,
}

/// Waits for a change (and the quiet after it); a server that exits meanwhile is replaced by
/// the fallback. `None` when the loop should stop.
fn wait_for_change(
    received: &Receiver<Event>,
    session: &mut Session<'_>,
    args: &Args,
) -> Result<Option<Instant>, String> {
    loop {
        match received.recv() {
            Ok(Event::Changed(paths)) => {
                let at = Instant::now();
                let mut all = paths;
                match next_change(received, Duration::from_millis(args.debounce)) {
                    Wait::Changed(more) => all.extend(more),
                    Wait::Stop => return Ok(None),
                    Wait::Quiet => {}
                }
                say(&format!("{} changed", describe(&all)));
                return Ok(Some(at));
            }
            Ok(Event::ServerExited(generation)) if generation == session.generation => {
                if session.server.take().is_some() {
                    say("the server exited; a change rebuilds and starts it again");
                    session.answer_meanwhile(FallbackAnswer::Exited)?;
                }
            }
            Ok(Event::ServerExited(_)) => {}
            Ok(Event::Stop) | Err(_) => return Ok(None),
        }
    }
}

/// Gathers the changes that arrive with less than `quiet` between them.
fn next_change(received: &Receiver<Event>, quiet: Duration) -> Wait {
    let mut changed = Vec::new();
    loop {
        match received.recv_timeout(quiet) {
            Ok(Event::Changed(paths)) => changed.extend(paths),
            Ok(Event::ServerExited(_)) => {}
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => return Wait::Stop,
            Err(RecvTimeoutError::Timeout) if changed.is_empty() => return Wait::Quiet,
            Err(RecvTimeoutError::Timeout) => return Wait::Changed(changed),
        }
    }
}

fn describe(paths: &[PathBuf]) -> String {
    let mut names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.sort();
    names.dedup();
    match names.len() {
        1 => names.remove(0),
        n => format!("{} and {} more", names[0], n - 1),
    }
}

/// The socket `cargo run` would listen on: `HOST` (default `127.0.0.1`) and `PORT` (3000).
fn bind_from_env() -> Result<TcpListener, String> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let address = (
        host.as_str(),
        port.parse::<u16>()
            .map_err(|_| format!("PORT={port}: not a port number"))?,
    )
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| format!("HOST={host}: not an address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        None,
    )
    .and_then(|socket| {
        // Restarting `cargo arbor dev` itself must not wait out TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&address.into())?;
        // Room for the connections made while one server hands over to the next.
        socket.listen(1024)?;
        Ok(socket)
    })
    .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    Ok(socket.into())
}

/// Where this process reaches its own socket: a wildcard address (`0.0.0.0`, `::`) as the
/// loopback address of its family.
pub(crate) fn reachable(mut address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    address
}

/// One line of `cargo arbor dev`'s own, told apart from the server's output.
pub(crate) fn say(message: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;32m[arbor dev]\x1b[0m {message}");
    } else {
        eprintln!("[arbor dev] {message}");
    }
}
