//! `cargo arbor fmt`: route files are modules of generated code (`#[path]` in `OUT_DIR`), out
//! of `cargo fmt`'s reach; this formats them with rustfmt, as `cargo fmt` would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `cargo arbor fmt`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Change nothing; exit status 1 when a file is not formatted (for CI and hooks).
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, String> {
    let root = crate::crate_root()?;
    let mut files = Vec::new();
    rust_files(&root.join("app/api"), &mut files)?;
    if files.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    files.sort();
    let mut rustfmt = std::process::Command::new("rustfmt");
    rustfmt.args(["--edition", "2021"]);
    if args.check {
        rustfmt.args(["--check", "-l"]);
    }
    let status = rustfmt
        .args(&files)
        .status()
        .map_err(|e| format!("could not run rustfmt (rustup component add rustfmt): {e}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            rust_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    Ok(())
}
