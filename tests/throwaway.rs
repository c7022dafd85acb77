//! End-to-end tests that build throwaway crates with a real `cargo build`, exactly as a user's
//! crate is built: `arbor` and `arbor-build` as path dependencies, a one-line `build.rs`, route
//! files under `app/api`.
//!
//! Every throwaway crate lives in a fresh temporary directory with its own `[workspace]` table
//! and a copy of this workspace's `Cargo.lock`, and every one of them builds into the same
//! target directory, `target/throwaway`, with the same dependencies and features: axum and
//! tokio compile once (the first run takes a minute or more on two cores), after that each
//! scenario only compiles its own small crate. Scenarios take a lock (a mutex, and a file lock
//! in `target/throwaway` against other processes running this file), so the tests may run on
//! parallel threads. Set `CARGO_NET_OFFLINE=true` to forbid cargo from touching the network
//! (the copied lock file already pins every version).
//!
//! Run with `cargo test -p arbor-app --test throwaway -- --nocapture` to watch the progress.
//! A failing test keeps its throwaway crate on disk and prints where it is.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The workspace root: the framework, the build support crate and the lock file live here.
const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");

/// The `src/main.rs` of every throwaway crate: `routes` prints the route table, anything else
/// serves on a free port and prints that port first.
const MAIN_RS: &str = r#"arbor::routes!();

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

const BUILD_RS: &str = "fn main() { arbor_build::compile(); }\n";

// ---------------------------------------------------------------------------------------------
// Scenario 1: routing conflicts end the build with every file named.
// ---------------------------------------------------------------------------------------------

#[test]
fn conflicting_routes_fail_the_build_naming_every_file() {
    let _cargo = cargo_lock();
    step("scenario 1: two routing conflicts must fail `cargo build` and name all four files");
    let krate = Crate::new(
        "throwaway_conflicts",
        &[
            ("app/api/(a)/login/route.rs", &text_route("login a")),
            ("app/api/(b)/login/route.rs", &text_route("login b")),
            ("app/api/users/[id]/route.rs", &text_route("a user")),
            (
                "app/api/users/[userId]/posts/route.rs",
                &text_route("posts"),
            ),
        ],
    );

    let build = krate.build(false);
    build.expect_failure();
    build.expect_stderr_contains("failed to run custom build command for `throwaway_conflicts");
    build.expect_stderr_contains("error: two route files resolve to the same URL `/api/login`");
    build.expect_stderr_contains(
        "error: you cannot use different parameter names for the same dynamic path ('id' !== 'userId') under `/api/users`",
    );
    for file in [
        "app/api/(a)/login/route.rs",
        "app/api/(b)/login/route.rs",
        "app/api/users/[id]/route.rs",
        "app/api/users/[userId]/posts/route.rs",
    ] {
        build.expect_stderr_contains(&format!("--> {file}"));
    }
    build.expect_stderr_contains("error: arbor could not generate the router: 2 routing errors");
    build.expect_stderr_lacks("panicked");
    build.expect_stderr_lacks("RUST_BACKTRACE");
    step("scenario 1: passed");
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: the quickstart serves every kind of segment over real TCP.
// ---------------------------------------------------------------------------------------------

const USER_ROUTE: &str = r#"use arbor::{Json, Path};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct Params {
    id: String,
}

pub async fn GET(Path(params): Path<Params>) -> Json<Value> {
    Json(json!({ "user": params.id }))
}
"#;

const FILES_ROUTE: &str = r#"use arbor::{Json, Path};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct Params {
    path: Vec<String>,
}

pub async fn GET(Path(params): Path<Params>) -> Json<Value> {
    Json(json!({ "segments": params.path }))
}
"#;

const DOCS_ROUTE: &str = r#"use arbor::{Json, Path};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct Params {
    slug: Option<Vec<String>>,
}

pub async fn GET(Path(params): Path<Params>) -> Json<Value> {
    Json(json!({ "slug": params.slug }))
}
"#;

#[test]
fn quickstart_crate_serves_every_segment_kind_over_tcp() {
    let _cargo = cargo_lock();
    step("scenario 2: a quickstart crate with every segment kind, served over TCP");
    let krate = Crate::new(
        "throwaway_quickstart",
        &[
            (
                "app/api/hello/route.rs",
                &text_route("hello from a throwaway crate"),
            ),
            ("app/api/users/[id]/route.rs", USER_ROUTE),
            ("app/api/files/[...path]/route.rs", FILES_ROUTE),
            ("app/api/docs/[[...slug]]/route.rs", DOCS_ROUTE),
            ("app/api/(shop)/cart/route.rs", &text_route("cart")),
            ("app/api/_private/secret/route.rs", &text_route("secret")),
            ("app/api/%5Finternal/route.rs", &text_route("internal")),
        ],
    );
    krate.build(false).expect_success();

    step("scenario 2: routes::ROUTES lists every route but the private one");
    assert_routes(
        &krate,
        &[
            "GET /api/hello app/api/hello/route.rs",
            "GET /api/users/[id] app/api/users/[id]/route.rs",
            "GET /api/files/[...path] app/api/files/[...path]/route.rs",
            "GET /api/docs/[[...slug]] app/api/docs/[[...slug]]/route.rs",
            "GET /api/cart app/api/(shop)/cart/route.rs",
            "GET /api/_internal app/api/%5Finternal/route.rs",
        ],
    );

    let server = krate.serve();
    step(&format!(
        "scenario 2: server listening on 127.0.0.1:{}",
        server.port
    ));

    // Static segment, with the automatic HEAD, OPTIONS and 405.
    server
        .request("GET", "/api/hello")
        .expect(200, "hello from a throwaway crate");
    let head = server.request("HEAD", "/api/hello");
    head.expect(200, "");
    let options = server.request("OPTIONS", "/api/hello");
    options.expect_status(204);
    options.expect_header("allow", "GET, HEAD, OPTIONS");
    let not_allowed = server.request("DELETE", "/api/hello");
    not_allowed.expect_status(405);
    not_allowed.expect_header("allow", "GET, HEAD, OPTIONS");
    not_allowed.expect_json_error("METHOD_NOT_ALLOWED");

    // `[id]`.
    server
        .request("GET", "/api/users/42")
        .expect_json(200, &json!({ "user": "42" }));
    server
        .request("GET", "/api/users/42/extra")
        .expect_json_error("NOT_FOUND");

    // `[...path]`: one or more segments, each decoded on its own.
    server
        .request("GET", "/api/files/a/b%2Fc/d")
        .expect_json(200, &json!({ "segments": ["a", "b/c", "d"] }));
    server
        .request("GET", "/api/files")
        .expect_json_error("NOT_FOUND");

    // `[[...slug]]`: zero or more segments; absent when nothing matched.
    server
        .request("GET", "/api/docs")
        .expect_json(200, &json!({ "slug": null }));
    server
        .request("GET", "/api/docs/getting/started")
        .expect_json(200, &json!({ "slug": ["getting", "started"] }));

    // `(group)`: not part of the URL.
    server.request("GET", "/api/cart").expect(200, "cart");
    server
        .request("GET", "/api/(shop)/cart")
        .expect_json_error("NOT_FOUND");

    // `_private`: never routed, answered with the JSON 404.
    let private = server.request("GET", "/api/_private/secret");
    private.expect_json_error("NOT_FOUND");
    server
        .request("GET", "/api/secret")
        .expect_json_error("NOT_FOUND");

    // `%5Finternal`: a URL segment that starts with `_`.
    server
        .request("GET", "/api/_internal")
        .expect(200, "internal");

    server
        .request("GET", "/api/nothing-here")
        .expect_json_error("NOT_FOUND");
    drop(server);
    step("scenario 2: passed");
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: incremental builds follow route changes, without `cargo clean`.
// ---------------------------------------------------------------------------------------------

#[test]
fn incremental_builds_follow_route_changes() {
    let _cargo = cargo_lock();
    step(
        "scenario 3: incremental builds (no cargo clean) follow added, removed and renamed routes",
    );
    let name = "throwaway_incremental";
    let krate = Crate::new(
        name,
        &[
            ("app/api/hello/route.rs", &text_route("hello")),
            ("app/api/gone/route.rs", &text_route("soon gone")),
            ("app/api/old-name/route.rs", &text_route("renamed")),
        ],
    );
    krate.build(false).expect_success();
    assert_routes(
        &krate,
        &[
            "GET /api/hello app/api/hello/route.rs",
            "GET /api/gone app/api/gone/route.rs",
            "GET /api/old-name app/api/old-name/route.rs",
        ],
    );

    step("scenario 3a: a second build with nothing changed is fresh");
    let build = krate.build(true);
    build.expect_success();
    build.expect_fresh(name);

    step("scenario 3a': a file that is not a route re-runs codegen, which leaves the generated file alone");
    let generated = krate.generated_file();
    let before = (fs::read_to_string(&generated).unwrap(), mtime(&generated));
    krate.write("app/api/notes.md", "Not a route.\n");
    let build = krate.build(true);
    build.expect_success();
    build.expect_build_script_ran(name);
    let after = (fs::read_to_string(&generated).unwrap(), mtime(&generated));
    assert!(
        before.0 == after.0,
        "the generated file changed although no route did:\n--- before\n{}\n--- after\n{}",
        before.0,
        after.0
    );
    assert!(
        before.1 == after.1,
        "`{}` was rewritten with the same content (mtime {:?} -> {:?}): arbor-build should only write it when it changes",
        generated.display(),
        before.1,
        after.1
    );
    let recompiled = build.ran_rustc_for(name);
    step(&format!(
        "scenario 3a': generated file untouched; cargo {} the crate itself (a re-run build script always makes cargo rebuild its package)",
        if recompiled { "still recompiled" } else { "did not recompile" }
    ));

    step("scenario 3b: adding a route folder adds the route");
    krate.write("app/api/added/route.rs", &text_route("added"));
    let build = krate.build(true);
    build.expect_success();
    build.expect_build_script_ran(name);
    assert_routes(
        &krate,
        &[
            "GET /api/hello app/api/hello/route.rs",
            "GET /api/gone app/api/gone/route.rs",
            "GET /api/old-name app/api/old-name/route.rs",
            "GET /api/added app/api/added/route.rs",
        ],
    );
    {
        let server = krate.serve();
        server.request("GET", "/api/added").expect(200, "added");
    }

    step("scenario 3c: removing a route folder removes the route");
    krate.remove("app/api/gone");
    krate.build(false).expect_success();
    assert_routes(
        &krate,
        &[
            "GET /api/hello app/api/hello/route.rs",
            "GET /api/old-name app/api/old-name/route.rs",
            "GET /api/added app/api/added/route.rs",
        ],
    );

    step("scenario 3d: renaming a route folder changes the URL");
    krate.rename("app/api/old-name", "app/api/new-name");
    krate.build(false).expect_success();
    assert_routes(
        &krate,
        &[
            "GET /api/hello app/api/hello/route.rs",
            "GET /api/new-name app/api/new-name/route.rs",
            "GET /api/added app/api/added/route.rs",
        ],
    );
    {
        let server = krate.serve();
        server
            .request("GET", "/api/new-name")
            .expect(200, "renamed");
        server
            .request("GET", "/api/old-name")
            .expect_json_error("NOT_FOUND");
        server
            .request("GET", "/api/gone")
            .expect_json_error("NOT_FOUND");
    }

    step("scenario 3e: exporting a new method from an existing route file adds it");
    krate.write(
        "app/api/hello/route.rs",
        &format!(
            "{}\npub async fn POST() -> &'static str {{\n    \"posted\"\n}}\n",
            text_route("hello")
        ),
    );
    krate.build(false).expect_success();
    assert_routes(
        &krate,
        &[
            "GET /api/hello app/api/hello/route.rs",
            "POST /api/hello app/api/hello/route.rs",
            "GET /api/new-name app/api/new-name/route.rs",
            "GET /api/added app/api/added/route.rs",
        ],
    );
    {
        let server = krate.serve();
        server.request("POST", "/api/hello").expect(200, "posted");
        let options = server.request("OPTIONS", "/api/hello");
        options.expect_status(204);
        options.expect_header("allow", "GET, HEAD, POST, OPTIONS");
    }

    step("scenario 3f: after all that, a build with nothing changed is fresh again");
    let build = krate.build(true);
    build.expect_success();
    build.expect_fresh(name);
    step("scenario 3: passed");
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: errors inside route files point at the file, line and column.
// ---------------------------------------------------------------------------------------------

/// `let x = ;` puts the syntax error at line 4, column 13.
const SYNTAX_ERROR_ROUTE: &str = "use arbor::Json;

pub async fn GET() -> Json<u32> {
    let x = ;
    Json(x)
}
";

/// `GET` is at line 9, column 14; the folder gives `userId`, the struct wants `id`.
const MISMATCHED_PARAMS_ROUTE: &str = r#"use arbor::Path;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Params {
    id: String,
}

pub async fn GET(Path(params): Path<Params>) -> String {
    format!("user {}", params.id)
}
"#;

const MATCHING_PARAMS_ROUTE: &str = r#"use arbor::Path;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Params {
    #[serde(rename = "userId")]
    user_id: String,
}

pub async fn GET(Path(params): Path<Params>) -> String {
    format!("user {}", params.user_id)
}
"#;

#[test]
fn route_errors_fail_with_file_line_and_folder() {
    let _cargo = cargo_lock();
    step("scenario 4: a syntax error fails with file:line:col");
    let krate = Crate::new(
        "throwaway_diagnostics",
        &[
            ("app/api/hello/route.rs", &text_route("hello")),
            ("app/api/broken/route.rs", SYNTAX_ERROR_ROUTE),
        ],
    );
    let build = krate.build(false);
    build.expect_failure();
    build.expect_stderr_contains("error: could not parse `route.rs`");
    build.expect_stderr_contains("--> app/api/broken/route.rs:4:13");
    build.expect_stderr_contains("error: arbor could not generate the router: 1 routing error");
    build.expect_stderr_lacks("panicked");
    build.expect_stderr_lacks("RUST_BACKTRACE");

    step("scenario 4: a `Path<Params>` whose field does not match the folder fails naming both");
    krate.write("app/api/broken/route.rs", &text_route("fixed"));
    krate.write("app/api/users/[userId]/route.rs", MISMATCHED_PARAMS_ROUTE);
    let build = krate.build(false);
    build.expect_failure();
    build.expect_stderr_lacks("could not parse");
    build.expect_stderr_contains(
        "error: `Path<Params>` in `GET` does not match the folders `app/api/users/[userId]`",
    );
    build.expect_stderr_contains("field `id` is not provided by the path");
    build.expect_stderr_contains("parameter `userId` has no field");
    build.expect_stderr_contains("--> app/api/users/[userId]/route.rs:9:14");
    build.expect_stderr_contains("error: arbor could not generate the router: 1 routing error");
    build.expect_stderr_lacks("panicked");
    build.expect_stderr_lacks("RUST_BACKTRACE");

    step("scenario 4: renaming the field to match the folder fixes the build");
    krate.write("app/api/users/[userId]/route.rs", MATCHING_PARAMS_ROUTE);
    krate.build(false).expect_success();
    assert_routes(
        &krate,
        &[
            "GET /api/hello app/api/hello/route.rs",
            "GET /api/broken app/api/broken/route.rs",
            "GET /api/users/[userId] app/api/users/[userId]/route.rs",
        ],
    );
    let server = krate.serve();
    server.request("GET", "/api/users/7").expect(200, "user 7");
    server.request("GET", "/api/broken").expect(200, "fixed");
    drop(server);
    step("scenario 4: passed");
}

// ---------------------------------------------------------------------------------------------
// Scenario 5: type errors of handlers and folder middleware name the user's file.
// ---------------------------------------------------------------------------------------------

/// `std::fs::File` is not an extractor.
const NOT_A_HANDLER_ROUTE: &str = "pub async fn GET(_file: std::fs::File) -> &'static str {
    \"never\"
}
";

/// A folder `middleware` fn without `Request, Next`.
const WRONG_FOLDER_MIDDLEWARE: &str = "pub async fn middleware(user_id: u32) -> String {
    format!(\"user {user_id}\")
}
";

const FOLDER_MIDDLEWARE: &str = "use arbor::{Next, Request, Response};

pub async fn middleware(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(\"x-folder\", arbor::http::HeaderValue::from_static(\"auth\"));
    response
}
";

#[test]
fn type_errors_name_the_route_file() {
    let _cargo = cargo_lock();
    step(
        "scenario 5: a handler that is not a handler and a folder middleware fn of the wrong shape",
    );
    let krate = Crate::new(
        "throwaway_type_errors",
        &[
            ("app/api/files/route.rs", NOT_A_HANDLER_ROUTE),
            ("app/api/(auth)/middleware.rs", WRONG_FOLDER_MIDDLEWARE),
            ("app/api/(auth)/me/route.rs", &text_route("me")),
        ],
    );
    let build = krate.build(false);
    build.expect_failure();
    // rustc reports in the generated file (the check is there), so the message must name the
    // user's file and fn.
    build.expect_stderr_contains(
        "{route_files::GET}` exported by `app/api/files/route.rs` is not a handler",
    );
    build.expect_stderr_contains(
        "{middleware}` in `app/api/(auth)/middleware.rs` cannot be used as folder middleware",
    );
    build.expect_stderr_contains("each argument of a handler must be an extractor");
    // One error each: no cascade into axum's own bounds.
    build.expect_stderr_contains("due to 2 previous errors");
    build.expect_stderr_lacks("Handler<_, _>` is not satisfied");
    build.expect_stderr_lacks("Service<");

    step("scenario 5: fixing both builds and serves through the folder middleware");
    krate.write("app/api/files/route.rs", &text_route("files"));
    krate.write("app/api/(auth)/middleware.rs", FOLDER_MIDDLEWARE);
    krate.build(false).expect_success();
    let server = krate.serve();
    let me = server.request("GET", "/api/me");
    me.expect(200, "me");
    me.expect_header("x-folder", "auth");
    // The automatic answers sit inside the folder middleware too.
    server
        .request("OPTIONS", "/api/me")
        .expect_header("x-folder", "auth");
    server.request("GET", "/api/files").expect(200, "files");
    drop(server);
    step("scenario 5: passed");
}

// ---------------------------------------------------------------------------------------------
// Scenario 6: `REVALIDATE` without arbor's `cache` feature names the file and the fix.
// ---------------------------------------------------------------------------------------------

#[test]
fn revalidate_without_the_cache_feature_names_the_file() {
    let _cargo = cargo_lock();
    step("scenario 6: REVALIDATE with `default-features = false`");
    let route = format!(
        "pub const REVALIDATE: u64 = 60;\n\n{}",
        text_route("cached")
    );
    let krate = Crate::new("throwaway_no_cache", &[("app/api/news/route.rs", &route)]);
    let arbor = format!(
        "arbor = {{ path = {} }}",
        toml_path(&workspace().join("framework"))
    );
    let manifest = manifest(krate.name);
    assert!(manifest.contains(&arbor), "{manifest}");
    krate.write(
        "Cargo.toml",
        &manifest.replace(
            &arbor,
            &format!(
                "arbor = {{ path = {}, default-features = false }}",
                toml_path(&workspace().join("framework"))
            ),
        ),
    );
    let build = krate.build(false);
    build.expect_failure();
    build.expect_stderr_contains(
        "error: `app/api/news/route.rs` exports `REVALIDATE`, which caches `GET` responses, but arbor's `cache` feature is off",
    );
    build.expect_stderr_contains("features = [\"cache\"]");
    build.expect_stderr_contains("due to 1 previous error");

    step("scenario 6: with the feature back on, the route builds and caches");
    krate.write("Cargo.toml", &manifest);
    krate.build(false).expect_success();
    let server = krate.serve();
    server.request("GET", "/api/news").expect(200, "cached");
    server
        .request("GET", "/api/news")
        .expect_header("x-cache", "HIT");
    drop(server);
    step("scenario 6: passed");
}

// ---------------------------------------------------------------------------------------------
// Throwaway crates.
// ---------------------------------------------------------------------------------------------

/// Serializes the scenarios of this file: they share one target directory.
static CARGO: Mutex<()> = Mutex::new(());

/// Held for a whole scenario: no other scenario builds, in this process or in another one
/// running this file at the same time (a concurrent `cargo test --workspace`). Same-named
/// throwaway crates from two processes share their artifacts in `target/throwaway`, so their
/// builds, fingerprints and binaries must not interleave.
struct CargoLock {
    _in_process: MutexGuard<'static, ()>,
    _across_processes: fs::File,
}

fn cargo_lock() -> CargoLock {
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

fn step(message: &str) {
    eprintln!("[throwaway] {message}");
}

fn workspace() -> &'static Path {
    Path::new(WORKSPACE)
}

/// Shared by every throwaway crate, so dependencies compile once.
fn target_dir() -> PathBuf {
    workspace().join("target").join("throwaway")
}

/// A route file answering `GET` with a fixed text.
fn text_route(text: &str) -> String {
    format!("pub async fn GET() -> &'static str {{\n    {text:?}\n}}\n")
}

/// A TOML string holding `path`.
fn toml_path(path: &Path) -> String {
    let path = path.to_str().expect("the workspace path is UTF-8");
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
}

fn manifest(name: &str) -> String {
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
struct Crate {
    name: &'static str,
    dir: PathBuf,
}

impl Crate {
    fn new(name: &'static str, files: &[(&str, &str)]) -> Self {
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

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Writes a file (creating its folders) and makes sure cargo sees it as changed.
    fn write(&self, relative: &str, contents: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        self.mark_changed(relative);
    }

    /// Removes a file or a folder.
    fn remove(&self, relative: &str) {
        let path = self.path(relative);
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        self.mark_changed(parent(relative));
    }

    fn rename(&self, from: &str, to: &str) {
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
    fn mark_changed(&self, relative: &str) {
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
    fn build(&self, verbose: bool) -> Build {
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

    fn binary(&self) -> PathBuf {
        target_dir()
            .join("debug")
            .join(format!("{}{}", self.name, std::env::consts::EXE_SUFFIX))
    }

    /// `routes::ROUTES` of the built binary, one `METHOD /url file` line each.
    fn routes(&self) -> BTreeSet<String> {
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

    fn serve(&self) -> Server {
        Server::start(&self.binary())
    }

    /// The `arbor_routes.rs` that the build script of this crate wrote into its `OUT_DIR`.
    fn generated_file(&self) -> PathBuf {
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
                "[throwaway] {}: test failed, keeping the crate at {}",
                self.name,
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn parent(relative: &str) -> &str {
    relative.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("reading the mtime of {}: {e}", path.display()))
}

fn assert_routes(krate: &Crate, expected: &[&str]) {
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
struct Build {
    what: String,
    status: ExitStatus,
    stderr: String,
}

impl Build {
    fn fail(&self, problem: &str) -> ! {
        panic!(
            "{}: {problem}\n--- cargo stderr ({}) ---\n{}\n--- end of cargo stderr ---",
            self.what, self.status, self.stderr
        )
    }

    fn expect_success(&self) {
        if !self.status.success() {
            self.fail("expected the build to succeed");
        }
    }

    fn expect_failure(&self) {
        if self.status.success() {
            self.fail("expected the build to fail");
        }
    }

    fn expect_stderr_contains(&self, needle: &str) {
        if !self.stderr.contains(needle) {
            self.fail(&format!("expected stderr to contain `{needle}`"));
        }
    }

    fn expect_stderr_lacks(&self, needle: &str) {
        if self.stderr.contains(needle) {
            self.fail(&format!("expected stderr not to contain `{needle}`"));
        }
    }

    /// Lines of `cargo -v` output, without their right-aligned status padding.
    fn lines(&self) -> impl Iterator<Item = &str> {
        self.stderr.lines().map(str::trim_start)
    }

    /// `cargo build -v` printed `Fresh <crate>`, and neither compiled it nor ran anything for it
    /// (its build script included).
    fn expect_fresh(&self, name: &str) {
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
    fn expect_build_script_ran(&self, name: &str) {
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
    fn ran_rustc_for(&self, name: &str) -> bool {
        let crate_name = format!("--crate-name {name} ");
        self.lines()
            .any(|line| line.starts_with("Running") && line.contains(&crate_name))
    }
}

// ---------------------------------------------------------------------------------------------
// The built server, and HTTP/1.1 over a plain TcpStream.
// ---------------------------------------------------------------------------------------------

/// A running throwaway binary, killed on drop.
struct Server {
    child: Child,
    port: u16,
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
        let mut server = Self { child, port: 0 };
        match port {
            Some(port) => server.port = port,
            None => {
                let status = server.child.try_wait();
                panic!(
                    "{} did not print its port on stdout (first line: {first_line:?}, status: {status:?})",
                    binary.display()
                );
            }
        }
        server
    }

    /// Sends one request on a fresh connection and reads the whole response.
    fn request(&self, method: &str, path: &str) -> Response {
        let what = format!("{method} {path}");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("{what}: connecting to 127.0.0.1:{}: {e}", self.port));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .unwrap_or_else(|e| panic!("{what}: reading the response: {e}"));
        Response::parse(what, &raw)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    what: String,
    raw: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn parse(what: String, raw: &[u8]) -> Self {
        let raw = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{what}: not an HTTP response:\n{raw}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{what}: bad status line `{status_line}`:\n{raw}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Self {
            what,
            status,
            headers,
            body,
            raw,
        }
    }

    fn fail(&self, problem: &str) -> ! {
        panic!(
            "{}: {problem}\n--- response ---\n{}\n--- end of response ---",
            self.what, self.raw
        )
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    fn expect_status(&self, status: u16) {
        if self.status != status {
            self.fail(&format!("expected status {status}, got {}", self.status));
        }
    }

    fn expect(&self, status: u16, body: &str) {
        self.expect_status(status);
        if self.body != body {
            self.fail(&format!("expected the body {body:?}, got {:?}", self.body));
        }
    }

    fn expect_header(&self, name: &str, value: &str) {
        if self.header(name) != Some(value) {
            self.fail(&format!(
                "expected `{name}: {value}`, got {:?}",
                self.header(name)
            ));
        }
    }

    fn json(&self) -> Value {
        if !self
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            self.fail("expected a JSON content type");
        }
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| self.fail(&format!("the body is not JSON: {e}")))
    }

    fn expect_json(&self, status: u16, expected: &Value) {
        self.expect_status(status);
        let actual = self.json();
        if &actual != expected {
            self.fail(&format!("expected the JSON {expected}, got {actual}"));
        }
    }

    /// A JSON error of Arbor's shape: `{ "error": CODE, "message": ... }`, with the status the
    /// code stands for.
    fn expect_json_error(&self, code: &str) {
        let status = match code {
            "NOT_FOUND" => 404,
            "METHOD_NOT_ALLOWED" => 405,
            other => panic!("no status known for {other}"),
        };
        self.expect_status(status);
        let body = self.json();
        if body["error"] != code || !body["message"].is_string() {
            self.fail(&format!(
                "expected {{\"error\": \"{code}\", \"message\": ..}}, got {body}"
            ));
        }
    }
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|e| panic!("bad chunk size `{size}`: {e}"));
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}
