//! Scanner tests: small route trees in temporary folders, run through the public `Builder`.
//!
//! Each table lists a tree and what the scan must make of it: the URL and axum patterns of
//! every route in priority order, or every diagnostic with the files it names.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use arbor_build::{Builder, Error, Location, RouteTable, Segment};
use tempfile::TempDir;

const GET: &str = "pub async fn GET() {}\n";

/// Writes `files` (paths relative to `app/api`) into a fresh crate root.
fn tree(files: &[(&str, &str)]) -> TempDir {
    let root = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let file = root.path().join("app/api").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, contents).unwrap();
    }
    root
}

fn builder(root: &Path) -> Builder {
    let mut builder = Builder::new();
    builder.manifest_dir(root).emit_rerun_if_changed(false);
    builder
}

fn scan(files: &[(&str, &str)]) -> Result<RouteTable, Error> {
    let root = tree(files);
    builder(root.path()).route_table()
}

fn scan_err(files: &[(&str, &str)]) -> Error {
    match scan(files) {
        Ok(table) => panic!(
            "expected routing errors, got routes {:?}",
            table
                .routes
                .iter()
                .map(|r| r.display_url("/api"))
                .collect::<Vec<_>>()
        ),
        Err(error) => error,
    }
}

/// `(file relative to app/api, display URL, axum patterns)` of every route, in table order.
fn summary(table: &RouteTable) -> Vec<(String, String, Vec<String>)> {
    table
        .routes
        .iter()
        .map(|route| {
            let file = route.file.to_string_lossy().replace('\\', "/");
            let file = file
                .strip_prefix("app/api/")
                .unwrap_or_else(|| panic!("route file `{file}` is not below app/api"))
                .to_owned();
            (file, route.display_url("/api"), route.axum_patterns("/api"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Segment kinds and URLs
// ---------------------------------------------------------------------------------------------

struct UrlCase {
    name: &'static str,
    files: &'static [&'static str],
    /// `(route file, display URL, axum patterns)` in priority order.
    routes: &'static [(&'static str, &'static str, &'static [&'static str])],
}

const URL_CASES: &[UrlCase] = &[
    UrlCase {
        name: "root route.rs is the prefix itself",
        files: &["route.rs"],
        routes: &[("route.rs", "/api", &["/api"])],
    },
    UrlCase {
        name: "static folders",
        files: &["users/route.rs", "users/settings/route.rs"],
        routes: &[
            ("users/route.rs", "/api/users", &["/api/users"]),
            (
                "users/settings/route.rs",
                "/api/users/settings",
                &["/api/users/settings"],
            ),
        ],
    },
    UrlCase {
        name: "dynamic segment",
        files: &["users/[id]/route.rs"],
        routes: &[(
            "users/[id]/route.rs",
            "/api/users/[id]",
            &["/api/users/{id}"],
        )],
    },
    UrlCase {
        name: "catch-all",
        files: &["files/[...path]/route.rs"],
        routes: &[(
            "files/[...path]/route.rs",
            "/api/files/[...path]",
            &["/api/files/{*path}"],
        )],
    },
    UrlCase {
        name: "optional catch-all has a bare and a rest pattern",
        files: &["docs/[[...slug]]/route.rs"],
        routes: &[(
            "docs/[[...slug]]/route.rs",
            "/api/docs/[[...slug]]",
            &["/api/docs", "/api/docs/{*slug}"],
        )],
    },
    UrlCase {
        name: "optional catch-all at the root",
        files: &["[[...slug]]/route.rs"],
        routes: &[(
            "[[...slug]]/route.rs",
            "/api/[[...slug]]",
            &["/api", "/api/{*slug}"],
        )],
    },
    UrlCase {
        name: "route groups add nothing to the URL",
        files: &["(auth)/login/route.rs", "(shop)/(cart)/route.rs"],
        routes: &[
            ("(shop)/(cart)/route.rs", "/api", &["/api"]),
            ("(auth)/login/route.rs", "/api/login", &["/api/login"]),
        ],
    },
    UrlCase {
        name: "private folders are skipped with their whole subtree",
        files: &[
            "hello/route.rs",
            "_private/route.rs",
            "_lib/deep/nested/route.rs",
            "hello/_drafts/route.rs",
            "hello/_drafts/[id]/middleware.rs",
        ],
        routes: &[("hello/route.rs", "/api/hello", &["/api/hello"])],
    },
    UrlCase {
        name: "%5F escapes a leading underscore",
        files: &["%5Finternal/route.rs", "%5finternal/lower/route.rs"],
        routes: &[
            (
                "%5Finternal/route.rs",
                "/api/_internal",
                &["/api/_internal"],
            ),
            (
                "%5finternal/lower/route.rs",
                "/api/_internal/lower",
                &["/api/_internal/lower"],
            ),
        ],
    },
    UrlCase {
        name: "statics are percent-encoded in the axum pattern only",
        files: &["hello world/route.rs", "caf\u{e9}/route.rs"],
        routes: &[
            ("caf\u{e9}/route.rs", "/api/caf\u{e9}", &["/api/caf%C3%A9"]),
            (
                "hello world/route.rs",
                "/api/hello world",
                &["/api/hello%20world"],
            ),
        ],
    },
    UrlCase {
        name: "every kind in one path",
        files: &["(v)/orgs/[org]/repos/[repo]/(code)/tree/[...path]/route.rs"],
        routes: &[(
            "(v)/orgs/[org]/repos/[repo]/(code)/tree/[...path]/route.rs",
            "/api/orgs/[org]/repos/[repo]/tree/[...path]",
            &["/api/orgs/{org}/repos/{repo}/tree/{*path}"],
        )],
    },
    UrlCase {
        // At every level: the level's own route, statics (alphabetical, groups ignored),
        // then `[dynamic]`, then `[...catch-all]` or `[[...optional]]`. Discovery finds the
        // files in file-name order, where `(`, `[` sort before letters.
        name: "priority order",
        files: &[
            "files/[...path]/route.rs",
            "[id]/edit/route.rs",
            "[id]/route.rs",
            "(marketing)/pricing/route.rs",
            "shop/[[...filters]]/route.rs",
            "shop/cart/route.rs",
            "files/recent/route.rs",
            "blog/route.rs",
            "about/route.rs",
            "route.rs",
        ],
        routes: &[
            ("route.rs", "/api", &["/api"]),
            ("about/route.rs", "/api/about", &["/api/about"]),
            ("blog/route.rs", "/api/blog", &["/api/blog"]),
            (
                "files/recent/route.rs",
                "/api/files/recent",
                &["/api/files/recent"],
            ),
            (
                "files/[...path]/route.rs",
                "/api/files/[...path]",
                &["/api/files/{*path}"],
            ),
            (
                "(marketing)/pricing/route.rs",
                "/api/pricing",
                &["/api/pricing"],
            ),
            ("shop/cart/route.rs", "/api/shop/cart", &["/api/shop/cart"]),
            (
                "shop/[[...filters]]/route.rs",
                "/api/shop/[[...filters]]",
                &["/api/shop", "/api/shop/{*filters}"],
            ),
            ("[id]/route.rs", "/api/[id]", &["/api/{id}"]),
            ("[id]/edit/route.rs", "/api/[id]/edit", &["/api/{id}/edit"]),
        ],
    },
];

#[test]
fn every_segment_kind_has_its_url() {
    for case in URL_CASES {
        let files: Vec<(&str, &str)> = case.files.iter().map(|f| (*f, GET)).collect();
        let table = scan(&files)
            .unwrap_or_else(|error| panic!("case `{}` failed to scan:\n{error}", case.name));
        let expected: Vec<(String, String, Vec<String>)> = case
            .routes
            .iter()
            .map(|(file, url, patterns)| {
                (
                    (*file).to_owned(),
                    (*url).to_owned(),
                    patterns.iter().map(|p| (*p).to_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(summary(&table), expected, "case `{}`", case.name);
    }
}

#[test]
fn segments_keep_groups_and_classify_every_folder() {
    let table = scan(&[
        ("(auth)/users/[id]/files/[...path]/route.rs", GET),
        ("docs/[[...slug]]/route.rs", GET),
        ("%5Finternal/route.rs", GET),
    ])
    .unwrap();
    let segments: Vec<&[Segment]> = table.routes.iter().map(|r| &r.segments[..]).collect();
    assert_eq!(
        segments,
        [
            &[Segment::Static("_internal".into())][..],
            &[
                Segment::Static("docs".into()),
                Segment::OptionalCatchAll("slug".into()),
            ][..],
            &[
                Segment::Group("auth".into()),
                Segment::Static("users".into()),
                Segment::Dynamic("id".into()),
                Segment::Static("files".into()),
                Segment::CatchAll("path".into()),
            ][..],
        ]
    );
    let params: Vec<&str> = table.routes[2].params().collect();
    assert_eq!(params, ["id", "path"]);
    assert_eq!(table.routes[0].params().count(), 0);
}

#[test]
fn url_prefix_is_applied_and_can_be_empty() {
    let root = tree(&[
        ("route.rs", GET),
        ("users/[id]/route.rs", GET),
        ("docs/[[...slug]]/route.rs", GET),
    ]);
    let table = builder(root.path()).route_table().unwrap();
    let urls = |prefix: &str| -> Vec<(String, Vec<String>)> {
        table
            .routes
            .iter()
            .map(|r| (r.display_url(prefix), r.axum_patterns(prefix)))
            .collect()
    };
    let owned = |url: &str, patterns: &[&str]| {
        (
            url.to_owned(),
            patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        urls(""),
        [
            owned("/", &["/"]),
            owned("/docs/[[...slug]]", &["/docs", "/docs/{*slug}"]),
            owned("/users/[id]", &["/users/{id}"]),
        ]
    );
    assert_eq!(urls("/v2/"), urls("/v2"));
    assert_eq!(
        urls("/v2")[1],
        owned("/v2/docs/[[...slug]]", &["/v2/docs", "/v2/docs/{*slug}"])
    );
}

#[test]
fn handlers_and_middleware_are_read_from_the_files() {
    let table = scan(&[
        (
            "(auth)/middleware.rs",
            "arbor::middleware!(require_user, rate_limit(limit = 5));\n",
        ),
        (
            "middleware.rs",
            "pub async fn middleware(request: Request, next: Next) -> Response {\n    next.run(request).await\n}\n",
        ),
        (
            "(auth)/me/route.rs",
            "arbor::middleware!(audit);\n\n#[arbor::handler(a, b(limit = 5))]\npub async fn PUT() {}\npub async fn GET() {}\npub use crate::shared::remove as DELETE;\n",
        ),
        ("public/route.rs", "pub async fn POST() {}\n"),
    ])
    .unwrap();
    assert_eq!(table.middleware.len(), 2);
    let me = &table.routes[0];
    assert_eq!(me.display_url("/api"), "/api/me");
    let methods: Vec<&str> = me.handlers.iter().map(|h| h.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PUT", "DELETE"]);
    let put = &me.handlers[1];
    assert_eq!(
        put.middleware.as_deref(),
        Some(&["a".to_owned(), "b(limit = 5)".to_owned()][..])
    );
    assert_eq!(put.location.to_string(), "app/api/(auth)/me/route.rs:4:14");
    assert_eq!(me.handlers[0].middleware, None);
    assert_eq!(
        me.file_middleware.as_deref(),
        Some(&["audit".to_owned()][..])
    );
    let allow: Vec<&str> = me.allow().iter().map(|m| m.as_str()).collect();
    assert_eq!(allow, ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

    // Folder middleware: outermost folder first.
    let chain: Vec<String> = me
        .folder_middleware
        .iter()
        .map(|&i| {
            table.middleware[i]
                .file
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    assert_eq!(
        chain,
        ["app/api/middleware.rs", "app/api/(auth)/middleware.rs"]
    );
    let public = &table.routes[1];
    assert_eq!(public.display_url("/api"), "/api/public");
    let chain: Vec<String> = public
        .folder_middleware
        .iter()
        .map(|&i| {
            table.middleware[i]
                .file
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    assert_eq!(chain, ["app/api/middleware.rs"]);
}

#[test]
fn matching_path_params_are_accepted() {
    let table = scan(&[
        (
            "users/[id]/route.rs",
            "#[derive(Deserialize)]\npub struct Params { id: u64 }\npub async fn GET(Path(p): Path<Params>) {}\npub async fn DELETE(Path(id): Path<u64>) {}\n",
        ),
        (
            "orgs/[org]/repos/[repo]/route.rs",
            "#[derive(Deserialize)]\npub struct Params { #[serde(rename = \"repo\")] name: String, org: String }\npub async fn GET(Path(p): Path<Params>) {}\npub async fn PUT(Path((org, repo)): Path<(String, String)>) {}\n",
        ),
        (
            "docs/[[...slug]]/route.rs",
            "pub struct Params { slug: Option<Vec<String>> }\npub async fn GET(Path(p): Path<Params>) {}\n",
        ),
        (
            "files/[...path]/route.rs",
            "pub async fn GET(Path(path): Path<String>) {}\n",
        ),
    ]);
    if let Err(error) = table {
        panic!("params that match their folders were rejected:\n{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

struct ErrorCase {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    /// `(message, locations)` of every diagnostic, in the order the error lists them.
    diagnostics: &'static [(&'static str, &'static [&'static str])],
    /// Text the rendered help must contain, one per diagnostic.
    help: &'static [&'static str],
}

const ERROR_CASES: &[ErrorCase] = &[
    ErrorCase {
        name: "two files resolve to the same URL through two groups",
        files: &[
            ("(auth)/login/route.rs", GET),
            ("(public)/login/route.rs", GET),
        ],
        diagnostics: &[(
            "two route files resolve to the same URL `/api/login`",
            &[
                "app/api/(auth)/login/route.rs",
                "app/api/(public)/login/route.rs",
            ],
        )],
        help: &["route groups (`(auth)`, `(public)`) do not change the URL"],
    },
    ErrorCase {
        name: "a group route collides with the root route",
        files: &[("route.rs", GET), ("(admin)/route.rs", GET)],
        diagnostics: &[(
            "two route files resolve to the same URL `/api`",
            &["app/api/(admin)/route.rs", "app/api/route.rs"],
        )],
        help: &["route groups (`(admin)`) do not change the URL"],
    },
    ErrorCase {
        name: "different param names at the same position",
        files: &[
            ("users/[id]/route.rs", GET),
            ("users/[userId]/posts/route.rs", GET),
        ],
        diagnostics: &[(
            "you cannot use different parameter names for the same dynamic path ('id' !== 'userId') under `/api/users`",
            &[
                "app/api/users/[id]/route.rs",
                "app/api/users/[userId]/posts/route.rs",
            ],
        )],
        help: &["rename one of the folders so both use the same name, for example both `id`"],
    },
    ErrorCase {
        name: "different catch-all names at the same position",
        files: &[
            ("(a)/files/[...path]/route.rs", GET),
            ("(b)/files/[...rest]/route.rs", GET),
        ],
        diagnostics: &[(
            "you cannot use different parameter names for the same dynamic path ('path' !== 'rest') under `/api/files`",
            &[
                "app/api/(a)/files/[...path]/route.rs",
                "app/api/(b)/files/[...rest]/route.rs",
            ],
        )],
        help: &["for example both `path`"],
    },
    ErrorCase {
        name: "the same param name twice in one path",
        files: &[("users/[id]/friends/[id]/route.rs", GET)],
        diagnostics: &[(
            "you cannot have the same parameter name `id` repeat within a single dynamic path",
            &["app/api/users/[id]/friends/[id]/route.rs"],
        )],
        help: &["give each dynamic folder of the path its own name"],
    },
    ErrorCase {
        name: "catch-all not last",
        files: &[("files/[...path]/edit/route.rs", GET)],
        diagnostics: &[(
            "catch-all must be the last part of the URL: `[...path]` is followed by `edit`",
            &["app/api/files/[...path]/edit/route.rs"],
        )],
        help: &["move this route next to the catch-all folder"],
    },
    ErrorCase {
        name: "optional catch-all not last (a group after it does not count)",
        files: &[("docs/[[...slug]]/(g)/[id]/route.rs", GET)],
        diagnostics: &[(
            "catch-all must be the last part of the URL: `[[...slug]]` is followed by `[id]`",
            &["app/api/docs/[[...slug]]/(g)/[id]/route.rs"],
        )],
        help: &["move this route next to the catch-all folder"],
    },
    ErrorCase {
        name: "required and optional catch-all at the same level",
        files: &[
            ("docs/[...path]/route.rs", GET),
            ("docs/[[...slug]]/route.rs", GET),
        ],
        diagnostics: &[(
            "you cannot use both a required and an optional catch-all route at the same level (\"[...path]\" and \"[[...slug]]\") under `/api/docs`",
            &[
                "app/api/docs/[...path]/route.rs",
                "app/api/docs/[[...slug]]/route.rs",
            ],
        )],
        help: &["keep one of them"],
    },
    ErrorCase {
        name: "a route with the same specificity as an optional catch-all",
        files: &[("docs/route.rs", GET), ("docs/[[...slug]]/route.rs", GET)],
        diagnostics: &[(
            "you cannot define a route with the same specificity as an optional catch-all route (\"/api/docs\" and \"/api/docs/[[...slug]]\")",
            &["app/api/docs/route.rs", "app/api/docs/[[...slug]]/route.rs"],
        )],
        help: &["the optional catch-all already answers `/api/docs`"],
    },
    ErrorCase {
        name: "same specificity as an optional catch-all, through a group",
        files: &[
            ("(site)/docs/route.rs", GET),
            ("docs/[[...slug]]/route.rs", GET),
        ],
        diagnostics: &[(
            "you cannot define a route with the same specificity as an optional catch-all route (\"/api/docs\" and \"/api/docs/[[...slug]]\")",
            &[
                "app/api/(site)/docs/route.rs",
                "app/api/docs/[[...slug]]/route.rs",
            ],
        )],
        help: &["make the catch-all required `[...slug]`"],
    },
    ErrorCase {
        name: "malformed segment `[]`",
        files: &[("[]/route.rs", GET)],
        diagnostics: &[(
            "the folder `[]` has no parameter name",
            &["app/api/[]/route.rs"],
        )],
        help: &["name the parameter"],
    },
    ErrorCase {
        name: "malformed segment `[...]`",
        files: &[("files/[...]/route.rs", GET)],
        diagnostics: &[(
            "the folder `[...]` has no parameter name",
            &["app/api/files/[...]/route.rs"],
        )],
        help: &["name the parameter"],
    },
    ErrorCase {
        name: "malformed segment `[id`",
        files: &[("users/[id/route.rs", GET)],
        diagnostics: &[(
            "the folder `[id` has unbalanced brackets",
            &["app/api/users/[id/route.rs"],
        )],
        help: &["write `[name]`, `[...name]` or `[[...name]]`"],
    },
    ErrorCase {
        name: "malformed segment `[[id]]`",
        files: &[("users/[[id]]/route.rs", GET)],
        diagnostics: &[(
            "the folder `[[id]]` is an optional parameter, which is not supported",
            &["app/api/users/[[id]]/route.rs"],
        )],
        help: &["use an optional catch-all `[[...id]]`"],
    },
    ErrorCase {
        name: "malformed segment `[user-id]`",
        files: &[("users/[user-id]/route.rs", GET)],
        diagnostics: &[(
            "the folder `[user-id]` has a parameter name that is not a valid Rust identifier",
            &["app/api/users/[user-id]/route.rs"],
        )],
        help: &["try `[user_id]`"],
    },
    ErrorCase {
        name: "a malformed folder is reported for every file below it",
        files: &[
            ("[...]/middleware.rs", "arbor::middleware!(auth);\n"),
            ("[...]/a/route.rs", GET),
        ],
        diagnostics: &[
            (
                "the folder `[...]` has no parameter name",
                &["app/api/[...]/a/route.rs"],
            ),
            (
                "the folder `[...]` has no parameter name",
                &["app/api/[...]/middleware.rs"],
            ),
        ],
        help: &["name the parameter", "name the parameter"],
    },
    ErrorCase {
        name: "a route.rs exporting no method",
        files: &[(
            "health/route.rs",
            "fn helper() {}\npub async fn handler() {}\npub const LIMIT: u8 = 3;\n",
        )],
        diagnostics: &[(
            "`route.rs` exports no HTTP method handler",
            &["app/api/health/route.rs"],
        )],
        help: &["move it to a `_private` folder"],
    },
    ErrorCase {
        name: "lowercase handler name",
        files: &[("health/route.rs", "\npub async fn get() {}\n")],
        diagnostics: &[(
            "`get` looks like a handler, but handlers are named in uppercase",
            &["app/api/health/route.rs:2:14"],
        )],
        help: &["rename it to `GET`"],
    },
    ErrorCase {
        name: "handler that is not pub",
        files: &[(
            "health/route.rs",
            "pub async fn POST() {}\n\nasync fn GET() {}\n",
        )],
        diagnostics: &[(
            "handler `GET` is not public",
            &["app/api/health/route.rs:3:10"],
        )],
        help: &["export it: `pub async fn GET(..)`"],
    },
    ErrorCase {
        name: "handler that is not async",
        files: &[("health/route.rs", "use arbor::Json;\npub fn GET() {}\n")],
        diagnostics: &[(
            "handler `GET` is not async",
            &["app/api/health/route.rs:2:8"],
        )],
        help: &["declare it `pub async fn GET(..)`"],
    },
    ErrorCase {
        name: "segment config in Next.js spelling",
        files: &[(
            "feed/route.rs",
            "pub const revalidate: u64 = 60;\npub async fn GET() {}\n",
        )],
        diagnostics: &[(
            "`revalidate` is segment config spelled differently: Arbor reads `REVALIDATE`",
            &["app/api/feed/route.rs:1:11"],
        )],
        help: &["rename it to `REVALIDATE` (Arbor's segment config is `MAX_DURATION` (seconds before a request to the route times out) and `REVALIDATE` (seconds a `GET` response is cached)), or make it private if it is a constant of your own"],
    },
    ErrorCase {
        name: "misspelled segment config",
        files: &[(
            "reports/route.rs",
            "pub async fn GET() {}\n\npub const MAX_DURATIONS: u64 = 30;\n",
        )],
        diagnostics: &[(
            "`MAX_DURATIONS` is not segment config Arbor knows, so it would be ignored",
            &["app/api/reports/route.rs:3:11"],
        )],
        help: &["rename it to `MAX_DURATION`"],
    },
    ErrorCase {
        name: "Next.js segment config Arbor does not support",
        files: &[(
            "feed/route.rs",
            "pub const DYNAMIC: &str = \"force-dynamic\";\npub static RUNTIME: &str = \"edge\";\npub async fn GET() {}\n",
        )],
        diagnostics: &[
            (
                "`DYNAMIC` is Next.js segment config (`dynamic`) that Arbor does not support",
                &["app/api/feed/route.rs:1:11"],
            ),
            (
                "`RUNTIME` is Next.js segment config (`runtime`) that Arbor does not support",
                &["app/api/feed/route.rs:2:12"],
            ),
        ],
        help: &[
            "remove it: Next.js uses it to choose between rendering a route at build time or per request; Arbor prerenders nothing",
            "remove it: Next.js uses it to pick the Node.js or the Edge runtime",
        ],
    },
    ErrorCase {
        name: "segment config as a static",
        files: &[(
            "feed/route.rs",
            "pub static MAX_DURATION: u64 = 5;\npub async fn GET() {}\n",
        )],
        diagnostics: &[(
            "segment config `MAX_DURATION` must be a `pub const` of type `u64` (seconds)",
            &["app/api/feed/route.rs:1:12"],
        )],
        help: &["write `pub const MAX_DURATION: u64 = 60;`"],
    },
    ErrorCase {
        name: "syntax error",
        files: &[(
            "health/route.rs",
            "pub async fn GET() {}\n\npub async fn POST() {\n    let x = ;\n}\n",
        )],
        diagnostics: &[(
            "could not parse `route.rs`: expected an expression",
            &["app/api/health/route.rs:4:13"],
        )],
        help: &["fix the syntax error"],
    },
    ErrorCase {
        name: "syntax error in middleware.rs",
        files: &[
            ("(auth)/middleware.rs", "arbor::middleware!(auth)\nfn x() {}\n"),
            ("(auth)/me/route.rs", GET),
        ],
        diagnostics: &[(
            "could not parse `middleware.rs`: expected `;`",
            &["app/api/(auth)/middleware.rs:2:1"],
        )],
        help: &["fix the syntax error"],
    },
    ErrorCase {
        name: "Path struct with a field the path lacks",
        files: &[(
            "users/[id]/route.rs",
            "#[derive(Deserialize)]\npub struct Params {\n    id: u64,\n    tab: String,\n}\n\npub async fn GET(Path(params): Path<Params>) {}\n",
        )],
        diagnostics: &[(
            "`Path<Params>` in `GET` does not match the folders `app/api/users/[id]`: field `tab` is not provided by the path",
            &["app/api/users/[id]/route.rs:7:14"],
        )],
        help: &["the folders give `id`; rename the fields of `Params`"],
    },
    ErrorCase {
        name: "Path struct lacking a param of the path",
        files: &[(
            "orgs/[org]/repos/[repo]/route.rs",
            "pub struct Params { org: String }\npub async fn PATCH(Path(params): Path<Params>) {}\n",
        )],
        diagnostics: &[(
            "`Path<Params>` in `PATCH` does not match the folders `app/api/orgs/[org]/repos/[repo]`: parameter `repo` has no field",
            &["app/api/orgs/[org]/repos/[repo]/route.rs:2:14"],
        )],
        help: &["the folders give `org`, `repo`"],
    },
    ErrorCase {
        name: "Path struct wrong both ways",
        files: &[(
            "users/[id]/route.rs",
            "pub struct Params { user_id: u64 }\npub async fn GET(Path(p): Path<Params>) {}\n",
        )],
        diagnostics: &[(
            "`Path<Params>` in `GET` does not match the folders `app/api/users/[id]`: field `user_id` is not provided by the path and parameter `id` has no field",
            &["app/api/users/[id]/route.rs:2:14"],
        )],
        help: &["or add `#[serde(rename = \"..\")]`"],
    },
    ErrorCase {
        name: "Path tuple of the wrong arity",
        files: &[(
            "orgs/[org]/repos/[repo]/route.rs",
            "pub async fn GET(Path((a, b, c)): Path<(String, String, u64)>) {}\n",
        )],
        diagnostics: &[(
            "`Path` in `GET` takes a tuple of 3 values, but the folders `app/api/orgs/[org]/repos/[repo]` give 2 parameters",
            &["app/api/orgs/[org]/repos/[repo]/route.rs:1:14"],
        )],
        help: &["the folders give `org`, `repo`, in that order"],
    },
    ErrorCase {
        name: "single Path value on a route with two params",
        files: &[(
            "orgs/[org]/repos/[repo]/route.rs",
            "pub async fn GET() {}\npub async fn DELETE(Path(id): Path<u64>) {}\n",
        )],
        diagnostics: &[(
            "`Path<u64>` in `DELETE` takes exactly one parameter, but the folders `app/api/orgs/[org]/repos/[repo]` give 2",
            &["app/api/orgs/[org]/repos/[repo]/route.rs:2:14"],
        )],
        help: &["take a tuple or a struct with fields for `org`, `repo`"],
    },
    ErrorCase {
        name: "a middleware.rs with no middleware",
        files: &[
            ("(auth)/middleware.rs", "pub fn helper() {}\n"),
            ("(auth)/me/route.rs", GET),
        ],
        diagnostics: &[(
            "`middleware.rs` declares no middleware",
            &["app/api/(auth)/middleware.rs"],
        )],
        help: &["arbor::middleware!(first, second);"],
    },
];

#[test]
fn every_error_names_its_files() {
    for case in ERROR_CASES {
        let error = scan_err(case.files);
        let context = format!("case `{}`:\n{error}", case.name);
        let actual: Vec<(&str, Vec<String>)> = error
            .diagnostics()
            .iter()
            .map(|d| {
                (
                    d.message(),
                    d.locations().iter().map(Location::to_string).collect(),
                )
            })
            .collect();
        let expected: Vec<(&str, Vec<String>)> = case
            .diagnostics
            .iter()
            .map(|(message, locations)| {
                (
                    *message,
                    locations.iter().map(|l| (*l).to_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(actual, expected, "{context}");

        // The rendered form shows every diagnostic with its files and help, then the count.
        let rendered = error.to_string();
        assert_eq!(
            case.help.len(),
            error.diagnostics().len(),
            "case `{}`: one help per diagnostic",
            case.name
        );
        for (diagnostic, help) in error.diagnostics().iter().zip(case.help) {
            let shown = diagnostic.to_string();
            assert!(
                shown.starts_with(&format!("error: {}\n", diagnostic.message())),
                "{context}"
            );
            for location in diagnostic.locations() {
                assert!(shown.contains(&format!("\n  --> {location}")), "{context}");
            }
            let help_line = shown
                .lines()
                .find(|line| line.starts_with("  = help: "))
                .unwrap_or_else(|| panic!("no help line in {context}"));
            assert!(
                help_line.contains(help),
                "{context}\nhelp should contain `{help}`"
            );
            assert!(rendered.contains(&shown), "{context}");
        }
        // Every file of the case that the diagnostics name appears in the rendered text.
        for (_, locations) in case.diagnostics {
            for location in *locations {
                assert!(rendered.contains(location), "{context}");
            }
        }
        let count = error.diagnostics().len();
        let summary = if count == 1 {
            "error: arbor could not generate the router: 1 routing error".to_owned()
        } else {
            format!("error: arbor could not generate the router: {count} routing errors")
        };
        assert!(rendered.ends_with(&summary), "{context}");
    }
}

/// axum 0.8 panics when a literal segment starts with `:` or `*` (its v0.7 syntax), so such
/// folders must fail the build instead of the server start. (Not valid file names on Windows.)
#[cfg(unix)]
#[test]
fn axum_v07_style_folder_names_are_rejected() {
    let error = scan_err(&[(":id/route.rs", GET), ("*rest/route.rs", GET)]);
    let summary: Vec<(&str, String)> = error
        .diagnostics()
        .iter()
        .map(|d| (d.message(), d.locations()[0].to_string()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "the folder `*rest` starts with `:` or `*`, which axum rejects in a literal path segment",
                "app/api/*rest/route.rs".to_owned()
            ),
            (
                "the folder `:id` starts with `:` or `*`, which axum rejects in a literal path segment",
                "app/api/:id/route.rs".to_owned()
            ),
        ]
    );
    assert!(error
        .to_string()
        .contains("= help: a dynamic segment is written `[id]`, a catch-all `[...rest]`"));
}

#[test]
fn a_rendered_error_reads_like_rustc() {
    let error = scan_err(&[
        ("(auth)/login/route.rs", GET),
        ("(public)/login/route.rs", GET),
    ]);
    assert_eq!(
        error.to_string(),
        "error: two route files resolve to the same URL `/api/login`\n\
         \x20 --> app/api/(auth)/login/route.rs\n\
         \x20 --> app/api/(public)/login/route.rs\n\
         \x20 = help: route groups (`(auth)`, `(public)`) do not change the URL; merge the handlers into one file, or move one of them\n\
         \n\
         error: arbor could not generate the router: 1 routing error"
    );
}

#[test]
fn every_error_of_a_tree_is_reported_together() {
    let error = scan_err(&[
        ("hello/route.rs", GET),
        ("[user-id]/route.rs", GET),
        ("lower/route.rs", "pub async fn get() {}\n"),
        ("broken/route.rs", "pub async fn GET( {}\n"),
        ("(a)/same/route.rs", GET),
        ("(b)/same/route.rs", GET),
        ("(c)/middleware.rs", "// nothing here\n"),
        ("(c)/ok/route.rs", GET),
        (
            "items/[id]/route.rs",
            "pub async fn GET(Path((a, b)): Path<(u64, u64)>) {}\n",
        ),
        // One file, two problems: a bad folder and a bad export.
        ("[[x]]/route.rs", "fn GET() {}\n"),
    ]);
    let summary: Vec<(&str, Vec<String>)> = error
        .diagnostics()
        .iter()
        .map(|d| {
            (
                d.message(),
                d.locations().iter().map(Location::to_string).collect(),
            )
        })
        .collect();
    let expected: Vec<(&str, Vec<&str>)> = vec![
        (
            "two route files resolve to the same URL `/api/same`",
            vec!["app/api/(a)/same/route.rs", "app/api/(b)/same/route.rs"],
        ),
        (
            "`middleware.rs` declares no middleware",
            vec!["app/api/(c)/middleware.rs"],
        ),
        (
            "the folder `[[x]]` is an optional parameter, which is not supported",
            vec!["app/api/[[x]]/route.rs"],
        ),
        ("handler `GET` is not async", vec!["app/api/[[x]]/route.rs:1:4"]),
        ("handler `GET` is not public", vec!["app/api/[[x]]/route.rs:1:4"]),
        (
            "the folder `[user-id]` has a parameter name that is not a valid Rust identifier",
            vec!["app/api/[user-id]/route.rs"],
        ),
        (
            // An unbalanced delimiter fails in the lexer, whose message is generic; the
            // location is the unclosed `(`.
            "could not parse `route.rs`: cannot parse string into token stream",
            vec!["app/api/broken/route.rs:1:17"],
        ),
        (
            "`Path` in `GET` takes a tuple of 2 values, but the folders `app/api/items/[id]` give 1 parameter",
            vec!["app/api/items/[id]/route.rs:1:14"],
        ),
        (
            "`get` looks like a handler, but handlers are named in uppercase",
            vec!["app/api/lower/route.rs:1:14"],
        ),
    ];
    let expected: Vec<(&str, Vec<String>)> = expected
        .into_iter()
        .map(|(m, ls)| (m, ls.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(summary, expected, "{error}");
    assert!(error
        .to_string()
        .ends_with("error: arbor could not generate the router: 9 routing errors"));
}

#[test]
fn a_missing_routes_folder_is_a_config_error() {
    let root = tempfile::tempdir().unwrap();
    let error = builder(root.path()).route_table().unwrap_err();
    assert!(error.diagnostics().is_empty());
    assert_eq!(
        error.to_string(),
        "error: arbor found no routes folder at `app/api`: create it, or point `arbor_build::Builder::routes_dir` at yours"
    );

    let error = builder(root.path())
        .routes_dir("src/routes")
        .generate()
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no routes folder at `src/routes`"),
        "{error}"
    );

    // A file where the folder should be is not a folder either.
    std::fs::create_dir_all(root.path().join("app")).unwrap();
    std::fs::write(root.path().join("app/api"), "").unwrap();
    let error = builder(root.path()).route_table().unwrap_err();
    assert!(
        error.to_string().contains("no routes folder at `app/api`"),
        "{error}"
    );
}

#[test]
fn an_empty_routes_folder_is_an_empty_table() {
    let root = tree(&[("_private/route.rs", GET)]);
    let table = builder(root.path()).route_table().unwrap();
    assert!(table.routes.is_empty() && table.middleware.is_empty());
}

#[test]
fn a_custom_routes_dir_is_scanned_and_named_in_errors() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("src/routes/users/[id]/route.rs");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, GET).unwrap();
    let table = builder(root.path())
        .routes_dir("src/routes")
        .route_table()
        .unwrap();
    assert_eq!(table.routes.len(), 1);
    assert_eq!(
        table.routes[0].file.to_string_lossy().replace('\\', "/"),
        "src/routes/users/[id]/route.rs"
    );

    std::fs::write(&file, "pub async fn get() {}").unwrap();
    let error = builder(root.path())
        .routes_dir("src/routes")
        .route_table()
        .unwrap_err();
    assert_eq!(
        error.diagnostics()[0].locations()[0].to_string(),
        "src/routes/users/[id]/route.rs:1:14"
    );
}

#[test]
fn conflicts_at_the_root_name_the_root_with_an_empty_prefix() {
    let root = tree(&[("route.rs", GET), ("[[...slug]]/route.rs", GET)]);
    let error = builder(root.path())
        .url_prefix("")
        .route_table()
        .unwrap_err();
    assert_eq!(
        error.diagnostics()[0].message(),
        "you cannot define a route with the same specificity as an optional catch-all route (\"/\" and \"/[[...slug]]\")"
    );
    assert!(
        error
            .to_string()
            .contains("the optional catch-all already answers `/`;"),
        "{error}"
    );

    let root = tree(&[("[id]/route.rs", GET), ("[slug]/x/route.rs", GET)]);
    let error = builder(root.path())
        .url_prefix("")
        .route_table()
        .unwrap_err();
    assert_eq!(
        error.diagnostics()[0].message(),
        "you cannot use different parameter names for the same dynamic path ('id' !== 'slug') under `/`"
    );
}

#[test]
fn a_url_prefix_without_a_leading_slash_is_a_config_error() {
    let root = tree(&[("route.rs", GET)]);
    let error = builder(root.path())
        .url_prefix("api")
        .generate()
        .unwrap_err();
    assert!(error.diagnostics().is_empty());
    assert_eq!(
        error.to_string(),
        "error: Builder::url_prefix(\"api\") must start with `/` (or be \"\" to serve the routes at the root)"
    );
    for prefix in ["", "/", "/api", "/api/v2/"] {
        let result = builder(root.path()).url_prefix(prefix).generate();
        assert!(result.is_ok(), "prefix `{prefix}`: {:?}", result.err());
    }
}

#[test]
fn an_invalid_state_type_is_a_config_error() {
    let root = tree(&[("route.rs", GET)]);
    let error = builder(root.path())
        .state("crate::App State")
        .generate()
        .unwrap_err();
    assert!(error.diagnostics().is_empty());
    assert!(
        error
            .to_string()
            .starts_with("error: Builder::state(\"crate::App State\") is not a Rust type"),
        "{error}"
    );
    // The route table does not need the state type.
    assert!(builder(root.path())
        .state("crate::App State")
        .route_table()
        .is_ok());
}

/// Only public names that look like segment config are checked: a file's own constants, and
/// private ones in any spelling, are its business.
#[test]
fn other_consts_are_not_segment_config() {
    let table = scan(&[(
        "feed/route.rs",
        "pub const PAGE_SIZE: usize = 20;\npub static VERSION: &str = \"1\";\nconst revalidate: u64 = 1;\nconst DYNAMIC: bool = true;\npub const MAX_DURATION: u64 = 5;\npub async fn GET() {}\n",
    )])
    .unwrap();
    assert!(table.routes[0].config.max_duration);
    assert!(!table.routes[0].config.revalidate);
}
