//! The promise about route trees that the property test (`build-support/tests/properties.rs`)
//! and the `route_tree` fuzz target check, one copy for both (included with `#[path]`).

// `pub` for the fuzz crate, which re-exports it.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use arbor_build::{Builder, Error, RouteTable};
use axum::body::Body;
use axum::routing::get;
use tower::ServiceExt;

/// Writes a `route.rs` in each folder path under `root/app/api` and scans the tree.
fn scan(root: &Path, routes: &[Vec<&str>]) -> Result<RouteTable, Error> {
    for folders in routes {
        let dir = folders
            .iter()
            .fold(root.join("app/api"), |dir, folder| dir.join(folder));
        if std::fs::create_dir_all(&dir).is_err() {
            continue; // a name this file system refuses (too long in bytes, say)
        }
        std::fs::write(dir.join("route.rs"), "pub async fn GET() {}\n").unwrap();
    }
    let mut builder = Builder::new();
    builder.manifest_dir(root).emit_rerun_if_changed(false);
    builder.route_table()
}

/// A URL the pattern matches. Static folders are in the pattern percent-encoded already; the
/// parameters' values use lowercase hex (`%0a`), which that encoding never writes, so that no
/// static folder can take them.
fn concrete_url(pattern: &str) -> String {
    let mut url = String::new();
    for segment in pattern.split('/').filter(|s| !s.is_empty()) {
        url.push('/');
        if segment.starts_with("{*") {
            url.push_str("%0av1/%0av2");
        } else if segment.starts_with('{') {
            url.push_str("%0av0");
        } else {
            url.push_str(segment);
        }
    }
    if url.is_empty() {
        url.push('/');
    }
    url
}

/// A tree of route files (folder paths) is refused with errors naming the files, or: every
/// pattern goes into an axum router without a panic, each route's URL reaches that route, and
/// the generated source parses.
pub fn routes_as_the_model_says(routes: &[Vec<&str>]) {
    let root = tempfile::tempdir().unwrap();
    let table = match scan(root.path(), routes) {
        Err(error) => {
            assert!(error.to_string().contains("app/api"), "{error}");
            return;
        }
        Ok(table) => table,
    };
    // axum panics on conflicting or malformed patterns: none may reach it.
    let mut router = axum::Router::new();
    for (index, route) in table.routes.iter().enumerate() {
        for pattern in route.axum_patterns("") {
            router = router.route(&pattern, get(move || async move { index.to_string() }));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (index, route) in table.routes.iter().enumerate() {
        for pattern in route.axum_patterns("") {
            let url = concrete_url(&pattern);
            let request = http::Request::get(&url).body(Body::empty()).unwrap();
            let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
            let body = runtime
                .block_on(http_body_util::BodyExt::collect(response.into_body()))
                .unwrap()
                .to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&body),
                index.to_string(),
                "{url} ({}) answered for another route",
                route.display_url("")
            );
        }
    }
    let mut builder = Builder::new();
    builder
        .manifest_dir(root.path())
        .emit_rerun_if_changed(false);
    let source = builder.generate().unwrap();
    assert!(syn::parse_file(&source).is_ok(), "{source}");
}
