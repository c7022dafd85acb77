//! `POST /api/signup`: an account, and a session for it.

use arbor::http::StatusCode;
use arbor::sessions::Session;
use arbor::{ApiError, Json, State, Valid};

use crate::accounts::{Credentials, SignedIn};
use crate::AppState;

/// Creates an account and signs it in.
#[arbor::handler(arbor::rate_limit(limit = 10, window = 60))]
pub async fn POST(
    State(state): State<AppState>,
    session: Session,
    Valid(Json(credentials)): Valid<Json<Credentials>>,
) -> Result<(StatusCode, Json<SignedIn>), ApiError> {
    let hash = crate::accounts::hash_password(credentials.password).await?;
    let created: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (email) DO NOTHING RETURNING id",
    )
    .bind(credentials.email.to_lowercase())
    .bind(hash)
    .bind(crate::now_ms())
    .fetch_optional(&state.db)
    .await
    .map_err(ApiError::internal_with)?;
    let Some((id,)) = created else {
        return Err(ApiError::conflict("an account with this email exists"));
    };
    let token = session.login(id.to_string()).await?;
    Ok((StatusCode::CREATED, Json(SignedIn { user_id: id, token })))
}
