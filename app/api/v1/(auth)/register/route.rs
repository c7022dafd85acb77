//! `POST /api/v1/register`: create an account and start a session.

use arbor::http::StatusCode;
use arbor::sessions::Session;
use arbor::{Json, State, Valid};

use crate::auth::SignedIn;
use crate::services::users::{NewUser, Role};
use crate::validation::CreateUser;
use crate::AppState;

#[arbor::handler(arbor::rate_limit(limit = 10, window = 60))]
pub async fn POST(
    State(state): State<AppState>,
    session: Session,
    Valid(Json(input)): Valid<Json<CreateUser>>,
) -> Result<(StatusCode, Json<SignedIn>), arbor::ApiError> {
    // Self-service accounts are always plain users; administrators create administrators.
    let user = state
        .users
        .create(NewUser {
            email: input.email,
            name: input.name,
            password: input.password,
            role: Role::User,
        })
        .await?;
    let token = session.login(&user.id).await?;
    Ok((StatusCode::CREATED, Json(SignedIn { user, token })))
}
