//! `POST /api/v1/login`: 5 attempts per minute per client; one generic answer for a wrong
//! email or a wrong password. The session (a new id, its cookie) is the framework's.

use arbor::sessions::Session;
use arbor::{ApiError, Json, State, Valid};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::auth::SignedIn;
use crate::AppState;

#[derive(Deserialize, Serialize, Validate, schemars::JsonSchema)]
pub struct Credentials {
    #[validate(length(min = 1, max = 320))]
    pub email: String,
    #[validate(length(min = 1, max = 256))]
    pub password: String,
}

#[arbor::handler(arbor::rate_limit(limit = 5, window = 60, fail_closed = true))]
pub async fn POST(
    State(state): State<AppState>,
    session: Session,
    Valid(Json(credentials)): Valid<Json<Credentials>>,
) -> Result<Json<SignedIn>, ApiError> {
    let Some(user) = state
        .users
        .authenticate(&credentials.email, &credentials.password)
        .await?
    else {
        return Err(ApiError::unauthorized("Invalid email or password"));
    };
    let token = session.login(&user.id).await?;
    Ok(Json(SignedIn { user, token }))
}
