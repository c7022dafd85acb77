//! `GET` and `DELETE /api/notes/{id}`: one of the signed-in user's notes.

use arbor::http::StatusCode;
use arbor::sessions::Session;
use arbor::{ApiError, Json, Path, State};
use serde::{Deserialize, Serialize};

use crate::routes::route_notes::Note;
use crate::AppState;

#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct Params {
    pub id: i64,
}

/// One note; `404` for another user's.
pub async fn GET(
    State(state): State<AppState>,
    session: Session,
    Path(params): Path<Params>,
) -> Result<Json<Note>, ApiError> {
    let user_id = crate::user_id(&session)?;
    sqlx::query_as("SELECT id, text, created_at FROM notes WHERE id = $1 AND user_id = $2")
        .bind(params.id)
        .bind(user_id)
        .fetch_optional(&state.db)
        .await
        .map_err(ApiError::internal_with)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no note {}", params.id)))
}

/// Deletes a note.
pub async fn DELETE(
    State(state): State<AppState>,
    session: Session,
    Path(params): Path<Params>,
) -> Result<StatusCode, ApiError> {
    let user_id = crate::user_id(&session)?;
    let deleted = sqlx::query("DELETE FROM notes WHERE id = $1 AND user_id = $2")
        .bind(params.id)
        .bind(user_id)
        .execute(&state.db)
        .await
        .map_err(ApiError::internal_with)?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("no note {}", params.id)));
    }
    Ok(StatusCode::NO_CONTENT)
}
