//! One build: the route check, then `cargo build`, read through its JSON messages.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Args;

/// A build's result and how long it took.
pub(crate) struct Build {
    pub(crate) outcome: Outcome,
    pub(crate) took: Duration,
}

pub(crate) enum Outcome {
    /// The server's executable.
    Built(PathBuf),
    Failed(BuildFailure),
}

/// The first error of a failed build, as the server shows it (`arbor`'s `dev` module reads
/// this shape).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BuildFailure {
    pub(crate) message: String,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
    pub(crate) column: Option<u32>,
    /// Every error, as the compiler printed them, without colours.
    pub(crate) rendered: String,
}

impl BuildFailure {
    /// `message (file:line:column)`: the same words as the server's `BUILD_FAILED` answer
    /// (`arbor`'s `dev` module), so the terminal, the stand-in and the server agree.
    pub(crate) fn summary(&self) -> String {
        match (&self.file, self.line, self.column) {
            (Some(file), Some(line), Some(column)) => {
                format!("{} ({file}:{line}:{column})", self.message)
            }
            (Some(file), Some(line), None) => format!("{} ({file}:{line})", self.message),
            (Some(file), None, _) => format!("{} ({file})", self.message),
            (None, ..) => self.message.clone(),
        }
    }
}

/// The running cargo, so that Ctrl-C ends the build rather than waiting for it.
static CARGO: AtomicU32 = AtomicU32::new(0);
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Ends the build under way, if any, and every build after it.
pub(crate) fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
    let pid = CARGO.load(Ordering::SeqCst);
    if let Ok(pid) = i32::try_from(pid) {
        if pid != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

pub(crate) fn cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

pub(crate) fn run(root: &Path, args: &Args) -> Result<Build, String> {
    let started = Instant::now();
    // The route check is the build script's own, and takes milliseconds: a routing mistake
    // needs no cargo run to be found, and comes back with its files.
    if let Err(error) = crate::builder(root).route_table() {
        eprintln!("{error}");
        let first = error.diagnostics().first();
        let location = first.and_then(|d| d.locations().first());
        let failure = BuildFailure {
            message: first.map_or_else(|| error.to_string(), |d| d.message().to_owned()),
            file: location.map(|l| l.file.clone()),
            line: location
                .and_then(|l| l.line_col)
                .and_then(|(l, _)| u32::try_from(l).ok()),
            column: location
                .and_then(|l| l.line_col)
                .and_then(|(_, c)| u32::try_from(c).ok()),
            rendered: error.to_string(),
        };
        return Ok(Build {
            outcome: Outcome::Failed(failure),
            took: started.elapsed(),
        });
    }
    let outcome = cargo_build(root, args)?;
    Ok(Build {
        outcome,
        took: started.elapsed(),
    })
}

fn cargo_build(root: &Path, args: &Args) -> Result<Outcome, String> {
    let colour = std::io::stderr().is_terminal();
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .arg("build")
        .arg(if colour {
            "--message-format=json-diagnostic-rendered-ansi"
        } else {
            "--message-format=json"
        })
        .arg(format!(
            "--color={}",
            if colour { "always" } else { "never" }
        ))
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if args.release {
        command.arg("--release");
    }
    if let Some(bin) = &args.bin {
        command.args(["--bin", bin]);
    }
    let mut cargo = command
        .spawn()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    CARGO.store(cargo.id(), Ordering::SeqCst);
    if cancelled() {
        cancel();
    }

    // cargo's own lines (progress, build script failures) pass through, and are kept for a
    // failure that has no compiler message.
    let stderr = cargo.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut kept = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.push_str(&line);
                kept.push('\n');
            }
            kept
        })
    });

    // cargo reports canonical manifest paths; canonicalized once here, not per message.
    let manifest = root.join("Cargo.toml");
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let mut executables = Vec::new();
    let mut errors: Vec<CompilerMessage> = Vec::new();
    let mut success = false;
    if let Some(stdout) = cargo.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(message) = serde_json::from_str::<CargoMessage>(&line) else {
                continue;
            };
            match message {
                CargoMessage::CompilerMessage { message } => {
                    if let Some(rendered) = &message.rendered {
                        eprint!("{rendered}");
                    }
                    if message.level == "error" {
                        errors.push(message);
                    }
                }
                CargoMessage::CompilerArtifact {
                    target,
                    executable: Some(executable),
                    manifest_path,
                } if target.kind.iter().any(|kind| kind == "bin") && manifest_path == manifest => {
                    executables.push((target.name, executable));
                }
                CargoMessage::BuildFinished { success: finished } => success = finished,
                _ => {}
            }
        }
    }
    let _ = std::io::stderr().flush();
    let status = cargo.wait().map_err(|e| format!("cargo: {e}"))?;
    CARGO.store(0, Ordering::SeqCst);
    let cargo_output = stderr.and_then(|t| t.join().ok()).unwrap_or_default();

    if success && status.success() {
        return choose_executable(executables, root).map(Outcome::Built);
    }
    let mut failure = failure(&errors, &cargo_output);
    // Route modules are included by absolute path; the crate's own files read better relative.
    if let Some(file) = &failure.file {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        if let Ok(relative) = Path::new(file).strip_prefix(&root) {
            failure.file = Some(relative.display().to_string());
        }
    }
    Ok(Outcome::Failed(failure))
}

/// The package's binary: the only one, or the one named like the package.
fn choose_executable(mut built: Vec<(String, PathBuf)>, root: &Path) -> Result<PathBuf, String> {
    if built.len() == 1 {
        return Ok(built.remove(0).1);
    }
    if built.is_empty() {
        return Err(format!(
            "{} has no binary to serve: add src/main.rs (see `cargo arbor new`)",
            root.display()
        ));
    }
    let manifest = crate::manifest(root);
    let package = manifest.as_ref().and_then(|m| m.get("package"));
    // `cargo run` picks `default-run`, else the binary named like the package.
    let default = package
        .and_then(|p| p.get("default-run").or_else(|| p.get("name")))
        .and_then(|name| name.as_str())
        .unwrap_or_default();
    let names: Vec<&str> = built.iter().map(|(name, _)| name.as_str()).collect();
    let chosen = built.iter().position(|(name, _)| name == default);
    match chosen {
        Some(index) => Ok(built.remove(index).1),
        None => Err(format!(
            "the package has several binaries ({}): choose one with `--bin NAME`",
            names.join(", ")
        )),
    }
}

/// The first compiler error, with every error's text; or, when cargo failed before the
/// compiler (a build script, the manifest), the `error` lines cargo printed.
fn failure(errors: &[CompilerMessage], cargo_output: &str) -> BuildFailure {
    match errors.first() {
        Some(first) => {
            let span = first.spans.iter().find(|span| span.is_primary);
            BuildFailure {
                message: first.message.clone(),
                file: span.map(|s| s.file_name.clone()),
                line: span.map(|s| s.line_start),
                column: span.map(|s| s.column_start),
                rendered: errors
                    .iter()
                    .filter_map(|e| e.rendered.as_deref())
                    .map(strip_ansi)
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
        }
        None => {
            let output = strip_ansi(cargo_output);
            let start = output.find("error").unwrap_or(0);
            let rendered = output[start..].trim_end().to_owned();
            let message = rendered
                .lines()
                .next()
                .unwrap_or("cargo build failed")
                .trim_start_matches("error: ")
                .to_owned();
            // A build script's error (the route check's among them) names its file as rustc
            // does: `--> path:line:column`.
            let place = rendered
                .lines()
                .find_map(|line| line.trim_start().strip_prefix("--> "))
                .map(|place| {
                    let mut parts = place.trim().split(':');
                    let file = parts.next().unwrap_or_default().to_owned();
                    let line = parts.next().and_then(|n| n.parse().ok());
                    let column = parts.next().and_then(|n| n.parse().ok());
                    (file, line, column)
                });
            BuildFailure {
                message,
                file: place.as_ref().map(|p| p.0.clone()),
                line: place.as_ref().and_then(|p| p.1),
                column: place.as_ref().and_then(|p| p.2),
                rendered,
            }
        }
    }
}

/// The text without terminal colour codes (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for code in chars.by_ref() {
                if code.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The parts of cargo's JSON messages read here.
#[derive(Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
enum CargoMessage {
    CompilerMessage {
        message: CompilerMessage,
    },
    CompilerArtifact {
        target: Target,
        executable: Option<PathBuf>,
        manifest_path: PathBuf,
    },
    BuildFinished {
        success: bool,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

#[derive(Deserialize)]
struct CompilerMessage {
    message: String,
    level: String,
    spans: Vec<Span>,
    rendered: Option<String>,
}

#[derive(Deserialize)]
struct Span {
    file_name: String,
    line_start: u32,
    column_start: u32,
    is_primary: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compiler_error_names_its_primary_span() {
        let line = r#"{"reason":"compiler-message","package_id":"x","manifest_path":"/x/Cargo.toml","target":{"name":"x","kind":["lib"]},"message":{"message":"mismatched types","level":"error","code":{"code":"E0308"},"spans":[{"file_name":"src/other.rs","line_start":1,"column_start":1,"is_primary":false},{"file_name":"app/api/hello/route.rs","line_start":7,"column_start":5,"is_primary":true}],"rendered":"\u001b[1merror[E0308]\u001b[0m: mismatched types\n"}}"#;
        let CargoMessage::CompilerMessage { message } = serde_json::from_str(line).unwrap() else {
            panic!("not a compiler message");
        };
        let failure = failure(&[message], "");
        assert_eq!(
            failure.summary(),
            "mismatched types (app/api/hello/route.rs:7:5)"
        );
        assert_eq!(failure.rendered, "error[E0308]: mismatched types\n");
    }

    #[test]
    fn a_build_script_error_is_read_from_cargo_output() {
        let output = "   Compiling my-api v0.1.0\n\x1b[31merror\x1b[0m: failed to run custom build command for `my-api v0.1.0`\n\nerror: two route files resolve to the same URL `/api/a`\n  --> app/api/(x)/a/route.rs\n  --> app/api/a/route.rs\n";
        let failure = failure(&[], output);
        assert_eq!(
            failure.message,
            "failed to run custom build command for `my-api v0.1.0`"
        );
        assert_eq!(failure.file.as_deref(), Some("app/api/(x)/a/route.rs"));
        assert_eq!(failure.line, None);
        assert!(
            failure.rendered.starts_with("error: failed"),
            "{}",
            failure.rendered
        );
    }
}
