//! `/api/graphql` (guide: "Use Case 3: GraphQL Endpoint"): `GET` serves GraphiQL, with its
//! files from this same URL (`?asset=NAME`); `POST` runs a query. The schema, its limits and
//! its rules are in `app/graphql.rs`.

use arbor::auth::{optional_auth_with_state, Auth};
use arbor::http::{HeaderMap, StatusCode};
use arbor::{Query, Response, State};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{CurrentUser, Sessions};
use crate::graphql;
use crate::AppState;

#[derive(Deserialize)]
pub struct Page {
    asset: Option<String>,
}

/// GraphiQL, or one of its files with `?asset=NAME`.
pub async fn GET(Query(page): Query<Page>) -> Response {
    match page.asset {
        Some(name) => graphql::asset(&name),
        None => graphql::graphiql(),
    }
}

/// Runs `{"query", "variables"?, "operationName"?}` as the session's user, if any. A
/// cookie-authenticated request must come from this site, as for `/api/v1`.
#[arbor::handler(arbor::csrf(), optional_auth_with_state::<Sessions>)]
pub async fn POST(
    State(state): State<AppState>,
    viewer: Option<Auth<CurrentUser>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => {
            graphql::execute(state, viewer.map(|Auth(current)| current), &headers, &body).await
        }
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "PAYLOAD_TOO_LARGE"
            } else {
                "BAD_REQUEST"
            };
            graphql::request_error(status, code, rejection.body_text())
        }
    }
}

/// The GraphQL-over-HTTP request, and its answers in GraphQL's own shape (`data`, `errors`)
/// rather than Arbor's error shape: the handler reads the raw body itself.
pub fn describe_POST(operation: &mut arbor::openapi::DocumentBuilder) {
    operation.request_body_schema(
        "application/json",
        json!({
            "type": "object",
            "properties": {
                "query": { "type": "string" },
                "variables": { "type": ["object", "null"] },
                "operationName": { "type": ["string", "null"] },
            },
            "required": ["query"],
        }),
    );
    operation.request_example(json!({ "query": "{ me { id email } }" }));
    let answer = json!({
        "type": "object",
        "properties": {
            "data": {},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "message": { "type": "string" },
                        "extensions": { "type": "object" },
                    },
                    "required": ["message"],
                },
            },
        },
    });
    for status in [200, 400, 413, 415] {
        operation.response(Some(status), Some(("application/json", answer.clone())));
    }
}
