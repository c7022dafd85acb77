//! `/api/v1/posts/{id}` with optimistic locking: `GET` answers with an `ETag` (and `304` to a
//! matching `If-None-Match`); `PUT`/`PATCH` require `If-Match` (`428` without it) and answer
//! `409` with `currentVersion` when someone else wrote first.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::conditional::{version_conflict, EntityTag, Preconditions, Validators};
use arbor::http::StatusCode;
use arbor::{ApiError, Json, Path, State, Valid};
use serde::Deserialize;
use validator::Validate;

use crate::auth::{CurrentUser, Sessions};
use crate::services::posts::{Post, PostChanges, UpdateError};
use crate::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Params {
    id: String,
}

#[derive(Deserialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacePost {
    #[validate(length(min = 1, max = 200))]
    title: String,
    #[validate(length(min = 1, max = 20_000))]
    body: String,
}

#[derive(Deserialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditPost {
    #[validate(length(min = 1, max = 200))]
    title: Option<String>,
    #[validate(length(min = 1, max = 20_000))]
    body: Option<String>,
}

pub async fn GET(
    State(state): State<AppState>,
    Path(params): Path<Params>,
    preconditions: Preconditions,
) -> Result<(Validators, Json<Post>), ApiError> {
    let post = state.posts.find(&params.id).await?.ok_or_else(not_found)?;
    let validators = Validators::new().etag(EntityTag::version(post.version));
    preconditions.evaluate(Some(&validators))?;
    Ok((validators, Json(post)))
}

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn PUT(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Path(params): Path<Params>,
    preconditions: Preconditions,
    Valid(Json(input)): Valid<Json<ReplacePost>>,
) -> Result<(Validators, Json<Post>), ApiError> {
    let changes = PostChanges {
        title: Some(input.title),
        body: Some(input.body),
    };
    update(&state, &current, &params.id, &preconditions, changes).await
}

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn PATCH(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Path(params): Path<Params>,
    preconditions: Preconditions,
    Valid(Json(input)): Valid<Json<EditPost>>,
) -> Result<(Validators, Json<Post>), ApiError> {
    let changes = PostChanges {
        title: input.title,
        body: input.body,
    };
    update(&state, &current, &params.id, &preconditions, changes).await
}

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn DELETE(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Path(params): Path<Params>,
) -> Result<StatusCode, ApiError> {
    let post = state.posts.find(&params.id).await?.ok_or_else(not_found)?;
    current.require_self_or_admin(&post.author_id)?;
    state.posts.delete(&post.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update(
    state: &AppState,
    current: &CurrentUser,
    id: &str,
    preconditions: &Preconditions,
    changes: PostChanges,
) -> Result<(Validators, Json<Post>), ApiError> {
    let expected = preconditions.expected_version()?;
    let post = state.posts.find(id).await?.ok_or_else(not_found)?;
    current.require_self_or_admin(&post.author_id)?;
    match state.posts.update(id, expected, changes).await {
        Ok(post) => {
            // The author's live stream hears about it (`GET /api/v1/events`); best effort.
            let notice = crate::topics::PostUpdated {
                id: post.id.clone(),
                version: post.version,
                title: post.title.clone(),
                by: current.user.id.clone(),
            };
            if let Err(error) = state
                .events
                .publish(
                    &crate::topics::user_topic(&post.author_id),
                    "post.updated",
                    &notice,
                )
                .await
            {
                tracing::warn!(%error, "could not publish post.updated");
            }
            let validators = Validators::new().etag(EntityTag::version(post.version));
            Ok((validators, Json(post)))
        }
        Err(UpdateError::NotFound) => Err(not_found()),
        Err(UpdateError::Stale { current_version }) => Err(version_conflict(current_version)),
        Err(UpdateError::Failed(error)) => Err(error),
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Post not found")
}

/// `If-Match` is required (`428` without it), which the `Preconditions` type cannot say.
pub fn describe_PUT(operation: &mut arbor::openapi::DocumentBuilder) {
    operation.require_header("If-Match");
}

/// As for `PUT`.
pub fn describe_PATCH(operation: &mut arbor::openapi::DocumentBuilder) {
    describe_PUT(operation);
}
