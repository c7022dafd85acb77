//! `POST /api/login`: a new session for an account; one answer for a wrong email or password.

use arbor::sessions::Session;
use arbor::{ApiError, Json, State, Valid};

use crate::accounts::{verify_password, Credentials, SignedIn};
use crate::AppState;

/// Signs in: 5 attempts a minute per client.
#[arbor::handler(arbor::rate_limit(limit = 5, window = 60))]
pub async fn POST(
    State(state): State<AppState>,
    session: Session,
    Valid(Json(credentials)): Valid<Json<Credentials>>,
) -> Result<Json<SignedIn>, ApiError> {
    let account: Option<(i64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(credentials.email.to_lowercase())
            .fetch_optional(&state.db)
            .await
            .map_err(ApiError::internal_with)?;
    let wrong = || ApiError::unauthorized("wrong email or password");
    let (id, hash) = account.ok_or_else(wrong)?;
    if !verify_password(credentials.password, hash).await? {
        return Err(wrong());
    }
    let token = session.login(id.to_string()).await?;
    Ok(Json(SignedIn { user_id: id, token }))
}
