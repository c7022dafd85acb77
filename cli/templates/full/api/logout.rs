//! `POST /api/logout`: ends this session.

use arbor::http::StatusCode;
use arbor::sessions::Session;
use arbor::ApiError;

/// Signs out.
pub async fn POST(session: Session) -> Result<StatusCode, ApiError> {
    crate::user_id(&session)?;
    session.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}
