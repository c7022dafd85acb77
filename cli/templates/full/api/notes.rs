//! `GET /api/notes` (the signed-in user's notes, newest first, a page at a time) and
//! `POST /api/notes`.

use arbor::http::StatusCode;
use arbor::sessions::Session;
use arbor::{ApiError, Json, Query, State, Valid};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::AppState;

#[derive(Deserialize, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Note {
    pub id: i64,
    pub text: String,
    pub created_at: i64,
}

#[derive(Deserialize, Serialize, Validate, schemars::JsonSchema)]
pub struct Page {
    /// Notes older than this id (the last id of the previous page).
    pub before: Option<i64>,
    #[validate(range(min = 1, max = 100))]
    pub limit: Option<i64>,
}

#[derive(Deserialize, Serialize, Validate, schemars::JsonSchema)]
pub struct NewNote {
    #[validate(length(min = 1, max = 10_000))]
    pub text: String,
}

/// The signed-in user's notes, newest first.
pub async fn GET(
    State(state): State<AppState>,
    session: Session,
    Valid(Query(page)): Valid<Query<Page>>,
) -> Result<Json<Vec<Note>>, ApiError> {
    let user_id = crate::user_id(&session)?;
    let notes = sqlx::query_as(
        "SELECT id, text, created_at FROM notes WHERE user_id = $1 AND id < $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(user_id)
    .bind(page.before.unwrap_or(i64::MAX))
    .bind(page.limit.unwrap_or(20))
    .fetch_all(&state.db)
    .await
    .map_err(ApiError::internal_with)?;
    Ok(Json(notes))
}

/// Writes a note.
pub async fn POST(
    State(state): State<AppState>,
    session: Session,
    Valid(Json(new)): Valid<Json<NewNote>>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let user_id = crate::user_id(&session)?;
    let note = sqlx::query_as(
        "INSERT INTO notes (user_id, text, created_at) VALUES ($1, $2, $3) \
         RETURNING id, text, created_at",
    )
    .bind(user_id)
    .bind(new.text)
    .bind(crate::now_ms())
    .fetch_one(&state.db)
    .await
    .map_err(ApiError::internal_with)?;
    Ok((StatusCode::CREATED, Json(note)))
}
