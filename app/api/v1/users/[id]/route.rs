//! `/api/v1/users/{id}`: read, update and delete one user. Users reach themselves;
//! administrators reach everyone.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::http::StatusCode;
use arbor::{ApiError, Json, Path, State, Valid};
use serde::{Deserialize, Serialize};

use crate::auth::{CurrentUser, Sessions};
use crate::services::users::{User, UserChanges};
use crate::validation::UpdateUser;
use crate::AppState;

arbor::middleware!(require_auth_with_state::<Sessions>);

#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct Params {
    pub id: String,
}

pub async fn GET(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Path(params): Path<Params>,
) -> Result<Json<User>, ApiError> {
    current.require_self_or_admin(&params.id)?;
    state
        .users
        .find(&params.id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

pub async fn PATCH(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Path(params): Path<Params>,
    Valid(Json(input)): Valid<Json<UpdateUser>>,
) -> Result<Json<User>, ApiError> {
    current.require_self_or_admin(&params.id)?;
    if input.role.is_some() {
        current.require_admin()?;
    }
    let changes = UserChanges {
        name: input.name,
        email: input.email,
        password: input.password,
        role: input.role,
    };
    state
        .users
        .update(&params.id, changes)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

pub async fn DELETE(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Path(params): Path<Params>,
) -> Result<StatusCode, ApiError> {
    current.require_admin()?;
    if state.users.delete(&params.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("User not found")
}
