//! The TypeScript client generated from the reference app's contract: it compiles with
//! `tsc --strict`, misuses of it do not, and a Node.js script calls the running app through
//! it (create a user, log in, read it back, get a typed validation error).
//!
//! `tests/run.sh` installs TypeScript from npm and names its `tsc` in `ARBOR_TSC`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Backend, Server};

/// `tsc`, or `None` (the test is skipped) outside the test command.
fn tsc() -> Option<PathBuf> {
    match std::env::var_os("ARBOR_TSC") {
        Some(tsc) => Some(tsc.into()),
        None if std::env::var_os("ARBOR_REQUIRE_TSC").is_some() => {
            panic!("ARBOR_TSC is not set: run the tests with `bash tests/run.sh`")
        }
        None => {
            eprintln!("skipped: ARBOR_TSC is not set (tests/run.sh sets it)");
            None
        }
    }
}

/// A TypeScript project in a temporary folder: the generated client, the given test files,
/// and the test's `tsconfig.json`.
fn project(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let client = arbor::openapi::typescript_client(arbor_app::routes::openapi().document());
    std::fs::write(dir.path().join("client.ts"), client).unwrap();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/typescript");
    for file in files.iter().chain(&["tsconfig.json"]) {
        std::fs::copy(sources.join(file), dir.path().join(file)).unwrap();
    }
    // ES modules, for the top-level `await`.
    std::fs::write(dir.path().join("package.json"), r#"{ "type": "module" }"#).unwrap();
    dir
}

fn compile(tsc: &Path, project: &Path) -> Output {
    Command::new(tsc).arg("-p").arg(project).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_client_compiles_strictly_and_calls_the_app() {
    let Some(tsc) = tsc() else {
        return;
    };
    let project = project(&["smoke.ts"]);
    let compiled = compile(&tsc, project.path());
    assert!(compiled.status.success(), "tsc: {}", text(&compiled));

    let server = Server::start(Backend::Sqlite).await;
    let script = project.path().join("out/smoke.js");
    let base = server.base.clone();
    let ran = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(script).arg(base).output().unwrap()
    })
    .await
    .unwrap();
    let output = text(&ran);
    assert!(ran.status.success(), "node: {output}");
    for step in [
        "registered ts-",
        "logged in, token of",
        "read back ts-",
        "refused with 400 VALIDATION_ERROR",
    ] {
        assert!(output.contains(step), "{step:?} missing from: {output}");
    }
    // The validation error's details came through typed as they were sent.
    assert!(output.contains("fieldErrors"), "{output}");
}

#[test]
fn misusing_the_client_does_not_compile() {
    let Some(tsc) = tsc() else {
        return;
    };
    let project = project(&["misuse.ts"]);
    let compiled = compile(&tsc, project.path());
    let output = text(&compiled);
    assert!(!compiled.status.success(), "{output}");
    // One error per misuse, each at its line of misuse.ts.
    for (line, what) in [
        (7, "the body of the wrong shape"),
        (9, "the missing path parameter"),
        (12, "the data before narrowing"),
    ] {
        assert!(
            output.contains(&format!("misuse.ts({line},")),
            "{what} (line {line}) was not refused: {output}"
        );
    }
}
