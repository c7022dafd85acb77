//! `/api/graphql`, in-process through `arbor::test::TestClient`: the offline GraphiQL page,
//! `user`/`users` under the REST API's rules on SQLite and (when the test command starts one)
//! PostgreSQL, depth and complexity limits, and errors in GraphQL's own format.

#![allow(clippy::unwrap_used)]

mod common;

use common::{on_every_backend, App, Backend, Client, Reply, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

fn unique_email() -> String {
    format!("gql-{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn graphql(client: &Client, token: Option<&str>, query: &str, variables: Value) -> Reply {
    let reply = client
        .json(
            Method::POST,
            "/api/graphql",
            token,
            json!({ "query": query, "variables": variables }),
        )
        .await;
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{}",
        reply.text
    );
    reply
}

/// The `extensions.code` of every error of a GraphQL response.
fn codes(reply: &Reply) -> Vec<&str> {
    reply.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts a GraphQL-format error answer (never the REST `{"error": CODE}` shape).
fn assert_graphql_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert!(reply.body["data"].is_null(), "{}", reply.text);
    assert!(
        reply.body.get("error").is_none(),
        "REST error shape: {}",
        reply.text
    );
    let errors = reply.body["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{}", reply.text);
    assert!(
        errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        reply.text
    );
    assert_eq!(codes(reply), vec![code], "{}", reply.text);
}

#[tokio::test]
async fn graphiql_is_served_with_no_external_urls() {
    let server = App::start(Backend::Sqlite).await;
    let client = server.client();
    let page = client.get("/api/graphql", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text.to_lowercase();
    assert!(
        html.contains("<script") && html.contains("graphiql"),
        "{html}"
    );
    assert!(
        !html.contains("https://") && !html.contains("http://") && !html.contains("src=\"//"),
        "{html}"
    );

    // Every file the page references is served by the app itself.
    let mut references = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            references.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    let assets: Vec<_> = references
        .iter()
        .filter(|r| !r.starts_with("data:"))
        .collect();
    assert_eq!(assets.len(), 5, "{references:?}");
    for asset in assets {
        assert!(asset.starts_with("graphql?asset="), "{asset}");
        let reply = client.get(&format!("/api/{asset}"), None).await;
        assert_eq!(reply.status, 200, "{asset}");
        let content_type = reply.header("content-type").unwrap();
        assert!(
            content_type.starts_with("text/javascript") || content_type.starts_with("text/css"),
            "{asset}: {content_type}"
        );
        assert!(!reply.text.is_empty());
        if content_type.starts_with("text/css") {
            assert!(
                !reply.text.contains("url(http") && !reply.text.contains("@import"),
                "{asset} loads remote files"
            );
        }
    }
    client
        .get("/api/graphql?asset=../../Cargo.toml", None)
        .await
        .error(404, "NOT_FOUND");
}

#[tokio::test]
async fn user_and_users_follow_the_rest_rules() {
    on_every_backend(rules_scenario).await;
}

async fn rules_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin_id = client.get("/api/v1/whoami", Some(&admin)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let email = unique_email();
    let (user_id, user) = client.register(&email).await;
    let post = client
        .json(
            Method::POST,
            "/api/v1/posts",
            Some(&user),
            json!({ "title": "Hello", "body": "World" }),
        )
        .await;
    assert_eq!(post.status, 201, "{}", post.text);

    // Administrators see everyone, through the same services as REST (same data, same order).
    let all = graphql(
        &client,
        Some(&admin),
        "{ users { id email name role createdAt } }",
        json!(null),
    )
    .await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert!(all.body.get("errors").is_none(), "{}", all.text);
    let rest = client.get("/api/v1/users", Some(&admin)).await;
    let ids = |users: &Value| {
        users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&all.body["data"]["users"]), ids(&rest.body["users"]));
    assert_eq!(
        ids(&all.body["data"]["users"]),
        vec![admin_id.clone(), user_id.clone()]
    );
    assert_eq!(all.body["data"]["users"][0]["role"], "ADMIN");
    assert_eq!(all.body["data"]["users"][1]["email"], email);
    let paged = graphql(
        &client,
        Some(&admin),
        "{ users(page: 2, limit: 1) { id } }",
        json!(null),
    )
    .await;
    assert_eq!(ids(&paged.body["data"]["users"]), vec![user_id.clone()]);

    let query =
        "query One($id: ID!) { user(id: $id) { id name role posts { title author { id } } } }";
    let other = graphql(&client, Some(&admin), query, json!({ "id": user_id })).await;
    assert_eq!(
        other.body["data"]["user"]["name"], "Test User",
        "{}",
        other.text
    );
    assert_eq!(other.body["data"]["user"]["posts"][0]["title"], "Hello");
    assert_eq!(
        other.body["data"]["user"]["posts"][0]["author"]["id"],
        user_id.as_str()
    );
    let missing = graphql(&client, Some(&admin), query, json!({ "id": "nope" })).await;
    assert_eq!(
        missing.body,
        json!({ "data": { "user": null } }),
        "{}",
        missing.text
    );

    // A user sees only themselves.
    let mine = graphql(&client, Some(&user), "{ users { id } }", json!(null)).await;
    assert_eq!(
        ids(&mine.body["data"]["users"]),
        vec![user_id.clone()],
        "{}",
        mine.text
    );
    let me = graphql(&client, Some(&user), query, json!({ "id": user_id })).await;
    assert_eq!(
        me.body["data"]["user"]["id"],
        user_id.as_str(),
        "{}",
        me.text
    );
    let forbidden = graphql(&client, Some(&user), query, json!({ "id": admin_id })).await;
    assert_eq!(forbidden.status, 200);
    assert_eq!(
        forbidden.body["data"],
        json!({ "user": null }),
        "{}",
        forbidden.text
    );
    assert_eq!(codes(&forbidden), vec!["FORBIDDEN"]);
    assert_eq!(forbidden.body["errors"][0]["path"], json!(["user"]));

    // Anonymous callers get UNAUTHENTICATED, in GraphQL's format.
    for query in ["{ users { id } }", "{ user(id: \"x\") { id } }"] {
        let anonymous = graphql(&client, None, query, json!(null)).await;
        assert_eq!(anonymous.status, 200, "{}", anonymous.text);
        assert_eq!(
            codes(&anonymous),
            vec!["UNAUTHENTICATED"],
            "{}",
            anonymous.text
        );
        assert!(anonymous.body.get("error").is_none());
    }
    let expired = graphql(
        &client,
        Some("not-a-session"),
        "{ users { id } }",
        json!(null),
    )
    .await;
    assert_eq!(codes(&expired), vec!["UNAUTHENTICATED"]);

    // The session cookie works too, from this site only (the same CSRF rule as /api/v1).
    let host = client.base.trim_start_matches("http://").to_owned();
    let cookie = format!("arbor_session={user}");
    let body = json!({ "query": "{ users { id } }" });
    let request = client
        .http
        .post(client.url("/api/graphql"))
        .header("cookie", &cookie);
    let same_site = client
        .send(
            request
                .header("origin", format!("http://{host}"))
                .json(&body),
        )
        .await;
    assert_eq!(
        ids(&same_site.body["data"]["users"]),
        vec![user_id.clone()],
        "{}",
        same_site.text
    );
    let request = client
        .http
        .post(client.url("/api/graphql"))
        .header("cookie", &cookie);
    client
        .send(request.header("origin", "https://evil.example").json(&body))
        .await
        .error(403, "CSRF_FAILED");

    // No password hash anywhere in the schema or the answers.
    let fields = graphql(
        &client,
        None,
        "{ __type(name: \"User\") { fields { name } } }",
        json!(null),
    )
    .await;
    let names: Vec<_> = fields.body["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "email",
            "name",
            "role",
            "createdAt",
            "updatedAt",
            "posts"
        ]
    );
    for reply in [&all, &other, &mine] {
        assert!(
            !reply.text.to_lowercase().contains("password"),
            "{}",
            reply.text
        );
    }
    let hash = graphql(
        &client,
        Some(&admin),
        "{ users { passwordHash } }",
        json!(null),
    )
    .await;
    assert_graphql_error(&hash, 200, "GRAPHQL_VALIDATION_FAILED");
}

/// `user(id) { posts { author { posts { author ... } } } }`, `depth` fields deep.
fn nested_query(depth: usize) -> String {
    let mut query = String::from("name");
    for level in (2..depth).rev() {
        query = if level % 2 == 0 {
            format!("posts(limit: 1) {{ {query} }}")
        } else {
            format!("author {{ {query} }}")
        };
    }
    format!("query Deep($id: ID!) {{ user(id: $id) {{ {query} }} }}")
}

#[tokio::test]
async fn too_deep_and_too_complex_queries_are_refused() {
    on_every_backend(limits_scenario).await;
}

async fn limits_scenario(backend: Backend) {
    let server = App::start(backend).await;
    let client = server.client();
    let admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin_id = client.get("/api/v1/whoami", Some(&admin)).await.body["id"].clone();
    let post = client
        .json(
            Method::POST,
            "/api/v1/posts",
            Some(&admin),
            json!({ "title": "t", "body": "b" }),
        )
        .await;
    assert_eq!(post.status, 201);

    let deepest = graphql(
        &client,
        Some(&admin),
        &nested_query(arbor_app::graphql::MAX_DEPTH),
        json!({ "id": admin_id }),
    )
    .await;
    assert!(deepest.body.get("errors").is_none(), "{}", deepest.text);
    assert_eq!(
        deepest.body["data"]["user"]["posts"][0]["author"]["posts"][0]["author"]["posts"][0]
            ["author"]["posts"][0]["author"]["name"],
        "Administrator"
    );
    let too_deep = graphql(
        &client,
        Some(&admin),
        &nested_query(arbor_app::graphql::MAX_DEPTH + 1),
        json!({ "id": admin_id }),
    )
    .await;
    assert_graphql_error(&too_deep, 200, "GRAPHQL_VALIDATION_FAILED");
    assert!(
        too_deep.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too deep"),
        "{}",
        too_deep.text
    );

    // Lists cost `limit` times their selection: 100 × 100 is over the limit, 20 × 20 is not.
    let too_complex = graphql(
        &client,
        Some(&admin),
        "{ users(limit: 100) { posts(limit: 100) { id } } }",
        json!(null),
    )
    .await;
    assert_graphql_error(&too_complex, 200, "GRAPHQL_VALIDATION_FAILED");
    assert!(
        too_complex.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{}",
        too_complex.text
    );
    let aliased = (0..40)
        .map(|i| format!("a{i}: users(limit: 100) {{ id }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let too_many = graphql(
        &client,
        Some(&admin),
        &format!("{{ {aliased} }}"),
        json!(null),
    )
    .await;
    assert_graphql_error(&too_many, 200, "GRAPHQL_VALIDATION_FAILED");
    let fine = graphql(
        &client,
        Some(&admin),
        "{ users(limit: 20) { posts(limit: 20) { id } } }",
        json!(null),
    )
    .await;
    assert!(fine.body.get("errors").is_none(), "{}", fine.text);
    // Even refused queries never reach a resolver: an anonymous caller learns nothing more.
    let anonymous = graphql(
        &client,
        None,
        "{ users(limit: 100) { posts(limit: 100) { id } } }",
        json!(null),
    )
    .await;
    assert_graphql_error(&anonymous, 200, "GRAPHQL_VALIDATION_FAILED");

    // GraphiQL's own schema query (15 deep) still works: introspection has roomier limits,
    // and introspection-only queries can resolve nothing else.
    let reply = client
        .json(
            Method::POST,
            "/api/graphql",
            None,
            json!({ "query": INTROSPECTION_QUERY, "operationName": "IntrospectionQuery" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.body.get("errors").is_none(), "{}", reply.text);
    let types = reply.body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "User") && types.iter().any(|t| t["name"] == "Post"));
    let mixed = graphql(
        &client,
        None,
        &format!(
            "{{ __schema {{ queryType {{ name }} }} {} }}",
            "users { id }"
        ),
        json!(null),
    )
    .await;
    assert_eq!(codes(&mixed), vec!["UNAUTHENTICATED"], "{}", mixed.text);
}

#[tokio::test]
async fn malformed_requests_answer_in_graphql_format() {
    let server = App::start(Backend::Sqlite).await;
    let client = server.client();
    let post = |body: &'static str, content_type: &'static str| {
        client.send(
            client
                .http
                .post(client.url("/api/graphql"))
                .header("content-type", content_type)
                .body(body),
        )
    };

    let syntax = post(r#"{"query": "{ users { id "}"#, "application/json").await;
    assert_graphql_error(&syntax, 200, "GRAPHQL_PARSE_FAILED");
    assert!(
        syntax.body["errors"][0]["locations"].is_array(),
        "{}",
        syntax.text
    );
    let unknown = post(r#"{"query": "{ nope }"}"#, "application/json").await;
    assert_graphql_error(&unknown, 200, "GRAPHQL_VALIDATION_FAILED");
    // Input refused while the query runs: arguments out of range, missing variables, an
    // unknown operation.
    for body in [
        r#"{"query": "query($id: ID!) { user(id: $id) { id } }", "variables": {}}"#,
        r#"{"query": "{ users(limit: 0) { id } }"}"#,
        r#"{"query": "query($l: Int) { users(limit: $l) { id } }", "variables": {"l": 101}}"#,
        r#"{"query": "{ users { id } }", "operationName": "Nope"}"#,
        r#"{"query": "query A { users { id } } query B { users { id } }"}"#,
    ] {
        assert_graphql_error(&post(body, "application/json").await, 200, "BAD_USER_INPUT");
    }
    let wrong_type = post(
        r#"{"query": "{ users(limit: \"x\") { id } }"}"#,
        "application/json",
    )
    .await;
    assert_eq!(wrong_type.status, 200);
    assert!(
        codes(&wrong_type)
            .iter()
            .all(|c| *c == "GRAPHQL_VALIDATION_FAILED"),
        "{}",
        wrong_type.text
    );

    for body in [
        r#"{"query": "#,
        "",
        r#"{"variables": {}}"#,
        r#"{"query": 7}"#,
        r#"[{"query": "{ users { id } }"}]"#,
    ] {
        let reply = post(body, "application/json").await;
        assert_graphql_error(&reply, 400, "BAD_REQUEST");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    let variables = post(
        r#"{"query": "{ users { id } }", "variables": [1]}"#,
        "application/json",
    )
    .await;
    assert_graphql_error(&variables, 400, "BAD_REQUEST");
    let form = post("query={users{id}}", "application/x-www-form-urlencoded").await;
    assert_graphql_error(&form, 415, "UNSUPPORTED_MEDIA_TYPE");
    let text = post(r#"{"query": "{ users { id } }"}"#, "text/plain").await;
    assert_graphql_error(&text, 415, "UNSUPPORTED_MEDIA_TYPE");
}

/// What GraphiQL sends to draw its documentation explorer: graphql-js 16's
/// `getIntrospectionQuery({ inputValueDeprecation: true })`.
const INTROSPECTION_QUERY: &str = r"
query IntrospectionQuery {
  __schema {
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives {
      name
      description
      locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}

fragment FullType on __Type {
  kind
  name
  description
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}

fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}

fragment TypeRef on __Type {
  kind
  name
  ofType {
    kind
    name
    ofType {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
                ofType {
                  kind
                  name
                  ofType {
                    kind
                    name
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
";

#[test]
fn the_documented_schema_is_the_schema() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/graphql.md")).unwrap();
    let sdl = arbor_app::graphql::sdl();
    assert!(
        docs.contains(sdl.trim()),
        "docs/graphql.md is out of date; the schema is:\n{sdl}"
    );
}
