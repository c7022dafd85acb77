//! `POST /api/v1/login`: 5 attempts per minute per client; one generic answer for a wrong
//! email or a wrong password.

use arbor::http::{header, HeaderValue};
use arbor::{ApiError, Json, State, Valid};
use serde::Deserialize;
use serde_json::{json, Value};
use validator::Validate;

use crate::auth::session_cookie;
use crate::AppState;

#[derive(Deserialize, Validate)]
pub struct Credentials {
    #[validate(length(min = 1, max = 320))]
    email: String,
    #[validate(length(min = 1, max = 256))]
    password: String,
}

#[arbor::handler(arbor::rate_limit(limit = 5, window = 60, fail_closed = true))]
pub async fn POST(
    State(state): State<AppState>,
    Valid(Json(credentials)): Valid<Json<Credentials>>,
) -> Result<([(header::HeaderName, HeaderValue); 1], Json<Value>), ApiError> {
    let Some(user) = state
        .users
        .authenticate(&credentials.email, &credentials.password)
        .await?
    else {
        return Err(ApiError::unauthorized("Invalid email or password"));
    };
    let token = state.sessions.create(&user.id).await?;
    let cookie = session_cookie(
        &token,
        state.sessions.ttl_secs(),
        state.config.secure_cookies,
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "user": user, "token": token })),
    ))
}
