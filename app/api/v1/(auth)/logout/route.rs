//! `POST /api/v1/logout`: end the current session (cookie or bearer); the response removes
//! the cookie.

use arbor::auth::require_auth_with_state;
use arbor::http::StatusCode;
use arbor::sessions::Session;
use arbor::ApiError;

use crate::auth::Sessions;

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn POST(session: Session) -> Result<StatusCode, ApiError> {
    session.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}
