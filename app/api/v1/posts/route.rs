//! `/api/v1/posts`: list (public) and create (signed in, idempotent with `Idempotency-Key`).

use arbor::auth::{require_auth_with_state, Auth};
use arbor::conditional::{EntityTag, Validators};
use arbor::http::{header, HeaderValue, StatusCode};
use arbor::{ApiError, Json, Query, State, Valid};
use serde::Deserialize;
use validator::Validate;

use crate::auth::{idempotency_per_user, CurrentUser, Sessions};
use crate::services::posts::Post;
use crate::validation::PageQuery;
use crate::AppState;

#[derive(Deserialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    #[validate(length(min = 1, max = 200))]
    title: String,
    #[validate(length(min = 1, max = 20_000))]
    body: String,
}

pub async fn GET(
    State(state): State<AppState>,
    Valid(Query(page)): Valid<Query<PageQuery>>,
) -> Result<Json<Vec<Post>>, ApiError> {
    let offset = (page.page - 1).saturating_mul(page.limit);
    Ok(Json(state.posts.list(None, page.limit, offset).await?))
}

/// Safe to retry: send an `Idempotency-Key` and a retried request replays the first answer
/// instead of creating a second post.
#[arbor::handler(require_auth_with_state::<Sessions>, idempotency_per_user, arbor::idempotency())]
pub async fn POST(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Valid(Json(input)): Valid<Json<NewPost>>,
) -> Result<
    (
        StatusCode,
        Validators,
        [(header::HeaderName, HeaderValue); 1],
        Json<Post>,
    ),
    ApiError,
> {
    let post = state
        .posts
        .create(&current.user.id, &input.title, &input.body)
        .await?;
    let location = HeaderValue::from_str(&format!("/api/v1/posts/{}", post.id))
        .map_err(ApiError::internal_with)?;
    Ok((
        StatusCode::CREATED,
        Validators::new().etag(EntityTag::version(post.version)),
        [(header::LOCATION, location)],
        Json(post),
    ))
}
