//! The reference app's clients, typed by its contract:
//!
//! - the generated TypeScript client compiles with `tsc --strict`, misuses of it do not, and a
//!   Node.js script calls the running app through it (create a user, log in, read it back, get
//!   a typed validation error). `tests/run.sh` installs TypeScript from npm and names its `tsc`
//!   in `ARBOR_TSC`;
//! - the Rust clients (`TestClient::call` in-process, `arbor::client::HttpClient` over TCP)
//!   call the same handlers typed by the handlers themselves; `arbor-macros`' UI tests show
//!   that a call of the wrong types does not compile.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arbor::client::{ClientError, HttpClient};
use arbor::test::TestClient;
use arbor_app::auth::SignedIn;
use arbor_app::routes;
use arbor_app::services::users::{Role, User};
use arbor_app::validation::{CreateUser, PageQuery, UpdateUser};
use common::{Backend, Server};
use serde_json::json;

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

fn new_user(email: &str) -> CreateUser {
    CreateUser {
        email: email.to_owned(),
        name: "Typed Tester".to_owned(),
        password: "Str0ngPassword".to_owned(),
        role: Role::User,
    }
}

#[tokio::test]
async fn typed_test_calls_take_and_give_the_handlers_types() {
    let (state, _dir) = common::state(Backend::Sqlite).await;
    let client = TestClient::new(arbor_app::app(state)).with_operations(&routes::OPERATIONS);

    // No path parameters: `()`; the body is the handler's `CreateUser`.
    let created = client
        .call(
            routes::route_v1_auth_register::POST,
            (),
            new_user("typed@example.com"),
        )
        .send()
        .await;
    assert_eq!(created.status(), 201, "{}", created.text());
    let signed_in: SignedIn = created.value();
    assert_eq!(signed_in.user.email, "typed@example.com");

    // Path parameters by the route file's own `Params`; the answer is a `User`.
    let me = routes::route_v1_users_id::Params {
        id: signed_in.user.id.clone(),
    };
    let read: User = client
        .call(routes::route_v1_users_id::GET, me, ())
        .bearer_auth(&signed_in.token)
        .send()
        .await
        .value();
    assert_eq!(read, signed_in.user);

    let renamed = UpdateUser {
        email: None,
        name: Some("Renamed".to_owned()),
        password: None,
        role: None,
    };
    let me = routes::route_v1_users_id::Params {
        id: signed_in.user.id.clone(),
    };
    let updated: User = client
        .call(routes::route_v1_users_id::PATCH, me, renamed)
        .bearer_auth(&signed_in.token)
        .send()
        .await
        .value();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.id, signed_in.user.id);

    // An error answer comes back in the one error shape, its field errors included.
    let refused = client
        .call(
            routes::route_v1_auth_register::POST,
            (),
            new_user("not-an-email"),
        )
        .send()
        .await;
    assert_eq!(refused.status(), 400);
    let error = refused.error();
    assert_eq!(error.error, "VALIDATION_ERROR");
    let details = error.details.unwrap();
    assert!(details["fieldErrors"]["email"].is_array(), "{details}");

    // A typed query: the administrator (a typed login) lists users one to a page. With two
    // users (the administrator and the one registered above), page 2 holds exactly one.
    let credentials = routes::route_v1_auth_login::Credentials {
        email: common::ADMIN_EMAIL.to_owned(),
        password: common::ADMIN_PASSWORD.to_owned(),
    };
    let admin: SignedIn = client
        .call(routes::route_v1_auth_login::POST, (), credentials)
        .send()
        .await
        .value();
    let page = client
        .call(routes::route_v1_users::GET, (), ())
        .query(&PageQuery { page: 2, limit: 1 })
        .bearer_auth(&admin.token)
        .send()
        .await
        .value();
    assert_eq!(page.users.len(), 1, "{page:?}");
    assert_eq!(
        (
            page.pagination.page,
            page.pagination.limit,
            page.pagination.total
        ),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn an_optional_catch_all_is_called_under_the_pattern_its_parameters_fit() {
    let (state, _dir) = common::state(Backend::Sqlite).await;
    let client = TestClient::new(arbor_app::app(state)).with_operations(&routes::OPERATIONS);
    let docs = routes::route_v1_docs_slug::GET;

    let index = client
        .call(docs, routes::route_v1_docs_slug::Params { slug: None }, ())
        .send()
        .await;
    assert_eq!(index.value(), json!({ "page": "index" }));

    let slug = vec!["guides".to_owned(), "a b".to_owned()];
    let page = client
        .call(
            docs,
            routes::route_v1_docs_slug::Params { slug: Some(slug) },
            (),
        )
        .send()
        .await;
    // The segment with a space went out escaped and came back decoded.
    assert_eq!(page.value()["slug"], json!(["guides", "a b"]));
}

#[tokio::test]
async fn the_http_client_calls_a_running_app_with_the_same_types() {
    let server = Server::start(Backend::Sqlite).await;
    let client = HttpClient::new(&server.base, &routes::OPERATIONS).unwrap();

    let signed_in = client
        .call(
            routes::route_v1_auth_register::POST,
            (),
            new_user("http@example.com"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status, 201);
    let token = signed_in.body.token;

    let authorized = client.clone().bearer_auth(&token).unwrap();
    let me = routes::route_v1_users_id::Params {
        id: signed_in.body.user.id.clone(),
    };
    let read = authorized
        .call(routes::route_v1_users_id::GET, me, ())
        .send()
        .await
        .unwrap();
    assert_eq!(read.body, signed_in.body.user);

    // Another user's record: the app's 403, as a typed error.
    let other = routes::route_v1_users_id::Params {
        id: "someone-else".to_owned(),
    };
    let forbidden = authorized
        .call(routes::route_v1_users_id::GET, other, ())
        .send()
        .await;
    expect_api_error(forbidden, 403, "FORBIDDEN");

    // Without the token, the route's auth middleware answers 401.
    let me = routes::route_v1_users_id::Params {
        id: signed_in.body.user.id,
    };
    let anonymous = client
        .call(routes::route_v1_users_id::GET, me, ())
        .send()
        .await;
    expect_api_error(anonymous, 401, "UNAUTHORIZED");

    // A port nothing listens on is a transport error, not a hang or a panic.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gone = HttpClient::new(&base, &routes::OPERATIONS)
        .unwrap()
        .call(routes::route_v1_posts::GET, (), ())
        .send()
        .await;
    assert!(matches!(gone, Err(ClientError::Transport(_))), "{gone:?}");
}

/// `result` is the error answer `status` with the error code `code`.
fn expect_api_error<T: std::fmt::Debug>(result: Result<T, ClientError>, status: u16, code: &str) {
    match result {
        Err(ClientError::Api { status: got, body }) => {
            assert_eq!(got, status, "{body:?}");
            assert_eq!(body.error, code);
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}
