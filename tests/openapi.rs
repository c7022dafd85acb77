//! The reference app's API contract: the committed snapshot is current, every route is in the
//! document and nothing else is, the app serves it and its reference page, and schemathesis
//! finds nothing wrong with the running app against it.
//!
//! After a change to a route, update the snapshot and review the diff with the change:
//!
//! ```text
//! ARBOR_UPDATE_OPENAPI=1 cargo test --test openapi
//! ```

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{App, Backend, Server, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::Value;

const SNAPSHOT: &str = "app/openapi.json";

fn document() -> &'static Value {
    arbor_app::routes::openapi().document()
}

#[test]
fn the_committed_snapshot_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    let current = format!("{}\n", arbor_app::routes::openapi().json());
    if std::env::var_os("ARBOR_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &current).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != current {
        let changed = committed
            .lines()
            .zip(current.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(current.lines().count()));
        panic!(
            "{SNAPSHOT} is stale (first difference at line {}): the routes' contract changed. \
             Run `ARBOR_UPDATE_OPENAPI=1 cargo test --test openapi` and review the diff.",
            changed + 1
        );
    }
}

/// `METHOD path` of every operation in the document.
fn documented() -> BTreeSet<String> {
    document()["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

/// `METHOD path` of every exported handler, in OpenAPI's path syntax (an optional catch-all is
/// two paths, as it is two routes).
fn routed() -> BTreeSet<String> {
    arbor_app::routes::ROUTES
        .iter()
        .flat_map(|route| {
            let mut path = String::new();
            let mut optional = None;
            for segment in route.path.split('/').filter(|s| !s.is_empty()) {
                if let Some(name) = segment
                    .strip_prefix("[[...")
                    .and_then(|s| s.strip_suffix("]]"))
                {
                    optional = Some(name.to_owned());
                } else if let Some(name) = segment
                    .strip_prefix("[...")
                    .or_else(|| segment.strip_prefix('['))
                    .and_then(|s| s.strip_suffix(']'))
                {
                    path.push_str(&format!("/{{{name}}}"));
                } else {
                    path.push('/');
                    path.push_str(segment);
                }
            }
            let mut paths = vec![format!("{} {path}", route.method)];
            if let Some(name) = optional {
                paths.push(format!("{} {path}/{{{name}}}", route.method));
            }
            paths
        })
        .collect()
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let (documented, routed) = (documented(), routed());
    assert_eq!(
        documented.difference(&routed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented, not routed"
    );
    assert_eq!(
        routed.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routed, not documented"
    );
    assert!(routed.len() > 30, "{routed:?}");
}

#[test]
fn operations_have_unique_ids_and_error_answers_share_one_schema() {
    let mut ids = BTreeSet::new();
    for (path, methods) in document()["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{id} twice ({method} {path})");
            // GraphQL answers its request errors in GraphQL's own shape, which its
            // `describe_POST` says; every other error answer is in the one shared shape.
            let graphql = path == "/api/graphql" && method == "post";
            for (status, response) in operation["responses"].as_object().unwrap() {
                let own_shape = graphql && ["400", "413", "415"].contains(&status.as_str());
                if (status.starts_with('4') || status.starts_with('5')) && !own_shape {
                    let schema = &response["content"]["application/json"]["schema"];
                    let reference = schema["allOf"][0]["$ref"]
                        .as_str()
                        .or_else(|| schema["$ref"].as_str());
                    assert_eq!(
                        reference,
                        Some("#/components/schemas/Error"),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

#[test]
fn what_the_routes_types_and_middleware_say_is_in_it() {
    let operation = |method: &str, path: &str| document()["paths"][path][method].clone();
    // `Valid<Json<CreateUser>>`: the body's schema, with the validator's rules.
    let create = operation("post", "/api/v1/users");
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateUser"
    );
    let schema = &document()["components"]["schemas"]["CreateUser"];
    assert_eq!(schema["properties"]["email"]["format"], "email");
    assert_eq!(schema["properties"]["name"]["minLength"], 2);
    assert_eq!(schema["properties"]["name"]["maxLength"], 100);
    // `(StatusCode::CREATED, Json<User>)`: 201 with the user, and no 200.
    assert_eq!(
        create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/User"
    );
    assert!(create["responses"]["200"].is_null());
    // `require_auth`: 401 and 403; reading a body: 400 with both codes, 413, 415.
    for status in ["401", "403", "413", "415", "500", "504"] {
        assert!(create["responses"][status].is_object(), "{status}");
    }
    let bad_request = create["responses"]["400"]["content"]["application/json"]["schema"]["allOf"]
        [1]["properties"]["error"]["enum"]
        .clone();
    assert!(bad_request
        .as_array()
        .unwrap()
        .contains(&"VALIDATION_ERROR".into()));
    // `Valid<Query<PageQuery>>`: one parameter per field, with its bounds.
    let list = operation("get", "/api/v1/users");
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["schema"]["maximum"], 100);
    // A catch-all is an array-valued path parameter, and the bare optional path has none.
    let files = operation("get", "/api/v1/files/{path}");
    assert_eq!(files["parameters"][0]["name"], "path");
    assert_eq!(files["parameters"][0]["in"], "path");
    assert!(operation("get", "/api/v1/docs")["parameters"].is_null());
    assert_eq!(files["parameters"][0]["schema"]["type"], "string");
    // Tags from groups, summaries from doc comments.
    let login = operation("post", "/api/v1/login");
    assert_eq!(login["tags"][0], "auth");
    assert_eq!(
        operation("get", "/api/v1/users")["summary"],
        "List users, a page at a time."
    );
    // `arbor::rate_limit(..)` in the folder's list: 429 with its headers.
    let limited = &login["responses"]["429"];
    assert!(limited["headers"]["Retry-After"].is_object(), "{limited}");
    assert!(
        limited["headers"]["X-RateLimit-Limit"].is_object(),
        "{limited}"
    );
    // A handler returning `ApiError` may answer other errors: the `default` response.
    assert_eq!(
        operation("get", "/api/v1/users/{id}")["responses"]["default"]["content"]
            ["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    // `Preconditions`: its headers and answers.
    let post = operation("get", "/api/v1/posts/{id}");
    for status in ["412", "428"] {
        assert!(post["responses"][status].is_object(), "{status}");
    }
    assert!(post["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "If-None-Match" && p["in"] == "header"));
    // ... a `304` for a `GET`, and `(Validators, Json<Post>)`: the body and its `ETag`.
    assert_eq!(post["responses"]["304"]["description"], "Not Modified");
    let read = &post["responses"]["200"];
    assert_eq!(
        read["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Post"
    );
    assert!(read["headers"]["ETag"].is_object(), "{read}");
    assert!(operation("put", "/api/v1/posts/{id}")["responses"]["304"].is_null());
    // What the route files' `describe_<METHOD>` add: a required `If-Match`, ...
    let put = operation("put", "/api/v1/posts/{id}");
    assert!(put["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "If-Match" && p["required"] == true));
    // ... the event types of an event stream (an `Sse` argument makes it one), ...
    let events = &operation("get", "/api/v1/events")["responses"]["200"]["content"]
        ["text/event-stream"]["schema"]["oneOf"];
    let names: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["properties"]["event"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["connected", "post.updated", "webhook"]);
    assert_eq!(
        events[1]["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/PostUpdated"
    );
    // ... a progress stream and a multipart body.
    let upload = operation("post", "/api/v1/upload");
    assert!(
        upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"]
            .is_object()
    );
    let stream = &upload["responses"]["200"]["content"]["text/event-stream"]["schema"]["oneOf"];
    assert_eq!(stream.as_array().unwrap().len(), 4, "{stream}");
    // Integer formats carry their bounds (a larger id is refused with 400).
    let item = operation("delete", "/api/v1/items/{id}");
    assert_eq!(
        item["parameters"][0]["schema"]["maximum"],
        serde_json::json!(u64::MAX)
    );
}

#[tokio::test]
async fn the_app_serves_it() {
    let app = App::start(Backend::Sqlite).await;
    let reply = app.client().get("/api/openapi.json", None).await;
    reply.expect_status(200);
    reply.expect_header("content-type", "application/json");
    assert_eq!(reply.json(), document());

    // The reference page: every operation, and nothing it would fetch or run.
    let page = app.client().get("/api/reference", None).await;
    page.expect_status(200);
    page.expect_header("content-type", "text/html; charset=utf-8");
    let html = &page.text;
    for (_path, item) in document()["paths"].as_object().unwrap() {
        for operation in item.as_object().unwrap().values() {
            if let Some(id) = operation["operationId"].as_str() {
                assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
            }
        }
    }
    assert!(html.contains("id=\"schema-Error\""));
    for fetch in ["<script", "src=", "<link", "@import"] {
        assert!(!html.contains(fetch), "the page has {fetch}");
    }
}

/// `openapi-spec-validator` (installed by `tests/run.sh`; `ARBOR_OPENAPI_VALIDATOR` names it).
fn validator() -> Option<String> {
    match std::env::var("ARBOR_OPENAPI_VALIDATOR") {
        Ok(validator) => Some(validator),
        Err(_) if std::env::var_os("ARBOR_REQUIRE_OPENAPI_VALIDATOR").is_some() => {
            panic!("ARBOR_OPENAPI_VALIDATOR is not set: run the tests with `bash tests/run.sh`")
        }
        Err(_) => {
            eprintln!("skipped: ARBOR_OPENAPI_VALIDATOR is not set (tests/run.sh sets it)");
            None
        }
    }
}

#[test]
fn the_document_validates_against_the_openapi_3_1_schema() {
    let Some(validator) = validator() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let valid = dir.path().join("openapi.json");
    std::fs::write(&valid, arbor_app::routes::openapi().json()).unwrap();
    let output = std::process::Command::new(&validator)
        .arg(&valid)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The validator does refuse a broken document: a path parameter that no operation declares.
    let mut broken = document().clone();
    broken["paths"]["/api/v1/users/{id}"]["get"]["parameters"] = serde_json::json!([]);
    let invalid = dir.path().join("broken.json");
    std::fs::write(&invalid, broken.to_string()).unwrap();
    let refused = std::process::Command::new(&validator)
        .arg(&invalid)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// schemathesis's `st` (installed by `tests/run.sh`; `ARBOR_SCHEMATHESIS` names it).
fn schemathesis() -> Option<String> {
    match std::env::var("ARBOR_SCHEMATHESIS") {
        Ok(st) => Some(st),
        Err(_) if std::env::var_os("ARBOR_REQUIRE_SCHEMATHESIS").is_some() => {
            panic!("ARBOR_SCHEMATHESIS is not set: run the tests with `bash tests/run.sh`")
        }
        Err(_) => {
            eprintln!("skipped: ARBOR_SCHEMATHESIS is not set (tests/run.sh sets it)");
            None
        }
    }
}

/// Runs schemathesis against `base` with `extra` arguments: its exit status and its report.
async fn schemathesis_run(st: &str, base: &str, extra: &[String]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("openapi.json");
    std::fs::write(&schema, arbor_app::routes::openapi().json()).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let mut command = std::process::Command::new(st);
    command
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(&schema)
        .args(["--url", base])
        // Bounded, and the same cases every run: a failure here reproduces.
        .args(["--max-examples", "20", "--seed", "20261130"])
        .args(["--request-timeout", "10", "--no-color"])
        .args(extra)
        .current_dir(dir.path());
    let run = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    (run.status.success(), report)
}

/// schemathesis drives the running app over TCP from its document, with every one of its
/// default checks: no server error; every status, header, content type and body as the
/// document says; valid data accepted and invalid data refused; an undocumented method `405`.
/// First as an administrator (a bearer token), so that the operations behind authentication
/// run their handlers, with the two that would end that session left to the second run; then
/// as nobody, every operation, answering its documented `401`s.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_off_the_contract() {
    let Some(st) = schemathesis() else {
        return;
    };
    let server = Server::start(Backend::Sqlite).await;
    let token = server.client().login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let as_admin = [
        "--header".to_owned(),
        format!("Authorization: Bearer {token}"),
        "--exclude-path-regex".to_owned(),
        "^/api/v1/logout".to_owned(),
    ];
    for (who, extra) in [("an administrator", &as_admin[..]), ("nobody", &[][..])] {
        let (passed, report) = schemathesis_run(&st, &server.base, extra).await;
        assert!(passed, "schemathesis, as {who}, found problems:\n{report}");
        // It did run cases (a run that reached nothing would pass too).
        assert!(report.contains("generated"), "{report}");
        assert!(!report.contains("Tested: 0"), "{report}");
    }
}

/// `arbor-app openapi --diff OLD` against `old`: exit status and output.
fn diff_against(old: &Value) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.json");
    std::fs::write(&path, old.to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_arbor-app"))
        .args(["openapi", "--diff"])
        .arg(&path)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn the_diff_command_reports_breaking_changes_and_fails_on_them() {
    let (status, output) = diff_against(document());
    assert_eq!((status, output.trim()), (Some(0), "no breaking changes"));
    // Against a document that had one more operation and an optional field that is now
    // required (in `CreateUser`, which two operations read): all three are listed, and the
    // exit status says so.
    let mut old = document().clone();
    old["paths"]["/api/v1/gone"] = serde_json::json!({ "get": { "responses": {} } });
    let required = old["components"]["schemas"]["CreateUser"]["required"]
        .as_array_mut()
        .unwrap();
    required.retain(|field| field != "password");
    let (status, output) = diff_against(&old);
    assert_eq!(status, Some(1), "{output}");
    assert!(output.contains("3 breaking change(s)"), "{output}");
    assert!(
        output.contains("GET /api/v1/gone: the operation was removed"),
        "{output}"
    );
    assert!(
        output.contains("POST /api/v1/users: request body (application/json): the field `password` became required"),
        "{output}"
    );
    assert!(
        output.contains("POST /api/v1/register: request body"),
        "{output}"
    );
    // Not a document: exit status 2.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_arbor-app"))
        .args(["openapi", "--diff"])
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
