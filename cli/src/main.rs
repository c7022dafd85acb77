//! `cargo arbor`: start a project, add routes, list and check them, print the contract.
//!
//! ```text
//! cargo install --path cli          # from an Arbor checkout
//! cargo arbor new my-api            # a project that builds, serves and passes its test
//! cargo arbor route 'users/[id]' --methods GET,PATCH
//! cargo arbor dev                   # serve, rebuild and restart on save, no refused connection
//! cargo arbor routes [--json]       # the route table, without building the app
//! cargo arbor check                 # route validation only, for editors and CI
//! cargo arbor fmt [--check]         # rustfmt on the route files (out of `cargo fmt`'s reach)
//! cargo arbor openapi [--diff OLD]  # the app's contract (runs `cargo run -- openapi`)
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod dev;
mod fmt;
mod new;
mod route;
mod routes;

/// Cargo runs `cargo-arbor arbor <args>` for `cargo arbor <args>`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo")]
enum Cargo {
    /// Arbor's project tool.
    #[command(subcommand)]
    Arbor(Command),
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates a project: Cargo.toml, build.rs, the production `App`, one route, one test.
    New(new::Args),
    /// Adds a route file (and its test) at a folder path such as `users/[id]`.
    Route(route::Args),
    /// Builds and serves the app, and rebuilds and restarts it on every change, on a listening
    /// socket that stays open across restarts (`HOST`, `PORT` as `cargo run`).
    Dev(dev::Args),
    /// Prints the route table the build would generate, without building the app.
    Routes(routes::Args),
    /// Validates the routes as the build does; exit status 1 when there is a mistake.
    Check(check::Args),
    /// Formats the route files under `app/api`, which `cargo fmt` does not reach.
    Fmt(fmt::Args),
    /// Prints the app's API contract, or (`--diff OLD.json`) the breaking changes since
    /// `OLD.json`, by running the app's own `openapi` command (`cargo run -- openapi`).
    Openapi {
        /// An older document to compare against.
        #[arg(long, value_name = "OLD.json")]
        diff: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Cargo::Arbor(command) = Cargo::parse();
    let result = match command {
        Command::New(args) => new::run(&args),
        Command::Route(args) => route::run(&args),
        Command::Dev(args) => dev::run(&args),
        Command::Routes(args) => routes::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Openapi { diff } => openapi(diff),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The contract comes from the app's own types, so only the app can print it.
fn openapi(diff: Option<PathBuf>) -> Result<ExitCode, String> {
    let mut command = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    command.args(["run", "--quiet", "--", "openapi"]);
    if let Some(old) = diff {
        command.arg("--diff").arg(old);
    }
    let status = command
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The crate root: the nearest folder up from here with a `Cargo.toml`.
fn crate_root() -> Result<PathBuf, String> {
    let here = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    here.ancestors()
        .find(|dir| dir.join("Cargo.toml").is_file())
        .map(PathBuf::from)
        .ok_or_else(|| format!("no Cargo.toml in {} or above it", here.display()))
}

/// The crate's `Cargo.toml`, read as cargo does.
fn manifest(root: &std::path::Path) -> Option<toml::Table> {
    std::fs::read_to_string(root.join("Cargo.toml"))
        .ok()?
        .parse()
        .ok()
}

/// The routes folder and URL prefix of the crate: arbor-build's defaults.
fn builder(root: &std::path::Path) -> arbor_build::Builder {
    let mut builder = arbor_build::Builder::new();
    builder.manifest_dir(root).emit_rerun_if_changed(false);
    builder
}
