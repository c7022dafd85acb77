//! A server process on the shared socket: started with the socket as fd 3, told of build
//! failures on its standard input, stopped with SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::build::BuildFailure;
use super::Event;

pub(crate) struct Server {
    pid: Pid,
    stdin: Option<ChildStdin>,
    exited: Arc<AtomicBool>,
    exit: Receiver<std::io::Result<ExitStatus>>,
}

impl Server {
    pub(crate) fn start(
        executable: &Path,
        args: &[String],
        root: &Path,
        listener: &TcpListener,
        generation: u64,
        events: Sender<Event>,
    ) -> std::io::Result<Self> {
        let socket: OwnedFd = listener.try_clone()?.into();
        let mut command = Command::new(executable);
        command
            .args(args)
            .current_dir(root)
            .env("ARBOR_DEV", "1")
            // systemd's socket activation: one socket, at fd 3, for whichever process reads it.
            .env("LISTEN_FDS", "1")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .stdin(Stdio::piped())
            .fd_mappings(vec![FdMapping {
                parent_fd: socket,
                child_fd: 3,
            }])
            .map_err(|_| std::io::Error::other("fd 3 is taken twice"))?;
        let mut child: Child = command.spawn()?;
        let pid = Pid::from_raw(i32::try_from(child.id()).map_err(std::io::Error::other)?);
        let stdin = child.stdin.take();
        let exited = Arc::new(AtomicBool::new(false));
        let (exit_sender, exit) = mpsc::sync_channel(1);
        let flag = exited.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            flag.store(true, Ordering::SeqCst);
            let _ = exit_sender.send(status);
            let _ = events.send(Event::ServerExited(generation));
        });
        Ok(Self {
            pid,
            stdin,
            exited,
            exit,
        })
    }

    /// Waits until the server answers a request (`GET /livez`) on the socket, or exits.
    ///
    /// The connection cannot be refused: the socket stays open, and the request waits in its
    /// queue until the new server accepts it.
    pub(crate) fn wait_until_answering(&self, address: SocketAddr) -> bool {
        let target = super::reachable(address);
        let Ok(mut stream) = TcpStream::connect(target) else {
            return false;
        };
        let request = format!("GET /livez HTTP/1.1\r\nhost: {target}\r\nconnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err()
            || stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .is_err()
        {
            return false;
        }
        let mut first = [0u8; 1];
        loop {
            match stream.read(&mut first) {
                Ok(n) => return n == 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.exited.load(Ordering::SeqCst) {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exited.load(Ordering::SeqCst)
    }

    /// Tells the server that the last build failed (or, with `None`, that it no longer does).
    pub(crate) fn report(&mut self, failure: Option<&BuildFailure>) {
        let Some(stdin) = &mut self.stdin else { return };
        let line = serde_json::to_string(&failure).unwrap_or_else(|_| "null".into());
        if writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .is_err()
        {
            self.stdin = None;
        }
    }

    /// SIGTERM, then the server's graceful shutdown for at most `grace`, then SIGKILL.
    pub(crate) fn stop(self, grace: Duration) {
        if self.exited.load(Ordering::SeqCst) {
            return;
        }
        let _ = kill(self.pid, Signal::SIGTERM);
        if self.exit.recv_timeout(grace).is_err() {
            super::say(&format!(
                "the server did not stop within {} s: killed",
                grace.as_secs()
            ));
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = self.exit.recv();
        }
    }
}
