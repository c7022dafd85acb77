//! `POST /api/v1/logout`: end the current session (cookie or bearer).

use arbor::auth::{require_auth, Auth};
use arbor::http::{header, HeaderValue, StatusCode};
use arbor::{ApiError, State};

use crate::auth::{clear_session_cookie, CurrentUser, Sessions};
use crate::AppState;

#[arbor::handler(require_auth(Sessions))]
pub async fn POST(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
) -> Result<(StatusCode, [(header::HeaderName, HeaderValue); 1]), ApiError> {
    state.sessions.delete(&current.token).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            clear_session_cookie(state.config.secure_cookies),
        )],
    ))
}
