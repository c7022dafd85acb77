//! `/api/v1/users`: list (paginated) and create. Administrators only.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::http::StatusCode;
use arbor::{ApiError, Json, Query, State, Valid};

use crate::auth::{CurrentUser, Sessions};
use crate::services::users::{NewUser, Page, User};
use crate::validation::{CreateUser, PageQuery};
use crate::AppState;

/// List users, a page at a time.
///
/// Administrators only.
#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn GET(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Valid(Query(query)): Valid<Query<PageQuery>>,
) -> Result<Json<Page>, ApiError> {
    current.require_admin()?;
    Ok(Json(state.users.list(query.page, query.limit).await?))
}

/// Create a user.
///
/// Administrators only; the email must not be taken.
#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn POST(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Valid(Json(input)): Valid<Json<CreateUser>>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    current.require_admin()?;
    let user = state
        .users
        .create(NewUser {
            email: input.email,
            name: input.name,
            password: input.password,
            role: input.role,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}
