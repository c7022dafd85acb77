//! Projects made by `cargo arbor new`, built as the root package's throwaway crates are.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A `cargo` whose `PATH` starts with a folder holding this build of `cargo-arbor`.
pub fn cargo(bin: &Path, dir: &Path) -> Command {
    let path = std::env::join_paths(
        std::iter::once(bin.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(dir)
        .env("PATH", path)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(WORKSPACE).join("target/throwaway"),
        )
        // As the throwaway crates build: their artifacts are this project's.
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("RUSTFLAGS");
    command
}

/// A folder holding this build of `cargo-arbor`, as `cargo install` would leave it: with it on
/// the `PATH`, `cargo arbor` runs it.
pub fn installed_cli() -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_cargo-arbor"),
        bin.path().join("cargo-arbor"),
    )
    .unwrap();
    bin
}
