//! GraphQL at `/api/graphql` (guide: "Use Case 3: GraphQL Endpoint"), with `async-graphql`.
//!
//! - `user(id)` and `users` resolve through the same services as the REST API
//!   (`state.users`, `state.posts`) and follow the same rules: administrators see every user,
//!   a user sees only themselves, an anonymous caller gets an `UNAUTHENTICATED` error.
//! - Queries are refused before they run when they are nested deeper than [`MAX_DEPTH`] or
//!   cost more than [`MAX_COMPLEXITY`] (list fields cost `limit ×` their selection).
//! - Every answer, errors included, is in GraphQL's own format:
//!   `{"data": .., "errors": [{"message": .., "extensions": {"code": ..}}]}`.
//! - `GET /api/graphql` serves GraphiQL from assets compiled into the binary (see
//!   `app/graphql/assets/README.md`): it works offline and loads nothing from a CDN.
//!
//! The route file, `app/api/graphql/route.rs`, only extracts the request and calls
//! [`execute`], [`graphiql`] and [`asset`].

use std::sync::{Arc, LazyLock};

use arbor::http::{header, HeaderMap, HeaderValue, StatusCode};
use arbor::{ApiError, IntoResponse, Response};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection};
use async_graphql::{
    Context, EmptyMutation, EmptySubscription, Enum, ErrorExtensions, Object, SDLExportOptions,
    Schema, SchemaBuilder, ServerError, ServerResult, ValidationResult, Variables, ID,
};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::services::posts::Post;
use crate::services::users::User;
use crate::AppState;

/// The deepest selection a query may have: `users { posts { author { name } } }` is 4 deep.
pub const MAX_DEPTH: usize = 10;

/// The most a query may cost. Every field costs 1, and a list field costs its `limit` times
/// its selection: `users(limit: 20) { name posts(limit: 20) { title } }` costs
/// `20 × (1 + 20 × 1) + …` ≈ 420.
pub const MAX_COMPLEXITY: usize = 1_000;

/// Limits for introspection-only queries, which carry no data. GraphiQL's schema query is 15
/// levels deep (its `TypeRef` fragment nests `ofType` nine times) and costs about 230.
const INTROSPECTION_MAX_DEPTH: usize = 20;
const INTROSPECTION_MAX_COMPLEXITY: usize = 500;

/// The schema type.
pub type AppSchema = Schema<Query, EmptyMutation, EmptySubscription>;

static SCHEMA: LazyLock<AppSchema> = LazyLock::new(schema);
static INTROSPECTION_SCHEMA: LazyLock<AppSchema> = LazyLock::new(|| {
    builder()
        .limit_depth(INTROSPECTION_MAX_DEPTH)
        .limit_complexity(INTROSPECTION_MAX_COMPLEXITY)
        .introspection_only()
        .finish()
});

fn builder() -> SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
    Schema::build(Query, EmptyMutation, EmptySubscription).extension(ErrorCodes)
}

/// The schema, with its depth and complexity limits. Per-request data: the [`AppState`] and the
/// [`Viewer`].
pub fn schema() -> AppSchema {
    builder()
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as `docs/graphql.md` shows it.
pub fn sdl() -> String {
    let options = SDLExportOptions::new()
        .prefer_single_line_descriptions()
        .use_space_ident()
        .indent_width(2);
    SCHEMA.sdl_with_options(options)
}

/// Who is asking: the session's user, if the request had one.
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<CurrentUser>);

/// The `Query` root.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query;

#[Object]
impl Query {
    /// The user with this id, or `null` if there is none. Administrators reach every user;
    /// everyone else only themselves (`FORBIDDEN` otherwise).
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Option<UserNode> {
        or_null(ctx, find_user(ctx, id.as_str()).await)
    }

    /// Users, oldest first, one page at a time: every user for administrators; for everyone
    /// else, only themselves (on page 1).
    #[graphql(complexity = "(limit as usize).saturating_mul(child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1, validator(minimum = 1, maximum = 100_000))] page: u32,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] limit: u32,
    ) -> async_graphql::Result<Vec<UserNode>> {
        let viewer = signed_in(ctx)?;
        let users = &state(ctx)?.users;
        if viewer.user.is_admin() {
            let page = users.list(page, limit).await.map_err(from_api)?;
            return Ok(page.users.into_iter().map(UserNode).collect());
        }
        if page > 1 {
            return Ok(Vec::new());
        }
        Ok(users
            .find(&viewer.user.id)
            .await
            .map_err(from_api)?
            .map(UserNode)
            .into_iter()
            .collect())
    }
}

/// A user, as every API shows it: there is no password field to ask for.
#[derive(Debug, Clone)]
pub struct UserNode(User);

#[Object(name = "User")]
impl UserNode {
    /// Opaque id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// Email address (lower case).
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// What the user may do.
    async fn role(&self) -> Role {
        if self.0.is_admin() {
            Role::Admin
        } else {
            Role::User
        }
    }

    /// Creation time in Unix milliseconds (a `Float`: GraphQL's `Int` is 32 bits).
    async fn created_at(&self) -> f64 {
        millis(self.0.created_at)
    }

    /// Last change in Unix milliseconds.
    async fn updated_at(&self) -> f64 {
        millis(self.0.updated_at)
    }

    /// The user's posts, newest first (posts are public, as `GET /api/v1/posts` is).
    #[graphql(complexity = "(limit as usize).saturating_mul(child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] limit: u32,
    ) -> async_graphql::Result<Vec<PostNode>> {
        let posts = state(ctx)?
            .posts
            .list(Some(&self.0.id), limit, 0)
            .await
            .map_err(from_api)?;
        Ok(posts.into_iter().map(PostNode).collect())
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Role {
    /// Manages their own resources.
    User,
    /// Manages everything.
    Admin,
}

/// A post.
#[derive(Debug, Clone)]
pub struct PostNode(Post);

#[Object(name = "Post")]
impl PostNode {
    /// Opaque id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// Title.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// Body.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// Incremented by every write: the `ETag` of `/api/v1/posts/{id}`.
    async fn version(&self) -> i32 {
        i32::try_from(self.0.version).unwrap_or(i32::MAX)
    }

    /// Creation time in Unix milliseconds.
    async fn created_at(&self) -> f64 {
        millis(self.0.created_at)
    }

    /// Last change in Unix milliseconds.
    async fn updated_at(&self) -> f64 {
        millis(self.0.updated_at)
    }

    /// The author, under the same rules as `Query.user`.
    async fn author(&self, ctx: &Context<'_>) -> Option<UserNode> {
        or_null(ctx, find_user(ctx, &self.0.author_id).await)
    }
}

#[allow(clippy::cast_precision_loss)] // Unix milliseconds stay below 2^53 for 285,000 years.
fn millis(ms: i64) -> f64 {
    ms as f64
}

// --- Authorization and errors ---------------------------------------------------------------

/// A GraphQL error with `extensions.code`.
fn error(code: &'static str, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, extensions| extensions.set("code", code))
}

/// A service error as a GraphQL error: its code and message, and for a 500 the generic
/// message only (the cause is logged here, with the request's span).
fn from_api(api_error: ApiError) -> async_graphql::Error {
    if api_error.status().is_server_error() {
        tracing::error!(error = ?api_error, "GraphQL resolver failed");
    }
    let code = api_error.code().to_owned();
    async_graphql::Error::new(api_error.message())
        .extend_with(move |_, extensions| extensions.set("code", code.as_str()))
}

fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>().map_err(|_| {
        tracing::error!("AppState missing from the GraphQL request data: run queries with arbor_app::graphql::execute");
        error("INTERNAL_ERROR", "An unexpected error occurred")
    })
}

/// The signed-in user, or `UNAUTHENTICATED`.
fn signed_in<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a CurrentUser> {
    match ctx.data::<Viewer>() {
        Ok(Viewer(Some(current))) => Ok(current),
        _ => Err(error("UNAUTHENTICATED", "Authentication required")),
    }
}

/// User `id` if the viewer may see it.
async fn find_user(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<UserNode>> {
    may_see(ctx, id)?;
    let user = state(ctx)?.users.find(id).await.map_err(from_api)?;
    Ok(user.map(UserNode))
}

/// A nullable field's value: on an error, the error is reported and the field is `null`, as
/// the GraphQL spec says (async-graphql would leave the field out of `data` altogether).
fn or_null<T>(ctx: &Context<'_>, result: async_graphql::Result<Option<T>>) -> Option<T> {
    result.unwrap_or_else(|error| {
        ctx.add_error(ctx.set_error_path(error.into_server_error(ctx.item.pos)));
        None
    })
}

/// `Ok` if the viewer may see user `id`: themselves, or anyone for an administrator.
fn may_see(ctx: &Context<'_>, id: &str) -> async_graphql::Result<()> {
    let viewer = signed_in(ctx)?;
    if viewer.user.is_admin() || viewer.user.id == id {
        Ok(())
    } else {
        Err(error("FORBIDDEN", "You can only access your own resources"))
    }
}

/// Labels the errors async-graphql produces itself: `GRAPHQL_PARSE_FAILED` for a document
/// that does not parse, `GRAPHQL_VALIDATION_FAILED` for one the schema refuses (unknown
/// fields, wrong argument types, too deep, too complex). [`execute`] labels the rest
/// `BAD_USER_INPUT`.
struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| with_code(e, "GRAPHQL_VALIDATION_FAILED"))
                .collect()
        })
    }
}

fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    error
}

// --- HTTP ---------------------------------------------------------------------------------

/// The JSON body of `POST /api/graphql`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Value>,
}

/// Runs a `POST /api/graphql` body for `viewer`. Request problems (no JSON content type,
/// malformed JSON, no `query`) are `4xx` with a GraphQL-format body; everything after that is
/// `200` with `data` and/or `errors`, as GraphQL over HTTP asks for `application/json`.
pub async fn execute(
    state: AppState,
    viewer: Option<CurrentUser>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !is_json(headers) {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Expected a request body with `Content-Type: application/json`",
        );
    }
    let body: Body = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(e) => {
            let message = format!("Malformed GraphQL request: {e}; expected {{\"query\": \"...\", \"variables\": {{...}}}}");
            return request_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message);
        }
    };
    let variables = match body.variables {
        None | Some(serde_json::Value::Null) => Variables::default(),
        Some(value @ serde_json::Value::Object(_)) => Variables::from_json(value),
        Some(_) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "`variables` must be an object",
            )
        }
    };
    let mut request = async_graphql::Request::new(body.query)
        .variables(variables)
        .data(state)
        .data(Viewer(viewer));
    if let Some(name) = body.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    let operation_name = request.operation_name.clone();
    let introspection_only = match request.parsed_query() {
        Ok(document) => only_introspection(document, operation_name.as_deref()),
        // The main schema reports the syntax error.
        Err(_) => false,
    };
    let schema = if introspection_only {
        &*INTROSPECTION_SCHEMA
    } else {
        &*SCHEMA
    };
    let mut response = schema.execute(request).await;
    // What is left without a code is async-graphql refusing the request's input as it runs: an
    // argument out of range, a missing variable, an unknown `operationName`.
    response.errors = response
        .errors
        .into_iter()
        .map(|e| with_code(e, "BAD_USER_INPUT"))
        .collect();
    json_response(StatusCode::OK, &response)
}

/// Whether the operation that will run selects only `__schema`, `__type` and `__typename` at
/// its root (what GraphiQL's documentation explorer sends). Those get roomier limits, and run
/// on a schema that resolves nothing else.
fn only_introspection(document: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    let operation = match operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
            .map(|(_, op)| op),
        None => document.operations.iter().next().map(|(_, op)| op),
    };
    operation.is_some_and(|op| {
        op.node
            .selection_set
            .node
            .items
            .iter()
            .all(|selection| match &selection.node {
                Selection::Field(field) => field.node.name.node.starts_with("__"),
                Selection::FragmentSpread(_) | Selection::InlineFragment(_) => false,
            })
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A request-level error in GraphQL's format: `{"data": null, "errors": [..]}`.
pub fn request_error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response {
    let error = ServerError::new(message, None);
    let response = async_graphql::Response::from_errors(vec![with_code(error, code)]);
    json_response(status, &response)
}

fn json_response(status: StatusCode, response: &async_graphql::Response) -> Response {
    match serde_json::to_vec(response) {
        Ok(body) => (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal_with(e).into_response(),
    }
}

// --- GraphiQL -------------------------------------------------------------------------------

/// Files the GraphiQL page loads, all from this route (`?asset=NAME`): nothing from a CDN.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("graphql/assets/graphiql.min.css"),
    ),
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphql/assets/graphiql.min.js"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphql/assets/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphql/assets/react-dom.production.min.js"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphql/assets/init.js"),
    ),
];

const GRAPHIQL_HTML: &str = include_str!("graphql/assets/index.html");

/// Same-origin only: the page can load nothing from anywhere else, even if it tried.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The GraphiQL page.
pub fn graphiql() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        GRAPHIQL_HTML,
    )
        .into_response()
}

/// One of GraphiQL's files, or `404 NOT_FOUND`.
pub fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => ApiError::not_found(format!("No GraphiQL asset named `{name}`")).into_response(),
    }
}
