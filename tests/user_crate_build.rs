//! The build step end to end: user crates built with a real `cargo build`, exactly as a
//! user's crate is built (`arbor` and `arbor-build` as path dependencies, a one-line
//! `build.rs`, route files under `app/api`). Routing mistakes must fail the build naming every
//! file, a quickstart crate must serve every segment kind over TCP, incremental builds must
//! follow route changes without `cargo clean`, errors inside route files must point at the
//! file, line and column, and a sample of random route trees that validate must compile and
//! route as the model says.
//!
//! The harness (writing crates, the shared target directory `target/throwaway`, running cargo
//! and the built binaries) is `tests/user_crate/mod.rs`. Run with
//! `cargo test -p arbor-app --test user_crate_build -- --nocapture` to watch the progress.

#![allow(clippy::unwrap_used)]

mod common;
mod user_crate;

use std::fs;

use serde_json::json;
use user_crate::{
    assert_routes, cargo_lock, manifest, mtime, step, text_route, toml_path, workspace, Crate,
};

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
    not_allowed.error(405, "METHOD_NOT_ALLOWED");

    // `[id]`.
    server
        .request("GET", "/api/users/42")
        .expect_json(200, &json!({ "user": "42" }));
    server
        .request("GET", "/api/users/42/extra")
        .error(404, "NOT_FOUND");

    // `[...path]`: one or more segments, each decoded on its own.
    server
        .request("GET", "/api/files/a/b%2Fc/d")
        .expect_json(200, &json!({ "segments": ["a", "b/c", "d"] }));
    server.request("GET", "/api/files").error(404, "NOT_FOUND");

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
        .error(404, "NOT_FOUND");

    // `_private`: never routed, answered with the JSON 404.
    let private = server.request("GET", "/api/_private/secret");
    private.error(404, "NOT_FOUND");
    server.request("GET", "/api/secret").error(404, "NOT_FOUND");

    // `%5Finternal`: a URL segment that starts with `_`.
    server
        .request("GET", "/api/_internal")
        .expect(200, "internal");

    server
        .request("GET", "/api/nothing-here")
        .error(404, "NOT_FOUND");
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
            .error(404, "NOT_FOUND");
        server.request("GET", "/api/gone").error(404, "NOT_FOUND");
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
// Scenario 6: random route trees that validate compile, and route as the model says.
// ---------------------------------------------------------------------------------------------

/// Folder names of every kind, repeated across trees so that routes collide and nest.
const FOLDERS: &[&str] = &[
    "a",
    "b",
    "users",
    "%5Fx",
    "(g)",
    "(h)",
    "[id]",
    "[slug]",
    "[...rest]",
    "[[...opt]]",
];

/// Random trees (a deterministic generator: a failure replays) of 3 to 8 routes each, until
/// `count` of them validate; each as its route files' folder paths.
fn valid_random_trees(count: usize) -> Vec<Vec<String>> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random = move |below: u64| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    };
    let mut trees = Vec::new();
    for _ in 0..10_000 {
        let routes: Vec<String> = (0..3 + random(6))
            .map(|_| {
                let depth = random(4);
                let folders: Vec<&str> = (0..depth)
                    .map(|_| FOLDERS[random(FOLDERS.len() as u64) as usize])
                    .collect();
                folders.join("/")
            })
            .collect();
        let scratch = tempfile::tempdir().unwrap();
        for folders in &routes {
            let dir = scratch.path().join("app/api").join(folders);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("route.rs"), "pub async fn GET() {}\n").unwrap();
        }
        let mut builder = arbor_build::Builder::new();
        builder
            .manifest_dir(scratch.path())
            .emit_rerun_if_changed(false);
        let distinct: std::collections::BTreeSet<&String> = routes.iter().collect();
        if builder.route_table().is_ok() && distinct.len() >= 3 {
            trees.push(distinct.into_iter().cloned().collect());
            if trees.len() == count {
                return trees;
            }
        }
    }
    panic!("fewer than {count} valid trees in 10,000");
}

/// A URL the route's pattern matches, with values that no static folder uses.
fn concrete_url(pattern: &str) -> String {
    let url: String = pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|segment| match segment {
            s if s.starts_with("{*") => "/v1/v2".to_owned(),
            s if s.starts_with('{') => "/v0".to_owned(),
            s => format!("/{s}"),
        })
        .collect();
    url
}

#[test]
fn random_route_trees_that_validate_compile_and_route_as_the_model_says() {
    let _cargo = cargo_lock();
    step("scenario 6: random valid route trees built with cargo and served");
    let trees = valid_random_trees(2);
    let krate = Crate::new("throwaway_random_trees", &[]);
    for (number, tree) in trees.iter().enumerate() {
        step(&format!("scenario 6: tree {number}: {tree:?}"));
        let _ = fs::remove_dir_all(krate.path("app"));
        // Each route answers with its own folder path, so a request shows which route took it.
        for folders in tree {
            let file = format!("app/api/{folders}/route.rs").replace("api//", "api/");
            krate.write(
                &file,
                &format!("pub async fn GET() -> &'static str {{\n    {folders:?}\n}}\n"),
            );
        }
        krate.build(false).expect_success();
        let mut builder = arbor_build::Builder::new();
        builder
            .manifest_dir(krate.path(""))
            .emit_rerun_if_changed(false);
        let table = builder.route_table().unwrap();
        let server = krate.serve();
        for route in &table.routes {
            let folders = route
                .file
                .to_string_lossy()
                .trim_start_matches("app/api")
                .trim_start_matches('/')
                .trim_end_matches("route.rs")
                .trim_end_matches('/')
                .to_owned();
            for pattern in route.axum_patterns("/api") {
                let url = concrete_url(&pattern);
                let reply = server.request("GET", &url);
                reply.expect(200, &folders);
            }
        }
        drop(server);
    }
    step("scenario 6: passed");
}
