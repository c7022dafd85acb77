//! `POST /api/v1/register`: create an account and start a session.

use arbor::http::{header, StatusCode};
use arbor::{Json, State, Valid};
use serde_json::{json, Value};

use crate::auth::session_cookie;
use crate::services::users::{NewUser, Role};
use crate::validation::CreateUser;
use crate::AppState;

#[arbor::handler(arbor::rate_limit(limit = 10, window = 60))]
pub async fn POST(
    State(state): State<AppState>,
    Valid(Json(input)): Valid<Json<CreateUser>>,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, arbor::http::HeaderValue); 1],
        Json<Value>,
    ),
    arbor::ApiError,
> {
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
    let token = state.sessions.create(&user.id).await?;
    let cookie = session_cookie(
        &token,
        state.sessions.ttl_secs(),
        state.config.secure_cookies,
    );
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "user": user, "token": token })),
    ))
}
