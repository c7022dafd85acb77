//! The reference app's `/api/v1`, in-process through `arbor::test::TestClient`, on SQLite and
//! (when the test command starts one) PostgreSQL: users, authentication, posts with optimistic
//! locking.

#![allow(clippy::unwrap_used)]

mod common;

use common::{on_every_backend, App, Backend, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::json;

fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn users_crud_with_the_guides_rules() {
    on_every_backend(users_scenario).await;
}

async fn users_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let email = unique_email();
    let created = client
        .json(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({ "email": email, "name": "Ada Lovelace", "password": "Analytical1" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["email"], email);
    assert_eq!(created.body["role"], "user", "role defaults to user");
    assert!(
        !created.text.to_lowercase().contains("password"),
        "{}",
        created.text
    );
    let id = created.body["id"].as_str().unwrap().to_owned();

    let duplicate = client
        .json(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({ "email": email.to_uppercase(), "name": "Ada", "password": "Analytical1" }),
        )
        .await;
    duplicate.error(409, "CONFLICT");

    for (body, field) in [
        (
            json!({ "email": "not-an-email", "name": "Ada", "password": "Analytical1" }),
            "email",
        ),
        (
            json!({ "email": unique_email(), "name": "A", "password": "Analytical1" }),
            "name",
        ),
        (
            json!({ "email": unique_email(), "name": "Ada", "password": "short1A" }),
            "password",
        ),
        (
            json!({ "email": unique_email(), "name": "Ada", "password": "alllowercase1" }),
            "password",
        ),
        (
            json!({ "email": unique_email(), "name": "Ada", "password": "Analytical1", "role": "root" }),
            "role",
        ),
    ] {
        let invalid = client
            .json(Method::POST, "/api/v1/users", Some(&admin), body)
            .await;
        let details = &invalid.error(400, "VALIDATION_ERROR")["details"]["fieldErrors"];
        assert!(details.get(field).is_some(), "{field}: {}", invalid.text);
    }

    let page = client
        .get("/api/v1/users?page=1&limit=1", Some(&admin))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["pagination"]["total"], 2);
    assert_eq!(page.body["pagination"]["totalPages"], 2);
    for query in ["page=-1", "page=0", "limit=0", "limit=101", "page=abc"] {
        let reply = client
            .get(&format!("/api/v1/users?{query}"), Some(&admin))
            .await;
        reply.error(400, "VALIDATION_ERROR");
    }

    let fetched = client
        .get(&format!("/api/v1/users/{id}"), Some(&admin))
        .await;
    assert_eq!(fetched.body["name"], "Ada Lovelace");
    // Produced behind authentication: no shared cache may keep it (the guide's best practice).
    assert_eq!(fetched.header("cache-control"), Some("private, no-cache"));
    let patched = client
        .json(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            json!({ "name": "Countess Lovelace" }),
        )
        .await;
    assert_eq!(
        patched.body["name"], "Countess Lovelace",
        "{}",
        patched.text
    );
    client
        .get("/api/v1/users/nope", Some(&admin))
        .await
        .error(404, "NOT_FOUND");
    client
        .json(
            Method::PATCH,
            "/api/v1/users/nope",
            Some(&admin),
            json!({ "name": "Nobody" }),
        )
        .await
        .error(404, "NOT_FOUND");

    // A plain user reaches only themselves and no admin route.
    let user = client.login(&email, "Analytical1").await;
    client
        .get("/api/v1/users", Some(&user))
        .await
        .error(403, "FORBIDDEN");
    client
        .get(&format!("/api/v1/users/{id}"), Some(&user))
        .await;
    let admin_id = client.get("/api/v1/whoami", Some(&admin)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .get(&format!("/api/v1/users/{admin_id}"), Some(&user))
        .await
        .error(403, "FORBIDDEN");
    client
        .json(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&user),
            json!({ "role": "admin" }),
        )
        .await
        .error(403, "FORBIDDEN");
    client
        .send(
            client
                .http
                .delete(client.url(&format!("/api/v1/users/{id}")))
                .bearer_auth(&user),
        )
        .await
        .error(403, "FORBIDDEN");

    let deleted = client
        .send(
            client
                .http
                .delete(client.url(&format!("/api/v1/users/{id}")))
                .bearer_auth(&admin),
        )
        .await;
    assert_eq!(deleted.status, 204);
    client
        .get(&format!("/api/v1/users/{id}"), Some(&admin))
        .await
        .error(404, "NOT_FOUND");
    // The deleted user's sessions died with them.
    client
        .get("/api/v1/session", Some(&user))
        .await
        .error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn sessions_cookies_csrf_and_generic_login_errors() {
    on_every_backend(auth_scenario).await;
}

async fn auth_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    let email = unique_email();
    let registered = client
        .json(
            Method::POST,
            "/api/v1/register",
            None,
            json!({ "email": email, "name": "Grace", "password": "C0bolRules", "role": "admin" }),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    assert_eq!(
        registered.body["user"]["role"], "user",
        "self-service accounts are never admins"
    );
    let cookie = registered.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let session_cookie = cookie.split(';').next().unwrap().to_owned();

    // One generic answer, whether the email exists or not.
    let wrong_password = client
        .json(
            Method::POST,
            "/api/v1/login",
            None,
            json!({ "email": email, "password": "Wrong-passw0rd" }),
        )
        .await;
    let unknown_email = client
        .json(
            Method::POST,
            "/api/v1/login",
            None,
            json!({ "email": unique_email(), "password": "Wrong-passw0rd" }),
        )
        .await;
    assert_eq!(
        wrong_password.error(401, "UNAUTHORIZED"),
        unknown_email.error(401, "UNAUTHORIZED")
    );

    // The cookie authenticates reads; cookie mutations need a same-site Origin.
    let me = client
        .send(
            client
                .http
                .get(client.url("/api/v1/session"))
                .header("cookie", &session_cookie),
        )
        .await;
    assert_eq!(me.body["credential"], "cookie", "{}", me.text);
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let forged = client
        .send(
            client
                .http
                .post(client.url("/api/v1/posts"))
                .header("cookie", &session_cookie)
                .header("origin", "https://evil.example")
                .json(&json!({ "title": "t", "body": "b" })),
        )
        .await;
    forged.error(403, "CSRF_FAILED");
    let no_origin = client
        .send(
            client
                .http
                .post(client.url("/api/v1/posts"))
                .header("cookie", &session_cookie)
                .json(&json!({ "title": "t", "body": "b" })),
        )
        .await;
    no_origin.error(403, "CSRF_FAILED");
    let host = client.base.trim_start_matches("http://").to_owned();
    let same_site = client
        .send(
            client
                .http
                .post(client.url("/api/v1/posts"))
                .header("cookie", &session_cookie)
                .header("origin", format!("http://{host}"))
                .json(&json!({ "title": "t", "body": "b" })),
        )
        .await;
    assert_eq!(same_site.status, 201, "{}", same_site.text);
    // Bearer tokens are not subject to CSRF checks.
    let token = registered.body["token"].as_str().unwrap();
    let bearer = client
        .json(
            Method::POST,
            "/api/v1/posts",
            Some(token),
            json!({ "title": "t2", "body": "b" }),
        )
        .await;
    assert_eq!(bearer.status, 201);

    // Logout ends the session for both presentations of the token.
    let logout = client
        .send(
            client
                .http
                .post(client.url("/api/v1/logout"))
                .bearer_auth(token),
        )
        .await;
    assert_eq!(logout.status, 204);
    assert!(logout.header("set-cookie").unwrap().contains("Max-Age=0"));
    client
        .get("/api/v1/session", Some(token))
        .await
        .error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_new_session_id_on_every_login_and_logout_everywhere() {
    let server = App::start(Backend::Sqlite).await;
    let client = server.client();
    let email = unique_email();
    let registered = client
        .json(
            Method::POST,
            "/api/v1/register",
            None,
            json!({ "email": email, "name": "Ada", "password": "Analyt1calEngine" }),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let first = registered.body["token"].as_str().unwrap().to_owned();
    // Signing in again from the same browser (its cookie, this site's Origin) rotates the id.
    let host = client.base.trim_start_matches("http://").to_owned();
    let again = client
        .send(
            client
                .http
                .post(client.url("/api/v1/login"))
                .header("cookie", format!("arbor_session={first}"))
                .header("origin", format!("http://{host}"))
                .json(&json!({ "email": email, "password": "Analyt1calEngine" })),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    let second = again.body["token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    client
        .get("/api/v1/session", Some(&first))
        .await
        .error(401, "UNAUTHORIZED");
    // A second device, then "log out everywhere" from the first ends both.
    let other = client
        .json(
            Method::POST,
            "/api/v1/login",
            None,
            json!({ "email": email, "password": "Analyt1calEngine" }),
        )
        .await;
    let other = other.body["token"].as_str().unwrap().to_owned();
    let everywhere = client
        .json(
            Method::POST,
            "/api/v1/logout/everywhere",
            Some(&second),
            json!({}),
        )
        .await;
    assert_eq!(everywhere.status, 200, "{}", everywhere.text);
    assert_eq!(everywhere.body["ended"], 2);
    for token in [&second, &other] {
        client
            .get("/api/v1/session", Some(token))
            .await
            .error(401, "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn login_is_limited_to_five_attempts_per_minute() {
    let server = App::start(Backend::Sqlite).await;
    let client = server.client();
    let attempt = || {
        client.json(
            Method::POST,
            "/api/v1/login",
            None,
            json!({ "email": "x@example.com", "password": "nope" }),
        )
    };
    for _ in 0..5 {
        let reply = attempt().await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    let limited = attempt().await;
    limited.error(429, "RATE_LIMITED");
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn password_hashing_is_bounded_and_a_flood_gets_503_busy() {
    // One hash at a time and no queue: registrations that overlap find the hasher busy.
    let server = App::start_with(Backend::Sqlite, |config| {
        config.passwords =
            arbor_app::services::passwords::Passwords::new(1, std::time::Duration::ZERO);
    })
    .await;
    let client = server.client();
    let register = |n: usize| {
        client.json(
            Method::POST,
            "/api/v1/register",
            None,
            json!({ "email": format!("flood-{n}-{}", unique_email()), "name": "Flood", "password": "Str0ngPassword" }),
        )
    };
    let replies = futures_util::future::join_all((0..6).map(register)).await;
    let mut created = 0;
    let mut busy = 0;
    for reply in &replies {
        match reply.status {
            201 => created += 1,
            _ => {
                reply.error(503, "BUSY");
                reply.expect_header("retry-after", "1");
                busy += 1;
            }
        }
    }
    assert!(created >= 1, "the first registration hashes");
    assert!(
        busy >= 1,
        "six at once with one permit: some are turned away"
    );
    // Once the flood is over, the hasher serves again.
    register(99).await.expect_status(201);
}

#[tokio::test]
async fn posts_with_optimistic_locking() {
    on_every_backend(posts_scenario).await;
}

async fn posts_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    let (_, owner) = client.register(&unique_email()).await;
    let (_, stranger) = client.register(&unique_email()).await;

    let created = client
        .json(
            Method::POST,
            "/api/v1/posts",
            Some(&owner),
            json!({ "title": "Hello", "body": "World" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/posts/{id}");

    let read = client.get(&path, None).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    let cached = client
        .send(
            client
                .http
                .get(client.url(&path))
                .header("if-none-match", "\"1\""),
        )
        .await;
    assert_eq!(cached.status, 304);
    assert!(cached.text.is_empty());

    let body = json!({ "title": "Hello again", "body": "World" });
    client
        .json(Method::PUT, &path, Some(&owner), body.clone())
        .await
        .error(428, "PRECONDITION_REQUIRED");
    let updated = client
        .send(
            client
                .http
                .put(client.url(&path))
                .bearer_auth(&owner)
                .header("if-match", "\"1\"")
                .json(&body),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    assert_eq!(updated.body["version"], 2);
    let stale = client
        .send(
            client
                .http
                .patch(client.url(&path))
                .bearer_auth(&owner)
                .header("if-match", "\"1\"")
                .json(&json!({ "title": "Lost update" })),
        )
        .await;
    assert_eq!(stale.error(409, "CONFLICT")["details"]["currentVersion"], 2);
    assert_eq!(stale.header("etag"), Some("\"2\""));
    // If-None-Match compares weakly (a weak copy of version 2 is current), If-Match strongly
    // (a weak tag never matches), and a tag without quotes is no tag at all.
    let weak_read = client
        .send(
            client
                .http
                .get(client.url(&path))
                .header("if-none-match", "W/\"2\""),
        )
        .await;
    assert_eq!(weak_read.status, 304);
    for (if_match, status, code) in [
        ("W/\"2\"", 412, "PRECONDITION_FAILED"),
        ("2", 400, "INVALID_PRECONDITION"),
    ] {
        client
            .send(
                client
                    .http
                    .patch(client.url(&path))
                    .bearer_auth(&owner)
                    .header("if-match", if_match)
                    .json(&json!({ "title": "Weak" })),
            )
            .await
            .error(status, code);
    }
    let foreign = client
        .send(
            client
                .http
                .patch(client.url(&path))
                .bearer_auth(&stranger)
                .header("if-match", "\"2\"")
                .json(&json!({ "title": "Mine now" })),
        )
        .await;
    foreign.error(403, "FORBIDDEN");
    let missing = client
        .send(
            client
                .http
                .put(client.url("/api/v1/posts/nope"))
                .bearer_auth(&owner)
                .header("if-match", "\"1\"")
                .json(&body),
        )
        .await;
    missing.error(404, "NOT_FOUND");
    client
        .get("/api/v1/posts/nope", None)
        .await
        .error(404, "NOT_FOUND");

    // 50 writers holding the same version: the check and the write are one statement, so
    // exactly one succeeds and the rest see 409.
    let mut writers = Vec::new();
    for n in 0..50 {
        let client = client.clone();
        let owner = owner.clone();
        let url = client.url(&path);
        writers.push(tokio::spawn(async move {
            client
                .send(
                    client
                        .http
                        .patch(url)
                        .bearer_auth(&owner)
                        .header("if-match", "\"2\"")
                        .json(&json!({ "title": format!("writer {n}") })),
                )
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for writer in writers {
        statuses.push(writer.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    let after = client.get(&path, None).await;
    assert_eq!(after.body["version"], 3);

    let deleted = client
        .send(client.http.delete(client.url(&path)).bearer_auth(&owner))
        .await;
    assert_eq!(deleted.status, 204);
    client.get(&path, None).await.error(404, "NOT_FOUND");
}
