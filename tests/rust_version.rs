//! The workspace's `rust-version` is true of its dependencies: no package in the resolved
//! dependency graph (`cargo metadata`, every package of `Cargo.lock`, dev and build dependencies
//! included) declares a newer `rust-version` than `[workspace.package]` does.
//!
//! The other half of the minimum, the standard library APIs the code uses, is checked by
//! clippy's `incompatible_msrv` lint, which reads the same `rust-version` (`arbor-app` inherits
//! it).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

/// `1.89`, `1.89.0` → `(1, 89, 0)`.
fn parse(version: &str) -> (u64, u64, u64) {
    let mut parts = version.trim().split('.').map(|part| {
        part.parse::<u64>()
            .unwrap_or_else(|e| panic!("rust-version `{version}`: {e}"))
    });
    let major = parts.next().unwrap();
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    assert!(parts.next().is_none(), "rust-version `{version}`");
    (major, minor, patch)
}

/// `rust-version` of `[workspace.package]` in the root `Cargo.toml`.
fn workspace_rust_version(manifest: &str) -> String {
    let mut in_section = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section {
            if let Some(value) = line
                .strip_prefix("rust-version")
                .and_then(|rest| rest.trim_start().strip_prefix('='))
            {
                return value.trim().trim_matches('"').to_owned();
            }
        }
    }
    panic!("no rust-version in [workspace.package] of Cargo.toml")
}

#[test]
fn no_dependency_needs_a_newer_rust_than_the_workspace_declares() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let declared = workspace_rust_version(&manifest);

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    let packages = metadata["packages"].as_array().unwrap();
    assert!(packages.len() > members.len(), "no dependencies listed");

    // The reference app inherits the workspace's rust-version, so clippy checks its code
    // against it.
    let app = packages
        .iter()
        .find(|p| p["name"] == "arbor-app")
        .expect("arbor-app in cargo metadata");
    assert_eq!(
        app["rust_version"].as_str(),
        Some(declared.as_str()),
        "arbor-app should have `rust-version.workspace = true`"
    );

    let mut newer: Vec<String> = packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap()))
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (parse(needs) > parse(&declared)).then(|| {
                format!(
                    "{} {} needs {needs}",
                    p["name"].as_str().unwrap_or_default(),
                    p["version"].as_str().unwrap_or_default()
                )
            })
        })
        .collect();
    newer.sort();
    assert!(
        newer.is_empty(),
        "Cargo.toml declares rust-version = \"{declared}\", but these dependencies need a newer \
         Rust; raise [workspace.package] rust-version to the highest of them:\n  {}",
        newer.join("\n  ")
    );
}

#[test]
fn rust_versions_compare_by_number() {
    assert!(parse("1.89") > parse("1.88.0"));
    assert!(parse("1.100") > parse("1.89.0"));
    assert_eq!(parse("1.89"), parse("1.89.0"));
    assert!(parse("1.89.1") > parse("1.89"));
    assert_eq!(
        workspace_rust_version("[package]\nrust-version = \"1.1\"\n[workspace.package]\nedition = \"2021\"\nrust-version = \"1.89\"\n"),
        "1.89"
    );
}
