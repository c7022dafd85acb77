//! The harness of `tests/user_crate_build.rs`: user crates written to temporary directories,
//! built with a real `cargo build` into one shared target directory, and the binaries they
//! build served and queried with the shared HTTP client (`tests/common/http.rs`).
//!
//! Every crate lives in a fresh temporary directory with its own `[workspace]` table and a copy
//! of this workspace's `Cargo.lock`, and every one of them builds into the same target
//! directory, `target/throwaway`, with the same dependencies and features: axum and tokio
//! compile once (the first run takes a minute or more on two cores), after that each scenario
//! only compiles its own small crate. Scenarios take [`cargo_lock`] (a mutex, and a file lock in
//! `target/throwaway` against other processes running these tests), so they may run on parallel
//! threads. Set `CARGO_NET_OFFLINE=true` to forbid cargo from touching the network (the copied
//! lock file already pins every version).
//!
//! A failing test keeps its crate on disk and prints where it is.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::http::{Client, Reply};

/// The workspace root: the framework, the build support crate and the lock file live here.
pub const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");

/// The `src/main.rs` of every throwaway crate: `routes` prints the route table, anything else
/// serves on a free port and prints that port first.
pub const MAIN_RS: &str = r#"arbor::routes!();

#[tokio::main]
async fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("routes") {
        for route in routes::ROUTES {
            println!("{} {} {}", route.method, route.path, route.file);
        }
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    arbor::serve(listener, routes::router()).await
}
"#;

pub const BUILD_RS: &str = "fn main() { arbor_build::compile(); }\n";

// ---------------------------------------------------------------------------------------------
// Crates, written and built.
// ---------------------------------------------------------------------------------------------

/// Serializes the scenarios of this file: they share one target directory.
static CARGO: Mutex<()> = Mutex::new(());

/// Held for a whole scenario: no other scenario builds, in this process or in another one
/// running this file at the same time (a concurrent `cargo test --workspace`). Same-named
/// throwaway crates from two processes share their artifacts in `target/throwaway`, so their
/// builds, fingerprints and binaries must not interleave.
pub struct CargoLock {
    _in_process: MutexGuard<'static, ()>,
    _across_processes: fs::File,
}

pub fn cargo_lock() -> CargoLock {
    // A failed scenario poisons the mutex; the others still have to run.
    let in_process = CARGO.lock().unwrap_or_else(PoisonError::into_inner);
    let target = target_dir();
    fs::create_dir_all(&target).unwrap();
    let path = target.join(".arbor-throwaway.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    if file.try_lock().is_err() {
        step("waiting for another process that is running these tests");
        file.lock()
            .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    }
    CargoLock {
        _in_process: in_process,
        _across_processes: file,
    }
}

pub fn step(message: &str) {
    eprintln!("[user crate] {message}");
}

pub fn workspace() -> &'static Path {
    Path::new(WORKSPACE)
}

/// Shared by every throwaway crate, so dependencies compile once.
pub fn target_dir() -> PathBuf {
    workspace().join("target").join("throwaway")
}

/// A route file answering `GET` with a fixed text.
pub fn text_route(text: &str) -> String {
    format!("pub async fn GET() -> &'static str {{\n    {text:?}\n}}\n")
}

/// A TOML string holding `path`.
pub fn toml_path(path: &Path) -> String {
    let path = path.to_str().expect("the workspace path is UTF-8");
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

# A workspace of its own: not a member of the workspace that runs the test.
[workspace]

# Every throwaway crate has exactly these dependencies and features, so that they all share
# the compiled dependencies in `target/throwaway`.
[dependencies]
arbor = {{ path = {arbor} }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
tokio = {{ version = "1", features = ["rt-multi-thread", "macros", "net", "signal", "sync", "time"] }}

[build-dependencies]
arbor-build = {{ path = {arbor_build} }}

[profile.dev]
debug = false
"#,
        arbor = toml_path(&workspace().join("framework")),
        arbor_build = toml_path(&workspace().join("build-support")),
    )
}

/// A crate in a fresh temporary directory, deleted on drop unless the test failed.
pub struct Crate {
    pub name: &'static str,
    dir: PathBuf,
}

impl Crate {
    pub fn new(name: &'static str, files: &[(&str, &str)]) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "arbor-{name}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let krate = Self { name, dir };
        krate.write("Cargo.toml", &manifest(name));
        krate.write("build.rs", BUILD_RS);
        krate.write("src/main.rs", MAIN_RS);
        fs::copy(workspace().join("Cargo.lock"), krate.dir.join("Cargo.lock"))
            .expect("copying the workspace Cargo.lock");
        for (path, contents) in files {
            krate.write(path, contents);
        }
        step(&format!("{name}: crate written to {}", krate.dir.display()));
        krate
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Writes a file (creating its folders) and makes sure cargo sees it as changed.
    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        self.mark_changed(relative);
    }

    /// Removes a file or a folder.
    pub fn remove(&self, relative: &str) {
        let path = self.path(relative);
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        self.mark_changed(parent(relative));
    }

    pub fn rename(&self, from: &str, to: &str) {
        fs::rename(self.path(from), self.path(to)).unwrap();
        self.mark_changed(parent(from));
        self.mark_changed(parent(to));
    }

    /// Cargo re-runs the build script when something under the routes folder is newer than its
    /// last run. On a file system with coarse timestamps, a change made right after a build
    /// could carry the same timestamp as the build; instead of sleeping, the changed file or
    /// folder then gets the smallest timestamp the file system can store that is later than
    /// the end of the last build (recorded in `.last-build`). On file systems with nanosecond
    /// timestamps, nothing ever needs adjusting.
    pub fn mark_changed(&self, relative: &str) {
        let Ok(last_build) = fs::metadata(self.path(".last-build")).and_then(|m| m.modified())
        else {
            return;
        };
        let path = self.path(relative);
        if mtime(&path) > last_build {
            return;
        }
        let file = fs::File::open(&path).unwrap();
        for later in [
            1,
            1_000,
            1_000_000,
            10_000_000,
            100_000_000,
            1_000_000_000,
            2_000_000_000,
        ] {
            file.set_modified(last_build + Duration::from_nanos(later))
                .unwrap_or_else(|e| panic!("setting the mtime of {}: {e}", path.display()));
            if mtime(&path) > last_build {
                step(&format!(
                    "{}: {relative} had the timestamp of the last build (coarse clock); moved it {later}ns later",
                    self.name
                ));
                return;
            }
        }
        panic!(
            "could not give {} a timestamp later than the last build",
            path.display()
        );
    }

    /// `cargo build` (`-v` when `verbose`) into the shared target directory.
    pub fn build(&self, verbose: bool) -> Build {
        let target = target_dir();
        if !target.join("debug").exists() {
            step("first build into target/throwaway: compiling axum, tokio and arbor once (a few minutes on 2 cores)");
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut command = Command::new(cargo);
        command.arg("build");
        if verbose {
            command.arg("-v");
        }
        command
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &target)
            // Intermediate artifacts stay in the target directory, where the tests look.
            .env_remove("CARGO_BUILD_BUILD_DIR")
            .env("CARGO_TERM_COLOR", "never")
            // A panicking build script would print a hint naming RUST_BACKTRACE, which the
            // diagnostics scenarios check is absent; a backtrace setting would hide it.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null());
        let command_line = format!("cargo build{}", if verbose { " -v" } else { "" });
        let started = Instant::now();
        let output = command.output().expect("running cargo");
        let elapsed = started.elapsed();
        fs::write(self.path(".last-build"), "").unwrap();
        step(&format!(
            "{}: `{command_line}` finished in {:.1}s ({})",
            self.name,
            elapsed.as_secs_f64(),
            output.status
        ));
        Build {
            what: format!("`{command_line}` of {}", self.name),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn binary(&self) -> PathBuf {
        target_dir()
            .join("debug")
            .join(format!("{}{}", self.name, std::env::consts::EXE_SUFFIX))
    }

    /// `routes::ROUTES` of the built binary, one `METHOD /url file` line each.
    pub fn routes(&self) -> BTreeSet<String> {
        let output = Command::new(self.binary())
            .arg("routes")
            .stdin(Stdio::null())
            .output()
            .expect("running the throwaway binary");
        assert!(
            output.status.success(),
            "`{} routes` failed: {}\n{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn serve(&self) -> Server {
        Server::start(&self.binary())
    }

    /// The `arbor_routes.rs` that the build script of this crate wrote into its `OUT_DIR`.
    pub fn generated_file(&self) -> PathBuf {
        let build_dir = target_dir().join("debug").join("build");
        let prefix = format!("{}-", self.name);
        let here = self.dir.to_str().unwrap();
        let found: Vec<PathBuf> = fs::read_dir(&build_dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
            .map(|entry| entry.path().join("out").join("arbor_routes.rs"))
            .filter(|file| fs::read_to_string(file).is_ok_and(|code| code.contains(here)))
            .collect();
        match found.as_slice() {
            [one] => one.clone(),
            _ => panic!(
                "expected one generated arbor_routes.rs for {} under {}, found {found:?}",
                self.dir.display(),
                build_dir.display()
            ),
        }
    }
}

impl Drop for Crate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[user crate] {}: test failed, keeping the crate at {}",
                self.name,
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn parent(relative: &str) -> &str {
    relative.rsplit_once('/').map_or("", |(parent, _)| parent)
}

pub fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("reading the mtime of {}: {e}", path.display()))
}

pub fn assert_routes(krate: &Crate, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|&line| line.to_owned()).collect();
    let actual = krate.routes();
    assert!(
        actual == expected,
        "routes::ROUTES of {} is not what the route files say.\nmissing: {:#?}\nunexpected: {:#?}",
        krate.name,
        expected.difference(&actual).collect::<Vec<_>>(),
        actual.difference(&expected).collect::<Vec<_>>()
    );
}

/// The outcome of one `cargo build`.
pub struct Build {
    what: String,
    status: ExitStatus,
    stderr: String,
}

impl Build {
    pub fn fail(&self, problem: &str) -> ! {
        panic!(
            "{}: {problem}\n--- cargo stderr ({}) ---\n{}\n--- end of cargo stderr ---",
            self.what, self.status, self.stderr
        )
    }

    pub fn expect_success(&self) {
        if !self.status.success() {
            self.fail("expected the build to succeed");
        }
    }

    pub fn expect_failure(&self) {
        if self.status.success() {
            self.fail("expected the build to fail");
        }
    }

    pub fn expect_stderr_contains(&self, needle: &str) {
        if !self.stderr.contains(needle) {
            self.fail(&format!("expected stderr to contain `{needle}`"));
        }
    }

    pub fn expect_stderr_lacks(&self, needle: &str) {
        if self.stderr.contains(needle) {
            self.fail(&format!("expected stderr not to contain `{needle}`"));
        }
    }

    /// Lines of `cargo -v` output, without their right-aligned status padding.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.stderr.lines().map(str::trim_start)
    }

    /// `cargo build -v` printed `Fresh <crate>`, and neither compiled it nor ran anything for it
    /// (its build script included).
    pub fn expect_fresh(&self, name: &str) {
        let fresh = format!("Fresh {name} v0.1.0");
        if !self.lines().any(|line| line.starts_with(&fresh)) {
            self.fail(&format!("expected a `{fresh}` line"));
        }
        for status in ["Dirty", "Compiling"] {
            let rebuilt = format!("{status} {name} v0.1.0");
            if self.lines().any(|line| line.starts_with(&rebuilt)) {
                self.fail(&format!("expected no `{rebuilt}` line"));
            }
        }
        if let Some(line) = self
            .lines()
            .find(|line| line.starts_with("Running") && line.contains(name))
        {
            self.fail(&format!(
                "expected cargo to run nothing for `{name}`, but it ran: {line}"
            ));
        }
    }

    /// `cargo build -v` ran the crate's build script (`Running .../build-script-build`).
    pub fn expect_build_script_ran(&self, name: &str) {
        let ran = self.lines().any(|line| {
            line.starts_with("Running")
                && line.contains(&format!("{name}-"))
                && line.contains("build-script-build")
        });
        if !ran {
            self.fail(&format!(
                "expected cargo to re-run the build script of `{name}`"
            ));
        }
    }

    /// Whether `cargo build -v` invoked rustc on the crate itself.
    pub fn ran_rustc_for(&self, name: &str) -> bool {
        let crate_name = format!("--crate-name {name} ");
        self.lines()
            .any(|line| line.starts_with("Running") && line.contains(&crate_name))
    }
}

// ---------------------------------------------------------------------------------------------
// The built server, queried with the shared HTTP client.
// ---------------------------------------------------------------------------------------------

/// A running binary of a user crate, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(binary: &Path) -> Self {
        let mut child = Command::new(binary)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            // Keep draining so that the server never writes into a closed pipe.
            for _ in lines {}
        });
        let first_line = receiver.recv_timeout(Duration::from_secs(30));
        let port = match first_line {
            Ok(Some(Ok(ref line))) => line.trim().parse::<u16>().ok(),
            _ => None,
        };
        let Some(port) = port else {
            let status = child.try_wait();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not print its port on stdout (first line: {first_line:?}, status: {status:?})",
                binary.display()
            );
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // reqwest's client must be built inside a runtime.
        let client = runtime.block_on(async { Client::new(format!("http://127.0.0.1:{port}")) });
        Self {
            child,
            port,
            client,
            runtime,
        }
    }

    /// Sends `method path` with no body and reads the whole answer (30 seconds at most).
    pub fn request(&self, method: &str, path: &str) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = self
            .client
            .request(method, path)
            .timeout(Duration::from_secs(30));
        self.runtime.block_on(self.client.send(request))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
