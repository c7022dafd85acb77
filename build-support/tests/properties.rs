//! Property tests of the scanner: any folder name is classified or refused with a message
//! (never a panic), and any tree that validates becomes routes that axum accepts, where each
//! route's own URLs reach that route, and the generated source parses. `tests/user_crate_build.rs`
//! compiles and serves sample trees; this covers the trees nobody thought to write.

#![allow(clippy::unwrap_used)]

#[path = "../../framework/tests/property_support/mod.rs"]
mod property_support;

use std::path::Path;

use arbor_build::{Builder, Error, RouteTable, Segment};
use axum::body::Body;
use axum::routing::get;
use property_support::cases;
use proptest::prelude::*;
use tower::ServiceExt;

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn folder_names_are_classified_or_refused(name in ".{0,16}") {
        match Segment::parse(&name) {
            Ok(segment) => prop_assert_eq!(Segment::parse(&segment.to_string()), Ok(segment)),
            Err(error) => {
                prop_assert!(!error.problem.is_empty() && !error.help.is_empty());
                prop_assert_eq!(error.segment, name);
            }
        }
    }
}

/// Folder names from every kind, with the same names repeated so that trees collide.
fn folder() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
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
    ])
}

fn tree() -> impl Strategy<Value = Vec<Vec<&'static str>>> {
    prop::collection::vec(prop::collection::vec(folder(), 0..4), 1..6)
}

fn scan(root: &Path, routes: &[Vec<&str>]) -> Result<RouteTable, Error> {
    for folders in routes {
        let dir = folders
            .iter()
            .fold(root.join("app/api"), |dir, folder| dir.join(folder));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("route.rs"), "pub async fn GET() {}\n").unwrap();
    }
    let mut builder = Builder::new();
    builder.manifest_dir(root).emit_rerun_if_changed(false);
    builder.route_table()
}

/// A URL the route's patterns match: values that no static folder uses, so that a more
/// specific route cannot take it.
fn concrete_urls(pattern: &str) -> Vec<String> {
    let mut url = String::new();
    for segment in pattern.split('/').filter(|s| !s.is_empty()) {
        url.push('/');
        if segment.starts_with("{*") {
            url.push_str("v1/v2");
        } else if segment.starts_with('{') {
            url.push_str("v0");
        } else {
            url.push_str(segment);
        }
    }
    if url.is_empty() {
        url.push('/');
    }
    vec![url]
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn trees_that_validate_route_as_the_model_says(routes in tree()) {
        let root = tempfile::tempdir().unwrap();
        match scan(root.path(), &routes) {
            // Every refusal names at least one of the files, as a build error must.
            Err(error) => prop_assert!(error.to_string().contains("app/api"), "{error}"),
            Ok(table) => {
                // axum panics on conflicting or malformed patterns: none may reach it.
                let mut router = axum::Router::new();
                for (index, route) in table.routes.iter().enumerate() {
                    for pattern in route.axum_patterns("") {
                        router = router.route(&pattern, get(move || async move { index.to_string() }));
                    }
                }
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                for (index, route) in table.routes.iter().enumerate() {
                    for pattern in route.axum_patterns("") {
                        for url in concrete_urls(&pattern) {
                            let request = http::Request::get(&url).body(Body::empty()).unwrap();
                            let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
                            let body = runtime
                                .block_on(http_body_util::BodyExt::collect(response.into_body()))
                                .unwrap()
                                .to_bytes();
                            prop_assert_eq!(
                                String::from_utf8_lossy(&body),
                                index.to_string(),
                                "{} ({}) answered for another route",
                                url,
                                route.display_url("")
                            );
                        }
                    }
                }
                let mut builder = Builder::new();
                builder.manifest_dir(root.path()).emit_rerun_if_changed(false);
                let source = builder.generate().unwrap();
                prop_assert!(syn::parse_file(&source).is_ok(), "{source}");
            }
        }
    }
}
