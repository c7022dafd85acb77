//! `cargo arbor` as a user runs it: a new project, a route added to it, the route table, a
//! conflicting route refused with the build's own message and nothing written.
//!
//! Building and serving the new project is left to the build of the project itself (see
//! `docs/cli.md`); here every command runs on the files, as an editor or a hook would.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

mod project;

fn cargo_arbor(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-arbor"))
        .arg("arbor")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn new_route_routes_and_check_work_on_a_new_project() {
    let workspace = tempfile::tempdir().unwrap();
    let created = cargo_arbor(workspace.path(), &["new", "my-api"]);
    assert!(created.status.success(), "{}", text(&created));
    let project = workspace.path().join("my-api");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/lib.rs",
        "src/main.rs",
        "app/api/hello/route.rs",
        "tests/hello.rs",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let again = cargo_arbor(workspace.path(), &["new", "my-api"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    let route = cargo_arbor(&project, &["route", "users/[id]", "--methods", "GET,patch"]);
    assert!(route.status.success(), "{}", text(&route));
    let source = std::fs::read_to_string(project.join("app/api/users/[id]/route.rs")).unwrap();
    // Formatted as `cargo fmt` would.
    let check = Command::new("rustfmt")
        .args(["--check", "--edition", "2021"])
        .arg(project.join("app/api/users/[id]/route.rs"))
        .status()
        .unwrap();
    assert!(check.success(), "{source}");
    assert!(source.contains("pub id: String,"), "{source}");
    assert!(source.contains("pub async fn PATCH("), "{source}");
    let test = std::fs::read_to_string(project.join("tests/route_users_id.rs")).unwrap();
    assert!(test.contains("my_api::app()"), "{test}");
    assert!(test.contains("\"/api/users/1\""), "{test}");

    let check = cargo_arbor(&project, &["check"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("2 route files, 3 handlers: valid"),
        "{}",
        text(&check)
    );

    let routes = cargo_arbor(&project, &["routes", "--json"]);
    assert!(routes.status.success(), "{}", text(&routes));
    let table: serde_json::Value = serde_json::from_slice(&routes.stdout).unwrap();
    let rows: Vec<String> = table
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{} {}",
                row["method"].as_str().unwrap(),
                row["url"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "GET /api/hello",
            "GET /api/users/[id]",
            "PATCH /api/users/[id]"
        ]
    );

    // `[userId]` beside `[id]`: the build's own error, naming both files; nothing written.
    let conflict = cargo_arbor(&project, &["route", "users/[userId]/posts"]);
    assert!(!conflict.status.success());
    let message = text(&conflict);
    assert!(
        message.contains("[id]") && message.contains("[userId]"),
        "{message}"
    );
    assert!(message.contains("nothing was written"), "{message}");
    assert!(!project.join("app/api/users/[userId]").exists());
    let check = cargo_arbor(&project, &["check"]);
    assert!(check.status.success(), "{}", text(&check));

    // `fmt` reaches route files, which `cargo fmt` does not.
    let hello = project.join("app/api/hello/route.rs");
    std::fs::write(&hello, "pub async fn GET()->&'static str{\"hi\"}\n").unwrap();
    let unformatted = cargo_arbor(&project, &["fmt", "--check"]);
    assert_eq!(unformatted.status.code(), Some(1), "{}", text(&unformatted));
    let formatted = cargo_arbor(&project, &["fmt"]);
    assert!(formatted.status.success(), "{}", text(&formatted));
    assert_eq!(
        std::fs::read_to_string(&hello).unwrap(),
        "pub async fn GET() -> &'static str {\n    \"hi\"\n}\n"
    );
    assert!(cargo_arbor(&project, &["fmt", "--check"]).status.success());

    // A broken route file fails `check` with the build's message and exit status 1.
    std::fs::write(project.join("app/api/hello/route.rs"), "pub fn GET() {}\n").unwrap();
    let broken = cargo_arbor(&project, &["check"]);
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(text(&broken).contains("async"), "{}", text(&broken));
}

/// `--full`: a database, accounts with sessions, notes; its own tests pass as written, against
/// a real (in-memory) SQLite database.
#[test]
fn a_full_project_builds_and_passes_its_own_tests() {
    let bin = project::installed_cli();
    let workspace = tempfile::tempdir().unwrap();
    let created = project::cargo(bin.path(), workspace.path())
        .args(["arbor", "new", "--full", "notes-api"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", text(&created));
    let project = workspace.path().join("notes-api");
    let formatted = cargo_arbor(&project, &["fmt", "--check"]);
    assert!(formatted.status.success(), "{}", text(&formatted));
    let tested = project::cargo(bin.path(), &project)
        .args(["test", "--quiet"])
        .output()
        .unwrap();
    assert!(tested.status.success(), "{}", text(&tested));
    let report = text(&tested);
    assert!(report.contains("3 passed"), "{report}");
}
